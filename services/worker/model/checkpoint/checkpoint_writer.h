// Picks the checkpoint writer by the output file's extension: ".safetensors" or ".pth"/".pt".
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_CHECKPOINT_WRITER_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_CHECKPOINT_WRITER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/checkpoint/tensor_writer.h"

namespace skein::model {

// INVALID_ARGUMENT for any other extension.
absl::StatusOr<CheckpointFormat> CheckpointFormatForPath(const std::string& path);

// `metadata` goes into a .safetensors header; a .pth file has no place for it and drops it.
absl::StatusOr<std::unique_ptr<TensorWriter>> CreateCheckpointWriter(
    const std::string& path, const std::vector<TensorSpec>& specs,
    const std::map<std::string, std::string>& metadata);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_CHECKPOINT_WRITER_H_
