// skein.v1.RouterService: the public API. Validates and tokenizes requests, hands them to the
// Scheduler, and streams text back through a local StreamDetokenizer (never half a UTF-8
// character) and a StopMatcher (stop strings across token boundaries).
//
// Sessions (router_sessions.cc) need a state store: a session is a record there
// (session_store.h) naming a content-addressed state snapshot (state_keys.h) plus the tokens
// not yet fed and the sampler. A turn is a `keep` generation of the scheduler: it starts from
// the record's state (hot on a replica, or loaded), and at its end the final snapshot is
// written and the record committed with compare-and-set before the client hears the end.
// Stateless requests (and sessions at the zero state) start from the longest cached prefix
// state on the snapshot grid or just before the prompt's last token.
// The owner of a session is the caller's `x-skein-owner` request header ("" when absent).
//
// Several models: one Scheduler per model (each over its own pipeline replicas). A request
// names its model (`model`; empty only when one model is served); a session runs on the
// scheduler of the model its record names.
// Thread-safe.
#ifndef SKEIN_SERVICES_ROUTER_ROUTER_SERVICE_H_
#define SKEIN_SERVICES_ROUTER_ROUTER_SERVICE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "services/router/router_metrics.h"
#include "services/router/scheduler.h"
#include "services/router/session_store.h"
#include "services/router/tokenizer_client.h"
#include "services/tokenizer/world_tokenizer.h"
#include "skein/v1/router.grpc.pb.h"

namespace skein::router {

struct RouterLimits {
  uint32_t max_prompt_tokens = 65536;
  uint32_t default_max_tokens = 256;
  uint32_t max_tokens_limit = 65536;
  absl::Duration tokenizer_timeout = absl::Seconds(10);
  // Sessions.
  uint64_t default_session_ttl_seconds = 86400;
  uint64_t max_session_ttl_seconds = 30 * 86400;
  int64_t snapshot_grid = 256;  // the scheduler's, for prefix lookups (0: none)
};

class RouterService final : public v1::RouterService::Service {
 public:
  // No pointer is owned; all must outlive the service. `schedulers`: one per model served (at
  // least one). `sessions` may be null (no store: session RPCs answer FAILED_PRECONDITION and
  // there is no prefix cache).
  RouterService(std::vector<Scheduler*> schedulers, TokenizerClient* tokenizer,
                RouterMetrics* metrics, RouterLimits limits, SessionStore* sessions = nullptr);

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Complete(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        v1::CompleteResponse* response) override;
  grpc::Status CreateSession(grpc::ServerContext* context, const v1::CreateSessionRequest* request,
                             v1::Session* response) override;
  grpc::Status GetSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                          v1::Session* response) override;
  grpc::Status ListSessions(grpc::ServerContext* context, const v1::ListSessionsRequest* request,
                            v1::ListSessionsResponse* response) override;
  grpc::Status ForkSession(grpc::ServerContext* context, const v1::ForkSessionRequest* request,
                           v1::Session* response) override;
  grpc::Status DeleteSession(grpc::ServerContext* context, const v1::DeleteSessionRequest* request,
                             v1::DeleteSessionResponse* response) override;
  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;

  // The vocabulary for streaming text, fetched from the tokenizer on first use (the HTTP
  // front uses it for token texts).
  absl::StatusOr<const tokenizer::WorldTokenizer*> Vocabulary();

  // Bearer tokens the public API accepts (`authorization: Bearer TOKEN` metadata); empty:
  // no token is needed. Every RPC without a valid one is UNAUTHENTICATED. Call before serving.
  void set_auth_tokens(std::vector<std::string> tokens) { tokens_ = std::move(tokens); }

