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
// Apply writes one WriteBatch with WriteOptions::sync = `sync` (true by default) and then
// unlinks the files of deleted blobs. Every acknowledged Apply survives a crash of the
// process; with `sync` the blob file and its directory entry are flushed before WriteBlob
// returns and the WAL on every Apply, so it survives a crash of the machine too. A crash can
// leave files without a manifest entry (written but never published, or deleted but not yet
// unlinked); Open removes them. Expectations are checked under a per-group lock held across
// the write; RocksDB's own LOCK file keeps a second process out of the directory. Expiries
// are not stored (ExpiresObjects() is false). Thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_ROCKSDB_BACKEND_H_
#define SKEIN_SERVICES_STATE_STORE_ROCKSDB_BACKEND_H_

#include <array>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/state_store/backend.h"
#include "services/state_store/blob_files.h"

namespace rocksdb {
class DB;
}

namespace skein::state_store {

struct RocksDbOptions {
  // Directory of the database; created if missing.
  std::string path;
  // fsync blob files as they are written and the WAL on every Apply (see the durability
  // note above).
  bool sync = true;
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

 private:
  RocksDbBackend(std::unique_ptr<rocksdb::DB> db, BlobFiles blob_files, RocksDbOptions options);
  absl::Mutex& GroupLock(std::string_view group);
  absl::Status Scan(char kind,
                    const std::function<void(std::string_view group, std::string_view name,
                                             std::string_view value)>& visit);

  std::unique_ptr<rocksdb::DB> db_;
  BlobFiles blob_files_;
  RocksDbOptions options_;
  std::array<absl::Mutex, 64> group_locks_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_ROCKSDB_BACKEND_H_
