// Parses the --dtype flag shared by the checkpoint commands.
#ifndef SKEIN_TOOLS_CLI_DTYPE_FLAG_H_
#define SKEIN_TOOLS_CLI_DTYPE_FLAG_H_

#include <string>

#include "services/worker/model/checkpoint/tensor_archive.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {

// "bf16", "fp16" or "fp32"; anything else throws CommandError (exit code 2).
inline model::DType ParseDTypeFlag(const std::string& text) {
  if (text == "bf16") return model::DType::kBF16;
  if (text == "fp16") return model::DType::kF16;
  if (text == "fp32") return model::DType::kF32;
  throw CommandError(2, "--dtype must be bf16, fp16 or fp32, not '" + text + "'");
}

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_DTYPE_FLAG_H_
