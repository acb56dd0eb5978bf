// RouterService's sessions: the session RPCs, and the start and commit of a session's turn.
#include <random>

#include "absl/strings/str_cat.h"
#include "services/common/status.h"
#include "services/router/router_service.h"
#include "services/router/stop_matcher.h"
#include "services/tokenizer/stream_detokenizer.h"

namespace skein::router {
namespace {

constexpr char kOwnerHeader[] = "x-skein-owner";

int64_t NowMillis() { return absl::ToUnixMillis(absl::Now()); }

std::string Owner(const grpc::ServerContext* context) {
  auto it = context->client_metadata().find(kOwnerHeader);
  if (it == context->client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

std::string RandomSessionId() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::random_device rd;
  std::string id = "s";
  for (int i = 0; i < 20; ++i) id += kAlphabet[rd() % 32];
  return id;
}

absl::Status NoStore() {
  return absl::FailedPreconditionError(
      "sessions need a state store: start the router with --store");
}

}  // namespace

std::string RouterService::WorkerId(const std::string& session_id) const {
  return absl::StrCat("s-", router_id_, "-", session_id);
}

bool RouterService::MarkBusy(const std::string& id) {
  absl::MutexLock lock(&busy_mutex_);
  return busy_.insert(id).second;
}

void RouterService::ClearBusy(const std::string& id) {
  absl::MutexLock lock(&busy_mutex_);
  busy_.erase(id);
}

v1::Session RouterService::Describe(const SessionRecord& r) {
  v1::Session s;
  s.set_session_id(r.session_id());
  s.set_model(r.model());
  s.set_position(r.position());
  s.set_created_at_unix_ms(r.created_at_unix_ms());
  s.set_updated_at_unix_ms(r.updated_at_unix_ms());
  s.set_expires_at_unix_ms(r.updated_at_unix_ms() + static_cast<int64_t>(r.ttl_seconds()) * 1000);
  s.set_owner(r.owner());
  s.set_forked_from(r.forked_from());
  s.set_initial_state(r.initial_state());
  absl::MutexLock lock(&busy_mutex_);
  s.set_busy(busy_.contains(r.session_id()));
  return s;
}

absl::StatusOr<VersionedRecord> RouterService::OwnedSession(grpc::ServerContext* context,
                                                            const std::string& id) {
  if (sessions_ == nullptr) return NoStore();
  if (!ValidSessionId(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", id, "' is not a session id (1..128 characters of [A-Za-z0-9._-])"));
  }
  absl::StatusOr<VersionedRecord> r = sessions_->Get(id);
  if (!r.ok()) return r.status();
  if (r->record.owner() != Owner(context)) {
    return absl::PermissionDeniedError(absl::StrCat("session '", id, "' belongs to another owner"));
  }
  return r;
}

absl::Status RouterService::PrepareTurn(grpc::ServerContext* context,
                                        const v1::GenerateRequest& request, GenerationSpec* spec,
                                        std::shared_ptr<TurnContext>* turn,
                                        std::optional<v1::CompleteResponse>* replay,
                                        Scheduler** scheduler) {
  const std::string& id = request.session_id();
  if (sessions_ == nullptr) return NoStore();
  if (!ValidSessionId(id)) return OwnedSession(context, id).status();
  if (!MarkBusy(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("session '", id, "' is busy with another request"));
  }
  auto fail = [&](absl::Status s) {
    ClearBusy(id);
    return s;
  };
  absl::StatusOr<VersionedRecord> session = OwnedSession(context, id);
  if (!session.ok()) return fail(session.status());
  const SessionRecord& r = session->record;
  if (!request.model().empty() && request.model() != r.model()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "session '", id, "' uses model '", r.model(), "', not '", request.model(), "'")));
  }
  // The session runs on its model's scheduler.
  absl::StatusOr<ServedModel> served = ResolveModel(r.model());
  if (!served.ok()) return fail(served.status());
  *scheduler = served->scheduler;
  std::optional<ChainHash> identity = served->scheduler->identity();
  if (!identity) return fail(absl::UnavailableError("no pipeline replica has answered yet"));
  if (r.identity() != HashHex(*identity)) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("session '", id, "' holds a state of another model or layer split (pipeline ",
                     r.identity(), "); this cluster's pipelines are ", HashHex(*identity))));
  }
  if (!request.idempotency_key().empty() && request.idempotency_key() == r.last_turn_key()) {
    *replay = r.last_turn();
    ClearBusy(id);
    return absl::OkStatus();
  }
  if (request.idempotency_key().size() > 128) {
    return fail(absl::InvalidArgumentError("idempotency_key is longer than 128 bytes"));
  }
  if (!request.initial_state().empty()) {
    return fail(absl::InvalidArgumentError(
        "initial_state is for stateless requests; a session names it in CreateSession"));
  }
  if (!r.initial_state().empty()) {
    // The session's base state must still be the one it was created from.
    std::string digest;
    absl::StatusOr<ChainHash> base = served->scheduler->BaseChain(r.initial_state(), &digest);
    if (!base.ok()) return fail(base.status());
    if (digest != r.initial_state_digest()) {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "session '", id, "' started from initial state '", r.initial_state(), "' (digest ",
          r.initial_state_digest(), "), which the model now loads with digest ", digest)));
    }
  }
  if (request.has_expected_position() && request.expected_position() != r.position()) {
    return fail(
        absl::AbortedError(absl::StrCat("session '", id, "' is at position ", r.position(),
                                        ", not the expected ", request.expected_position())));
  }
  v1::GenerateRequest adjusted = request;
  adjusted.set_model(r.model());
  Scheduler* same = nullptr;  // the model's, as resolved above
  absl::StatusOr<GenerationSpec> prepared = Prepare(adjusted, /*allow_empty=*/true, &same);
  if (!prepared.ok()) return fail(prepared.status());
  *spec = *std::move(prepared);
  auto context_out = std::make_shared<TurnContext>();
  context_out->prompt_tokens = static_cast<uint32_t>(spec->prompt.size());
  // The session's own sampler keeps its generator running across turns unless the caller
  // names a seed.
  if (!request.sampling().has_seed()) spec->sampling.clear_seed();
  context_out->seed = spec->sampling.seed();
  std::vector<uint32_t> feed(r.pending().begin(), r.pending().end());
  feed.insert(feed.end(), spec->prompt.begin(), spec->prompt.end());
  if (feed.empty()) {
    return fail(absl::InvalidArgumentError(
        "the prompt is empty and the session has no generated token to continue from"));
  }
  spec->prompt = std::move(feed);
  spec->start.key = r.state_key();
  spec->start.position = r.position() - static_cast<uint64_t>(r.pending_size());
  spec->start.sampler = r.sampler_state();
  spec->initial_state = r.initial_state();
  if (!HashFromBytes(r.chain_hash(), &spec->start.chain)) {
    return fail(absl::DataLossError(
        absl::StrCat("the record of session '", id, "' has no valid chain hash")));
  }
  if (spec->start.key.empty() && spec->start.position == 0) UsePrefixCache(**scheduler, spec, 1);
  spec->worker_id = WorkerId(id);
  spec->keep = true;
  context_out->session = *std::move(session);
  context_out->idempotency_key = request.idempotency_key();
  spec->on_end = [this, t = context_out](const TurnEnd& end) { return CommitTurn(*t, end); };
  spec->on_finished = [this, id] { ClearBusy(id); };
  metrics_->session_ops->Add({{"op", "turn"}}).Increment();
  *turn = std::move(context_out);
  return absl::OkStatus();
}

