// Random-weight RWKV-7 (x070) checkpoints built in memory, with the official tensor names
// and shapes, for tests and benchmarks of a given model shape. The values are scaled so that
// activations stay of order one through any number of layers (no overflow, no denormals);
// they mean nothing as a language model.
#ifndef SKEIN_SERVICES_WORKER_MODEL_RANDOM_RWKV7_H_
#define SKEIN_SERVICES_WORKER_MODEL_RANDOM_RWKV7_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "services/worker/model/rwkv7_weights.h"
#include "services/worker/model/tensor_archive.h"

namespace skein::model {

// `dims` must have layers >= 1, embd = heads·head_size, and positive vocab, ffn and LoRA
// ranks (lora_v is ignored for a single-layer model). Every tensor is stored as `dtype`;
// layer 0 gets no v0/v1/v2 (as in the official G1 files), unless `layer0_value_lora`.
// The same dims, seed and dtype always give the same bytes.
absl::StatusOr<std::unique_ptr<TensorArchive>> MakeRandomRwkv7(const Rwkv7Dims& dims,
                                                                uint64_t seed, DType dtype,
                                                                bool layer0_value_lora = false);

// The official shapes: 0.1B (L12 C768, LoRA 64/64/32/128) and 0.4B (L24 C1024, same ranks),
// V = 65536, F = 4C, N = 64.
Rwkv7Dims Rwkv7Dims01B();
Rwkv7Dims Rwkv7Dims04B();

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_RANDOM_RWKV7_H_
