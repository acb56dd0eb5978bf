#include "services/common/service_host.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpc/grpc.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "nlohmann/json.hpp"
#include "services/common/logging.h"
#include "services/common/server_limits.h"

namespace skein {
namespace {

// gRPC's own log lines become structured log lines too.
void RouteGrpcLog(gpr_log_func_args* args) {
  log::Level level = log::Level::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = log::Level::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = log::Level::kWarning;
  log::Write(
      level, args->message,
      {{"source", "grpc"}, {"file", absl::StrCat(args->file ? args->file : "?", ":", args->line)}});
}

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

std::set<std::string> MethodNamesOf(const std::string& service_full_name) {
  std::set<std::string> names;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service_full_name);
  if (service == nullptr) return names;
  for (int i = 0; i < service->method_count(); ++i) {
    names.insert(absl::StrCat("/", service_full_name, "/", service->method(i)->name()));
  }
  return names;
}

ServiceHost::ServiceHost(ServerOptions options)
    : options_(std::move(options)), metrics_(options_.service_name) {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  log::SetServiceName(options_.service_name);
  log::Level level = log::Level::kInfo;
  if (log::ParseLevel(options_.log_level, &level)) log::SetMinLevel(level);
  gpr_set_log_function(RouteGrpcLog);
  // Before any client channel is made: this process's calls to other services use it too.
  absl::StatusOr<TlsPem> pem = LoadTlsPem(options_.tls_cert, options_.tls_key, options_.tls_ca);
  if (pem.ok()) {
    tls_ = *std::move(pem);
    SetClientTls(tls_);
  } else {
    tls_status_ = pem.status();
  }
}

ServiceHost::~ServiceHost() { Shutdown(); }

void ServiceHost::AddService(grpc::Service* service, const std::string& full_name) {
  services_.emplace_back(service, full_name);
}

int ServiceHost::metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

absl::Status ServiceHost::CheckBindable(const std::string& host, int port) const {
  // gRPC reports a failed bind only as a null server; binding once ourselves first gives the
  // operator the real reason (address in use, no such address, permission).
  if (port == 0) return absl::OkStatus();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve \"", host, "\": ", gai_strerror(rc)));
  }
  absl::Status status = absl::OkStatus();
  int fd = socket(result->ai_family, result->ai_socktype, result->ai_protocol);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, result->ai_addr, result->ai_addrlen) != 0) {
      status = absl::UnavailableError(
          absl::StrCat("cannot listen on ", host, ":", port, ": ", std::strerror(errno)));
    }
    close(fd);
  }
  freeaddrinfo(result);
  return status;
}

absl::Status ServiceHost::Start() {
  if (absl::Status s = ValidateServerOptions(options_); !s.ok()) return s;
  int requested_port = 0;
  if (absl::Status s = SplitHostPort(options_.listen, &host_, &requested_port); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckBindable(host_, requested_port); !s.ok()) return s;
  if (!tls_status_.ok()) return tls_status_;
  if (tls_.enabled() && tls_.ca.empty() && !options_.tls_client_certificate_optional) {
    // An internal service with TLS accepts only peers with a certificate the CA signed.
    return absl::InvalidArgumentError(
        "--tls-cert needs --tls-ca here: internal services accept only mutual-TLS peers");
  }
  const bool loopback =
      host_.rfind("127.", 0) == 0 || host_ == "localhost" || host_ == "[::1]" || host_ == "::1";
  if (!loopback && !tls_.enabled()) {
    log::Warning(
        "listening beyond loopback without TLS: anyone who reaches this address can "
        "call it; give --tls-cert, --tls-key and --tls-ca",
        {{"listen", options_.listen}});
  }

  std::set<std::string> known = {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                                 "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"};
  for (const auto& [service, name] : services_) {
    std::set<std::string> methods = MethodNamesOf(name);
    known.insert(methods.begin(), methods.end());
  }
  metrics_.DeclareMethods(known);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this, a second process could silently share the port (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  ApplyLimits(options_, &builder);
  builder.AddListeningPort(options_.listen,
                           ServerCredentials(tls_, options_.tls_client_certificate_optional),
                           &grpc_port_);
  for (const auto& [service, name] : services_) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(metrics_.InterceptorFactory(known));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }

  if (absl::Status s = CheckBindable(host_, options_.metrics_port); !s.ok()) {
    server_->Shutdown();
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot serve metrics: ", s.message()));
  }
  auto metrics_server = MetricsServer::Start(
      host_, options_.metrics_port, metrics_.shared_registry(), metrics_.process_collector());
  if (!metrics_server.ok()) {
    server_->Shutdown();
    server_.reset();
    return metrics_server.status();
  }
  metrics_server_ = *std::move(metrics_server);

  {
    absl::MutexLock lock(&serving_mutex_);
    grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
    health->SetServingStatus(serving_);
    for (const auto& [service, name] : services_) health->SetServingStatus(name, serving_);
    started_ = true;
  }

  if (absl::Status s = WriteReadyFile(); !s.ok()) {
    Shutdown();
    return s;
  }
  log::Info("serving", {{"grpc", absl::StrCat(host_, ":", grpc_port_)},
                        {"metrics", absl::StrCat(host_, ":", metrics_port(), "/metrics")}});
  return absl::OkStatus();
}

