#include "services/worker/model/checkpoint/checkpoint_writer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "services/worker/model/checkpoint/pth_writer.h"

namespace skein::model {

absl::StatusOr<CheckpointFormat> CheckpointFormatForPath(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".safetensors") return CheckpointFormat::kSafetensors;
  if (ext == ".pth" || ext == ".pt") return CheckpointFormat::kPth;
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": unknown checkpoint extension '", ext, "' (use .pth or .safetensors)"));
}

absl::StatusOr<std::unique_ptr<TensorWriter>> CreateCheckpointWriter(
    const std::string& path, const std::vector<TensorSpec>& specs,
    const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<CheckpointFormat> format = CheckpointFormatForPath(path);
  if (!format.ok()) return format.status();
  if (*format == CheckpointFormat::kSafetensors) {
    return CreateSafetensorsWriter(path, specs, metadata);
  }
  return CreatePthWriter(path, specs);
}

}  // namespace skein::model
