// The storage interface under the state store: what RocksDB, Redis and the in-memory map each
// provide, and nothing more. Everything the store promises (versions, compare-and-set,
// snapshots, TTLs, LRU, pins, checksums, compression) is built once on top of it, in
// StateStore.
//
// Objects live in groups. A group is one entry key; all objects of an entry (its record, its
// blobs, its pending snapshots and their parts) share it, so a backend can keep them together
// (Redis hash-tags the group so a Redis Cluster places them on one slot) and change them
// atomically. Within a group there are two kinds of object, named by the store:
//   - records: small values (serialized protobufs), read and changed with Batch;
//   - blobs: large immutable byte strings, written once under a fresh name, read whole, and
//     deleted through a Batch.
// Each object may carry an expiry. A backend may delete an object by itself once its expiry
// has passed (Redis does, see ExpiresObjects()), or keep it; the store never relies on either
// and checks expiry itself.
//
// Implementations are thread-safe. Names are ASCII without '\0' or ':'; groups are valid keys
// (key.h).
#ifndef SKEIN_SERVICES_STATE_STORE_BACKEND_H_
#define SKEIN_SERVICES_STATE_STORE_BACKEND_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace skein::state_store {

// An atomic change to one group: expectations that must all hold, then changes applied in
// order. Either every change happens or none does.
class Batch {
 public:
  struct Op {
    enum class Kind {
      kExpectRecord,  // the record holds exactly `value`, or is absent when !has_value
      kExpectBlob,    // the blob exists
      kPutRecord,     // set the record to `value`, expiring at `expiry`
      kDeleteRecord,
      kDeleteBlob,
      kExpireBlob,    // set the blob's expiry
      kExpireRecord,  // set the record's expiry without changing its value
    };
    Kind kind = Kind::kExpectRecord;
    std::string name;
    std::string value;
    bool has_value = false;
    absl::Time expiry = absl::InfiniteFuture();
  };

  explicit Batch(std::string group) : group_(std::move(group)) {}

  Batch& ExpectRecord(std::string name, std::optional<std::string> value) {
    Op op;
    op.kind = Op::Kind::kExpectRecord;
    op.name = std::move(name);
    op.has_value = value.has_value();
    if (value) op.value = *std::move(value);
    ops_.push_back(std::move(op));
    return *this;
  }
  Batch& ExpectBlob(std::string name) { return Add(Op::Kind::kExpectBlob, std::move(name)); }
  Batch& PutRecord(std::string name, std::string value,
                   absl::Time expiry = absl::InfiniteFuture()) {
    Op op;
    op.kind = Op::Kind::kPutRecord;
    op.name = std::move(name);
    op.value = std::move(value);
    op.has_value = true;
    op.expiry = expiry;
    ops_.push_back(std::move(op));
    return *this;
  }
  Batch& DeleteRecord(std::string name) { return Add(Op::Kind::kDeleteRecord, std::move(name)); }
  Batch& DeleteBlob(std::string name) { return Add(Op::Kind::kDeleteBlob, std::move(name)); }
  Batch& ExpireBlob(std::string name, absl::Time expiry) {
    return Add(Op::Kind::kExpireBlob, std::move(name), expiry);
  }
  Batch& ExpireRecord(std::string name, absl::Time expiry) {
    return Add(Op::Kind::kExpireRecord, std::move(name), expiry);
  }

  const std::string& group() const { return group_; }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  Batch& Add(Op::Kind kind, std::string name, absl::Time expiry = absl::InfiniteFuture()) {
    Op op;
    op.kind = kind;
    op.name = std::move(name);
    op.expiry = expiry;
    ops_.push_back(std::move(op));
    return *this;
  }

  std::string group_;
  std::vector<Op> ops_;
};

// Called once per object by the scans; the views are valid only during the call.
using RecordVisitor =
    std::function<void(std::string_view group, std::string_view name, std::string_view value)>;
using BlobVisitor = std::function<void(std::string_view group, std::string_view name)>;

class StorageBackend {
 public:
  virtual ~StorageBackend() = default;

  // "rocksdb", "redis" or "memory".
  virtual std::string_view Name() const = 0;

  // True when the backend deletes expired objects by itself, so objects abandoned by a
  // crashed writer (given an expiry when written) disappear without the store's help.
  virtual bool ExpiresObjects() const = 0;

  // The record's value, or nullopt if absent. Errors: UNAVAILABLE (backend unreachable),
  // DATA_LOSS/INTERNAL (backend failure).
  virtual absl::StatusOr<std::optional<std::string>> ReadRecord(std::string_view group,
                                                                std::string_view name) = 0;

  // Applies `batch` atomically and durably (when Apply returns OK, the change survives a
  // crash of this process; see each backend for power loss). Errors: ABORTED when an
  // expectation does not hold (nothing changed); UNAVAILABLE/INTERNAL on backend failure
  // (the batch may or may not have been applied).
  virtual absl::Status Apply(const Batch& batch) = 0;

  // Stores `data` under the blob `name`, replacing any blob of that name, expiring at
  // `expiry`. Not necessarily durable until a later Apply returns.
  virtual absl::Status WriteBlob(std::string_view group, std::string_view name,
                                 std::string_view data, absl::Time expiry) = 0;

  // The whole blob. Errors: NOT_FOUND when absent.
  virtual absl::StatusOr<std::string> ReadBlob(std::string_view group, std::string_view name) = 0;

  // Visits every record / every blob, in no particular order. Used at start-up; a backend
  // shared with other writers may show a changing view.
  virtual absl::Status ScanRecords(const RecordVisitor& visit) = 0;
  virtual absl::Status ScanBlobs(const BlobVisitor& visit) = 0;
};

// True for the status Apply returns when an expectation failed.
inline bool IsConflict(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted;
}

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_BACKEND_H_
