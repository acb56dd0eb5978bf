// The TensorArchive that both readers build: tensor views into a ByteSource, plus aligned
// copies for tensors whose stored layout cannot be used in place.
//
// Built single-threaded by a reader, then immutable and safe to share between threads.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ARCHIVE_IMPL_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ARCHIVE_IMPL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "services/worker/model/checkpoint/byte_source.h"
#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model {

// Zero-initialised heap memory aligned to 64 bytes.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t size);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  void* data() { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

class ArchiveImpl : public TensorArchive {
 public:
  ArchiveImpl(std::string path, std::shared_ptr<const ByteSource> source)
      : path_(std::move(path)), source_(std::move(source)) {}

  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const TensorView* Find(std::string_view name) const override;
  const std::string& path() const override { return path_; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }

  // Adds a tensor whose bytes are used in place when `data` is aligned to the element size,
  // and copied otherwise. `data` must lie inside the source (or be null when nbytes is 0).
  // INVALID_ARGUMENT if the name is already taken.
  absl::Status AddInPlace(TensorView view);
  // Adds a tensor whose bytes live in `buffer`, which the archive takes over.
  absl::Status AddOwned(TensorView view, std::unique_ptr<AlignedBuffer> buffer);
  std::map<std::string, std::string>& mutable_metadata() { return metadata_; }

 private:
  absl::Status AddName(const std::string& name);

  std::string path_;
  std::shared_ptr<const ByteSource> source_;
  std::vector<TensorView> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  std::vector<std::unique_ptr<AlignedBuffer>> owned_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ARCHIVE_IMPL_H_
