// `skein bench`: engine speed on this machine. Decode (one token per sequence per step) at
// each --batch size: ms per step, aggregate tokens/s, and the fraction of the memory-read
// roofline (every weight is read once per step, so a step cannot beat weight bytes ÷ read
// bandwidth, measured in the same run). Prefill of one sequence at each --prompt length:
// tokens/s. Both also as GFLOP/s of matrix products and their fraction of the arithmetic peak
// of the instruction the large products run on (compute_peak.h, measured in the same run):
// the roofline of prefill and large batches, which are bound by multiply-adds. The model is a
// checkpoint (--model) or a random model of an official shape
// (--shape 0.1b|0.4b) built in memory. Human-readable, or one JSON object with --json.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/cpu/compute_peak.h"
#include "kernels/cpu/cpu_description.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/path_choice.h"
#include "kernels/cpu/tile_products.h"
#include "services/worker/model/rwkv_model.h"
#include "services/worker/model/testing/random_rwkv7_archive.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/engine_cli.h"
#include "tools/cli/version_flag.h"

namespace skein::cli {
namespace {

struct BenchArgs {
  EngineFlags engine;
  std::string shape;
  std::string version = "x070";
  std::string batches = "1,8,32";
  std::string prompts = "128,1024";
  int decode_steps = 16;
  int repeats = 3;
  int bandwidth_mib = 1024;
  // AMX tile products: as timed at load (auto), never (off) or from batch 1 (on), to measure
  // one path against the other in the same run.
  std::string tiles = "auto";
  bool json = false;
};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int32_t TokenAt(int64_t i, int64_t vocab) {
  return static_cast<int32_t>((i * 2654435761u + 12345) % static_cast<uint64_t>(vocab));
}

void Check(const absl::Status& s) {
  if (!s.ok()) throw CommandError(1, std::string(s.message()));
}

// Best seconds per step of `steps` decode steps over `batch` sequences.
double TimeDecode(model::StageModel& m, int64_t batch, int steps, int repeats, int64_t vocab) {
  std::vector<model::RwkvState> states;
  for (int64_t b = 0; b < batch; ++b) states.push_back(m.NewState());
  // A short history first, so the states are not all zero.
  std::vector<std::vector<int32_t>> prompts(batch);
  std::vector<model::SequenceStep> seqs;
  for (int64_t b = 0; b < batch; ++b) {
    for (int i = 0; i < 4; ++i) prompts[b].push_back(TokenAt(b * 4 + i, vocab));
    seqs.push_back({&states[b], prompts[b]});
  }
  model::StepResult result;
  Check(m.Step(seqs, nullptr, &result));
  std::vector<int32_t> tokens(batch);
  double best = 1e30;
  int64_t position = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s, ++position) {
      for (int64_t b = 0; b < batch; ++b) {
        tokens[b] = TokenAt(position * batch + b + 1000, vocab);
        seqs[b] = {&states[b], {&tokens[b], 1}};
      }
      Check(m.Step(seqs, nullptr, &result));
    }
    best = std::min(best, Seconds(start) / steps);
  }
  return best;
}

// Best seconds to prefill `length` tokens of one fresh sequence.
double TimePrefill(model::StageModel& m, int64_t length, int repeats, int64_t vocab) {
  std::vector<int32_t> tokens(length);
  for (int64_t i = 0; i < length; ++i) tokens[i] = TokenAt(i, vocab);
  double best = 1e30;
  model::StepResult result;
  for (int r = 0; r < repeats; ++r) {
    model::RwkvState state = m.NewState();
    model::SequenceStep seq{&state, tokens};
    const auto start = std::chrono::steady_clock::now();
    Check(m.Step({&seq, 1}, nullptr, &result));
    best = std::min(best, Seconds(start));
  }
  return best;
}

