// What the engine commands (logits, generate, bench) share: the --model/--dtype/--threads
// flags, loading a model into a ready-to-run engine, token-list parsing, and JSON with floats
// written so that they read back exactly.
#ifndef SKEIN_TOOLS_CLI_ENGINE_CLI_H_
#define SKEIN_TOOLS_CLI_ENGINE_CLI_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "services/worker/engine/stage_engine.h"
#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::cli {

// JSON whose numbers are fp32: printed with the shortest text that reads back to the same
// float (at most max_digits10 = 9 significant digits).
using FloatJson = nlohmann::basic_json<std::map, std::vector, std::string, bool, std::int64_t,
                                       std::uint64_t, float>;

struct EngineFlags {
  std::string model;
  std::string dtype;
  int threads = 0;  // 0 = every core
  bool bf16_activations = false;
  bool int8_activations = false;
  std::string device = "cpu";  // model::ParseDevice
  int64_t device_slots = 64;
  // (name, path) of initial-state files to load with the model (StageEngineOptions).
  std::vector<std::pair<std::string, std::string>> initial_states;
};

// Adds --model (required unless `model_required` is false), --dtype, --threads,
// --bf16-activations, --int8-activations, --device and --device-slots.
void AddEngineFlags(CLI::App* cmd, EngineFlags* flags, const std::string& default_dtype,
                    bool model_required = true);

// A loaded model with its thread pool: the worker's engine (services/worker/engine).
using Engine = std::unique_ptr<engine::StageEngine>;

// Loads the checkpoint at flags.model (whole model). Throws CommandError: exit 1 for a file
// that cannot be read or is not a checkpoint of a supported version (or an initial state that
// does not load), 2 for bad flag values.
Engine LoadEngine(const EngineFlags& flags);
// The same over an archive already in memory.
Engine MakeEngine(std::shared_ptr<const model::TensorArchive> archive, const EngineFlags& flags);

// "1,2,3" → {1, 2, 3}. Throws CommandError (exit 2) naming `flag` for anything else, or for
// an id outside [0, vocab) when vocab > 0.
std::vector<int32_t> ParseTokenList(const std::string& text, const std::string& flag,
                                    int64_t vocab = 0);

// "1,8,32" → {1, 8, 32}, each positive. Throws CommandError (exit 2) naming `flag`.
std::vector<int64_t> ParsePositiveList(const std::string& text, const std::string& flag);

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_ENGINE_CLI_H_
