#include "services/worker/model/rwkv7_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/kernels.h"

namespace skein::model {
namespace {

using kernels::MatMulJob;
using kernels::WeightMatrix;

constexpr float kLayerNormEps = 1e-5f;
constexpr float kGroupNormEps = 64e-5f;
constexpr float kL2MinNorm = 1e-12f;
// exp(-0.5): the decay is w = exp(-e^{-1/2}·σ(z)) (spec §2.4).
constexpr float kDecayScale = 0.6065306597126334f;

// Row-major [rows, cols] fp32 scratch matrix.
struct Buffer {
  std::vector<float> data;
  int64_t cols = 0;
  void Resize(int64_t rows, int64_t c) {
    cols = c;
    if (data.size() < static_cast<size_t>(rows * c)) data.resize(rows * c);
  }
  float* row(int64_t r) { return data.data() + r * cols; }
  float* ptr() { return data.data(); }
};

MatMulJob Job(Buffer& in, const WeightMatrix& w, Buffer& out, int64_t rows, bool bf16_activations,
              bool accumulate = false) {
  return MatMulJob{in.ptr(), in.cols, w, out.ptr(), out.cols, rows, accumulate, bf16_activations};
}

}  // namespace

struct Rwkv7Model::Scratch {
  int64_t rows = 0;
  // For each row, whether it is the first row of its sequence (token shift reads the state).
  std::vector<int32_t> row_sequence;
  Buffer x, v_first, xa, xr, xw, xk, xv, xa_mix, xg, r, k, v, lora_w, lora_a, lora_v, lora_g, decay,
      alpha, v_gate, gate, kappa, a_in, b_in, y, xf, ffn_hidden, head_in;

  void Resize(int64_t t, const Rwkv7Config& d) {
    rows = t;
    for (Buffer* b : {&x, &v_first, &xa,    &xr,     &xw,   &xk,    &xv,   &xa_mix, &xg, &r, &k,
                      &v, &decay,   &alpha, &v_gate, &gate, &kappa, &a_in, &b_in,   &y,  &xf}) {
      b->Resize(t, d.n_embd);
    }
    lora_w.Resize(t, d.d_decay);
    lora_a.Resize(t, d.d_iclr);
    lora_v.Resize(t, std::max<int64_t>(d.d_value, 1));
    lora_g.Resize(t, d.d_gate);
    ffn_hidden.Resize(t, d.ffn);
  }

