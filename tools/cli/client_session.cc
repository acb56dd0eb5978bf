#include "tools/cli/client_session.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "services/common/status.h"
#include "skein/v1/router.grpc.pb.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/engine_cli.h"

namespace skein::cli {
namespace {

struct SessionArgs {
  std::string router = "127.0.0.1:7700";
  std::string id;
  std::string new_id;
  std::string model;
  std::string prefix;
  std::string prefix_tokens;
  uint64_t ttl_seconds = 0;
  uint32_t page_size = 0;
  std::string owner;
  std::string tls_ca;
  std::string token;
  double timeout_seconds = 600;
};

void Print(const google::protobuf::Message& m) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &json, options);
  std::printf("%s\n", json.c_str());
}

class Call {
 public:
  explicit Call(const SessionArgs& a)
      : stub_(v1::RouterService::NewStub(
            grpc::CreateChannel(a.router, ClientChannelCredentials(a.tls_ca)))) {
    context_.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(a.timeout_seconds * 1000)));
    if (!a.owner.empty()) context_.AddMetadata("x-skein-owner", a.owner);
    if (!a.token.empty()) context_.AddMetadata("authorization", "Bearer " + a.token);
  }
  v1::RouterService::Stub& stub() { return *stub_; }
  grpc::ClientContext* context() { return &context_; }

 private:
  std::unique_ptr<v1::RouterService::Stub> stub_;
  grpc::ClientContext context_;
};

void Check(const grpc::Status& s, const char* what) {
  if (!s.ok()) {
    throw CommandError(1, std::string(what) + " failed: " +
                              std::string(GrpcCodeName(s.error_code())) + ": " + s.error_message());
  }
}

void NeedId(const SessionArgs& a) {
  if (a.id.empty()) throw CommandError(2, "name the session with --id");
}

void Create(const SessionArgs& a) {
  if (!a.prefix.empty() && !a.prefix_tokens.empty()) {
    throw CommandError(2, "give at most one of --prefix and --prefix-tokens");
  }
  v1::CreateSessionRequest request;
  request.set_session_id(a.id);
  request.set_model(a.model);
  request.set_ttl_seconds(a.ttl_seconds);
  if (!a.prefix.empty()) request.mutable_prefix()->set_text(a.prefix);
  if (!a.prefix_tokens.empty()) {
    for (int32_t t : ParseTokenList(a.prefix_tokens, "--prefix-tokens")) {
      request.mutable_prefix()->mutable_tokens()->add_ids(static_cast<uint32_t>(t));
    }
  }
  Call call(a);
  v1::Session session;
  Check(call.stub().CreateSession(call.context(), request, &session), "create");
  Print(session);
}

void Get(const SessionArgs& a) {
  NeedId(a);
  v1::GetSessionRequest request;
  request.set_session_id(a.id);
  Call call(a);
  v1::Session session;
  Check(call.stub().GetSession(call.context(), request, &session), "get");
  Print(session);
}

void List(const SessionArgs& a) {
  v1::ListSessionsRequest request;
  request.set_page_size(a.page_size);
  v1::ListSessionsResponse all;
  // Every page, so that the output is the whole list.
  do {
    Call call(a);
    v1::ListSessionsResponse page;
    Check(call.stub().ListSessions(call.context(), request, &page), "list");
    all.mutable_sessions()->MergeFrom(page.sessions());
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  Print(all);
}

void Fork(const SessionArgs& a) {
  NeedId(a);
  v1::ForkSessionRequest request;
  request.set_session_id(a.id);
  request.set_new_session_id(a.new_id);
  request.set_ttl_seconds(a.ttl_seconds);
  Call call(a);
  v1::Session session;
  Check(call.stub().ForkSession(call.context(), request, &session), "fork");
  Print(session);
}

void Remove(const SessionArgs& a) {
  NeedId(a);
  v1::DeleteSessionRequest request;
  request.set_session_id(a.id);
  Call call(a);
  v1::DeleteSessionResponse response;
  Check(call.stub().DeleteSession(call.context(), request, &response), "rm");
  Print(response);
}

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> ClientChannelCredentials(const std::string& ca_file) {
  if (ca_file.empty()) return grpc::InsecureChannelCredentials();
  std::ifstream in(ca_file);
  if (!in) throw CommandError(2, "--tls-ca: cannot read " + ca_file);
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = pem.str();
  return grpc::SslCredentials(options);
}

void AddClientSessionCommands(CLI::App* client) {
  auto* group = client->add_subcommand("session", "Create, inspect, fork and delete sessions");
  group->require_subcommand(1);
  auto a = std::make_shared<SessionArgs>();
  auto common = [a](CLI::App* cmd, bool id_required) {
    cmd->add_option("--router", a->router, "Router address (default 127.0.0.1:7700)");
    auto* id = cmd->add_option("--id", a->id, "Session id");
    if (id_required) id->required();
    cmd->add_option("--owner", a->owner, "Sent as the x-skein-owner header");
    cmd->add_option("--tls-ca", a->tls_ca, "PEM CA: connect with TLS and verify the router");
    cmd->add_option("--token", a->token,
                    "Bearer token for a router started with --auth-token-file");
    cmd->add_option("--timeout", a->timeout_seconds, "Deadline in seconds (default 600)");
  };
  auto* create = group->add_subcommand("create", "Create a session (optionally primed)");
  common(create, false);
  create->add_option("--model", a->model, "Model name (default: the one the cluster serves)");
  create->add_option("--prefix", a->prefix, "Text fed into the new session (a system prompt)");
  create->add_option("--prefix-tokens", a->prefix_tokens, "Token ids fed into the new session");
  create->add_option("--ttl", a->ttl_seconds, "Idle seconds before it expires (0: default)");
  create->callback([a] { Create(*a); });
  auto* get = group->add_subcommand("get", "Describe a session");
  common(get, true);
  get->callback([a] { Get(*a); });
  auto* list = group->add_subcommand("list", "List the caller's sessions");
  common(list, false);
  list->add_option("--page-size", a->page_size, "Sessions per request (0: the router's 100)");
  list->callback([a] { List(*a); });
  auto* fork = group->add_subcommand("fork", "Start a new session from a session's state");
  common(fork, true);
  fork->add_option("--new-id", a->new_id, "Id of the new session (default: chosen)");
  fork->add_option("--ttl", a->ttl_seconds, "Idle seconds before it expires (0: the source's)");
  fork->callback([a] { Fork(*a); });
  auto* rm = group->add_subcommand("rm", "Delete a session and its stored state");
  common(rm, true);
  rm->callback([a] { Remove(*a); });
}

}  // namespace skein::cli
