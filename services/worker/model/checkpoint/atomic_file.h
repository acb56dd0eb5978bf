// A file written under a temporary name and renamed into place on Commit, so that readers
// never see a half-written checkpoint. If it is destroyed before Commit, the temporary file is
// removed.
//
// Not thread-safe: one writer drives it.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ATOMIC_FILE_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ATOMIC_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skein::model {

class AtomicFile {
 public:
  // Creates the temporary file in the directory of `path`.
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes at the end.
  absl::Status Append(std::string_view bytes);
  // Overwrites bytes already written at `offset`.
  absl::Status WriteAt(uint64_t offset, std::string_view bytes);
  // Bytes appended so far.
  uint64_t size() const { return size_; }
  // Flushes to disk and renames the file to its final path.
  absl::Status Commit();

  const std::string& path() const { return path_; }

 private:
  AtomicFile(std::string path, std::string temp_path, int fd)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}
  absl::Status Fail(absl::string_view what, int err);

  std::string path_;
  std::string temp_path_;
  int fd_;
  uint64_t size_ = 0;
  bool committed_ = false;
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ATOMIC_FILE_H_
