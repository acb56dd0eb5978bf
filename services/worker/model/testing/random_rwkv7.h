// Random RWKV checkpoints (x070 by default; x060, x052 or RWKV-4 on request) in the official
// layout and key order, for tests, benchmarks and `skein make-model`. Values are
// deterministic for a seed (independent of platform and chunking) and scaled so the forward
// pass stays numerically sane: Linear and LoRA matrices ~ U(-1/sqrt(in), 1/sqrt(in)),
// LayerNorm weights near 1, mix coefficients in [0, 1], decay biases in [-5, -0.5].
//
// Pure functions; thread-safe.
#ifndef SKEIN_SERVICES_WORKER_MODEL_TESTING_RANDOM_RWKV7_H_
#define SKEIN_SERVICES_WORKER_MODEL_TESTING_RANDOM_RWKV7_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/tensor_writer.h"
#include "services/worker/model/rwkv_config.h"

namespace skein::model {

struct RandomModelShape {
  RwkvVersion version = RwkvVersion::kV7;  // kV7, kV6, kV5_2 or kV4
  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t vocab = 0;
  int64_t head_size = 64;          // x070, x060, x052
  int64_t ffn = 0;                 // 0: 4C (x070, RWKV-4) or ⌊3.5C/32⌋·32 (x060, x052)
  Rwkv7LoraRanks lora;             // x070; zeros: DefaultRwkv7LoraRanks(n_embd)
  bool layer0_value_lora = false;  // x070: write the (unused) blocks.0.att.v0/v1/v2
  int64_t d_mix = 32;              // x060: time_maa LoRA rank (RWKV-LM's default)
  int64_t d_decay = 64;            // x060: time_decay LoRA rank (RWKV-LM's default)
};

// Fills in defaults and checks the shape (positive sizes, n_embd a multiple of head_size).
absl::StatusOr<RandomModelShape> ResolveRandomModelShape(RandomModelShape shape);

// The tensors of the checkpoint, in RWKV-LM's state-dict order. `shape` must be resolved.
std::vector<TensorSpec> RandomModelTensorSpecs(const RandomModelShape& shape, DType dtype);

// Writes `count` fp32 values of tensor `spec` starting at element `first`.
void FillRandomModelValues(const TensorSpec& spec, uint64_t seed, int64_t first, int64_t count,
                           float* out);

// Writes a random checkpoint (.pth or .safetensors by extension). `progress`, if set, is called
// with bytes written and total bytes.
absl::Status WriteRandomModel(const std::string& path, const RandomModelShape& shape, DType dtype,
                              uint64_t seed,
                              const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_TESTING_RANDOM_RWKV7_H_
