// Checkpoint readers over an already loaded ByteSource. OpenPth/OpenSafetensors/OpenCheckpoint
// map the file and call these; tests and fuzz targets call them on in-memory bytes.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ARCHIVE_READERS_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ARCHIVE_READERS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/byte_source.h"
#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model {

// `path` only names the source in errors and in TensorArchive::path().
absl::StatusOr<std::unique_ptr<TensorArchive>> OpenPthFromSource(
    const std::string& path, std::shared_ptr<const ByteSource> source);
absl::StatusOr<std::unique_ptr<TensorArchive>> OpenSafetensorsFromSource(
    const std::string& path, std::shared_ptr<const ByteSource> source);
absl::StatusOr<std::unique_ptr<TensorArchive>> OpenCheckpointFromSource(
    const std::string& path, std::shared_ptr<const ByteSource> source);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ARCHIVE_READERS_H_
