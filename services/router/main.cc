// skein-router: the public Skein API
#include <string>

#include "CLI/CLI.hpp"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "skein/v1/router.grpc.pb.h"

int main(int argc, char** argv) {
  skein::ServerOptions options;
  options.service_name = "skein-router";
  options.listen = "127.0.0.1:7700";
  options.metrics_port = 9700;

  CLI::App app{"skein-router: the public Skein API", "skein-router"};
  skein::AddServerFlags(app, &options);
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }

  skein::ServiceHost host(options);
  // Every RPC answers UNIMPLEMENTED until the service's own issue lands.
  skein::v1::RouterService::Service service;
  host.AddService(&service, "skein.v1.RouterService");
  return host.Run();
}
