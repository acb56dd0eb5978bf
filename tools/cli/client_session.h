// `skein client session create|get|list|fork|rm`: a router's sessions from the command line.
// Each prints the session (or the list) as JSON on stdout; a failed call exits 1 with the
// gRPC status on stderr.
#ifndef SKEIN_TOOLS_CLI_CLIENT_SESSION_H_
#define SKEIN_TOOLS_CLI_CLIENT_SESSION_H_

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "grpcpp/grpcpp.h"

namespace skein::cli {

// TLS credentials verifying the router with the PEM CA at `ca_file` (empty: plaintext).
// Exits the command with an error when the file cannot be read.
std::shared_ptr<grpc::ChannelCredentials> ClientChannelCredentials(const std::string& ca_file);

// Adds the `session` subcommand group under `client`.
void AddClientSessionCommands(CLI::App* client);

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_CLIENT_SESSION_H_
