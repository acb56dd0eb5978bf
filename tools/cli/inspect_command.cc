// `skein inspect --model PATH`: what a checkpoint is (RWKV version, shapes, dtype, parameter
// count, recurrent state size), or why this engine cannot run it. `skein inspect --cpu`: the
// processor, the features the kernels look at and the paths they take on it.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/float16.h"
#include "kernels/cpu/compute_peak.h"
#include "kernels/cpu/cpu_description.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/path_choice.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/tile_products.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {
namespace {

using model::RwkvVersion;

std::string StripPath(const std::string& message, const std::string& path) {
  const std::string prefix = path + ": ";
  return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
}

std::string_view Family(RwkvVersion v) {
  switch (v) {
    case RwkvVersion::kV4:
      return "RWKV-4";
    case RwkvVersion::kV5_0:
    case RwkvVersion::kV5_1:
    case RwkvVersion::kV5_2:
      return "RWKV-5";
    case RwkvVersion::kV6:
      return "RWKV-6";
    case RwkvVersion::kV7:
    case RwkvVersion::kV7DeepEmbed:
      return "RWKV-7";
    case RwkvVersion::kV8:
      return "RWKV-8";
    default:
      return "";
  }
}

// Times the product paths a model would choose between at load (path_choice.h), on a bf16
// matrix of a 0.1B model's FFN shape on `pool`, and prints the choice.
void PrintMeasuredPaths(kernels::ThreadPool& pool) {
  const int64_t rows = 3072, cols = 768;
  std::vector<uint16_t> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] =
        base::F32ToBf16(static_cast<float>(static_cast<int64_t>(i * 40503u % 255) - 127) / 2048.0f);
  }
  kernels::WeightMatrix m{w.data(), base::DType::kBF16, rows, cols, cols};
  std::vector<uint32_t> panels(kernels::Bf16PanelWords(rows, cols));
  kernels::PackBf16Panels(m, panels.data());
  m.panels = panels.data();
  auto from = [](int64_t b) {
    return b == kernels::kNoTileBatch ? std::string("never") : absl::StrCat("from batch ", b);
  };
  if (kernels::AmxTilesAvailable()) {
    const kernels::TileChoice choice = kernels::ChooseTilePolicy(m, true, &pool);
    std::printf("tiles, timed on a %lldx%lld bf16 matrix: exact products %s, bf16 activations %s\n",
                static_cast<long long>(rows), static_cast<long long>(cols),
                from(choice.policy.min_batch_exact).c_str(),
                from(choice.policy.min_batch_rounded).c_str());
  }
  const int64_t batches[] = {16, 128};
  const std::vector<kernels::Bf16ActivationTiming> t =
      kernels::TimeBf16Activations(m, batches, &pool);
  std::string detail;
  for (const kernels::Bf16ActivationTiming& x : t) {
    absl::StrAppend(&detail, detail.empty() ? "" : ", ", "batch ", x.batch, ": exact ",
                    absl::StrFormat("%.2f", x.exact_seconds * 1e3), " ms, rounded ",
                    absl::StrFormat("%.2f", x.bf16_seconds * 1e3), " ms");
  }
  std::printf("--bf16-activations: %s here (%s)\n",
              kernels::Bf16ActivationsPayOff(t) ? "kept, faster" : "off, not faster",
              detail.c_str());
}

void InspectCpu() {
  std::printf("cpu: %s\n", kernels::CpuModelName().c_str());
  std::printf("features: %s\n", absl::StrJoin(kernels::CpuFeatureNames(), " ").c_str());
  std::printf("isa: %s (best supported: %s)\n",
              std::string(kernels::IsaLevelName(kernels::ActiveIsaLevel())).c_str(),
              std::string(kernels::IsaLevelName(kernels::SupportedIsaLevel())).c_str());
  std::printf(
      "bf16 products: %s\n",
      kernels::Bf16PanelsAccelerated()
          ? "packed panels, vdpbf16ps with --bf16-activations"
          : "bf16 weights widened to fp32 in registers (--bf16-activations changes nothing)");
  std::printf(
      "int8 products with --int8-activations: %s\n",
      kernels::Int8PanelsAccelerated()
          ? "packed panels, vpdpbusd (avx512_vnni)"
          : ("row-major, " + std::string(kernels::Int8DotIsaName(kernels::ActiveInt8Dot().isa)) +
             " kernels")
                .c_str());
  const kernels::CpuFeatures& f = kernels::DetectCpuFeatures();
  std::printf("amx tiles: %s\n",
              kernels::AmxTilesAvailable() ? "bf16 tile products on packed panels (TDPBF16PS)"
              : f.amx_bf16 ? "on this CPU but not usable (Linux refused the tile data, or the "
                             "build lacks the kernel)"
                           : "none on this CPU");
  // Every core, as the engine uses them.
  kernels::ThreadPool pool(kernels::HardwareCores());
  // The compute roofline of prefill and batches (skein bench gives each figure against it).
  const kernels::ComputePeak peak = kernels::MeasureComputePeak(&pool);
  std::printf(
      "arithmetic peak, %d threads: fp32 FMA %.0f GFLOP/s%s%s\n", pool.num_threads(),
      peak.fp32_fma / 1e9,
      peak.bf16_dot > 0
          ? absl::StrFormat(", bf16 dot (vdpbf16ps) %.0f GFLOP/s", peak.bf16_dot / 1e9).c_str()
          : "",
      peak.int8_dot > 0
          ? absl::StrFormat(", int8 dot (vpdpbusd) %.0f GOP/s", peak.int8_dot / 1e9).c_str()
          : "");
  if (kernels::Bf16PanelsAccelerated()) PrintMeasuredPaths(pool);
}

