// StorageBackend on an embedded RocksDB database in a local directory (the default backend).
//
// Layout: RocksDB (one column family) holds
//           record          'r' GROUP '\0' NAME -> value
//           blob manifest   'm' GROUP '\0' NAME -> "" (the blob exists)
//         and each blob's bytes are a file of its own in DIR/blobs (BlobFiles), named by a
//         hash of group and name. A multi-megabyte state then costs one write() and one
//         pread(), not a trip through RocksDB's WAL, memtable and flushes.
//
// Durability: WriteBlob writes the file (renamed into place whole), then its manifest entry;
// Apply writes one WriteBatch and then unlinks the files of deleted blobs. Every acknowledged
// write survives a crash of the process (it is in the page cache). What survives a crash of
// the machine is the fsync policy's choice:
//   kAlways    blob file, directory and WAL are flushed before the write is acknowledged;
//   kInterval  a background thread flushes what was written (files, directory, WAL) every
//              `fsync_interval`, so a machine crash loses at most about that much; a blob
//              whose file did not reach the disk reads as DATA_LOSS, never as other bytes;
//   kNever     flushing is left to the kernel.
// A crash can leave files without a manifest entry (written but never published, or deleted
// but not yet unlinked); Open removes them. Expectations are checked under a per-group lock
// held across the write; RocksDB's own LOCK file keeps a second process out of the
// directory. Expiries are not stored (ExpiresObjects() is false). Thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_ROCKSDB_BACKEND_H_
#define SKEIN_SERVICES_STATE_STORE_ROCKSDB_BACKEND_H_

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/state_store/backend.h"
#include "services/state_store/blob_files.h"

namespace rocksdb {
class DB;
}

namespace skein::state_store {

// When written data is flushed to disk (see the durability note above).
enum class FsyncPolicy { kAlways, kInterval, kNever };

// "always", "interval" or "never"; INVALID_ARGUMENT otherwise.
absl::StatusOr<FsyncPolicy> ParseFsyncPolicy(std::string_view name);

struct RocksDbOptions {
  // Directory of the database; created if missing.
  std::string path;
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  // kInterval: how often the background flush runs (at least a millisecond).
  absl::Duration fsync_interval = absl::Seconds(1);
};

class RocksDbBackend final : public StorageBackend {
 public:
  // Opens or creates the database. Errors: UNAVAILABLE when the directory is locked by
  // another process or cannot be created; DATA_LOSS when RocksDB reports corruption.
  static absl::StatusOr<std::unique_ptr<RocksDbBackend>> Open(const RocksDbOptions& options);
  ~RocksDbBackend() override;

  std::string_view Name() const override { return "rocksdb"; }
  bool ExpiresObjects() const override { return false; }
  absl::StatusOr<std::optional<std::string>> ReadRecord(std::string_view group,
                                                        std::string_view name) override;
  absl::Status Apply(const Batch& batch) override;
  absl::Status WriteBlob(std::string_view group, std::string_view name, std::string_view data,
                         absl::Time expiry) override;
  absl::StatusOr<std::string> ReadBlob(std::string_view group, std::string_view name) override;
  absl::Status ScanRecords(const RecordVisitor& visit) override;
  absl::Status ScanBlobs(const BlobVisitor& visit) override;

  // kInterval: flushes now what the background thread would flush at its next round.
  absl::Status FlushUnsynced();
  // kInterval: writes acknowledged but not yet flushed to disk (blob files plus, while the
  // WAL holds unflushed commits, one).
  size_t unsynced_writes() const;

 private:
  RocksDbBackend(std::unique_ptr<rocksdb::DB> db, BlobFiles blob_files, RocksDbOptions options);
  absl::Mutex& GroupLock(std::string_view group);
  absl::Status Scan(char kind,
                    const std::function<void(std::string_view group, std::string_view name,
                                             std::string_view value)>& visit);

  // kInterval: notes a write for the next flush.
  void NoteUnsynced(std::string file);
  void NoteUnsyncedWal();
  void SyncLoop();

  std::unique_ptr<rocksdb::DB> db_;
  BlobFiles blob_files_;
  RocksDbOptions options_;
  std::array<absl::Mutex, 64> group_locks_;

  // Serialises flushes, so that a flush that returns covers every write noted before it.
  absl::Mutex flush_mu_;
  mutable absl::Mutex unsynced_mu_;
  std::vector<std::string> unsynced_files_ ABSL_GUARDED_BY(unsynced_mu_);
  bool wal_unsynced_ ABSL_GUARDED_BY(unsynced_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(unsynced_mu_) = false;
  std::thread syncer_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_ROCKSDB_BACKEND_H_
