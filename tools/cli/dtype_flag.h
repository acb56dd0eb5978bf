// Parses the --dtype flag shared by the checkpoint commands.
#ifndef SKEIN_TOOLS_CLI_DTYPE_FLAG_H_
#define SKEIN_TOOLS_CLI_DTYPE_FLAG_H_

#include <string>

#include "services/worker/engine/stage_engine.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {

// "bf16", "fp16" or "fp32", and "int8" where `run_dtype` (a dtype to run in, or `skein
// convert`'s target; make-model writes float weights only); anything else throws CommandError
// (exit code 2).
inline model::DType ParseDTypeFlag(const std::string& text, bool run_dtype = false) {
  absl::StatusOr<model::DType> dtype = engine::ParseRunDType(text);
  if (!dtype.ok()) throw CommandError(2, "--" + std::string(dtype.status().message()));
  if (*dtype == model::DType::kI8 && !run_dtype) {
    throw CommandError(2,
                       "--dtype int8 is not made here: make a float model, then quantise it "
                       "with `skein convert --dtype int8` (or run it with --dtype int8)");
  }
  return *dtype;
}

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_DTYPE_FLAG_H_
