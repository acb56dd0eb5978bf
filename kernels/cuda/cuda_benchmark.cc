// Decode and prefill speed of the GPU forward step (rwkv7_forward.h) on random weights made on
// the device, with the device's copy bandwidth measured in the same run as the roofline.
//
//   cuda_benchmark [--shape 0.1b|1.5b|tiny] [--dtype bf16|fp16|fp32] [--batches 1,32,128,256]
//                  [--prefill 512] [--steps 30] [--overlap 1|0] [--chunked-min-tokens 128]
//                  [--round-activations 0|1]
//
// Prints a readable table and one "RESULT key=value …" line per figure for scripts
// (tools/gpu-check.sh). Decode: `batch` sessions, one token each per step, CUDA graphs;
// roofline = DecodeStepBytes / copy bandwidth ÷ measured step time. --overlap: overlapped
// (programmatic dependent) launches, on by default where the GPU has them (sm_90+).
// --chunked-min-tokens: prompts from this length use the chunked WKV-7 (a huge value: never).
// --round-activations 1: product inputs rounded to the weights' type (Rwkv7GpuOptions); the
// default, 0, keeps them fp32 (exact), which costs a second cuBLASLt product for 16-bit
// weights in large steps (gemm.h). Every RESULT line says which (activations=exact|rounded).
// Prefill: one session fed `prefill` tokens in one step. Without a usable GPU: prints SKIP and
// exits 0.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/hash_uniform.h"
#include "kernels/cuda/rwkv7_forward.h"

