// Subcommands of the `skein` CLI register themselves here, so each lives in its own file and
// the main program needs no list of them.
//
// A command file defines a registrar at namespace scope:
//   SKEIN_REGISTER_COMMAND(version, [](CLI::App& app) {
//     auto* cmd = app.add_subcommand("version", "Print the version");
//     cmd->callback([] { ...; });
//   });
// and its cc_library sets `alwayslink = True` so the linker keeps the registrar.
// Callbacks report failure by throwing skein::cli::CommandError (exit code and message);
// the main program prints the message on one line to stderr and exits with the code.
#ifndef SKEIN_TOOLS_CLI_COMMAND_REGISTRY_H_
#define SKEIN_TOOLS_CLI_COMMAND_REGISTRY_H_

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace skein::cli {

using Registrar = std::function<void(CLI::App&)>;

// All registrars, in registration order (static-initialisation order across files).
std::vector<Registrar>& Registrars();

struct RegisterCommand {
  explicit RegisterCommand(Registrar r) { Registrars().push_back(std::move(r)); }
};

// Thrown by a command's callback to end the program with `exit_code` and a one-line message.
class CommandError : public std::runtime_error {
 public:
  CommandError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

}  // namespace skein::cli

#define SKEIN_REGISTER_COMMAND(name, ...) \
  static ::skein::cli::RegisterCommand skein_register_command_##name(__VA_ARGS__)

#endif  // SKEIN_TOOLS_CLI_COMMAND_REGISTRY_H_
