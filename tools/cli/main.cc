// The `skein` command line: one binary, a subcommand per task (see `skein --help`).
#include <cstdio>
#include <exception>

#include "CLI/CLI.hpp"
#include "tools/cli/command_registry.h"

int main(int argc, char** argv) {
  CLI::App app{"skein: serve, inspect and benchmark RWKV language models", "skein"};
  app.require_subcommand(1);
  app.fallthrough(false);
  for (const auto& registrar : skein::cli::Registrars()) registrar(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const skein::cli::CommandError& e) {
    std::fprintf(stderr, "skein: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "skein: %s\n", e.what());
    return 1;
  }
  return 0;
}