  std::vector<Buffer*> All() {
    return {&x,      &v_first, &xa,    &xr,     &xw,     &xk,     &xv,     &xa_mix,     &xg,
            &r,      &k,       &v,     &lora_w, &lora_a, &lora_v, &lora_g, &decay,      &alpha,
            &v_gate, &gate,    &kappa, &a_in,   &b_in,   &y,      &xf,     &ffn_hidden, &head_in};
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

Rwkv7Model::Rwkv7Model(std::shared_ptr<const Rwkv7Weights> weights, kernels::ThreadPool* pool,
                       Rwkv7ModelOptions options)
    : weights_(std::move(weights)),
      pool_(pool),
      options_(options),
      scratch_(std::make_unique<Scratch>()) {}

Rwkv7Model::~Rwkv7Model() = default;

absl::Status Rwkv7Model::Validate(absl::Span<const SequenceStep> sequences,
                                  const StageActivations* input) const {
  const Rwkv7Weights& w = *weights_;
  const Rwkv7Config& d = w.config();
  if (w.has_embedding() && input != nullptr) {
    return absl::InvalidArgumentError("the first stage takes token ids, not activations");
  }
  if (!w.has_embedding() && input == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("a stage starting at layer ", w.first_layer(),
                                                   " needs the previous stage's activations"));
  }
  std::set<const Rwkv7State*> seen;
  int64_t rows = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const SequenceStep& seq = sequences[s];
    if (seq.state == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no state"));
    }
    if (seq.state->shape() != w.state_shape()) {
      const StateShape& sh = seq.state->shape();
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s, ": state for layers [", sh.first_layer, ", ", sh.last_layer,
                       ") C=", sh.embd, " does not fit this stage (layers [", w.first_layer(), ", ",
                       w.last_layer(), ") C=", d.n_embd, ")"));
    }
    if (!seen.insert(seq.state).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s, " uses a state that another sequence of the step uses"));
    }
    if (w.has_embedding()) {
      if (seq.tokens.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no tokens"));
      }
      for (size_t i = 0; i < seq.tokens.size(); ++i) {
        if (seq.tokens[i] < 0 || seq.tokens[i] >= d.vocab) {
          return absl::InvalidArgumentError(
              absl::StrCat("sequence ", s, ": token ", i, " is ", seq.tokens[i],
                           ", outside the vocabulary [0, ", d.vocab, ")"));
        }
      }
      rows += static_cast<int64_t>(seq.tokens.size());
    } else {
      if (!seq.tokens.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", s, ": token ids given to a stage that does not start at layer 0"));
      }
      if (seq.num_tokens <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no tokens"));
      }
      rows += seq.num_tokens;
    }
  }
  if (input != nullptr) {
    const size_t want = static_cast<size_t>(rows * d.n_embd);
    if (input->rows != rows || input->width != d.n_embd || input->hidden.size() != want ||
        input->v_first.size() != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("activations hold ", input->rows, " rows of width ", input->width, " (",
                       input->hidden.size(), " hidden and ", input->v_first.size(),
                       " v_first values); the sequences need ", rows, " rows of width ", d.n_embd));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StepResult> Rwkv7Model::Step(absl::Span<const SequenceStep> sequences,
                                            const StageActivations* input) {
  StepResult result;
  if (absl::Status s = Step(sequences, input, &result); !s.ok()) return s;
  return result;
}

absl::Status Rwkv7Model::Step(absl::Span<const SequenceStep> sequences,
                              const StageActivations* input, StepResult* out) {
  if (absl::Status s = Validate(sequences, input); !s.ok()) return s;
  absl::MutexLock lock(&mutex_);
  const Rwkv7Weights& w = *weights_;
  const Rwkv7Config& d = w.config();
  const int64_t C = d.n_embd;

  // Row offsets of each sequence in the step.
  std::vector<int64_t> offsets(sequences.size() + 1, 0);
  for (size_t s = 0; s < sequences.size(); ++s) {
    const int64_t n = w.has_embedding() ? static_cast<int64_t>(sequences[s].tokens.size())
                                        : sequences[s].num_tokens;
    offsets[s + 1] = offsets[s] + n;
  }
  const int64_t rows = offsets.back();
  StepResult& result = *out;
  result.logits_rows.clear();
  result.activations.rows = 0;
  result.activations.width = 0;
  if (rows == 0) {
    result.logits.clear();
    result.activations.hidden.clear();
    result.activations.v_first.clear();
    return absl::OkStatus();
  }

  Scratch& sc = *scratch_;
  sc.Resize(rows, d);
  // Whichever way the step ends, an oversized one hands its scratch memory back.
  absl::Cleanup shrink = [&sc, rows] {
    if (rows > kRetainedScratchRows) sc.Release();
  };
  sc.row_sequence.resize(rows);
  for (size_t s = 0; s < sequences.size(); ++s) {
    for (int64_t r = offsets[s]; r < offsets[s + 1]; ++r)
      sc.row_sequence[r] = static_cast<int32_t>(s);
  }

  if (w.has_embedding()) {
    std::vector<int32_t> tokens;
    tokens.reserve(rows);
    for (const SequenceStep& seq : sequences)
      tokens.insert(tokens.end(), seq.tokens.begin(), seq.tokens.end());
    auto embed = [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) w.Embed(tokens[r], sc.x.row(r));
    };
    if (pool_ != nullptr) {
      pool_->ParallelFor(rows, 4, embed);
    } else {
      embed(0, rows);
    }
  } else {
    std::memcpy(sc.x.ptr(), input->hidden.data(), rows * C * sizeof(float));
    std::memcpy(sc.v_first.ptr(), input->v_first.data(), rows * C * sizeof(float));
  }

  for (int l = w.first_layer(); l < w.last_layer(); ++l) RunLayer(l, sequences, offsets);
  for (const SequenceStep& seq : sequences) {
    seq.state->set_position(seq.state->position() + (w.has_embedding()
                                                         ? static_cast<int64_t>(seq.tokens.size())
                                                         : seq.num_tokens));
  }

  if (!w.has_head()) {
    result.activations.rows = rows;
    result.activations.width = C;
    result.activations.hidden.assign(sc.x.ptr(), sc.x.ptr() + rows * C);
    result.activations.v_first.assign(sc.v_first.ptr(), sc.v_first.ptr() + rows * C);
    result.logits.clear();
    return absl::OkStatus();
  }

  // ln_out and the head on the rows that need logits.
  std::vector<int64_t> out_rows;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const int64_t begin = sequences[s].no_logits    ? offsets[s + 1]
                          : sequences[s].all_logits ? offsets[s]
                                                    : offsets[s + 1] - 1;
    for (int64_t r = begin; r < offsets[s + 1]; ++r) out_rows.push_back(r);
    result.logits_rows.push_back(offsets[s + 1] - begin);
  }
  const int64_t n_out = static_cast<int64_t>(out_rows.size());
  result.logits.resize(n_out * d.vocab);
  result.activations.hidden.clear();
  result.activations.v_first.clear();
  if (n_out == 0) return absl::OkStatus();
  sc.head_in.Resize(n_out, C);
  for (int64_t i = 0; i < n_out; ++i) {
    kernels::LayerNorm(sc.x.row(out_rows[i]), w.ln_out_w(), w.ln_out_b(), C, kLayerNormEps,
                       sc.head_in.row(i));
  }
  kernels::MatMul(MatMulJob{sc.head_in.ptr(), C, w.head(), result.logits.data(), d.vocab, n_out,
                            false, options_.bf16_activations},
                  pool_);
  return absl::OkStatus();
}

