#include "services/worker/model/checkpoint/tensor_archive.h"

#include "absl/strings/str_cat.h"
#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/checkpoint/byte_source.h"

namespace skein::model {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::unique_ptr<TensorArchive>> OpenPth(const std::string& path) {
  absl::StatusOr<std::shared_ptr<const ByteSource>> source = MapFile(path);
  if (!source.ok()) return source.status();
  return OpenPthFromSource(path, *std::move(source));
}

absl::StatusOr<std::unique_ptr<TensorArchive>> OpenSafetensors(const std::string& path) {
  absl::StatusOr<std::shared_ptr<const ByteSource>> source = MapFile(path);
  if (!source.ok()) return source.status();
  return OpenSafetensorsFromSource(path, *std::move(source));
}

namespace {

absl::StatusOr<CheckpointFormat> SniffFormat(const std::string& path, std::string_view b) {
  // Zip files start with a local file header ("PK\3\4"), or "PK\5\6" when empty.
  if (b.size() >= 4 && b[0] == 'P' && b[1] == 'K') return CheckpointFormat::kPth;
  // Safetensors: an 8-byte little-endian header length, then a JSON object.
  if (b.size() >= 9 && b[8] == '{') return CheckpointFormat::kSafetensors;
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": not a checkpoint (neither a PyTorch zip archive nor a .safetensors file)"));
}

}  // namespace

absl::StatusOr<CheckpointFormat> DetectCheckpointFormat(const std::string& path) {
  absl::StatusOr<std::shared_ptr<const ByteSource>> source = MapFile(path);
  if (!source.ok()) return source.status();
  return SniffFormat(path, (*source)->bytes());
}

absl::StatusOr<std::unique_ptr<TensorArchive>> OpenCheckpointFromSource(
    const std::string& path, std::shared_ptr<const ByteSource> source) {
  absl::StatusOr<CheckpointFormat> format = SniffFormat(path, source->bytes());
  if (!format.ok()) return format.status();
  if (*format == CheckpointFormat::kPth) return OpenPthFromSource(path, std::move(source));
  return OpenSafetensorsFromSource(path, std::move(source));
}

absl::StatusOr<std::unique_ptr<TensorArchive>> OpenCheckpoint(const std::string& path) {
  absl::StatusOr<std::shared_ptr<const ByteSource>> source = MapFile(path);
  if (!source.ok()) return source.status();
  return OpenCheckpointFromSource(path, *std::move(source));
}

}  // namespace skein::model