 private:
  // Validates and tokenizes `request` into a generation spec (an empty prompt is allowed
  // when `allow_empty`: a session turn that continues from its pending token).
  // `scheduler` receives the scheduler of the request's model.
  absl::StatusOr<GenerationSpec> Prepare(const v1::GenerateRequest& request, bool allow_empty,
                                         Scheduler** scheduler);
  // A prompt's token ids, checked against the vocabulary.
  absl::StatusOr<std::vector<uint32_t>> PromptTokens(const v1::Prompt& prompt, int64_t vocab);
  // Starts `spec` (at the zero state) from the longest cached prefix of its prompt that
  // leaves at least `keep_last` tokens to feed.
  void UsePrefixCache(Scheduler& scheduler, GenerationSpec* spec, size_t keep_last);
  // Prepares a session turn: loads and checks the record, then fills `spec` to continue it.
  // On success the session is marked busy until the turn ends. `replay` is set instead when
  // the request repeats the last committed turn's idempotency key.
  struct TurnContext {
    VersionedRecord session;  // as read when the turn started
    bool create = false;      // a new session: written with "must not exist"
    std::string idempotency_key;
    uint32_t prompt_tokens = 0;
    uint64_t seed = 0;
    // Set by CommitTurn.
    uint64_t position = 0;
    SessionRecord committed;
  };
  absl::Status PrepareTurn(grpc::ServerContext* context, const v1::GenerateRequest& request,
                           GenerationSpec* spec, std::shared_ptr<TurnContext>* turn,
                           std::optional<v1::CompleteResponse>* replay, Scheduler** scheduler);
  // The session, as the caller may see it: NOT_FOUND, PERMISSION_DENIED (another owner),
  // FAILED_PRECONDITION (no store).
  absl::StatusOr<VersionedRecord> OwnedSession(grpc::ServerContext* context, const std::string& id);
  v1::Session Describe(const SessionRecord& record);
  // Marks a session busy in this router; false if it already was.
  bool MarkBusy(const std::string& id);
  void ClearBusy(const std::string& id);
  std::string WorkerId(const std::string& session_id) const;
  // Writes a finished turn (or a primed new session) back to the store.
  absl::Status CommitTurn(TurnContext& turn, const TurnEnd& end);
  // Answers a repeated turn with its stored result, in one message.
  grpc::Status ReplayTurn(const v1::GenerateRequest& request, const v1::CompleteResponse& last,
                          const std::function<bool(v1::GenerateResponse&)>& emit);
  // The model named `name` and the scheduler serving it. An empty name means the only model
  // (INVALID_ARGUMENT when several are served). NOT_FOUND for a name no model has;
  // UNAVAILABLE while a pipeline has not described its model yet (and no model matched).
  struct ServedModel {
    Scheduler* scheduler = nullptr;
    v1::ModelInfo info;
  };
  absl::StatusOr<ServedModel> ResolveModel(const std::string& name);
  // ResolveModel for the tokenizer RPCs: OK also when no replica answered yet and no model
  // was named (the tokenizer does not need one).
  absl::Status CheckModelName(const std::string& name);
  // Runs a generation, calling `emit` with every chunk (the last one has finish_reason set).
  // `emit` returns false when the client is gone.
  grpc::Status Run(grpc::ServerContext* context, const v1::GenerateRequest& request,
                   const std::function<bool(v1::GenerateResponse&)>& emit);

  const std::vector<Scheduler*> schedulers_;
  TokenizerClient* tokenizer_;
  RouterMetrics* metrics_;
  const RouterLimits limits_;
  SessionStore* sessions_;
  std::string router_id_;  // names this router's hot copies on the workers
  std::vector<std::string> tokens_;
  // OK when no token is configured or the call carries a valid one; else UNAUTHENTICATED.
  absl::Status Authorize(const grpc::ServerContext* context) const;
  absl::Mutex busy_mutex_;
  absl::flat_hash_set<std::string> busy_ ABSL_GUARDED_BY(busy_mutex_);
  // Held while the vocabulary is fetched, so that it is fetched once. Once set, vocab_ is never
  // replaced, so the tokenizer that Vocabulary() returns stays valid after the lock.
  absl::Mutex vocab_mutex_;
  std::unique_ptr<tokenizer::WorldTokenizer> vocab_ ABSL_GUARDED_BY(vocab_mutex_);
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_ROUTER_SERVICE_H_
