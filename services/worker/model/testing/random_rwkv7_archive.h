// Random RWKV-7 checkpoints held in memory (no file), with the tensors, values and key order
// of WriteRandomModel, for tests and in-process benchmarks.
#ifndef SKEIN_SERVICES_WORKER_MODEL_TESTING_RANDOM_RWKV7_ARCHIVE_H_
#define SKEIN_SERVICES_WORKER_MODEL_TESTING_RANDOM_RWKV7_ARCHIVE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/testing/random_rwkv7.h"

namespace skein::model {

// INVALID_ARGUMENT for a shape ResolveRandomModelShape rejects.
absl::StatusOr<std::unique_ptr<TensorArchive>> MakeRandomRwkv7Archive(const RandomModelShape& shape,
                                                                      uint64_t seed, DType dtype);

// The official RWKV-7 shapes used for benchmarks: 0.1B (L12 C768) and 0.4B (L24 C1024),
// V = 65536, F = 4C, N = 64, LoRA ranks 64/64/32/128 (spec §10).
RandomModelShape Rwkv7Shape01B();
RandomModelShape Rwkv7Shape04B();

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_TESTING_RANDOM_RWKV7_ARCHIVE_H_
