// A directory of immutable blob files, one per blob, for the RocksDB backend: large values are
// written with one write() each and read with one pread(), instead of passing through
// RocksDB's WAL, memtable and flushes (which copy them several times and checksum them again
// with a software CRC32C in Debian's portable RocksDB build).
//
// Each file is written to a temporary name and renamed into place, so a reader or a restart
// sees either the whole new file or the old one, never a partial one; temporary files left by
// a crash are removed by RemoveUnlisted. With `sync`, the file's data and the directory entry
// are flushed to disk before Write returns (power-loss durability); without it, a completed
// Write survives a crash of the process, not of the machine.
//
// Thread-safe: calls on different names may run concurrently; a name must not be written by
// two callers at once (the backend holds its group lock).
#ifndef SKEIN_SERVICES_STATE_STORE_BLOB_FILES_H_
#define SKEIN_SERVICES_STATE_STORE_BLOB_FILES_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skein::state_store {

class BlobFiles {
 public:
  // Creates `dir` if needed. UNAVAILABLE when it cannot be created or opened.
  static absl::StatusOr<BlobFiles> Open(std::string dir);

  // A file name for a blob (32 hex digits of a 128-bit hash of group and name).
  static std::string FileName(std::string_view group, std::string_view name);

  // Replaces file `file` with `data` atomically. UNAVAILABLE on I/O errors (disk full...).
  absl::Status Write(const std::string& file, std::string_view data, bool sync) const;

  // The whole file. NOT_FOUND when absent; DATA_LOSS when it cannot be read whole.
  absl::StatusOr<std::string> Read(const std::string& file) const;

  // Deletes the file if it exists.
  absl::Status Remove(const std::string& file) const;

  // Flushes the data of `files` that still exist (a file replaced or removed since it was
  // written needs nothing) and then the directory, so that what they held before the call
  // survives a crash of the machine. UNAVAILABLE on I/O errors.
  absl::Status SyncFiles(const std::vector<std::string>& files) const;

  // Deletes every file for which `keep(file)` is false, and every temporary file.
  absl::Status RemoveUnlisted(const std::function<bool(const std::string& file)>& keep) const;

  const std::string& dir() const { return dir_; }

 private:
  // Flushes the directory's entries (names created, renamed or removed).
  absl::Status SyncDirectory() const;

  explicit BlobFiles(std::string dir) : dir_(std::move(dir)) {}

  std::string dir_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_BLOB_FILES_H_