void RunBench(const BenchArgs& args) {
  if (args.engine.model.empty() == args.shape.empty()) {
    throw CommandError(2, "give either --model PATH or --shape 0.1b|0.4b");
  }
  if (args.decode_steps <= 0 || args.repeats <= 0 || args.bandwidth_mib <= 0) {
    throw CommandError(2, "--decode-steps, --repeats and --bandwidth-mib must be positive");
  }
  if (args.tiles == "on" && !kernels::AmxTilesAvailable()) {
    throw CommandError(1, "--tiles on: no AMX tiles on this CPU (or Linux refused them)");
  }
  const std::vector<int64_t> batches = ParsePositiveList(args.batches, "--batch");
  const std::vector<int64_t> prompts = ParsePositiveList(args.prompts, "--prompt");
  // On a device every session of the largest batch needs a state slot.
  EngineFlags engine_flags = args.engine;
  for (int64_t b : batches) engine_flags.device_slots = std::max(engine_flags.device_slots, b);
  std::string model_name = args.engine.model;
  Engine e;
  if (!args.shape.empty()) {
    model::RandomModelShape shape;
    if (args.shape == "0.1b") {
      shape = model::Rwkv7Shape01B();
    } else if (args.shape == "0.4b") {
      shape = model::Rwkv7Shape04B();
    } else {
      throw CommandError(2, "--shape must be 0.1b or 0.4b, not '" + args.shape + "'");
    }
    shape.version = ParseVersionFlag(args.version);
    if (shape.version != model::RwkvVersion::kV7) {
      // The released x060/x052 models use RWKV-LM's FFN width ⌊3.5C/32⌋·32; RWKV-4's is 4C.
      shape.ffn = shape.version == model::RwkvVersion::kV4 ? 4 * shape.n_embd : 0;
    }
    // Stored in the run dtype, so the engine uses it in place as it would a mapped file.
    const model::DType dtype = args.engine.dtype == "fp32"   ? model::DType::kF32
                               : args.engine.dtype == "fp16" ? model::DType::kF16
                                                             : model::DType::kBF16;
    absl::StatusOr<std::unique_ptr<model::TensorArchive>> archive =
        model::MakeRandomRwkv7Archive(shape, 0, dtype);
    if (!archive.ok()) throw CommandError(1, std::string(archive.status().message()));
    e = MakeEngine(std::shared_ptr<const model::TensorArchive>(*std::move(archive)), engine_flags);
    model_name = "random " + args.version + " " + args.shape;
  } else {
    e = LoadEngine(engine_flags);
  }
  if (args.tiles != "auto") {
    kernels::TilePolicy policy = kernels::GetTilePolicy();
    const int64_t from = args.tiles == "on" ? 1 : kernels::kNoTileBatch;
    policy.min_batch_exact = policy.min_batch_rounded = from;
    kernels::SetTilePolicy(policy);
  }
  // The roofline below is the CPU's memory bandwidth; a GPU's is measured by
  // tools/gpu-check.sh (kernels/cuda/cuda_benchmark), so a device run reports none.
  const bool on_cpu = e->device_model() == nullptr;
  const model::RwkvConfig& c = e->weights().config();
  const int64_t vocab = c.vocab;
  const double bandwidth =
      kernels::MeasureReadBandwidth(e->pool(), static_cast<size_t>(args.bandwidth_mib) << 20, 5);
  const double bytes_per_step = static_cast<double>(e->weights().bytes_read_per_token());
  const double roofline_step = bytes_per_step / bandwidth;
  const kernels::ComputePeak peaks =
      on_cpu ? kernels::MeasureComputePeak(e->pool()) : kernels::ComputePeak{};
  const double layer_flops =
      2.0 * static_cast<double>(e->weights().layer_multiply_adds_per_token());
  const double head_flops = 2.0 * static_cast<double>(e->weights().head_multiply_adds_per_row());

  FloatJson out;
  out["model"] = model_name;
  out["layers"] = c.n_layer;
  out["embd"] = c.n_embd;
  out["vocab"] = c.vocab;
  out["dtype"] = args.engine.dtype;
  out["bf16_activations"] = args.engine.bf16_activations;
  // --bf16-activations is kept only where it measures faster (kernels/cpu/path_choice.h).
  const auto* cpu_model = dynamic_cast<const model::RwkvModel*>(&e->model());
  const bool bf16_used = cpu_model != nullptr && cpu_model->bf16_activations();
  out["bf16_activations_used"] = bf16_used;
  if (cpu_model != nullptr && !cpu_model->bf16_activation_timings().empty()) {
    FloatJson timings = FloatJson::array();
    for (const kernels::Bf16ActivationTiming& t : cpu_model->bf16_activation_timings()) {
      timings.push_back({{"batch", t.batch},
                         {"exact_ms", t.exact_seconds * 1e3},
                         {"bf16_ms", t.bf16_seconds * 1e3}});
    }
    out["bf16_activation_timings"] = timings;
  }
  // Products on AMX tiles from the batch sizes where they timed faster (path_choice.h).
  const bool tiles = kernels::AmxTilesAvailable() && cpu_model != nullptr &&
                     !cpu_model->tile_choice().timings.empty();
  out["amx_tiles"] = tiles;
  out["tiles"] = args.tiles;
  if (tiles) {
    const kernels::TileChoice& choice = cpu_model->tile_choice();
    auto threshold = [](int64_t b) {
      return b == kernels::kNoTileBatch ? FloatJson() : FloatJson(b);
    };
    out["tile_min_batch_exact"] = threshold(choice.policy.min_batch_exact);
    out["tile_min_batch_bf16"] = threshold(choice.policy.min_batch_rounded);
    FloatJson timings = FloatJson::array();
    for (const kernels::TileTiming& t : choice.timings) {
      timings.push_back({{"batch", t.batch},
                         {"bf16_activations", t.bf16_activations},
                         {"vector_ms", t.vector_seconds * 1e3},
                         {"tile_ms", t.tile_seconds * 1e3}});
    }
    out["tile_timings"] = timings;
  }
  out["int8_activations"] = args.engine.int8_activations;
  out["device"] = e->options().device.ToString();
  out["threads"] = e->pool()->num_threads();
  out["cpu"] = kernels::CpuModelName();
  out["cpu_features"] = kernels::CpuFeatureNames();
  out["isa"] = std::string(kernels::IsaLevelName(kernels::ActiveIsaLevel()));
  // Whether the big matrices run from pre-packed panels: bf16 (AVX512-BF16 CPUs) or int8
  // (AVX512-VNNI CPUs).
  const kernels::WeightMatrix& probe = e->weights().layer(e->weights().first_layer()).key;
  const bool packed = probe.panels != nullptr;
  out["bf16_panels"] = packed && probe.type == model::DType::kBF16;
  out["int8_panels"] = packed && probe.type == model::DType::kI8;
  out["read_bandwidth_gb_per_s"] = bandwidth / 1e9;
  // The peak of the instruction the large products run on: vdpbf16ps when they round
  // activations to bf16 (bf16_used: only where that runs on vdpbf16ps), vpdpbusd for int8
  // activations where the AVX512-VNNI kernels run them, fp32 multiply-adds otherwise. None for
  // int8 activations on other integer forms, or where AMX tiles take some batches (their
  // peaks are not measured).
  const bool int8_dots = args.engine.int8_activations && args.engine.dtype == "int8";
  const bool int8_vnni =
      int8_dots && kernels::ActiveInt8Dot().isa == kernels::Int8DotIsa::kAvx512Vnni;
  const double peak = int8_vnni            ? peaks.int8_dot
                      : int8_dots || tiles ? 0
                      : bf16_used          ? peaks.bf16_dot
                                           : peaks.fp32_fma;
  if (on_cpu) {
    out["peak_fp32_fma_gflop_per_s"] = peaks.fp32_fma / 1e9;
    if (peaks.bf16_dot > 0) out["peak_bf16_dot_gflop_per_s"] = peaks.bf16_dot / 1e9;
    if (peaks.int8_dot > 0) out["peak_int8_dot_gop_per_s"] = peaks.int8_dot / 1e9;
  }
  // GFLOP/s of products for `flops` in `seconds`, and their fraction of `peak` where known.
  auto add_compute = [&](FloatJson& row, double flops, double seconds) {
    row["gflop_per_s"] = flops / seconds / 1e9;
    if (on_cpu && peak > 0) row["peak_fraction"] = flops / seconds / peak;
  };
  out["weight_bytes_per_step"] = static_cast<int64_t>(bytes_per_step);
  out["roofline_ms_per_step"] = roofline_step * 1e3;
  FloatJson decode = FloatJson::array();
  for (int64_t batch : batches) {
    const double step = TimeDecode(e->model(), batch, args.decode_steps, args.repeats, vocab);
    FloatJson row;
    row["batch"] = batch;
    row["ms_per_step"] = step * 1e3;
    row["tokens_per_s"] = batch / step;
    if (on_cpu) row["roofline_fraction"] = roofline_step / step;
    add_compute(row, static_cast<double>(batch) * (layer_flops + head_flops), step);
    decode.push_back(row);
  }
  out["decode"] = decode;
  FloatJson prefill = FloatJson::array();
  for (int64_t length : prompts) {
    const double seconds = TimePrefill(e->model(), length, args.repeats, vocab);
    FloatJson row;
    row["tokens"] = length;
    row["seconds"] = seconds;
    row["tokens_per_s"] = length / seconds;
    // Logits for the last token only.
    add_compute(row, static_cast<double>(length) * layer_flops + head_flops, seconds);
    prefill.push_back(row);
  }
  out["prefill"] = prefill;

  if (args.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("cpu: %s [%s]\n", kernels::CpuModelName().c_str(),
              absl::StrJoin(kernels::CpuFeatureNames(), " ").c_str());
  std::printf("model: %s (L%lld C%lld V%lld), weights %s%s%s, %d threads, ISA %s\n",
              model_name.c_str(), static_cast<long long>(c.n_layer),
              static_cast<long long>(c.n_embd), static_cast<long long>(c.vocab),
              args.engine.dtype.c_str(), packed ? " in packed panels" : "",
              bf16_used ? " (bf16 activations)"
              : args.engine.bf16_activations && cpu_model != nullptr &&
                      !cpu_model->bf16_activation_timings().empty()
                  ? " (bf16 activations asked for, slower here: off)"
              : args.engine.bf16_activations
                  ? " (bf16 activations asked for: no effect with these weights on this CPU)"
              : args.engine.int8_activations ? " (int8 activations)"
                                             : "",
              e->pool()->num_threads(),
              std::string(kernels::IsaLevelName(kernels::ActiveIsaLevel())).c_str());
  if (tiles) {
    auto from = [](const FloatJson& b) {
      return b.is_null() ? std::string("never (slower at the largest batch)")
                         : absl::StrCat("from batch ", b.get<int64_t>());
    };
    if (args.tiles == "auto") {
      std::printf("AMX tiles (timed at load): exact products %s; bf16-activation products %s\n",
                  from(out["tile_min_batch_exact"]).c_str(),
                  from(out["tile_min_batch_bf16"]).c_str());
    } else {
      std::printf("AMX tiles: %s (--tiles %s)\n",
                  args.tiles == "on" ? "every product over panels" : "not used",
                  args.tiles.c_str());
    }
  } else if (on_cpu) {
    std::printf("AMX tiles: %s\n", kernels::DetectCpuFeatures().amx_bf16
                                       ? "not used (no packed bf16 weights, or no permission)"
                                       : "none on this CPU");
  }
  std::printf("read bandwidth: %.1f GB/s; weights read per step: %.1f MB; roofline %.2f ms/step\n",
              bandwidth / 1e9, bytes_per_step / 1e6, roofline_step * 1e3);
  if (on_cpu) {
    std::printf(
        "arithmetic peak: fp32 FMA %.0f GFLOP/s%s%s; the peak column is of %s\n",
        peaks.fp32_fma / 1e9,
        peaks.bf16_dot > 0
            ? absl::StrFormat(", bf16 dot (vdpbf16ps) %.0f GFLOP/s", peaks.bf16_dot / 1e9).c_str()
            : "",
        peaks.int8_dot > 0
            ? absl::StrFormat(", int8 dot (vpdpbusd) %.0f GOP/s", peaks.int8_dot / 1e9).c_str()
            : "",
        int8_vnni   ? "the int8 dot"
        : int8_dots ? "none (int8 activations without AVX512-VNNI: n/a)"
        : tiles     ? "none (AMX tiles: n/a)"
        : bf16_used ? "the bf16 dot"
                    : "fp32 FMA");
  }
  if (!on_cpu)
    std::printf("device: %s (the roofline column is the CPU's: n/a)\n",
                e->options().device.ToString().c_str());
  auto peak_column = [](const FloatJson& row) {
    return row.contains("peak_fraction")
               ? absl::StrFormat("%4.0f%%", 100 * row["peak_fraction"].get<float>())
               : std::string("  n/a");
  };
  std::printf("decode  batch  ms/step  tokens/s  roofline  GFLOP/s  peak\n");
  for (const FloatJson& row : out["decode"]) {
    const std::string roofline =
        on_cpu ? absl::StrFormat("%7.0f%%", 100 * row["roofline_fraction"].get<float>())
               : "    n/a";
    std::printf("        %5lld  %7.2f  %8.1f  %s  %7.1f  %s\n",
                static_cast<long long>(row["batch"].get<int64_t>()),
                row["ms_per_step"].get<float>(), row["tokens_per_s"].get<float>(), roofline.c_str(),
                row["gflop_per_s"].get<float>(), peak_column(row).c_str());
  }
  std::printf("prefill tokens  seconds  tokens/s  GFLOP/s  peak\n");
  for (const FloatJson& row : out["prefill"]) {
    std::printf("        %6lld  %7.3f  %8.1f  %7.1f  %s\n",
                static_cast<long long>(row["tokens"].get<int64_t>()), row["seconds"].get<float>(),
                row["tokens_per_s"].get<float>(), row["gflop_per_s"].get<float>(),
                peak_column(row).c_str());
  }
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(bench, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure decode and prefill speed of the engine");
  auto a = std::make_shared<skein::cli::BenchArgs>();
  skein::cli::AddEngineFlags(cmd, &a->engine, "bf16", /*model_required=*/false);
  cmd->add_option("--shape", a->shape, "Random model of an official shape: 0.1b or 0.4b");
  cmd->add_option("--version", a->version, "With --shape: x070 (default), x060, x052 or v4")
      ->check(CLI::IsMember({"x070", "x060", "x052", "v4"}));
  cmd->add_option("--batch", a->batches, "Decode batch sizes (default 1,8,32)");
  cmd->add_option("--prompt", a->prompts, "Prefill lengths (default 128,1024)");
  cmd->add_option("--decode-steps", a->decode_steps, "Timed decode steps per batch (default 16)");
  cmd->add_option("--repeats", a->repeats, "Repetitions; the best is reported (default 3)");
  cmd->add_option("--bandwidth-mib", a->bandwidth_mib,
                  "Buffer for the bandwidth measurement (default 1024)");
  cmd->add_option("--tiles", a->tiles,
                  "AMX tile products: auto (as timed at load), off, or on (every batch)")
      ->check(CLI::IsMember({"auto", "off", "on"}));
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->callback([a] { skein::cli::RunBench(*a); });
});
