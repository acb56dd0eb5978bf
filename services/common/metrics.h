// Prometheus metrics for a Skein process: a registry every component adds its metrics to,
// process metrics (CPU, memory, file descriptors, start time), per-RPC counters and latency
// histograms recorded by a gRPC server interceptor, and the HTTP endpoint that serves
// /metrics on its own port.
//
// Metric names are documented in docs/metrics.md. Thread-safe.
#ifndef SKEIN_SERVICES_COMMON_METRICS_H_
#define SKEIN_SERVICES_COMMON_METRICS_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace skein {

// Latency buckets (seconds) for RPC handling: 100 µs to about 100 s, roughly ×2.5 apart.
const prometheus::Histogram::BucketBoundaries& RpcLatencyBuckets();

class Metrics {
 public:
  // `service_name` becomes the constant label `service` on the process metrics.
  explicit Metrics(std::string service_name);

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

  // Records a finished RPC. `method` is the full gRPC method name ("/pkg.Service/Method")
  // or "unknown"; `code` a canonical code name ("OK", "NOT_FOUND", ...).
  void RecordRpc(const std::string& method, const std::string& code, double seconds);
  void RpcStarted(const std::string& method);

  // Creates the series of every known method at zero, so dashboards see them before traffic.
  void DeclareMethods(const std::set<std::string>& methods);

  // Interceptor factory that records every RPC of a server into this object. Methods not in
  // `known_methods` are labelled "unknown" so clients cannot create unbounded series.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory(
      std::set<std::string> known_methods);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* started_;
  prometheus::Family<prometheus::Counter>* handled_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Gauge>* in_flight_;
  std::shared_ptr<prometheus::Collectable> process_;

 public:
  // Process metrics, served next to the registry.
  std::shared_ptr<prometheus::Collectable> process_collector() { return process_; }
};

// Serves a registry at http://HOST:PORT/metrics. Port 0 picks a free port.
class MetricsServer {
 public:
  // Errors: UNAVAILABLE when the address cannot be bound (e.g. the port is in use).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry,
      std::shared_ptr<prometheus::Collectable> extra = nullptr);

  int port() const { return port_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port,
                std::shared_ptr<prometheus::Collectable> extra)
      : exposer_(std::move(exposer)), extra_(std::move(extra)), port_(port) {}
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> extra_;
  int port_;
};

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_METRICS_H_
