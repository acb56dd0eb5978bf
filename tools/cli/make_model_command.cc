// `skein make-model`: writes a random RWKV checkpoint (x070 by default; x060, x052 or RWKV-4
// with --version) in the official layout (for tests, benchmarks and trying the engine without
// downloading a model), then checks it loads.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/testing/random_rwkv7.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/dtype_flag.h"
#include "tools/cli/progress.h"
#include "tools/cli/version_flag.h"

namespace skein::cli {
namespace {

struct MakeModelArgs {
  int64_t layers = 0;
  int64_t embd = 0;
  int64_t vocab = 0;
  uint64_t seed = 0;
  std::string out;
  int64_t head_size = 64;
  int64_t ffn = 0;
  std::string lora;
  std::string dtype = "bf16";
  bool layer0_v = false;
  std::string version = "x070";
};

model::Rwkv7LoraRanks ParseLora(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  model::Rwkv7LoraRanks r;
  int64_t* fields[] = {&r.decay, &r.iclr, &r.value, &r.gate};
  if (parts.size() != 4) throw CommandError(2, "--lora wants four ranks: w,a,v,g");
  for (size_t i = 0; i < 4; ++i) {
    if (!absl::SimpleAtoi(parts[i], fields[i]) || *fields[i] <= 0) {
      throw CommandError(2, "--lora ranks must be positive integers, got '" + text + "'");
    }
  }
  return r;
}

void MakeModel(const MakeModelArgs& args) {
  model::RandomModelShape shape;
  shape.version = ParseVersionFlag(args.version);
  shape.n_layer = args.layers;
  shape.n_embd = args.embd;
  shape.vocab = args.vocab;
  shape.head_size = args.head_size;
  shape.ffn = args.ffn;
  shape.layer0_value_lora = args.layer0_v;
  if (!args.lora.empty()) shape.lora = ParseLora(args.lora);
  auto resolved = model::ResolveRandomModelShape(shape);
  if (!resolved.ok()) throw CommandError(2, std::string(resolved.status().message()));
  const model::DType dtype = ParseDTypeFlag(args.dtype);
  {
    TerminalProgress progress("writing " + args.out);
    absl::Status s = model::WriteRandomModel(
        args.out, *resolved, dtype, args.seed,
        [&progress](uint64_t done, uint64_t total) { progress.Update(done, total); });
    if (!s.ok()) throw CommandError(1, std::string(s.message()));
  }
  // Read it back: what we write must be what the engine accepts.
  auto archive = model::OpenCheckpoint(args.out);
  if (!archive.ok()) throw CommandError(1, std::string(archive.status().message()));
  auto config = model::LoadRwkvConfig(**archive);
  if (!config.ok()) throw CommandError(1, std::string(config.status().message()));
  std::printf(
      "wrote %s: %s, layers %lld, n_embd %lld, heads %lld x %lld, vocab %lld, "
      "ffn %lld, lora %lld/%lld/%lld/%lld, %s, parameters: %lld\n",
      args.out.c_str(), std::string(model::RwkvVersionName(config->version)).c_str(),
      static_cast<long long>(config->n_layer), static_cast<long long>(config->n_embd),
      static_cast<long long>(config->n_head), static_cast<long long>(config->head_size),
      static_cast<long long>(config->vocab), static_cast<long long>(config->ffn),
      static_cast<long long>(config->d_decay), static_cast<long long>(config->d_iclr),
      static_cast<long long>(config->d_value), static_cast<long long>(config->d_gate),
      config->dtype.c_str(), static_cast<long long>(config->parameters));
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(make_model, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("make-model",
                                 "Write a random RWKV checkpoint (.pth or .safetensors by --out)");
  auto a = std::make_shared<skein::cli::MakeModelArgs>();
  cmd->add_option("--layers", a->layers, "Number of layers L")->required();
  cmd->add_option("--embd", a->embd, "Embedding width C")->required();
  cmd->add_option("--vocab", a->vocab, "Vocabulary rows V")->required();
  cmd->add_option("--seed", a->seed, "Random seed (default 0)");
  cmd->add_option("--out", a->out, "Output file (.pth or .safetensors)")->required();
  cmd->add_option("--head-size", a->head_size, "Head size N (default 64)");
  cmd->add_option("--ffn", a->ffn, "FFN width F (default 4C)");
  cmd->add_option("--lora", a->lora, "LoRA ranks w,a,v,g (default: RWKV-LM's formula for C)");
  cmd->add_option("--dtype", a->dtype, "bf16 (default), fp16 or fp32")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  cmd->add_option("--version", a->version, "x070 (default), x060, x052 or v4")
      ->check(CLI::IsMember({"x070", "x060", "x052", "v4"}));
  cmd->add_flag("--layer0-v", a->layer0_v, "Also write the unused blocks.0.att.v0/v1/v2");
  cmd->callback([a] { skein::cli::MakeModel(*a); });
});
