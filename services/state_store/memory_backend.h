// StorageBackend in process memory: for tests and for throw-away stores. Keeps expiries but
// never acts on them (ExpiresObjects() is false), like RocksDB. Thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_MEMORY_BACKEND_H_
#define SKEIN_SERVICES_STATE_STORE_MEMORY_BACKEND_H_

#include <map>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "services/state_store/backend.h"

namespace skein::state_store {

class MemoryBackend final : public StorageBackend {
 public:
  std::string_view Name() const override { return "memory"; }
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
  using Name_ = std::pair<std::string, std::string>;  // (group, name)
  absl::Mutex mu_;
  std::map<Name_, std::string> records_ ABSL_GUARDED_BY(mu_);
  std::map<Name_, std::string> blobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_MEMORY_BACKEND_H_
