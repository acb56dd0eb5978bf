// Streaming checkpoint writers. The caller declares every tensor up front (name, dtype,
// shape), then appends each tensor's bytes in that order, in chunks of any size, so that a
// multi-gigabyte model never has to sit in memory at once. Output goes to a temporary file
// renamed into place by Finish; a writer dropped before Finish leaves nothing behind.
//
// A writer is not thread-safe: one caller drives it.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_TENSOR_WRITER_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_TENSOR_WRITER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

// Checks that names are unique and non-empty and shapes are non-negative; returns each
// tensor's byte size. INVALID_ARGUMENT naming `path` and the tensor otherwise.
absl::StatusOr<std::vector<uint64_t>> ValidateSpecs(const std::string& path,
                                                    const std::vector<TensorSpec>& specs);

class TensorWriter {
 public:
  virtual ~TensorWriter() = default;
  // Appends bytes of the tensors in declaration order. FAILED_PRECONDITION if this would
  // write more bytes than the declared tensors hold.
  virtual absl::Status Append(std::string_view bytes) = 0;
  // Completes the file and renames it into place. FAILED_PRECONDITION if some declared bytes
  // were not written.
  virtual absl::Status Finish() = 0;
};

// .safetensors with the given "__metadata__".
absl::StatusOr<std::unique_ptr<TensorWriter>> CreateSafetensorsWriter(
    const std::string& path, const std::vector<TensorSpec>& specs,
    const std::map<std::string, std::string>& metadata);

// Writes whole tensors with `writer`.
absl::Status AppendTensors(TensorWriter& writer, const std::vector<TensorView>& tensors);
// The specs of `tensors`.
std::vector<TensorSpec> SpecsOf(const std::vector<TensorView>& tensors);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_TENSOR_WRITER_H_
