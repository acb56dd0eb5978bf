// skein-tokenizer: the RWKV World tokenizer over gRPC
#include <string>

#include "CLI/CLI.hpp"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "skein/v1/tokenizer.grpc.pb.h"

int main(int argc, char** argv) {
  skein::ServerOptions options;
  options.service_name = "skein-tokenizer";
  options.listen = "127.0.0.1:7710";
  options.metrics_port = 9710;

  CLI::App app{"skein-tokenizer: the RWKV World tokenizer over gRPC", "skein-tokenizer"};
  skein::AddServerFlags(app, &options);
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }

  skein::ServiceHost host(options);
  // Every RPC answers UNIMPLEMENTED until the service's own issue lands.
  skein::v1::TokenizerService::Service service;
  host.AddService(&service, "skein.v1.TokenizerService");
  return host.Run();
}