absl::Status ServiceHost::WriteReadyFile() const {
  if (options_.ready_file.empty()) return absl::OkStatus();
  nlohmann::json ready = {{"grpc", absl::StrCat(host_, ":", grpc_port_)},
                          {"metrics_port", metrics_port()},
                          {"pid", static_cast<int>(getpid())}};
  for (const auto& [key, value] : ready_fields_) ready[key] = value;
  // Written whole and renamed, so a reader never sees a partial file.
  std::string tmp = options_.ready_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << ready.dump() << "\n";
    if (!out) return absl::UnavailableError("cannot write ready file " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, options_.ready_file, ec);
  if (ec) {
    return absl::UnavailableError("cannot write ready file " + options_.ready_file + ": " +
                                  ec.message());
  }
  return absl::OkStatus();
}

void ServiceHost::Shutdown() {
  {
    absl::MutexLock lock(&serving_mutex_);
    if (shut_down_ || server_ == nullptr) return;
    shut_down_ = true;
    server_->GetHealthCheckService()->SetServingStatus(false);
  }
  log::Info("draining", {{"deadline_seconds", absl::StrCat(options_.drain_seconds)}});
  auto deadline = std::chrono::system_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(options_.drain_seconds * 1000));
  server_->Shutdown(deadline);
  server_->Wait();
  metrics_server_.reset();
  if (!options_.ready_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(options_.ready_file, ec);
  }
  log::Info("stopped");
}

std::shared_ptr<grpc::Channel> ServiceHost::InProcessChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options_.max_message_bytes);
  args.SetMaxSendMessageSize(options_.max_message_bytes);
  return server_->InProcessChannel(args);
}

void ServiceHost::SetServing(bool serving) {
  absl::MutexLock lock(&serving_mutex_);
  if (shut_down_) return;
  serving_ = serving;
  if (!started_) return;  // Start applies it
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  for (const auto& [service, name] : services_) health->SetServingStatus(name, serving);
}

int ServiceHost::Run(const std::function<absl::Status()>& after_start) {
  if (absl::Status s = Start(); !s.ok()) {
    std::fprintf(stderr, "%s: error: %s\n", options_.service_name.c_str(),
                 std::string(s.message()).c_str());
    return 1;
  }
  if (after_start) {
    if (absl::Status s = after_start(); !s.ok()) {
      std::fprintf(stderr, "%s: error: %s\n", options_.service_name.c_str(),
                   std::string(s.message()).c_str());
      Shutdown();
      return 1;
    }
  }
  sigset_t set = TerminationSignals();
  int signal_number = 0;
  sigwait(&set, &signal_number);
  log::Info("signal received", {{"signal", strsignal(signal_number)}});
  if (drain_hook_) {
    SetServing(false);
    drain_hook_(absl::Now() + absl::Seconds(options_.drain_seconds));
  }
  Shutdown();
  return 0;
}

}  // namespace skein
