// libFuzzer target: arbitrary bytes as a checkpoint (.pth or .safetensors, sniffed as
// OpenCheckpoint does), loaded with RwkvWeights::Load the ways a worker loads it: fp32 and
// every layer (a single-process worker), bf16 and the layers after the first (a later pipeline
// stage), fp16 and the first layer only (a first stage), and with impossible layer ranges.
// Load may refuse the file, but must never crash, and whatever it accepts must be usable: every
// matrix and vector it hands out is read in full (so ASan sees any pointer past the archive's
// bytes or a conversion buffer), each token's embedding row is looked up, and the fingerprint
// is the same whatever the layer range and run dtype.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/rwkv_weights.h"

namespace skein::model {
namespace {

volatile uint8_t sink = 0;

void Touch(const void* data, size_t bytes) {
  if (bytes > 0 && data == nullptr) std::abort();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint8_t acc = 0;
  for (size_t i = 0; i < bytes; ++i) acc ^= p[i];
  sink = sink ^ acc;
}

// A [rows, cols] matrix in the run dtype (or fp32 for an unpacked LoRA), fully readable.
void CheckMatrix(const kernels::WeightMatrix& m, int64_t rows, int64_t cols) {
  if (m.rows != rows || m.cols != cols || m.stride < cols) std::abort();
  if (m.panels != nullptr) {
    const int64_t words = m.type == kernels::DType::kI8 ? kernels::Int8PanelWords(rows, cols)
                                                        : kernels::Bf16PanelWords(rows, cols);
    Touch(m.panels, static_cast<size_t>(words) * sizeof(uint32_t));
  }
  if (m.data != nullptr) {
    if (rows > 0) {
      Touch(m.data, static_cast<size_t>((rows - 1) * m.stride + cols) * kernels::DTypeSize(m.type));
    }
  } else if (m.panels == nullptr && rows * cols > 0) {
    std::abort();
  }
}

void CheckVector(const float* v, int64_t n) { Touch(v, static_cast<size_t>(n) * sizeof(float)); }

void CheckWeights(const RwkvWeights& w) {
  const RwkvConfig& c = w.config();
  const int64_t C = c.n_embd;
  if (c.n_head * c.head_size != C) std::abort();
  for (int l = w.first_layer(); l < w.last_layer(); ++l) {
    const RwkvLayerWeights& lw = w.layer(l);
    for (const float* v :
         {lw.ln1_w, lw.ln1_b, lw.ln2_w, lw.ln2_b, lw.x_r, lw.x_w, lw.x_k, lw.x_v, lw.x_a, lw.x_g,
          lw.w0, lw.a0, lw.k_k, lw.k_a, lw.r_k, lw.ln_x_w, lw.ln_x_b, lw.ffn_x_k}) {
      CheckVector(v, C);
    }
    for (const kernels::WeightMatrix* m : {&lw.receptance, &lw.key, &lw.value, &lw.output}) {
      CheckMatrix(*m, C, C);
    }
    CheckMatrix(lw.ffn_key, c.ffn, C);
    CheckMatrix(lw.ffn_value, C, c.ffn);
    CheckMatrix(lw.w1, c.d_decay, C);
    CheckMatrix(lw.w2, C, c.d_decay);
    CheckMatrix(lw.a1, c.d_iclr, C);
    CheckMatrix(lw.a2, C, c.d_iclr);
    CheckMatrix(lw.g1, c.d_gate, C);
    CheckMatrix(lw.g2, C, c.d_gate);
    if (l > 0) {
      CheckVector(lw.v0, C);
      CheckMatrix(lw.v1, c.d_value, C);
      CheckMatrix(lw.v2, C, c.d_value);
    }
  }
  if (w.has_embedding()) {
    std::vector<float> row(static_cast<size_t>(C));
    for (int64_t token = 0; token < c.vocab; ++token) w.Embed(token, row.data());
  }
  if (w.has_head()) {
    CheckVector(w.ln_out_w(), C);
    CheckVector(w.ln_out_b(), C);
    CheckMatrix(w.head(), c.vocab, C);
  }
  const StateShape shape = w.state_shape();
  if (shape.first_layer != w.first_layer() || shape.last_layer != w.last_layer()) std::abort();
  if (w.bytes_read_per_token() < 0) std::abort();
}

}  // namespace
}  // namespace skein::model

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skein::model;
  absl::StatusOr<std::unique_ptr<TensorArchive>> opened = OpenCheckpointFromSource(
      "fuzz.ckpt", ByteSourceFromString(std::string(reinterpret_cast<const char*>(data), size)));
  if (!opened.ok()) return 0;
  std::shared_ptr<const TensorArchive> archive = *std::move(opened);
  absl::StatusOr<RwkvConfig> config = LoadRwkvConfig(*archive);
  const int layers = config.ok() ? static_cast<int>(config->n_layer) : 2;

  std::vector<RwkvLoadOptions> loads(4);
  loads[0].run_dtype = DType::kF32;
  loads[1].run_dtype = DType::kBF16;
  loads[1].first_layer = layers > 1 ? 1 : 0;
  loads[2].run_dtype = DType::kF16;
  loads[2].last_layer = 1;
  // int8, packed into int8 panels where the CPU has AVX512-VNNI.
  loads[3].run_dtype = DType::kI8;
  loads[3].int8_panels = true;
  loads[3].last_layer = 1;
  uint64_t fingerprint = 0;
  bool loaded = false;
  for (const RwkvLoadOptions& options : loads) {
    absl::StatusOr<std::unique_ptr<RwkvWeights>> w = RwkvWeights::Load(archive, options);
    // Load validates the checkpoint exactly as LoadRwkvConfig does.
    if (w.ok() != config.ok()) std::abort();
    if (!w.ok()) continue;
    CheckWeights(**w);
    if (loaded && (*w)->fingerprint() != fingerprint) std::abort();
    fingerprint = (*w)->fingerprint();
    loaded = true;
  }
  // Layer ranges outside the model are refused, never read.
  for (auto [first, last] : {std::pair{layers, -1}, std::pair{0, layers + 1}, std::pair{-1, 1}}) {
    RwkvLoadOptions options;
    options.first_layer = first;
    options.last_layer = last;
    if (RwkvWeights::Load(archive, options).ok()) std::abort();
  }
  return 0;
}
