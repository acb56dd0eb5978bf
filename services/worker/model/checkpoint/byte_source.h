// Read-only bytes of a checkpoint: a memory-mapped file or an owned buffer.
//
// A ByteSource is immutable and safe to share between threads. Archives keep a shared_ptr to
// their source so that tensor pointers into it stay valid for the archive's lifetime.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_BYTE_SOURCE_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_BYTE_SOURCE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace skein::model {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::string_view bytes() const = 0;
};

// Maps the whole file read-only. NOT_FOUND if it does not exist; an empty file gives an empty
// source. Should the file shrink on disk while it is mapped (truncated or rewritten in place),
// a read of the lost bytes ends the process with a message naming the file on stderr and
// exit code kTruncatedMappingExitCode, instead of an unexplained SIGBUS.
constexpr int kTruncatedMappingExitCode = 74;  // EX_IOERR
absl::StatusOr<std::shared_ptr<const ByteSource>> MapFile(const std::string& path);

// Wraps an in-memory buffer (tests, fuzzing).
std::shared_ptr<const ByteSource> ByteSourceFromString(std::string bytes);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_BYTE_SOURCE_H_
