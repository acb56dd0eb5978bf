// skein.v1.RouterService: the public API. Validates and tokenizes requests, hands them to the
// Scheduler, and streams text back through a local StreamDetokenizer (never half a UTF-8
// character) and a StopMatcher (stop strings across token boundaries).
//
// Sessions (CreateSession, GetSession, ForkSession, DeleteSession, and Generate with a
// session_id) answer UNIMPLEMENTED until the sessions issue lands.
// Thread-safe.
#ifndef SKEIN_SERVICES_ROUTER_ROUTER_SERVICE_H_
#define SKEIN_SERVICES_ROUTER_ROUTER_SERVICE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "services/router/router_metrics.h"
#include "services/router/scheduler.h"
#include "services/router/tokenizer_client.h"
#include "services/tokenizer/world_tokenizer.h"
#include "skein/v1/router.grpc.pb.h"

namespace skein::router {

struct RouterLimits {
  uint32_t max_prompt_tokens = 65536;
  uint32_t default_max_tokens = 256;
  uint32_t max_tokens_limit = 65536;
  absl::Duration tokenizer_timeout = absl::Seconds(10);
};

class RouterService final : public v1::RouterService::Service {
 public:
  // Neither pointer is owned; both must outlive the service.
  RouterService(Scheduler* scheduler, TokenizerClient* tokenizer, RouterMetrics* metrics,
                RouterLimits limits);

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Complete(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        v1::CompleteResponse* response) override;
  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;

 private:
  // Validates and tokenizes `request` into a generation spec.
  absl::StatusOr<GenerationSpec> Prepare(const v1::GenerateRequest& request);
  // NOT_FOUND unless `name` is empty or the served model's name; UNAVAILABLE before any
  // replica has described its model.
  absl::StatusOr<v1::ModelInfo> ResolveModel(const std::string& name);
  // ResolveModel for the tokenizer RPCs: OK also when no replica answered yet and no model
  // was named (the tokenizer does not need one).
  absl::Status CheckModelName(const std::string& name);
  // Runs a generation, calling `emit` with every chunk (the last one has finish_reason set).
  // `emit` returns false when the client is gone.
  grpc::Status Run(grpc::ServerContext* context, const v1::GenerateRequest& request,
                   const std::function<bool(v1::GenerateResponse&)>& emit);
  // The vocabulary for streaming text, fetched from the tokenizer on first use.
  absl::StatusOr<const tokenizer::WorldTokenizer*> Vocabulary();

  Scheduler* scheduler_;
  TokenizerClient* tokenizer_;
  RouterMetrics* metrics_;
  const RouterLimits limits_;
  std::mutex vocab_mutex_;
  std::unique_ptr<tokenizer::WorldTokenizer> vocab_;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_ROUTER_SERVICE_H_
