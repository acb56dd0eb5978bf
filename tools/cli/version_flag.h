// Parses the --version flag of the commands that make random models (make-model, bench).
#ifndef SKEIN_TOOLS_CLI_VERSION_FLAG_H_
#define SKEIN_TOOLS_CLI_VERSION_FLAG_H_

#include <string>

#include "services/worker/model/rwkv_config.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {

// "x070", "x060", "x052" or "v4" (the names RwkvVersionName gives); anything else throws
// CommandError (exit code 2).
inline model::RwkvVersion ParseVersionFlag(const std::string& text) {
  for (model::RwkvVersion v : {model::RwkvVersion::kV7, model::RwkvVersion::kV6,
                               model::RwkvVersion::kV5_2, model::RwkvVersion::kV4}) {
    if (text == model::RwkvVersionName(v)) return v;
  }
  throw CommandError(2, "--version must be x070, x060, x052 or v4, not '" + text + "'");
}

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_VERSION_FLAG_H_
