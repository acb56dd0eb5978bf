// Session records in the state store (proto/skein/router/session_record.proto), shared by
// every router on the same store.
//
// A record is a plain entry under SessionKey(id), written with compare-and-set on the entry's
// version, so two routers running turns of one session cannot both commit: the second gets
// ABORTED. The record and the state entry it names are pinned for the session's TTL (holder
// "session:<id>"), so capacity eviction never takes a live session's state; a session
// untouched for its TTL expires with its pins.
// Thread-safe (the client is).
#ifndef SKEIN_SERVICES_ROUTER_SESSION_STORE_H_
#define SKEIN_SERVICES_ROUTER_SESSION_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/state_store/client.h"
#include "skein/router/session_record.pb.h"

namespace skein::router {

struct VersionedRecord {
  SessionRecord record;
  uint64_t version = 0;
};

class SessionStore {
 public:
  // `client` is not owned and must outlive this.
  SessionStore(state_store::StateStoreClient* client, absl::Duration timeout);

  // NOT_FOUND when the session does not exist (or expired); DATA_LOSS when its record does
  // not parse.
  absl::StatusOr<VersionedRecord> Get(const std::string& id);
  // Writes `record` if the entry's version is still `expected_version` (0: must not exist),
  // pinning it for its TTL. Returns the new version. ABORTED (or ALREADY_EXISTS for 0) when
  // another writer got there first.
  absl::StatusOr<uint64_t> Write(const SessionRecord& record, uint64_t expected_version);
  // Deletes the record if it is at `expected_version`. Returns whether it existed.
  absl::StatusOr<bool> Delete(const std::string& id, uint64_t expected_version);
  // One page of records in id order; `next_token` is empty after the last page.
  absl::StatusOr<std::vector<VersionedRecord>> List(uint32_t page_size,
                                                    const std::string& page_token,
                                                    std::string* next_token);

  // Pins a state entry for session `id` for `ttl_seconds`; unpins it. Pinning a missing
  // entry is NOT_FOUND. Unpin is best effort.
  absl::Status PinState(const std::string& key, const std::string& id, uint64_t ttl_seconds);
  void UnpinState(const std::string& key, const std::string& id);

  // Whether a committed state of `position` tokens is stored under `key` (a prefix-cache
  // probe; any error counts as absent).
  bool HasState(const std::string& key, uint64_t position);

 private:
  state_store::StateStoreClient* client_;
  const absl::Duration timeout_;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_SESSION_STORE_H_
