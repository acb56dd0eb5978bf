// Internal to the model library: what one layer of one RwkvModel step works on, shared by
// the per-version layer implementations (rwkv7_layer.cc, rwkv_classic_layer.cc).
//
// A step's rows are the tokens of every sequence, sequences in step order; each matrix below
// holds one row per token. Not thread-safe: RwkvModel runs one step at a time.
#ifndef SKEIN_SERVICES_WORKER_MODEL_LAYER_STEP_H_
#define SKEIN_SERVICES_WORKER_MODEL_LAYER_STEP_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/types/span.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"
#include "services/worker/model/rwkv_model.h"
#include "services/worker/model/rwkv_weights.h"
#include "services/worker/model/state.h"

namespace skein::model {

inline constexpr float kLayerNormEps = 1e-5f;
inline constexpr float kGroupNormEps = 64e-5f;

// Row-major [rows, cols] fp32 scratch matrix.
struct Buffer {
  std::vector<float> data;
  int64_t cols = 0;
  void Resize(int64_t rows, int64_t c) {
    cols = c;
    if (data.size() < static_cast<size_t>(rows * c)) data.resize(rows * c);
  }
  float* row(int64_t r) { return data.data() + r * cols; }
  const float* row(int64_t r) const { return data.data() + r * cols; }
  float* ptr() { return data.data(); }
};

inline kernels::MatMulJob Job(Buffer& in, const kernels::WeightMatrix& w, Buffer& out, int64_t rows,
                              bool bf16_activations, bool accumulate = false) {
  return kernels::MatMulJob{in.ptr(), in.cols, w,          out.ptr(),
                            out.cols, rows,    accumulate, bf16_activations};
}

// Scratch memory of a step, kept between steps of up to RwkvModel::kRetainedScratchRows rows.
struct RwkvModel::Scratch {
  int64_t rows = 0;
  // For each row, the index of its sequence in the step.
  std::vector<int32_t> row_sequence;
  Buffer x, v_first, xa, xr, xw, xk, xv, xa_mix, xg, r, k, v, lora_w, lora_a, lora_v, lora_g, decay,
      alpha, v_gate, gate, kappa, a_in, b_in, y, xf, ffn_hidden, head_in, maa;

  void Resize(int64_t t, const RwkvConfig& d) {
    rows = t;
    for (Buffer* b : {&x, &v_first, &xa,    &xr,     &xw,   &xk,    &xv,   &xa_mix, &xg, &r, &k,
                      &v, &decay,   &alpha, &v_gate, &gate, &kappa, &a_in, &b_in,   &y,  &xf}) {
      b->Resize(t, d.n_embd);
    }
    lora_w.Resize(t, d.d_decay);
    lora_a.Resize(t, d.d_iclr);
    lora_v.Resize(t, std::max<int64_t>(d.d_value, 1));
    lora_g.Resize(t, d.d_gate);
    maa.Resize(t, 5 * d.d_mix);
    ffn_hidden.Resize(t, d.ffn);
  }

  std::vector<Buffer*> All() {
    return {&x,      &v_first, &xa,    &xr,    &xw,         &xk,      &xv,
            &xa_mix, &xg,      &r,     &k,     &v,          &lora_w,  &lora_a,
            &lora_v, &lora_g,  &decay, &alpha, &v_gate,     &gate,    &kappa,
            &a_in,   &b_in,    &y,     &xf,    &ffn_hidden, &head_in, &maa};
  }
  // Frees every buffer (the next step allocates what it needs).
  void Release() {
    for (Buffer* b : All()) std::vector<float>().swap(b->data);
    std::vector<int32_t>().swap(row_sequence);
  }
  size_t bytes() {
    size_t total = row_sequence.capacity() * sizeof(int32_t);
    for (Buffer* b : All()) total += b->data.capacity() * sizeof(float);
    return total;
  }
};

// One layer of one step: the weights, the scratch rows and the sequences' states.
struct LayerStep {
  const RwkvConfig& d;
  const RwkvLayerWeights& lw;
  int layer;
  RwkvModel::Scratch& sc;
  absl::Span<const SequenceStep> sequences;
  absl::Span<const int64_t> offsets;  // sequence s has rows [offsets[s], offsets[s + 1])
  kernels::ThreadPool* pool;
  bool bf16;  // round large products' activations to bf16 (RwkvModelOptions)
  bool int8;  // quantise large products' activations to int8 where weights are int8 (same)

  int64_t rows() const { return sc.rows; }

  // A large product (projections, FFN, the head's kind): activations as the options say. The
  // LoRAs use Job(…, false) instead and keep fp32 activations.
  kernels::MatMulJob Big(Buffer& in, const kernels::WeightMatrix& w, Buffer& out,
                         bool accumulate = false) const {
    kernels::MatMulJob job = Job(in, w, out, rows(), bf16, accumulate);
    job.int8_activations = int8;
    return job;
  }

  // Runs fn(r) for every row, in chunks of `grain` rows on the pool.
  template <typename F>
  void ParallelRows(int64_t grain, F&& fn) const {
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) fn(r);
    };
    if (pool != nullptr) {
      pool->ParallelFor(rows(), grain, body);
    } else {
      body(0, rows());
    }
  }

  // Runs fn(begin, end) over [0, tasks) on the pool.
  template <typename F>
  void ParallelTasks(int64_t tasks, int64_t grain, F&& fn) const {
    if (pool != nullptr) {
      pool->ParallelFor(tasks, grain, fn);
    } else {
      fn(0, tasks);
    }
  }

  // The previous token's normalised input for row r: the previous row of the same sequence,
  // or the state's saved value for a sequence's first row.
  const float* Previous(const Buffer& normed, int64_t r, bool ffn) const {
    const int32_t s = sc.row_sequence[r];
    if (r > offsets[s]) return normed.row(r - 1);
    RwkvState& state = *sequences[s].state;
    return (ffn ? state.ffn_x_prev(layer) : state.att_x_prev(layer)).data();
  }

  // Saves each sequence's last normalised input as its state's token-shift value.
  void SaveLastRows(const Buffer& normed, bool ffn) const {
    for (size_t s = 0; s + 1 < offsets.size(); ++s) {
      RwkvState& state = *sequences[s].state;
      float* dst = (ffn ? state.ffn_x_prev(layer) : state.att_x_prev(layer)).data();
      std::memcpy(dst, normed.row(offsets[s + 1] - 1), d.n_embd * sizeof(float));
    }
  }
};

// x070 (spec §2.4).
void RunX070Layer(const LayerStep& step);
// RWKV-4, x052 and x060 (spec §§3-5).
void RunClassicLayer(const LayerStep& step);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_LAYER_STEP_H_
