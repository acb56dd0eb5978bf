// SessionSpill over the state store: an evicted session's state slice is saved under
// `<prefix>/<session>` and its sampler under `<prefix>/<session>.sampler`, where the prefix
// names the model fingerprint and this stage's layers, so no other model or layer range can
// read it back. Entries carry a TTL so that sessions nobody resumes do not pile up.
// Thread-safe (the client is).
#ifndef SKEIN_SERVICES_WORKER_STORE_SPILL_H_
#define SKEIN_SERVICES_WORKER_STORE_SPILL_H_

#include <memory>
#include <string>

#include "services/state_store/client.h"
#include "services/worker/engine/session_table.h"

namespace skein::worker {

class StoreSpill : public engine::SessionSpill {
 public:
  // `client` is not owned and must outlive the spill. `metadata` describes the stage's slices
  // (model and layers); the position is filled in per save.
  StoreSpill(state_store::StateStoreClient* client, std::string prefix, v1::StateMetadata metadata,
             uint64_t ttl_seconds);

  absl::Status Save(const std::string& id, std::shared_ptr<const std::string> state_blob,
                    int64_t position, const std::string& sampler) override;
  absl::StatusOr<engine::SpilledSession> Load(const std::string& id) override;
  void Forget(const std::string& id) override;

 private:
  std::string Key(const std::string& id) const { return prefix_ + "/" + id; }

  state_store::StateStoreClient* client_;
  const std::string prefix_;
  const v1::StateMetadata metadata_;
  const uint64_t ttl_seconds_;
};

}  // namespace skein::worker

#endif  // SKEIN_SERVICES_WORKER_STORE_SPILL_H_
