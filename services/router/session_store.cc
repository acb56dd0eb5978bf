#include "services/router/session_store.h"

#include "absl/strings/str_cat.h"
#include "services/common/client_channel.h"
#include "services/common/status.h"
#include "services/router/state_keys.h"

namespace skein::router {
namespace {

std::string Holder(const std::string& id) { return absl::StrCat("session:", id); }

}  // namespace

SessionStore::SessionStore(state_store::StateStoreClient* client, absl::Duration timeout)
    : client_(client), timeout_(timeout) {}

absl::StatusOr<VersionedRecord> SessionStore::Get(const std::string& id) {
  absl::StatusOr<state_store::ClientBlob> blob = client_->Get(SessionKey(id), 0, 0, timeout_);
  if (blob.status().code() == absl::StatusCode::kUnavailable) {
    // One store of several went away mid-call: the next call goes to another.
    blob = client_->Get(SessionKey(id), 0, 0, timeout_);
  }
  if (!blob.ok()) {
    if (blob.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("session '", id, "' does not exist"));
    }
    return blob.status();
  }
  VersionedRecord out;
  if (!out.record.ParseFromString(blob->data) || out.record.session_id() != id) {
    return absl::DataLossError(absl::StrCat("the record of session '", id, "' is damaged"));
  }
  out.version = blob->header.entry().version();
  return out;
}

absl::StatusOr<uint64_t> SessionStore::Write(const SessionRecord& record,
                                             uint64_t expected_version) {
  state_store::ClientPutOptions options;
  options.ttl_seconds = record.ttl_seconds();
  options.expected_version = expected_version;
  options.timeout = timeout_;
  const std::string key = SessionKey(record.session_id());
  const std::string bytes = record.SerializeAsString();
  absl::StatusOr<v1::PutResponse> put = client_->Put(key, bytes, options);
  if (put.status().code() == absl::StatusCode::kUnavailable) {
    // The write may or may not have landed before the store went away: look, then decide.
    absl::StatusOr<state_store::ClientBlob> now = client_->Get(key, 0, 0, timeout_);
    if (now.ok() && now->data == bytes) {
      (void)PinState(key, record.session_id(), record.ttl_seconds());
      return now->header.entry().version();
    }
    if (now.ok() || now.status().code() == absl::StatusCode::kNotFound) {
      put = client_->Put(key, bytes, options);
    }
  }
  if (!put.ok()) {
    if (put.status().code() == absl::StatusCode::kAborted && expected_version == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("session '", record.session_id(), "' already exists"));
    }
    if (put.status().code() == absl::StatusCode::kAborted) {
      return absl::AbortedError(absl::StrCat("session '", record.session_id(),
                                             "' was changed by another request; nothing of "
                                             "this one was committed"));
    }
    return put.status();
  }
  // The record must outlive capacity pressure for as long as the session lives.
  (void)PinState(key, record.session_id(), record.ttl_seconds());
  return put->version();
}

absl::StatusOr<bool> SessionStore::Delete(const std::string& id, uint64_t expected_version) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout_);
  v1::DeleteRequest request;
  request.set_key(SessionKey(id));
  request.set_expected_version(expected_version);
  v1::DeleteResponse response;
  grpc::Status s = client_->stub().Delete(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  UnpinState(SessionKey(id), id);
  return response.existed();
}

absl::StatusOr<std::vector<VersionedRecord>> SessionStore::List(uint32_t page_size,
                                                                const std::string& page_token,
                                                                std::string* next_token) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout_);
  v1::ListRequest request;
  request.set_prefix(std::string(kSessionKeyPrefix));
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  v1::ListResponse response;
  grpc::Status s = client_->stub().List(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  std::vector<VersionedRecord> out;
  for (const v1::EntryInfo& e : response.entries()) {
    absl::StatusOr<VersionedRecord> r = Get(e.key().substr(kSessionKeyPrefix.size()));
    if (r.ok()) out.push_back(*std::move(r));  // deleted since the listing: skipped
  }
  *next_token = response.next_page_token();
  return out;
}

absl::Status SessionStore::PinState(const std::string& key, const std::string& id,
                                    uint64_t ttl_seconds) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout_);
  v1::PinRequest request;
  request.set_key(key);
  request.set_holder(Holder(id));
  request.set_lease_seconds(ttl_seconds);
  v1::PinResponse response;
  grpc::Status s = client_->stub().Pin(&context, request, &response);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    grpc::ClientContext again;
    SetTimeout(&again, timeout_);
    s = client_->stub().Pin(&again, request, &response);
  }
  return s.ok() ? absl::OkStatus() : FromGrpcStatus(s);
}

void SessionStore::UnpinState(const std::string& key, const std::string& id) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout_);
  v1::UnpinRequest request;
  request.set_key(key);
  request.set_holder(Holder(id));
  v1::UnpinResponse response;
  (void)client_->stub().Unpin(&context, request, &response);
}

bool SessionStore::HasState(const std::string& key, uint64_t position) {
  absl::StatusOr<v1::EntryInfo> info = client_->Stat(key, timeout_);
  if (!info.ok() || info->parts_size() == 0) return false;
  for (const v1::PartInfo& part : info->parts()) {
    if (part.metadata().token_position() != position) return false;
  }
  return true;
}

}  // namespace skein::router
