// skein-state-store: durable, checksummed session-state snapshots
#include <string>

#include "CLI/CLI.hpp"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "skein/v1/state_store.grpc.pb.h"

int main(int argc, char** argv) {
  skein::ServerOptions options;
  options.service_name = "skein-state-store";
  options.listen = "127.0.0.1:7720";
  options.metrics_port = 9720;

  CLI::App app{"skein-state-store: durable, checksummed session-state snapshots",
               "skein-state-store"};
  skein::AddServerFlags(app, &options);
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }

  skein::ServiceHost host(options);
  // Every RPC answers UNIMPLEMENTED until the service's own issue lands.
  skein::v1::StateStoreService::Service service;
  host.AddService(&service, "skein.v1.StateStoreService");
  return host.Run();
}
