// Runs a Skein gRPC server the same way for every service: health checking
// (grpc.health.v1), server reflection, per-RPC metrics, a /metrics endpoint, structured logs,
// and a graceful drain on SIGTERM or SIGINT (health turns NOT_SERVING, in-flight RPCs get up
// to --drain-seconds to finish, then the process exits 0).
//
// Usage in a service's main():
//   ServiceHost host(options);             // before any other thread starts
//   MyServiceImpl impl(...);
//   host.AddService(&impl, "skein.v1.MyService");
//   return host.Run();
// Not thread-safe for configuration; Run() may be called once.
#ifndef SKEIN_SERVICES_COMMON_SERVICE_HOST_H_
#define SKEIN_SERVICES_COMMON_SERVICE_HOST_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "services/common/metrics.h"
#include "services/common/server_options.h"
#include "services/common/tls.h"

namespace skein {

class ServiceHost {
 public:
  // Blocks SIGTERM and SIGINT in the calling thread (so in every thread started later); Run()
  // waits for them synchronously.
  explicit ServiceHost(ServerOptions options);
  ~ServiceHost();

  ServiceHost(const ServiceHost&) = delete;
  ServiceHost& operator=(const ServiceHost&) = delete;

  Metrics& metrics() { return metrics_; }
  const ServerOptions& options() const { return options_; }

  // Registers a service (not owned; must outlive the host). `full_name` is the proto service
  // name ("skein.v1.TokenizerService"), used for health status and metric labels.
  void AddService(grpc::Service* service, const std::string& full_name);

  // Starts serving: binds gRPC and /metrics, marks every service SERVING, writes the ready
  // file. Errors: UNAVAILABLE when an address cannot be bound; INVALID_ARGUMENT for bad
  // options.
  absl::Status Start();

  // Marks every service NOT_SERVING, lets in-flight RPCs finish until the drain deadline,
  // then cancels the rest and stops. Safe to call more than once.
  void Shutdown();

  // Start(), wait for SIGTERM/SIGINT, Shutdown(). Returns the process exit code (0 after a
  // clean drain, 1 if the server could not start, with a one-line reason on stderr).
  // `after_start`, when given, runs once the server answers (e.g. loading a model while
  // health says NOT_SERVING); its error is reported the same way and ends the process.
  int Run(const std::function<absl::Status()>& after_start = {});

  // With `serving` false before Start, health reports NOT_SERVING for every service (and the
  // server as a whole) until SetServing(true). Thread-safe after Start.
  void set_serving_at_start(bool serving) {
    absl::MutexLock lock(&serving_mutex_);
    serving_ = serving;
  }
  // Safe before Start (the status then applies once the server is up) and after Shutdown
  // (ignored: a draining server stays NOT_SERVING).
  void SetServing(bool serving);

  // Runs after SIGTERM/SIGINT with health already NOT_SERVING and the server still taking
  // calls, before the server stops: a stage hands its work over here. Gets the drain deadline.
  void set_drain_hook(std::function<void(absl::Time deadline)> hook) {
    drain_hook_ = std::move(hook);
  }

  // Adds `key: value` to the ready file (e.g. the address of a second listener). Before Start.
  void AddReadyField(std::string key, std::string value) {
    ready_fields_.emplace_back(std::move(key), std::move(value));
  }

  int grpc_port() const { return grpc_port_; }
  // The TLS material the server uses (empty without --tls-cert).
  const TlsPem& tls() const { return tls_; }
  // A channel to this server's own services that never leaves the process (no TLS, no
  // network), for a second front end of the same API. After Start.
  std::shared_ptr<grpc::Channel> InProcessChannel();
  int metrics_port() const;

 private:
  absl::Status CheckBindable(const std::string& host, int port) const;
  absl::Status WriteReadyFile() const;

  ServerOptions options_;
  TlsPem tls_;
  absl::Status tls_status_;
  std::function<void(absl::Time)> drain_hook_;
  std::vector<std::pair<std::string, std::string>> ready_fields_;
  Metrics metrics_;
  std::vector<std::pair<grpc::Service*, std::string>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::string host_;
  int grpc_port_ = 0;
  bool shut_down_ ABSL_GUARDED_BY(serving_mutex_) = false;
  absl::Mutex serving_mutex_;  // orders SetServing against Start and Shutdown
  bool serving_ ABSL_GUARDED_BY(serving_mutex_) = true;   // what health reports once started
  bool started_ ABSL_GUARDED_BY(serving_mutex_) = false;  // Start has applied serving_
};

// The full names of every RPC method of a proto service ("/pkg.Service/Method"), from the
// generated descriptor pool; empty if the service is unknown.
std::set<std::string> MethodNamesOf(const std::string& service_full_name);

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_SERVICE_HOST_H_
