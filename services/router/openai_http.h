// The router's OpenAI-compatible HTTP front (its own port, `--http-listen`): /v1/models,
// /v1/completions and /v1/chat/completions, streamed as server-sent events ending in
// `data: [DONE]`, errors in OpenAI's JSON shape (openai_format.h). It serves through the
// router's own gRPC API on loopback, so it behaves exactly as RouterService documents
// (sessions, cancellation, limits, bearer tokens); a client that goes away cancels its
// generation. HTTPS when given a certificate.
// Built on cpp-httplib; each open stream holds one of `max_streams` threads.
// Thread-safe.
#ifndef SKEIN_SERVICES_ROUTER_OPENAI_HTTP_H_
#define SKEIN_SERVICES_ROUTER_OPENAI_HTTP_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/tokenizer/world_tokenizer.h"
#include "skein/v1/router.grpc.pb.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace skein::router {

struct OpenAiHttpOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  // Requests served at once (each open stream holds one).
  int max_streams = 64;
  // Longest a request may run.
  absl::Duration request_timeout = absl::Minutes(30);
  // HTTPS with this PEM certificate and key (both or neither).
  std::string tls_cert_file;
  std::string tls_key_file;
  // With HTTPS: clients must present a certificate this PEM CA signed (mutual TLS).
  std::string client_ca_file;
};

class OpenAiHttpServer {
 public:
  // `vocabulary` gives the token texts for log-probabilities.
  OpenAiHttpServer(OpenAiHttpOptions options,
                   std::function<absl::StatusOr<const tokenizer::WorldTokenizer*>()> vocabulary);
  ~OpenAiHttpServer();  // stops serving

  // Binds the port (before the router's ready file is written). Returns the port.
  // Errors: UNAVAILABLE when it cannot be bound.
  absl::StatusOr<int> Bind();
  // Starts answering through `router` (a channel to the router's own gRPC API; the client's
  // Authorization header is passed on, so the router checks bearer tokens for both fronts).
  void Start(std::shared_ptr<grpc::Channel> router);
  void Stop();

 private:
  void Models(const httplib::Request& request, httplib::Response& response);
  void Generate(const httplib::Request& request, httplib::Response& response, bool chat);
  // The model the router serves, asked once (answers echo it when a request names none).
  std::string ServedModel(const httplib::Request& request);

  const OpenAiHttpOptions options_;
  std::function<absl::StatusOr<const tokenizer::WorldTokenizer*>()> vocabulary_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<v1::RouterService::Stub> stub_;
  std::thread thread_;
  absl::Mutex model_mutex_;
  std::string served_model_ ABSL_GUARDED_BY(model_mutex_);
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_OPENAI_HTTP_H_