void Inspect(const std::string& path) {
  auto format = model::DetectCheckpointFormat(path);
  if (!format.ok()) throw CommandError(1, std::string(format.status().message()));
  auto archive = model::OpenCheckpoint(path);
  if (!archive.ok()) throw CommandError(1, std::string(archive.status().message()));
  const model::TensorArchive& a = **archive;
  const model::RwkvBasics basics = model::DescribeRwkvBasics(a);
  const std::string version(model::RwkvVersionName(basics.version));
  const std::string family(Family(basics.version));

  std::printf("file: %s\n", path.c_str());
  std::printf("format: %s\n", *format == model::CheckpointFormat::kPth ? "pth" : "safetensors");
  std::printf("version: %s%s\n", version.c_str(),
              family.empty() ? "" : (" (" + family + ")").c_str());
  std::printf("tensors: %zu\n", a.tensors().size());
  if (!model::IsSupportedRwkvVersion(basics.version)) {
    auto config = model::LoadRwkvConfig(a);  // gives the reason
    std::printf("supported: no (%s)\n",
                StripPath(std::string(config.status().message()), path).c_str());
    std::printf("layers: %lld\n", static_cast<long long>(basics.n_layer));
    std::printf("n_embd: %lld\n", static_cast<long long>(basics.n_embd));
    std::printf("vocab: %lld\n", static_cast<long long>(basics.vocab));
    std::printf("dtype: %s\n", basics.dtype.c_str());
    std::printf("parameters: %lld\n", static_cast<long long>(basics.parameters));
    return;
  }
  auto config = model::LoadRwkvConfig(a);
  if (!config.ok()) throw CommandError(1, std::string(config.status().message()));
  const model::RwkvConfig& c = *config;
  std::printf("supported: yes\n");
  std::printf("layers: %lld\n", static_cast<long long>(c.n_layer));
  std::printf("n_embd: %lld\n", static_cast<long long>(c.n_embd));
  if (c.version == RwkvVersion::kV4) {
    std::printf("heads: none (RWKV-4 mixes per channel)\n");
  } else {
    std::printf("heads: %lld x %lld\n", static_cast<long long>(c.n_head),
                static_cast<long long>(c.head_size));
  }
  std::printf("vocab: %lld\n", static_cast<long long>(c.vocab));
  std::printf("ffn: %lld\n", static_cast<long long>(c.ffn));
  if (c.version == RwkvVersion::kV7) {
    std::printf("lora (w/a/v/g): %lld/%lld/%lld/%lld\n", static_cast<long long>(c.d_decay),
                static_cast<long long>(c.d_iclr), static_cast<long long>(c.d_value),
                static_cast<long long>(c.d_gate));
    std::printf("layer-0 v0/v1/v2: %s\n", c.layer0_value_lora ? "present (unused)" : "absent");
  } else if (c.version == RwkvVersion::kV6) {
    std::printf("lora (mix/decay): %lld/%lld\n", static_cast<long long>(c.d_mix),
                static_cast<long long>(c.d_decay));
  }
  std::printf("dtype: %s\n", c.dtype.c_str());
  std::printf("parameters: %lld\n", static_cast<long long>(c.parameters));
  std::printf("state: %lld bytes (%.2f MiB) per sequence, %lld fp32 values\n",
              static_cast<long long>(c.state_bytes()),
              static_cast<double>(c.state_bytes()) / (1 << 20),
              static_cast<long long>(c.state_floats()));
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(inspect, [](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect", "Describe a checkpoint: RWKV version, shapes, dtype, parameters, state size");
  auto path = std::make_shared<std::string>();
  auto cpu = std::make_shared<bool>(false);
  cmd->add_option("--model", *path, "Checkpoint file (.pth or .safetensors)");
  cmd->add_flag("--cpu", *cpu, "Describe this CPU: model, features, the kernel paths taken");
  cmd->callback([path, cpu] {
    if (path->empty() && !*cpu) throw skein::cli::CommandError(2, "give --model PATH or --cpu");
    if (*cpu) skein::cli::InspectCpu();
    if (!path->empty()) skein::cli::Inspect(*path);
  });
});