namespace skein::cuda {
namespace {

struct Flags {
  std::string shape = "0.1b";
  std::string dtype = "bf16";
  std::vector<int64_t> batches = {1, 32, 128, 256};
  int64_t prefill = 512;
  int steps = 30;
  bool overlap = true;
  int64_t chunked_min_tokens = 128;  // Rwkv7GpuOptions::wkv_chunked_min_tokens
  bool round_activations = false;    // Rwkv7GpuOptions::round_activations
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    std::string key = arg, value;
    if (eq != std::string::npos) {
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    if (key == "--shape") {
      f->shape = value;
    } else if (key == "--dtype") {
      f->dtype = value;
    } else if (key == "--batches") {
      f->batches.clear();
      std::stringstream ss(value);
      std::string item;
      while (std::getline(ss, item, ',')) f->batches.push_back(std::atoll(item.c_str()));
    } else if (key == "--prefill") {
      f->prefill = std::atoll(value.c_str());
    } else if (key == "--steps") {
      f->steps = std::atoi(value.c_str());
    } else if (key == "--overlap") {
      f->overlap = value != "0";
    } else if (key == "--chunked-min-tokens") {
      f->chunked_min_tokens = std::atoll(value.c_str());
    } else if (key == "--round-activations") {
      f->round_activations = value != "0";
    } else {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return false;
    }
  }
  return true;
}

int Fail(const Status& s, const char* what) {
  std::printf("FAIL %s: %s\n", what, s.message().c_str());
  return 1;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  Rwkv7Shape shape;
  if (flags.shape == "0.1b") {
    shape = Rwkv7Shape::Official(12, 768, 65536);
  } else if (flags.shape == "1.5b") {
    shape = Rwkv7Shape::Official(24, 2048, 65536);
  } else if (flags.shape == "tiny") {
    shape = Rwkv7Shape::Official(2, 256, 1000);
  } else {
    std::fprintf(stderr, "unknown --shape %s\n", flags.shape.c_str());
    return 2;
  }
  DType dtype = DType::kBF16;
  if (flags.dtype == "fp16") {
    dtype = DType::kF16;
  } else if (flags.dtype == "fp32") {
    dtype = DType::kF32;
  } else if (flags.dtype != "bf16") {
    std::fprintf(stderr, "unknown --dtype %s\n", flags.dtype.c_str());
    return 2;
  }
  std::string why;
  if (!DeviceAvailable(&why)) {
    std::printf("SKIP cuda_benchmark: no usable GPU (%s)\n", why.c_str());
    return 0;
  }
  std::unique_ptr<Context> ctx;
  Status st = Context::Create(0, &ctx);
  if (!st.ok()) return Fail(st, "Context::Create");
  ctx->set_overlapped_launches(flags.overlap);
  const int overlap = ctx->overlapped_launches() ? 1 : 0;
  double bandwidth = 0;
  st = MeasureCopyBandwidth(*ctx, size_t{1} << 30, 5, &bandwidth);
  if (!st.ok()) return Fail(st, "MeasureCopyBandwidth");
  std::printf("device %s, copy bandwidth %.1f GB/s (1 GiB device-to-device, read + write)\n",
              ctx->device_name().c_str(), bandwidth / 1e9);
  std::printf("RESULT kind=bandwidth device=\"%s\" copy_gbs=%.1f\n", ctx->device_name().c_str(),
              bandwidth / 1e9);

  int64_t max_batch = 1;
  for (int64_t b : flags.batches) max_batch = std::max(max_batch, b);
  Rwkv7GpuOptions options;
  options.dtype = dtype;
  options.seed = 7;
  options.slots = max_batch;
  options.wkv_chunked_min_tokens = flags.chunked_min_tokens;
  options.round_activations = flags.round_activations;
  const char* activations = flags.round_activations ? "rounded" : "exact";
  std::unique_ptr<Rwkv7Gpu> model;
  st = Rwkv7Gpu::Create(ctx.get(), shape, options, &model);
  if (!st.ok()) return Fail(st, "Rwkv7Gpu::Create");
  std::printf(
      "model %s (%s, %s activations), overlapped launches %s, weights %.1f MB, state %.2f MB "
      "per session\n",
      shape.ToString().c_str(), flags.dtype.c_str(), activations, overlap ? "on" : "off",
      model->layout().total_bytes() / 1e6, model->state_bytes_per_slot() / 1e6);

  bool finite = true;
  auto check_finite = [&](int64_t sessions) {
    std::vector<float> logits;
    const Status s = model->CopyLogits(sessions, &logits);
    if (!s.ok()) {
      finite = false;
      return;
    }
    for (float v : logits) finite = finite && std::isfinite(v);
  };

  std::printf("%-8s %-6s %8s %12s %14s %10s\n", "model", "dtype", "batch", "ms/step", "tokens/s",
              "roofline");
  for (int64_t batch : flags.batches) {
    std::vector<int32_t> slots(batch), tokens(batch);
    for (int64_t s = 0; s < batch; ++s) slots[s] = static_cast<int32_t>(s);
    // Two untimed steps: the first captures the CUDA graph and warms cuBLASLt.
    for (int i = 0; i < 2; ++i) {
      for (int64_t s = 0; s < batch; ++s) {
        tokens[s] = static_cast<int32_t>(HashIndex(i, s) % shape.vocab);
      }
      st = model->Step(tokens.data(), slots.data(), batch, 1);
      if (!st.ok()) return Fail(st, "decode step");
    }
    st = ctx->Synchronize();
    if (!st.ok()) return Fail(st, "decode warm-up");
    // Timed: `steps` steps back to back, as a serving loop would issue them.
    StreamTimer timer(*ctx);
    timer.Start();
    for (int i = 0; i < flags.steps; ++i) {
      for (int64_t s = 0; s < batch; ++s) {
        tokens[s] = static_cast<int32_t>(HashIndex(100 + i, s) % shape.vocab);
      }
      st = model->Step(tokens.data(), slots.data(), batch, 1);
      if (!st.ok()) return Fail(st, "decode step");
    }
    timer.Stop();
    double ms = 0;
    st = timer.ElapsedMs(&ms);
    if (!st.ok()) return Fail(st, "decode timing");
    st = ctx->Synchronize();
    if (!st.ok()) return Fail(st, "decode");
    check_finite(batch);
    const double step_ms = ms / flags.steps;
    const double tokens_per_s = batch * 1e3 / step_ms;
    const double roofline = model->DecodeStepBytes(batch) / bandwidth / (step_ms * 1e-3);
    std::printf("%-8s %-6s %8lld %12.3f %14.0f %9.0f%%\n", flags.shape.c_str(), flags.dtype.c_str(),
                static_cast<long long>(batch), step_ms, tokens_per_s, 100 * roofline);
    std::printf(
        "RESULT kind=decode shape=%s dtype=%s activations=%s batch=%lld overlap=%d ms=%.4f "
        "tokens_per_s=%.1f roofline=%.4f\n",
        flags.shape.c_str(), flags.dtype.c_str(), activations, static_cast<long long>(batch),
        overlap, step_ms, tokens_per_s, roofline);
  }

  if (flags.prefill > 0) {
    const int32_t slot = 0;
    std::vector<int32_t> tokens(flags.prefill);
    for (int64_t t = 0; t < flags.prefill; ++t) {
      tokens[t] = static_cast<int32_t>(HashIndex(9, t) % shape.vocab);
    }
    const int repeats = 3;
    double best_ms = 0;
    for (int i = 0; i < 1 + repeats; ++i) {
      st = model->ResetSlots({slot});
      if (!st.ok()) return Fail(st, "ResetSlots");
      StreamTimer timer(*ctx);
      timer.Start();
      st = model->Step(tokens.data(), &slot, 1, flags.prefill);
      if (!st.ok()) return Fail(st, "prefill step");
      timer.Stop();
      double ms = 0;
      st = timer.ElapsedMs(&ms);
      if (!st.ok()) return Fail(st, "prefill timing");
      if (i == 1 || (i > 1 && ms < best_ms)) best_ms = ms;  // i == 0 warms up
    }
    st = ctx->Synchronize();
    if (!st.ok()) return Fail(st, "prefill");
    check_finite(1);
    const double tokens_per_s = flags.prefill * 1e3 / best_ms;
    std::printf("%-8s %-6s prefill %lld tokens: %.3f ms, %.0f tokens/s\n", flags.shape.c_str(),
                flags.dtype.c_str(), static_cast<long long>(flags.prefill), best_ms, tokens_per_s);
    const int chunked = flags.prefill >= flags.chunked_min_tokens ? 1 : 0;
    std::printf(
        "RESULT kind=prefill shape=%s dtype=%s activations=%s tokens=%lld overlap=%d chunked=%d "
        "ms=%.4f tokens_per_s=%.1f\n",
        flags.shape.c_str(), flags.dtype.c_str(), activations,
        static_cast<long long>(flags.prefill), overlap, chunked, best_ms, tokens_per_s);
  }
  std::printf("RESULT kind=sanity shape=%s finite=%d\n", flags.shape.c_str(), finite ? 1 : 0);
  return finite ? 0 : 1;
}

}  // namespace
}  // namespace skein::cuda

int main(int argc, char** argv) { return skein::cuda::Main(argc, argv); }
