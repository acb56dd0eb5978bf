// `skein health --target HOST:PORT [--service NAME] [--timeout S]`: asks a server's
// grpc.health.v1 service and prints SERVING / NOT_SERVING; exits 0 only when serving.
#include <chrono>
#include <cstdio>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tools/cli/command_registry.h"

namespace {

struct HealthArgs {
  std::string target;
  std::string service;
  double timeout_seconds = 5;
};

void RunHealth(const HealthArgs& args) {
  auto channel = grpc::CreateChannel(args.target, grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(args.timeout_seconds * 1000)));
  // Wait for the connection rather than failing fast while a server is still starting.
  ctx.set_wait_for_ready(true);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(args.service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status status = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
  if (!status.ok()) {
    throw skein::cli::CommandError(
        1, "health check of " + args.target + " failed: " + status.error_message());
  }
  std::printf("%s\n",
              grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()).c_str());
  if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    throw skein::cli::CommandError(1, args.target + " is not serving");
  }
}

}  // namespace

SKEIN_REGISTER_COMMAND(health, [](CLI::App& app) {
  auto args = std::make_shared<HealthArgs>();
  auto* cmd = app.add_subcommand("health", "Check a Skein server's gRPC health");
  cmd->add_option("--target", args->target, "Server address HOST:PORT")->required();
  cmd->add_option("--service", args->service, "Service name (empty: the whole server)");
  cmd->add_option("--timeout", args->timeout_seconds, "Seconds to wait")->capture_default_str();
  cmd->callback([args] { RunHealth(*args); });
});
