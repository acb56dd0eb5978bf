#include "tools/cli/engine_cli.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/dtype_flag.h"

namespace skein::cli {

void AddEngineFlags(CLI::App* cmd, EngineFlags* flags, const std::string& default_dtype,
                    bool model_required) {
  flags->dtype = default_dtype;
  auto* model = cmd->add_option("--model", flags->model, "Checkpoint (.pth or .safetensors)");
  if (model_required) model->required();
  cmd->add_option("--dtype", flags->dtype,
                  "Weight dtype to run the big matrices in: fp32, bf16, fp16 or int8 (default " +
                      default_dtype + ")");
  cmd->add_option("--threads", flags->threads, "Threads (default: every core)");
  cmd->add_flag("--bf16-activations", flags->bf16_activations,
                "With --dtype bf16: round activations to bf16 in large matrix products "
                "(faster prefill and batches on AVX512_BF16 CPUs; not exact). With --device: "
                "round product inputs to the weights' dtype (not exact)");
  cmd->add_flag("--int8-activations", flags->int8_activations,
                "With --dtype int8: quantise activations to int8 (per 32 values) in large matrix "
                "products, which then run on integers (faster; not exact)");
  cmd->add_option("--device", flags->device,
                  "cpu (default), cuda, cuda:N (a GPU; RWKV-7 models) or reference (the GPU "
                  "engine's steps on the CPU with scalar kernels: slow, for checking)");
  cmd->add_option("--device-slots", flags->device_slots,
                  "With a device: sessions whose states stay in its memory (default 64)");
}

Engine MakeEngine(std::shared_ptr<const model::TensorArchive> archive, const EngineFlags& flags) {
  if (flags.threads < 0) throw CommandError(2, "--threads must be >= 0");
  engine::StageEngineOptions options;
  options.run_dtype = ParseDTypeFlag(flags.dtype, /*run_dtype=*/true);
  options.threads = flags.threads;
  options.bf16_activations = flags.bf16_activations;
  options.int8_activations = flags.int8_activations;
  options.initial_states = flags.initial_states;
  absl::StatusOr<model::DeviceSpec> device = model::ParseDevice(flags.device);
  if (!device.ok()) throw CommandError(2, std::string(device.status().message()));
  if (flags.device_slots < 1) throw CommandError(2, "--device-slots must be >= 1");
  options.device = *device;
  options.device_slots = flags.device_slots;
  absl::StatusOr<Engine> e = engine::StageEngine::FromArchive(std::move(archive), options);
  if (!e.ok()) throw CommandError(1, std::string(e.status().message()));
  return *std::move(e);
}

Engine LoadEngine(const EngineFlags& flags) {
  ParseDTypeFlag(flags.dtype, /*run_dtype=*/true);  // fail on a bad flag before reading the file
  absl::StatusOr<std::unique_ptr<model::TensorArchive>> archive =
      model::OpenCheckpoint(flags.model);
  if (!archive.ok()) throw CommandError(1, std::string(archive.status().message()));
  return MakeEngine(std::shared_ptr<const model::TensorArchive>(*std::move(archive)), flags);
}

std::vector<int32_t> ParseTokenList(const std::string& text, const std::string& flag,
                                    int64_t vocab) {
  std::vector<int32_t> tokens;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id) || id < 0) {
      throw CommandError(2, absl::StrCat(flag, ": '", std::string(part),
                                         "' is not a token id (want a comma-separated list of "
                                         "non-negative integers)"));
    }
    if (vocab > 0 && id >= vocab) {
      throw CommandError(2, absl::StrCat(flag, ": token ", id,
                                         " is outside the model's vocabulary [0, ", vocab, ")"));
    }
    tokens.push_back(id);
  }
  if (tokens.empty()) throw CommandError(2, flag + ": no tokens given");
  return tokens;
}

std::vector<int64_t> ParsePositiveList(const std::string& text, const std::string& flag) {
  std::vector<int64_t> values;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v) || v <= 0) {
      throw CommandError(
          2, absl::StrCat(flag, ": '", std::string(part), "' is not a positive integer"));
    }
    values.push_back(v);
  }
  return values;
}

}  // namespace skein::cli
