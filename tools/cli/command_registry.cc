#include "tools/cli/command_registry.h"

namespace skein::cli {

std::vector<Registrar>& Registrars() {
  static auto* registrars = new std::vector<Registrar>();
  return *registrars;
}

}  // namespace skein::cli