absl::Status RouterService::CommitTurn(TurnContext& turn, const TurnEnd& end) {
  SessionRecord r = turn.session.record;
  const std::string old_key = r.state_key();
  const std::string& new_key = end.snapshot.key;
  r.set_state_key(new_key);
  r.set_chain_hash(HashBytes(end.snapshot.chain));
  r.set_sampler_state(end.snapshot.sampler);
  r.mutable_pending()->Assign(end.pending.begin(), end.pending.end());
  r.set_position(end.snapshot.position + end.pending.size());
  r.set_updated_at_unix_ms(NowMillis());
  if (!turn.idempotency_key.empty()) {
    r.set_last_turn_key(turn.idempotency_key);
    v1::CompleteResponse* last = r.mutable_last_turn();
    last->Clear();
    last->mutable_token_ids()->Assign(end.generated.begin(), end.generated.end());
    last->set_finish_reason(end.reason);
    last->mutable_usage()->set_prompt_tokens(turn.prompt_tokens);
    last->mutable_usage()->set_completion_tokens(static_cast<uint32_t>(end.generated.size()));
    last->set_session_position(r.position());
    last->set_seed(turn.seed);
  }
  const bool moved = new_key != old_key;
  if (moved && !new_key.empty()) {
    if (absl::Status s = sessions_->PinState(new_key, r.session_id(), r.ttl_seconds()); !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<uint64_t> version = sessions_->Write(r, turn.create ? 0 : turn.session.version);
  if (!version.ok()) {
    if (moved && !new_key.empty()) sessions_->UnpinState(new_key, r.session_id());
    return version.status();
  }
  if (moved && !old_key.empty()) sessions_->UnpinState(old_key, r.session_id());
  turn.position = r.position();
  turn.committed = std::move(r);
  return absl::OkStatus();
}

grpc::Status RouterService::ReplayTurn(const v1::GenerateRequest& request,
                                       const v1::CompleteResponse& last,
                                       const std::function<bool(v1::GenerateResponse&)>& emit) {
  absl::StatusOr<const tokenizer::WorldTokenizer*> vocab = Vocabulary();
  if (!vocab.ok()) return ToGrpcStatus(vocab.status());
  tokenizer::StreamDetokenizer detokenizer(*vocab, tokenizer::DecodeMode::kLenient);
  StopMatcher stops(
      {request.stop().stop_sequences().begin(), request.stop().stop_sequences().end()});
  std::string text;
  (void)detokenizer.Push(std::vector<uint32_t>(last.token_ids().begin(), last.token_ids().end()),
                         &text);
  text += detokenizer.Finish();
  std::string shown = stops.Push(text);
  if (!stops.stopped()) shown += stops.Flush();
  v1::GenerateResponse only;
  only.set_text(std::move(shown));
  if (request.return_token_ids()) *only.mutable_token_ids() = last.token_ids();
  only.set_finish_reason(last.finish_reason());
  *only.mutable_usage() = last.usage();
  only.set_session_position(last.session_position());
  only.set_seed(last.seed());
  emit(only);
  metrics_->session_ops->Add({{"op", "replayed_turn"}}).Increment();
  return grpc::Status::OK;
}

grpc::Status RouterService::CreateSession(grpc::ServerContext* context,
                                          const v1::CreateSessionRequest* request,
                                          v1::Session* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  if (sessions_ == nullptr) return ToGrpcStatus(NoStore());
  const std::string id = request->session_id().empty() ? RandomSessionId() : request->session_id();
  if (!ValidSessionId(id)) return ToGrpcStatus(OwnedSession(context, id).status());
  const uint64_t ttl =
      request->ttl_seconds() == 0 ? limits_.default_session_ttl_seconds : request->ttl_seconds();
  if (ttl > limits_.max_session_ttl_seconds) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("ttl_seconds ", ttl, " is over the limit of ",
                                     limits_.max_session_ttl_seconds));
  }
  absl::StatusOr<ServedModel> model = ResolveModel(request->model());
  if (!model.ok()) return ToGrpcStatus(model.status());
  Scheduler& scheduler = *model->scheduler;
  std::optional<ChainHash> identity = scheduler.identity();
  if (!identity) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no pipeline is known yet");
  if (absl::StatusOr<VersionedRecord> existing = sessions_->Get(id); existing.ok()) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("session '", id, "' already exists"));
  }
  std::string initial_digest;
  absl::StatusOr<ChainHash> base = scheduler.BaseChain(request->initial_state(), &initial_digest);
  if (!base.ok()) return ToGrpcStatus(base.status());
  SessionRecord r;
  r.set_session_id(id);
  r.set_model(model->info.model().name());
  r.set_owner(Owner(context));
  r.set_identity(HashHex(*identity));
  r.set_chain_hash(HashBytes(*base));
  r.set_initial_state(request->initial_state());
  r.set_initial_state_digest(initial_digest);
  r.set_created_at_unix_ms(NowMillis());
  r.set_updated_at_unix_ms(r.created_at_unix_ms());
  r.set_ttl_seconds(ttl);
  metrics_->session_ops->Add({{"op", "create"}}).Increment();

  absl::StatusOr<std::vector<uint32_t>> prefix =
      PromptTokens(request->prefix(), model->info.vocab_size());
  if (!prefix.ok()) return ToGrpcStatus(prefix.status());
  auto turn = std::make_shared<TurnContext>();
  turn->create = true;
  turn->session.record = r;
  GenerationSpec spec;
  spec.prompt = *std::move(prefix);
  spec.start.chain = *base;
  spec.initial_state = request->initial_state();
  if (!spec.prompt.empty()) UsePrefixCache(scheduler, &spec, 0);
  if (spec.prompt.empty()) {
    // No prefix, or all of it cached: the record alone makes the session.
    TurnEnd end;
    end.snapshot = spec.start;
    if (absl::Status s = CommitTurn(*turn, end); !s.ok()) return ToGrpcStatus(s);
    *response = Describe(turn->committed);
    return grpc::Status::OK;
  }
  if (!MarkBusy(id)) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("session '", id, "' is being created"));
  }
  spec.max_tokens = 0;
  spec.keep = true;
  spec.worker_id = WorkerId(id);
  spec.on_end = [this, turn](const TurnEnd& end) { return CommitTurn(*turn, end); };
  spec.on_finished = [this, id] { ClearBusy(id); };
  absl::StatusOr<std::shared_ptr<Generation>> gen = scheduler.Submit(std::move(spec));
  if (!gen.ok()) {
    ClearBusy(id);
    return ToGrpcStatus(gen.status());
  }
  // The prefix is fed even if this caller goes away: the session then exists all the same.
  for (;;) {
    for (GenerationEvent& e : (*gen)->Wait(absl::Milliseconds(200))) {
      if (!e.finished) continue;
      if (!e.error.ok()) return ToGrpcStatus(e.error);
      *response = Describe(turn->committed);
      return grpc::Status::OK;
    }
  }
}

