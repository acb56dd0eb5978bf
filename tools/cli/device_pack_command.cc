// `skein device-pack`: carries a real model to a GPU machine that has no checkpoint readers
// (tools/gpu-prepare.sh, tools/gpu-check.sh). Writes the model's weights already in the device
// engine's layout (kernels/cuda/rwkv7_packed_file.h), and optionally a golden JSON's tokens
// and official logits in a form plain C++ reads.
//
//   skein device-pack --model PATH --dtype fp32|bf16|fp16 --out FILE
//       [--golden NAME.golden.json --golden-out FILE]
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "kernels/cuda/rwkv7_packed_file.h"
#include "nlohmann/json.hpp"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/device/rwkv7_device_weights.h"
#include "services/worker/model/rwkv_config.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/dtype_flag.h"

namespace skein::cli {
namespace {

struct DevicePackArgs {
  std::string model, dtype = "bf16", out, golden, golden_out;
};

void Check(const cuda::Status& s) {
  if (!s.ok()) throw CommandError(1, s.message());
}

// golden/rwkv7/NAME.golden.json: "tokens" and "logits_per_step".
cuda::Rwkv7GoldenRun ReadGoldenJson(const std::string& path, int64_t vocab) {
  std::ifstream in(path);
  if (!in) throw CommandError(1, path + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw CommandError(1, path + ": not JSON: " + e.what());
  }
  if (!j.contains("tokens") || !j.contains("logits_per_step")) {
    throw CommandError(1, path + ": no \"tokens\" and \"logits_per_step\"");
  }
  cuda::Rwkv7GoldenRun run;
  run.vocab = vocab;
  run.tokens = j["tokens"].get<std::vector<int32_t>>();
  const auto& steps = j["logits_per_step"];
  if (steps.size() != run.tokens.size()) {
    throw CommandError(1, path + ": one logits row per token expected");
  }
  for (const auto& row : steps) {
    const std::vector<float> r = row.get<std::vector<float>>();
    if (static_cast<int64_t>(r.size()) != vocab) {
      throw CommandError(1, path + ": a logits row is not the model's vocabulary long");
    }
    run.logits.insert(run.logits.end(), r.begin(), r.end());
  }
  return run;
}

void Run(const DevicePackArgs& a) {
  const model::DType dtype = ParseDTypeFlag(a.dtype, /*run_dtype=*/true);
  if (a.golden.empty() != a.golden_out.empty()) {
    throw CommandError(2, "--golden and --golden-out go together");
  }
  absl::StatusOr<std::unique_ptr<model::TensorArchive>> archive = model::OpenCheckpoint(a.model);
  if (!archive.ok()) throw CommandError(1, std::string(archive.status().message()));
  absl::StatusOr<model::RwkvConfig> config = model::LoadRwkvConfig(**archive);
  if (!config.ok()) throw CommandError(1, std::string(config.status().message()));
  absl::StatusOr<model::PackedRwkv7Weights> packed =
      model::PackRwkv7Weights(**archive, *config, dtype, 0, static_cast<int>(config->n_layer));
  if (!packed.ok()) throw CommandError(1, std::string(packed.status().message()));
  Check(cuda::WriteRwkv7Packed(a.out, packed->layout, packed->bytes));
  std::printf("%s: %s %s, %zu bytes\n", a.out.c_str(), packed->layout.shape().ToString().c_str(),
              a.dtype.c_str(), packed->bytes.size());
  if (!a.golden.empty()) {
    const cuda::Rwkv7GoldenRun run = ReadGoldenJson(a.golden, config->vocab);
    Check(cuda::WriteRwkv7Golden(a.golden_out, run));
    std::printf("%s: %zu tokens\n", a.golden_out.c_str(), run.tokens.size());
  }
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(device_pack, [](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "device-pack",
      "Write an RWKV-7 model in the GPU engine's layout (and a golden run) for tools/gpu-check.sh");
  auto a = std::make_shared<skein::cli::DevicePackArgs>();
  cmd->add_option("--model", a->model, "Checkpoint (.pth or .safetensors)")->required();
  cmd->add_option("--dtype", a->dtype, "fp32, bf16 (default) or fp16");
  cmd->add_option("--out", a->out, "Packed weights file to write")->required();
  cmd->add_option("--golden", a->golden, "A golden/rwkv7/NAME.golden.json to carry along");
  cmd->add_option("--golden-out", a->golden_out, "Where to write the golden run");
  cmd->callback([a] { skein::cli::Run(*a); });
});
