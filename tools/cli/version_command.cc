#include <cstdio>

#include "tools/cli/command_registry.h"
#include "tools/cli/version.h"

SKEIN_REGISTER_COMMAND(version, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print the Skein version and API version");
  cmd->callback(
      [] { std::printf("skein %s (api %s)\n", skein::cli::kVersion, skein::cli::kApiVersion); });
});