grpc::Status RouterService::GetSession(grpc::ServerContext* context,
                                       const v1::GetSessionRequest* request,
                                       v1::Session* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<VersionedRecord> r = OwnedSession(context, request->session_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *response = Describe(r->record);
  return grpc::Status::OK;
}

grpc::Status RouterService::ListSessions(grpc::ServerContext* context,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  if (sessions_ == nullptr) return ToGrpcStatus(NoStore());
  if (request->page_size() > 1000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_size is over 1000");
  }
  std::string next;
  absl::StatusOr<std::vector<VersionedRecord>> page =
      sessions_->List(request->page_size(), request->page_token(), &next);
  if (!page.ok()) return ToGrpcStatus(page.status());
  const std::string owner = Owner(context);
  for (const VersionedRecord& r : *page) {
    if (r.record.owner() == owner) *response->add_sessions() = Describe(r.record);
  }
  response->set_next_page_token(next);
  return grpc::Status::OK;
}

grpc::Status RouterService::ForkSession(grpc::ServerContext* context,
                                        const v1::ForkSessionRequest* request,
                                        v1::Session* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<VersionedRecord> source = OwnedSession(context, request->session_id());
  if (!source.ok()) return ToGrpcStatus(source.status());
  {
    absl::MutexLock lock(&busy_mutex_);
    if (busy_.contains(request->session_id())) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("session '", request->session_id(),
                                       "' is busy with a turn; fork it once the turn ends"));
    }
  }
  const std::string id =
      request->new_session_id().empty() ? RandomSessionId() : request->new_session_id();
  if (!ValidSessionId(id)) return ToGrpcStatus(OwnedSession(context, id).status());
  const uint64_t ttl =
      request->ttl_seconds() == 0 ? source->record.ttl_seconds() : request->ttl_seconds();
  if (ttl > limits_.max_session_ttl_seconds) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("ttl_seconds ", ttl, " is over the limit of ",
                                     limits_.max_session_ttl_seconds));
  }
  // Copy-on-write: the fork names the same stored state; no byte of it is copied. Each side
  // writes a new state of its own at its next turn end.
  SessionRecord r = source->record;
  r.set_session_id(id);
  r.set_forked_from(request->session_id());
  r.set_created_at_unix_ms(NowMillis());
  r.set_updated_at_unix_ms(r.created_at_unix_ms());
  r.set_ttl_seconds(ttl);
  r.clear_last_turn_key();
  r.clear_last_turn();
  if (!r.state_key().empty()) {
    absl::Status pinned = sessions_->PinState(r.state_key(), id, ttl);
    if (pinned.code() == absl::StatusCode::kNotFound) {
      return grpc::Status(
          grpc::StatusCode::DATA_LOSS,
          absl::StrCat("the stored state of session '", request->session_id(), "' is gone"));
    }
    if (!pinned.ok()) return ToGrpcStatus(pinned);
  }
  absl::StatusOr<uint64_t> written = sessions_->Write(r, 0);
  if (!written.ok()) {
    if (!r.state_key().empty()) sessions_->UnpinState(r.state_key(), id);
    return ToGrpcStatus(written.status());
  }
  metrics_->session_ops->Add({{"op", "fork"}}).Increment();
  *response = Describe(r);
  return grpc::Status::OK;
}

