#include "services/worker/store_spill.h"

#include <utility>

#include "services/worker/model/state_blob.h"

namespace skein::worker {

StoreSpill::StoreSpill(state_store::StateStoreClient* client, std::string prefix,
                       v1::StateMetadata metadata, uint64_t ttl_seconds)
    : client_(client),
      prefix_(std::move(prefix)),
      metadata_(std::move(metadata)),
      ttl_seconds_(ttl_seconds) {}

absl::Status StoreSpill::Save(const std::string& id, std::shared_ptr<const std::string> state_blob,
                              int64_t position, const std::string& sampler) {
  state_store::ClientPutOptions options;
  options.metadata = metadata_;
  options.ttl_seconds = ttl_seconds_;
  options.metadata.set_token_position(static_cast<uint64_t>(position));
  options.metadata.set_size_bytes(state_blob->size());
  options.metadata.set_format_version(model::kStateBlobVersion);
  // The sampler first: a state without its sampler would restore a session that samples
  // differently, while a sampler without a state is never read.
  const std::string sampler_key = Key(id) + ".sampler";
  if (!sampler.empty()) {
    state_store::ClientPutOptions small;
    small.ttl_seconds = ttl_seconds_;
    absl::StatusOr<v1::PutResponse> r = client_->Put(sampler_key, sampler, small);
    if (!r.ok()) return r.status();
  }
  absl::StatusOr<v1::PutResponse> r = client_->Put(Key(id), std::move(state_blob), options);
  return r.status();
}

absl::StatusOr<engine::SpilledSession> StoreSpill::Load(const std::string& id) {
  absl::StatusOr<state_store::ClientBlob> state = client_->Get(Key(id));
  if (!state.ok()) return state.status();
  engine::SpilledSession out;
  out.state_blob = std::move(state->data);
  absl::StatusOr<state_store::ClientBlob> sampler = client_->Get(Key(id) + ".sampler");
  if (sampler.ok()) out.sampler = std::move(sampler->data);
  return out;
}

void StoreSpill::Forget(const std::string& id) {
  for (const std::string& key : {Key(id), Key(id) + ".sampler"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::DeleteRequest request;
    request.set_key(key);
    v1::DeleteResponse response;
    (void)client_->stub().Delete(&context, request, &response);
  }
}

}  // namespace skein::worker
