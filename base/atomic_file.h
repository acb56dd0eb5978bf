// Files that readers see whole or not at all: written under a temporary name in the same
// directory and renamed into place. With `sync`, the data is flushed before the rename and
// the directory after it, so the new file survives a power loss (the rename alone survives a
// crash of the process, not of the machine). A file abandoned before Commit is removed.
//
// Temporary names are `.<name>.<pid>.<n>.tmp`, unique per writer, so concurrent writers of
// one path cannot clobber each other's temporary file, and a directory's owner can remove
// what a crash left (IsTemporaryName).
//
// Not thread-safe: one writer drives an AtomicFile.
#ifndef SKEIN_BASE_ATOMIC_FILE_H_
#define SKEIN_BASE_ATOMIC_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skein::base {

class AtomicFile {
 public:
  // Creates the temporary file beside `path`. INVALID_ARGUMENT when `path` names no file;
  // UNAVAILABLE when the file cannot be created.
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();  // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes at the end. UNAVAILABLE on I/O errors (disk full...).
  absl::Status Append(std::string_view bytes);
  // Overwrites bytes already written at `offset`.
  absl::Status WriteAt(uint64_t offset, std::string_view bytes);
  // Bytes appended so far.
  uint64_t size() const { return size_; }
  // Renames the file to its final path (flushing data and directory with `sync`). Once only;
  // FAILED_PRECONDITION after that. UNAVAILABLE on I/O errors (the temporary is removed).
  absl::Status Commit(bool sync = true);

  const std::string& path() const { return path_; }

 private:
  AtomicFile(std::string path, std::string temp_path, int fd)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}
  absl::Status Fail(std::string_view what, int err);

  std::string path_;
  std::string temp_path_;
  int fd_;
  uint64_t size_ = 0;
  bool committed_ = false;
};

// Replaces `path` with `data` atomically (an AtomicFile written and committed).
absl::Status WriteFileAtomically(const std::string& path, std::string_view data, bool sync);

// Flushes a directory's entries (renames, creations, removals) to disk. UNAVAILABLE on error.
absl::Status SyncDirectory(const std::string& dir);

// Whether `file_name` (no directory) is an AtomicFile's temporary name.
bool IsTemporaryName(std::string_view file_name);

}  // namespace skein::base

#endif  // SKEIN_BASE_ATOMIC_FILE_H_
