// `skein state-file inspect --file PATH [--model PATH]`: what a state-tuning file holds (layers,
// heads, head size, dtype, digest) and, with a model, whether it fits that model.
#include <cstdio>
#include <memory>
#include <string>

#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/state.h"
#include "services/worker/model/state_file.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {
namespace {

// Exit codes: 1 for a file that cannot be read or is not a state file, 3 for a state that
// does not fit the model (FAILED_PRECONDITION), so scripts can tell them apart.
constexpr int kDoesNotFit = 3;

void InspectStateFileCommand(const std::string& path, const std::string& model_path) {
  auto archive = model::OpenCheckpoint(path);
  if (!archive.ok()) throw CommandError(1, std::string(archive.status().message()));
  auto info = model::InspectStateFile(**archive);
  if (!info.ok()) throw CommandError(1, std::string(info.status().message()));
  std::printf("file: %s\n", path.c_str());
  std::printf("layers: %lld\n", static_cast<long long>(info->layers));
  std::printf("heads: %lld x %lld\n", static_cast<long long>(info->heads),
              static_cast<long long>(info->head_size));
  std::printf("dtype: %s\n", info->dtype.c_str());
  std::printf("orientation: [head][value][key] (used as stored)\n");
  std::printf("digest: %016llx\n", static_cast<unsigned long long>(info->digest));
  if (model_path.empty()) return;
  auto checkpoint = model::OpenCheckpoint(model_path);
  if (!checkpoint.ok()) throw CommandError(1, std::string(checkpoint.status().message()));
  auto config = model::LoadRwkvConfig(**checkpoint);
  if (!config.ok()) throw CommandError(1, std::string(config.status().message()));
  const model::StateShape shape{0, static_cast<int>(config->n_layer), config->n_embd,
                                config->n_head, config->head_size};
  auto state = model::LoadStateFile(**archive, *config, shape);
  if (!state.ok()) {
    std::printf("fits %s: no\n", model_path.c_str());
    throw CommandError(kDoesNotFit, std::string(state.status().message()));
  }
  std::printf("fits %s: yes (%s)\n", model_path.c_str(),
              std::string(model::RwkvVersionName(config->version)).c_str());
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(state_file, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("state-file", "State-tuning files (initial states)");
  cmd->require_subcommand(1);
  auto* inspect = cmd->add_subcommand(
      "inspect", "Describe a state file and, with --model, check that it fits the model");
  auto file = std::make_shared<std::string>();
  auto model = std::make_shared<std::string>();
  inspect->add_option("--file", *file, "State file (.pth or .safetensors)")->required();
  inspect->add_option("--model", *model, "Checkpoint to check it against (exit code 3: no fit)");
  inspect->callback([file, model] { skein::cli::InspectStateFileCommand(*file, *model); });
});
