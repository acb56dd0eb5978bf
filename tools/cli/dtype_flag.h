// Parses the --dtype flag shared by the checkpoint commands.
#ifndef SKEIN_TOOLS_CLI_DTYPE_FLAG_H_
#define SKEIN_TOOLS_CLI_DTYPE_FLAG_H_

#include <string>

#include "services/worker/engine/stage_engine.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {

// "bf16", "fp16" or "fp32"; anything else throws CommandError (exit code 2).
inline model::DType ParseDTypeFlag(const std::string& text) {
  absl::StatusOr<model::DType> dtype = engine::ParseRunDType(text);
  if (!dtype.ok()) throw CommandError(2, "--" + std::string(dtype.status().message()));
  return *dtype;
}

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_DTYPE_FLAG_H_
