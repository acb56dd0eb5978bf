// `skein client generate --router ADDR (--prompt TEXT | --prompt-tokens 1,2,3) --max-tokens N
// [sampling flags] [--stop S]... [--session ID [--idempotency-key K] [--expected-position P]]
// [--json]`: streams a generation (a session's turn with --session) from a router. Text goes
// to stdout as it arrives; with --json only
// {"tokens":[...],"text":"...","finish_reason":"...","session_position":N} is printed at the
// end. A failed call exits 1 with the gRPC status on stderr.
// `skein client session ...`: see client_session.h.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "services/common/status.h"
#include "skein/v1/router.grpc.pb.h"
#include "tools/cli/client_session.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/engine_cli.h"

namespace skein::cli {
namespace {

struct ClientGenerateArgs {
  std::string router = "127.0.0.1:7700";
  std::string prompt;
  std::string prompt_tokens;
  uint32_t max_tokens = 0;
  std::string model;
  double temperature = -1;
  double top_p = -1;
  uint32_t top_k = 0;
  double presence_penalty = 0;
  double frequency_penalty = 0;
  double penalty_decay = -1;
  int64_t seed = -1;
  std::vector<std::string> stops;
  std::string stop_tokens;
  bool ignore_eos = false;
  bool json = false;
  double timeout_seconds = 0;
  std::string session;
  std::string idempotency_key;
  int64_t expected_position = -1;
  std::string owner;
  std::string tls_ca;
  std::string token;
};

void RunClientGenerate(const ClientGenerateArgs& a) {
  if (!a.prompt.empty() && !a.prompt_tokens.empty()) {
    throw CommandError(2, "give at most one of --prompt and --prompt-tokens");
  }
  if (a.prompt.empty() && a.prompt_tokens.empty() && a.session.empty()) {
    throw CommandError(2, "give --prompt or --prompt-tokens (only a session turn may have none)");
  }
  v1::GenerateRequest request;
  request.set_model(a.model);
  request.set_session_id(a.session);
  request.set_idempotency_key(a.idempotency_key);
  if (a.expected_position >= 0) {
    request.set_expected_position(static_cast<uint64_t>(a.expected_position));
  }
  if (!a.prompt.empty()) {
    request.mutable_prompt()->set_text(a.prompt);
  } else if (!a.prompt_tokens.empty()) {
    for (int32_t t : ParseTokenList(a.prompt_tokens, "--prompt-tokens")) {
      request.mutable_prompt()->mutable_tokens()->add_ids(static_cast<uint32_t>(t));
    }
  }
  v1::SamplingParams* s = request.mutable_sampling();
  if (a.temperature >= 0) s->set_temperature(static_cast<float>(a.temperature));
  if (a.top_p >= 0) s->set_top_p(static_cast<float>(a.top_p));
  s->set_top_k(a.top_k);
  s->set_presence_penalty(static_cast<float>(a.presence_penalty));
  s->set_frequency_penalty(static_cast<float>(a.frequency_penalty));
  if (a.penalty_decay >= 0) s->set_penalty_decay(static_cast<float>(a.penalty_decay));
  if (a.seed >= 0) s->set_seed(static_cast<uint64_t>(a.seed));
  request.mutable_stop()->set_max_tokens(a.max_tokens);
  for (const std::string& stop : a.stops) request.mutable_stop()->add_stop_sequences(stop);
  if (!a.stop_tokens.empty()) {
    for (int32_t t : ParseTokenList(a.stop_tokens, "--stop-tokens")) {
      request.mutable_stop()->add_stop_tokens(static_cast<uint32_t>(t));
    }
  }
  request.mutable_stop()->set_ignore_eos(a.ignore_eos);
  request.set_return_token_ids(true);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(a.router, ClientChannelCredentials(a.tls_ca), args);
  auto stub = v1::RouterService::NewStub(channel);
  grpc::ClientContext context;
  if (!a.owner.empty()) context.AddMetadata("x-skein-owner", a.owner);
  if (!a.token.empty()) context.AddMetadata("authorization", "Bearer " + a.token);
  if (a.timeout_seconds > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(a.timeout_seconds * 1000)));
  }
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub->Generate(&context, request);
  v1::GenerateResponse chunk;
  std::vector<uint32_t> tokens;
  std::string text;
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  uint64_t session_position = 0;
  while (reader->Read(&chunk)) {
    tokens.insert(tokens.end(), chunk.token_ids().begin(), chunk.token_ids().end());
    text += chunk.text();
    if (!a.json && !chunk.text().empty()) {
      std::fwrite(chunk.text().data(), 1, chunk.text().size(), stdout);
      std::fflush(stdout);
    }
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      reason = chunk.finish_reason();
      session_position = chunk.session_position();
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    if (!a.json) std::printf("\n");
    throw CommandError(1, "generate failed: " + std::string(GrpcCodeName(status.error_code())) +
                              ": " + status.error_message());
  }
  if (a.json) {
    nlohmann::json out;
    out["tokens"] = tokens;
    out["text"] = text;
    out["finish_reason"] = v1::FinishReason_Name(reason);
    out["session_position"] = session_position;
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(client, [](CLI::App& app) {
  auto* client = app.add_subcommand("client", "Call a running Skein router");
  client->require_subcommand(1);
  auto* cmd = client->add_subcommand("generate", "Stream a generation from a router");
  auto a = std::make_shared<skein::cli::ClientGenerateArgs>();
  cmd->add_option("--router", a->router, "Router address (default 127.0.0.1:7700)");
  cmd->add_option("--prompt", a->prompt, "Prompt text");
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "Prompt token ids, e.g. 1,2,3");
  cmd->add_option("--max-tokens", a->max_tokens, "Tokens to generate (0: the router's default)");
  cmd->add_option("--model", a->model, "Model name (default: the one the cluster serves)");
  cmd->add_option("--temperature", a->temperature, "Default 0: greedy");
  cmd->add_option("--top-p", a->top_p, "Nucleus mass in (0, 1]");
  cmd->add_option("--top-k", a->top_k, "Keep the k most likely");
  cmd->add_option("--presence-penalty", a->presence_penalty, "Default 0");
  cmd->add_option("--frequency-penalty", a->frequency_penalty, "Default 0");
  cmd->add_option("--penalty-decay", a->penalty_decay, "Default 0.996");
  cmd->add_option("--seed", a->seed, "Sampling seed (default: drawn by the router)");
  cmd->add_option("--stop", a->stops, "Stop string (repeatable)");
  cmd->add_option("--stop-tokens", a->stop_tokens, "Stop token ids, e.g. 261");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-text");
  cmd->add_flag("--json", a->json, "Print {\"tokens\",\"text\",\"finish_reason\"} at the end");
  cmd->add_option("--timeout", a->timeout_seconds, "Deadline in seconds (default: none)");
  cmd->add_option("--session", a->session, "Run a turn of this session");
  cmd->add_option("--idempotency-key", a->idempotency_key,
                  "Names the turn: a retry with the same key does not run it twice");
  cmd->add_option("--expected-position", a->expected_position,
                  "Run only if the session is at this position");
  cmd->add_option("--owner", a->owner, "Sent as the x-skein-owner header");
  cmd->add_option("--tls-ca", a->tls_ca, "PEM CA: connect with TLS and verify the router");
  cmd->add_option("--token", a->token, "Bearer token for a router started with --auth-token-file");
  cmd->callback([a] { skein::cli::RunClientGenerate(*a); });
  skein::cli::AddClientSessionCommands(client);
});