grpc::Status RouterService::DeleteSession(grpc::ServerContext* context,
                                          const v1::DeleteSessionRequest* request,
                                          v1::DeleteSessionResponse* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<VersionedRecord> r = OwnedSession(context, request->session_id());
  if (r.status().code() == absl::StatusCode::kNotFound) {
    response->set_existed(false);
    return grpc::Status::OK;
  }
  if (!r.ok()) return ToGrpcStatus(r.status());
  {
    absl::MutexLock lock(&busy_mutex_);
    if (busy_.contains(request->session_id())) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("session '", request->session_id(),
                                       "' is generating; cancel that request first"));
    }
  }
  absl::StatusOr<bool> existed = sessions_->Delete(request->session_id(), r->version);
  if (!existed.ok()) return ToGrpcStatus(existed.status());
  if (!r->record.state_key().empty()) {
    sessions_->UnpinState(r->record.state_key(), request->session_id());
  }
  // Its hot copies live on its model's replicas (all of them, if that model is gone).
  absl::StatusOr<ServedModel> served = ResolveModel(r->record.model());
  for (Scheduler* s : schedulers_) {
    if (!served.ok() || s == served->scheduler) s->DropHot(WorkerId(request->session_id()));
  }
  metrics_->session_ops->Add({{"op", "delete"}}).Increment();
  response->set_existed(*existed);
  return grpc::Status::OK;
}

}  // namespace skein::router
