#include "services/common/metrics.h"

#include <chrono>
#include <utility>

#include "services/common/process_metrics.h"
#include "services/common/status.h"

namespace skein {
namespace {

// Records one RPC: start time at construction, outcome just before the status is sent (so a
// client that has its answer finds the call already counted), or at destruction for a call
// that ends without one (the client went away).
class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(Metrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(std::chrono::steady_clock::now()) {
    metrics_->RpcStarted(method_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_CLOSE) &&
        !recorded_) {
      // The client went away before the server answered.
      code_ = grpc::StatusCode::CANCELLED;
    }
    methods->Proceed();
  }

  ~RpcMetricsInterceptor() override {
    if (!recorded_) Record(code_);
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    metrics_->RecordRpc(method_, std::string(GrpcCodeName(code)), seconds);
  }

  Metrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
  grpc::StatusCode code_ = grpc::StatusCode::UNKNOWN;
  bool recorded_ = false;
};

class RpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcMetricsInterceptorFactory(Metrics* metrics, std::set<std::string> known)
      : metrics_(metrics), known_(std::move(known)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    std::string method = info->method() ? info->method() : "";
    if (known_.count(method) == 0) method = "unknown";
    return new RpcMetricsInterceptor(metrics_, std::move(method));
  }

 private:
  Metrics* metrics_;
  std::set<std::string> known_;
};

}  // namespace

const prometheus::Histogram::BucketBoundaries& RpcLatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,     1,      2.5,   5,      10,    25,   50,    100};
  return *buckets;
}

Metrics::Metrics(std::string service_name) : registry_(std::make_shared<prometheus::Registry>()) {
  started_ = &prometheus::BuildCounter()
                  .Name("skein_grpc_server_started_total")
                  .Help("RPCs started on the server, by method.")
                  .Labels({{"service", service_name}})
                  .Register(*registry_);
  handled_ = &prometheus::BuildCounter()
                  .Name("skein_grpc_server_handled_total")
                  .Help("RPCs completed on the server, by method and status code.")
                  .Labels({{"service", service_name}})
                  .Register(*registry_);
  latency_ = &prometheus::BuildHistogram()
                  .Name("skein_grpc_server_handling_seconds")
                  .Help("Time from receiving an RPC to sending its status, by method and code.")
                  .Labels({{"service", service_name}})
                  .Register(*registry_);
  in_flight_ = &prometheus::BuildGauge()
                    .Name("skein_grpc_server_in_flight")
                    .Help("RPCs currently being handled, by method.")
                    .Labels({{"service", service_name}})
                    .Register(*registry_);
  process_ = std::make_shared<ProcessMetricsCollector>();
}

void Metrics::RpcStarted(const std::string& method) {
  started_->Add({{"method", method}}).Increment();
  in_flight_->Add({{"method", method}}).Increment();
}

void Metrics::RecordRpc(const std::string& method, const std::string& code, double seconds) {
  in_flight_->Add({{"method", method}}).Decrement();
  handled_->Add({{"method", method}, {"code", code}}).Increment();
  latency_->Add({{"method", method}, {"code", code}}, RpcLatencyBuckets()).Observe(seconds);
}

void Metrics::DeclareMethods(const std::set<std::string>& methods) {
  for (const std::string& m : methods) {
    started_->Add({{"method", m}});
    in_flight_->Add({{"method", m}});
    handled_->Add({{"method", m}, {"code", "OK"}});
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> Metrics::InterceptorFactory(
    std::set<std::string> known_methods) {
  return std::make_unique<RpcMetricsInterceptorFactory>(this, std::move(known_methods));
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry,
    std::shared_ptr<prometheus::Collectable> extra) {
  std::string address = host + ":" + std::to_string(port);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError("cannot serve metrics on " + address + ": " + e.what());
  }
  exposer->RegisterCollectable(registry);
  if (extra) exposer->RegisterCollectable(extra);
  std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError("cannot serve metrics on " + address + ": no listening port");
  }
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(exposer), ports.front(), std::move(extra)));
}

}  // namespace skein
