// Flags every Skein service takes, and their parsing from the command line and an optional
// config file. The config file uses the same names as the flags without the leading dashes,
// in TOML/INI form (`listen = "127.0.0.1:7710"`); command-line flags override it.
#ifndef SKEIN_SERVICES_COMMON_SERVER_OPTIONS_H_
#define SKEIN_SERVICES_COMMON_SERVER_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace skein {

struct ServerOptions {
  // Binary name used in logs and metric labels, e.g. "skein-tokenizer".
  std::string service_name;
  // gRPC address HOST:PORT; port 0 picks a free port.
  std::string listen;
  // Port of the /metrics HTTP endpoint, on the same host as `listen`; 0 picks a free port.
  int metrics_port = 0;
  // Seconds in-flight RPCs may run after SIGTERM before they are cancelled.
  double drain_seconds = 10;
  // If set, a JSON file written once serving: {"grpc":"HOST:PORT","metrics_port":N,"pid":P}.
  std::string ready_file;
  std::string log_level = "info";
  // Largest request or response message in bytes.
  int max_message_bytes = 64 << 20;
  // Bounds on what clients can make the server hold (docs/api.md, "Limits"). RPCs run on
  // threads from a bounded pool: a call arriving when all `max_rpc_threads` are busy is
  // answered RESOURCE_EXHAUSTED at once rather than queued without bound.
  int max_rpc_threads = 1024;
  // Concurrent streams one client connection may open (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS);
  // a client beyond it waits for a stream to finish.
  int max_concurrent_streams = 1000;
  // Memory gRPC may use for its buffers across all connections (0: gRPC's own default);
  // reading from clients slows down near the bound.
  int64_t max_grpc_memory_bytes = 0;
  // Keepalive: ping an idle connection after this many seconds, and close it if the ping is
  // not answered within the timeout; clients may ping no more often than the minimum interval
  // (more often and the connection is closed, which stops ping floods). A connection with no
  // RPC for `max_connection_idle_seconds` is closed gracefully (0: never).
  double keepalive_seconds = 60;
  double keepalive_timeout_seconds = 20;
  double min_client_ping_seconds = 10;
  double max_connection_idle_seconds = 0;
  // TLS, PEM files (docs/api.md, "Security"). With a certificate and key the server speaks
  // TLS; with the CA too, clients must present a certificate it signed (mutual TLS), and this
  // process's own calls to other Skein services use TLS with this certificate.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // The public API (the router) lets clients without a certificate in: they authenticate by
  // bearer token instead.
  bool tls_client_certificate_optional = false;
};

// Registers the common flags (--listen, --metrics-port, --config, --drain-seconds,
// --ready-file, --log-level, --max-message-bytes, the limits and keepalive flags, --tls-cert,
// --tls-key, --tls-ca) on `app`, with the service's defaults taken from `*options`.
void AddServerFlags(CLI::App& app, ServerOptions* options);

// Parses argv into the flags registered on `app`. Returns the exit code to end the process
// with (0 after --help, non-zero after an error, having printed one line to stderr naming the
// binary and the reason), or nullopt to go on.
std::optional<int> ParseCommandLine(CLI::App& app, const std::string& binary, int argc,
                                    char** argv);

// Checks values that the flag parser cannot (address form, port range, positive limits).
absl::Status ValidateServerOptions(const ServerOptions& options);

// Splits "HOST:PORT" (HOST may be "[v6]"); errors on a missing or out-of-range port.
absl::Status SplitHostPort(const std::string& address, std::string* host, int* port);

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_SERVER_OPTIONS_H_
