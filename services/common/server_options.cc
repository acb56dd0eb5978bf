#include "services/common/server_options.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace skein {

void AddServerFlags(CLI::App& app, ServerOptions* options) {
  app.set_config("--config", "", "Read flags from a TOML/INI file (flags given override it)");
  app.add_option("--listen", options->listen, "gRPC address HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--metrics-port", options->metrics_port,
                 "Port of the Prometheus /metrics endpoint (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--drain-seconds", options->drain_seconds,
                 "After SIGTERM, how long in-flight RPCs may finish before being cancelled")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--ready-file", options->ready_file,
                 "Write a JSON file with the bound addresses once serving");
  app.add_option("--log-level", options->log_level, "debug, info, warning or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  app.add_option("--max-message-bytes", options->max_message_bytes,
                 "Largest gRPC message accepted or sent")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 30));
  app.add_option("--max-rpc-threads", options->max_rpc_threads,
                 "Threads serving RPCs; a call beyond them gets RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(4, 1 << 16));
  app.add_option("--max-concurrent-streams", options->max_concurrent_streams,
                 "Concurrent RPC streams per client connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-grpc-memory-bytes", options->max_grpc_memory_bytes,
                 "Memory gRPC may use for buffers (0: gRPC's default)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 42));
  app.add_option("--keepalive-seconds", options->keepalive_seconds,
                 "Ping a connection idle this long (0: no keepalive pings)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--keepalive-timeout-seconds", options->keepalive_timeout_seconds,
                 "Close a connection whose keepalive ping is unanswered this long")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--min-client-ping-seconds", options->min_client_ping_seconds,
                 "Close connections of clients that ping more often than this")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--max-connection-idle-seconds", options->max_connection_idle_seconds,
                 "Close a connection with no RPC for this long (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 30.0 * 86400));
  app.add_option("--tls-cert", options->tls_cert,
                 "PEM certificate chain: serve TLS (and present it to other Skein services)");
  app.add_option("--tls-key", options->tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-ca", options->tls_ca,
                 "PEM CA: peers must present a certificate it signed (mutual TLS)");
}

std::optional<int> ParseCommandLine(CLI::App& app, const std::string& binary, int argc,
                                    char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, whatever CLI11's own formatting would add.
    std::string message = e.what();
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "%s: error: %s\n", binary.c_str(), message.c_str());
    return e.get_exit_code() != 0 ? e.get_exit_code() : 2;
  }
  return std::nullopt;
}

absl::Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("address \"", address, "\" is not HOST:PORT"));
  }
  *host = address.substr(0, colon);
  if (host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  int value = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &value) || value < 0 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\" has no valid port (0-65535)"));
  }
  *port = value;
  return absl::OkStatus();
}

absl::Status ValidateServerOptions(const ServerOptions& options) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(options.listen, &host, &port); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--listen: ", s.message()));
  }
  if (host.empty()) return absl::InvalidArgumentError("--listen: empty host");
  return absl::OkStatus();
}

}  // namespace skein
