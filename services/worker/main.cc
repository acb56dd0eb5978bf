// skein-worker: a pipeline stage running layers of an RWKV model
#include <string>

#include "CLI/CLI.hpp"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "skein/v1/worker.grpc.pb.h"

int main(int argc, char** argv) {
  skein::ServerOptions options;
  options.service_name = "skein-worker";
  options.listen = "127.0.0.1:7730";
  options.metrics_port = 9730;

  CLI::App app{"skein-worker: a pipeline stage running layers of an RWKV model", "skein-worker"};
  skein::AddServerFlags(app, &options);
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }

  skein::ServiceHost host(options);
  // Every RPC answers UNIMPLEMENTED until the service's own issue lands.
  skein::v1::WorkerService::Service service;
  host.AddService(&service, "skein.v1.WorkerService");
  return host.Run();
}
