// Named tensors read from a checkpoint file (.pth or .safetensors), memory-mapped.
//
// A TensorArchive is immutable after Open and safe to share between threads. Tensor data
// points into the mapped file where the stored layout is already contiguous little-endian;
// otherwise (a strided or offset view in a .pth) the archive holds a contiguous copy. Either
// way the pointers stay valid for the archive's lifetime, and every tensor's data is aligned to
// at least its element size (misaligned stored bytes are copied too).
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_TENSOR_ARCHIVE_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_TENSOR_ARCHIVE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/dtype.h"

namespace skein::model {

// The project's element types (base/dtype.h).
using base::DType;
using base::DTypeName;
using base::DTypeSize;

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // row-major, contiguous
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
};

class TensorArchive {
 public:
  virtual ~TensorArchive() = default;

  // The tensors in file order.
  virtual const std::vector<TensorView>& tensors() const = 0;
  // Null if there is no tensor of that name.
  virtual const TensorView* Find(std::string_view name) const = 0;
  // The file this archive was read from.
  virtual const std::string& path() const = 0;
  // Free-form string metadata: safetensors "__metadata__"; for .pth, the non-tensor entries of
  // the pickled dict (e.g. ChatRWKV's "_strategy"), as text, usually none.
  virtual const std::map<std::string, std::string>& metadata() const = 0;
};

// Opens a PyTorch zip checkpoint (torch.save format). Errors (INVALID_ARGUMENT or DATA_LOSS;
// NOT_FOUND for a missing file, UNIMPLEMENTED for a big-endian one) name the file and, where
// it applies, the tensor.
absl::StatusOr<std::unique_ptr<TensorArchive>> OpenPth(const std::string& path);

// Opens a .safetensors file.
absl::StatusOr<std::unique_ptr<TensorArchive>> OpenSafetensors(const std::string& path);

// Opens either format, chosen by the file's leading bytes (zip magic vs safetensors header).
absl::StatusOr<std::unique_ptr<TensorArchive>> OpenCheckpoint(const std::string& path);

enum class CheckpointFormat { kPth, kSafetensors };

// The format of a checkpoint file, from its leading bytes. NOT_FOUND if it does not exist,
// INVALID_ARGUMENT if it is neither format.
absl::StatusOr<CheckpointFormat> DetectCheckpointFormat(const std::string& path);

// Writes tensors (in the given order) and string metadata as .safetensors, atomically (a
// temporary file renamed into place).
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorView>& tensors,
                              const std::map<std::string, std::string>& metadata);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_TENSOR_ARCHIVE_H_