size_t Rwkv7Model::scratch_bytes() const {
  absl::MutexLock lock(&mutex_);
  return scratch_->bytes();
}

void Rwkv7Model::RunLayer(int layer, absl::Span<const SequenceStep> sequences,
                          absl::Span<const int64_t> offsets) {
  const Rwkv7Weights& w = *weights_;
  const Rwkv7Config& d = w.config();
  const Rwkv7LayerWeights& lw = w.layer(layer);
  Scratch& sc = *scratch_;
  const int64_t T = sc.rows;
  const int64_t C = d.n_embd;
  const int64_t H = d.n_head;
  const int64_t N = d.head_size;
  const bool value_residual = layer > 0;
  const bool bf16 = options_.bf16_activations;

  auto parallel_rows = [&](int64_t grain, auto&& fn) {
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) fn(r);
    };
    if (pool_ != nullptr) {
      pool_->ParallelFor(T, grain, body);
    } else {
      body(0, T);
    }
  };
  // The previous token's normalised input for row r: the previous row of the same sequence,
  // or the state's saved value for a sequence's first row.
  auto previous = [&](const Buffer& normed, int64_t r, bool ffn) -> const float* {
    const int32_t s = sc.row_sequence[r];
    if (r > offsets[s]) return normed.data.data() + (r - 1) * C;
    Rwkv7State& state = *sequences[s].state;
    return (ffn ? state.ffn_x_prev(layer) : state.att_x_prev(layer)).data();
  };
  auto save_last_rows = [&](Buffer& normed, bool ffn) {
    for (size_t s = 0; s + 1 < offsets.size(); ++s) {
      Rwkv7State& state = *sequences[s].state;
      float* dst = (ffn ? state.ffn_x_prev(layer) : state.att_x_prev(layer)).data();
      std::memcpy(dst, normed.row(offsets[s + 1] - 1), C * sizeof(float));
    }
  };

  // ---- time mix ----
  parallel_rows(8, [&](int64_t r) {
    kernels::LayerNorm(sc.x.row(r), lw.ln1_w, lw.ln1_b, C, kLayerNormEps, sc.xa.row(r));
  });
  parallel_rows(8, [&](int64_t r) {
    const float* cur = sc.xa.row(r);
    const float* prev = previous(sc.xa, r, false);
    float* xr = sc.xr.row(r);
    float* xw = sc.xw.row(r);
    float* xk = sc.xk.row(r);
    float* xv = sc.xv.row(r);
    float* xa = sc.xa_mix.row(r);
    float* xg = sc.xg.row(r);
    for (int64_t i = 0; i < C; ++i) {
      const float diff = prev[i] - cur[i];
      xr[i] = cur[i] + diff * lw.x_r[i];
      xw[i] = cur[i] + diff * lw.x_w[i];
      xk[i] = cur[i] + diff * lw.x_k[i];
      xv[i] = cur[i] + diff * lw.x_v[i];
      xa[i] = cur[i] + diff * lw.x_a[i];
      xg[i] = cur[i] + diff * lw.x_g[i];
    }
  });
  save_last_rows(sc.xa, false);

  {
    std::vector<MatMulJob> jobs = {
        Job(sc.xr, lw.receptance, sc.r, T, bf16),   Job(sc.xk, lw.key, sc.k, T, bf16),
        Job(sc.xv, lw.value, sc.v, T, bf16),        Job(sc.xw, lw.w1, sc.lora_w, T, false),
        Job(sc.xa_mix, lw.a1, sc.lora_a, T, false), Job(sc.xg, lw.g1, sc.lora_g, T, false)};
    if (value_residual) jobs.push_back(Job(sc.xv, lw.v1, sc.lora_v, T, false));
    kernels::MatMulMany(jobs, pool_);
  }
  parallel_rows(8, [&](int64_t r) {
    kernels::Tanh(sc.lora_w.row(r), sc.lora_w.row(r), d.d_decay);
    kernels::Sigmoid(sc.lora_g.row(r), sc.lora_g.row(r), d.d_gate);
  });
  {
    // The LoRAs keep fp32 activations even in bf16-activation runs: they are a few percent
    // of the work, and the decay (exp of exp) and gates they feed are where rounding hurts.
    std::vector<MatMulJob> jobs = {Job(sc.lora_w, lw.w2, sc.decay, T, false),
                                   Job(sc.lora_a, lw.a2, sc.alpha, T, false),
                                   Job(sc.lora_g, lw.g2, sc.gate, T, false)};
    if (value_residual) jobs.push_back(Job(sc.lora_v, lw.v2, sc.v_gate, T, false));
    kernels::MatMulMany(jobs, pool_);
  }
  parallel_rows(1, [&](int64_t r) {
    float* decay = sc.decay.row(r);
    float* alpha = sc.alpha.row(r);
    float* k = sc.k.row(r);
    float* v = sc.v.row(r);
    float* kappa = sc.kappa.row(r);
    float* a_in = sc.a_in.row(r);
    float* b_in = sc.b_in.row(r);
    float* v_first = sc.v_first.row(r);
    float* v_gate = sc.v_gate.row(r);
    // decay = exp(−e^{−1/2}·σ(w0 + z)), α = σ(a0 + z'), κ = k ⊙ k_k
    for (int64_t i = 0; i < C; ++i) decay[i] += lw.w0[i];
    kernels::Sigmoid(decay, decay, C);
    for (int64_t i = 0; i < C; ++i) decay[i] *= -kDecayScale;
    kernels::Exp(decay, decay, C);
    for (int64_t i = 0; i < C; ++i) alpha[i] += lw.a0[i];
    kernels::Sigmoid(alpha, alpha, C);
    for (int64_t i = 0; i < C; ++i) kappa[i] = k[i] * lw.k_k[i];
    kernels::L2NormalizeGroups(kappa, H, N, kL2MinNorm, kappa);
    for (int64_t i = 0; i < C; ++i) {
      k[i] = k[i] * (1.0f + (alpha[i] - 1.0f) * lw.k_a[i]);
      a_in[i] = -kappa[i];
      b_in[i] = kappa[i] * alpha[i];
    }
    if (value_residual) {
      for (int64_t i = 0; i < C; ++i) v_gate[i] += lw.v0[i];
      kernels::Sigmoid(v_gate, v_gate, C);
      for (int64_t i = 0; i < C; ++i) v[i] = v[i] + (v_first[i] - v[i]) * v_gate[i];
    } else {
      std::memcpy(v_first, v, C * sizeof(float));
    }
  });

  // WKV recurrence: independent per (sequence, head), in token order within a sequence.
  const int64_t tasks = static_cast<int64_t>(sequences.size()) * H;
  auto wkv = [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / H, h = task % H;
      const int64_t row0 = offsets[s];
      const int64_t off = row0 * C + h * N;
      kernels::Wkv7HeadArgs args;
      args.state = sequences[s].state->att_kv(layer).data() + h * N * N;
      args.n = N;
      args.tokens = offsets[s + 1] - row0;
      args.stride = C;
      args.r = sc.r.ptr() + off;
      args.w = sc.decay.ptr() + off;
      args.k = sc.k.ptr() + off;
      args.v = sc.v.ptr() + off;
      args.a = sc.a_in.ptr() + off;
      args.b = sc.b_in.ptr() + off;
      args.y = sc.y.ptr() + off;
      args.y_stride = C;
      kernels::Wkv7Head(args);
    }
  };
  if (pool_ != nullptr) {
    // One sequence per chunk when there are enough: its heads are adjacent in memory and the
    // kernel prefetches the next one.
    pool_->ParallelFor(tasks, sequences.size() >= 4 ? H : 1, wkv);
  } else {
    wkv(0, tasks);
  }

  parallel_rows(4, [&](int64_t r) {
    float* y = sc.y.row(r);
    const float* rr = sc.r.row(r);
    const float* k = sc.k.row(r);
    const float* v = sc.v.row(r);
    const float* g = sc.gate.row(r);
    kernels::GroupNorm(y, lw.ln_x_w, lw.ln_x_b, H, N, kGroupNormEps, y);
    for (int64_t h = 0; h < H; ++h) {
      float bonus = 0.0f;
      for (int64_t j = h * N; j < (h + 1) * N; ++j) bonus += rr[j] * k[j] * lw.r_k[j];
      for (int64_t j = h * N; j < (h + 1) * N; ++j) y[j] += bonus * v[j];
    }
    for (int64_t i = 0; i < C; ++i) y[i] *= g[i];
  });
  kernels::MatMul(Job(sc.y, lw.output, sc.x, T, bf16, /*accumulate=*/true), pool_);

  // ---- channel mix ----
  parallel_rows(8, [&](int64_t r) {
    kernels::LayerNorm(sc.x.row(r), lw.ln2_w, lw.ln2_b, C, kLayerNormEps, sc.xf.row(r));
  });
  parallel_rows(8, [&](int64_t r) {
    const float* cur = sc.xf.row(r);
    const float* prev = previous(sc.xf, r, true);
    float* kx = sc.xk.row(r);
    for (int64_t i = 0; i < C; ++i) kx[i] = cur[i] + (prev[i] - cur[i]) * lw.ffn_x_k[i];
  });
  save_last_rows(sc.xf, true);
  kernels::MatMul(Job(sc.xk, lw.ffn_key, sc.ffn_hidden, T, bf16), pool_);
  parallel_rows(4, [&](int64_t r) {
    float* h = sc.ffn_hidden.row(r);
    for (int64_t i = 0; i < d.ffn; ++i) {
      const float relu = std::max(h[i], 0.0f);  // branch-free, so it vectorizes
      h[i] = relu * relu;
    }
  });
  kernels::MatMul(Job(sc.ffn_hidden, lw.ffn_value, sc.x, T, bf16, /*accumulate=*/true), pool_);
}

}  // namespace skein::model
