// Random RWKV-7 (x070) checkpoints in the official layout and key order, for tests, benchmarks
// and `skein make-model`. Values are deterministic for a seed (independent of platform and
// chunking) and scaled so the forward pass stays numerically sane: Linear and LoRA matrices
// ~ U(-1/sqrt(in), 1/sqrt(in)), LayerNorm weights near 1, mix coefficients in [0, 1], decay
// bias w0 in [-5, -0.5].
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
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/checkpoint/tensor_writer.h"

namespace skein::model {

struct Rwkv7Shape {
  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t vocab = 0;
  int64_t head_size = 64;
  int64_t ffn = 0;                 // 0: 4 * n_embd
  Rwkv7LoraRanks lora;             // zeros: DefaultRwkv7LoraRanks(n_embd)
  bool layer0_value_lora = false;  // write the (unused) blocks.0.att.v0/v1/v2
};

// Fills in defaults and checks the shape (positive sizes, n_embd a multiple of head_size).
absl::StatusOr<Rwkv7Shape> ResolveRwkv7Shape(Rwkv7Shape shape);

// The tensors of the checkpoint, in RWKV-LM's state-dict order. `shape` must be resolved.
std::vector<TensorSpec> Rwkv7TensorSpecs(const Rwkv7Shape& shape, DType dtype);

// Writes `count` fp32 values of tensor `spec` starting at element `first`.
void FillRandomRwkv7Values(const TensorSpec& spec, uint64_t seed, int64_t first, int64_t count,
                           float* out);

// Writes a random checkpoint (.pth or .safetensors by extension). `progress`, if set, is called
// with bytes written and total bytes.
absl::Status WriteRandomRwkv7(const std::string& path, const Rwkv7Shape& shape, DType dtype,
                              uint64_t seed,
                              const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_TESTING_RANDOM_RWKV7_H_
