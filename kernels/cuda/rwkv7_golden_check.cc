// A real model's official logits on the GPU engine and on the host engine:
//
//   rwkv7_golden_check PACKED GOLDEN BOUND [exact|rounded]
//
// PACKED is a whole model in the engine's layout and GOLDEN its reference run (both written by
// `skein device-pack`, rwkv7_packed_file.h); BOUND is the largest deviation allowed, in σ of
// each step's logits. Both engines run with exact activations (the default) or with product
// inputs rounded to the weights' type (`rounded`, round_activations). tools/gpu-check.sh runs it on
// the files tools/gpu-prepare.sh makes. The host engine always runs; without a GPU the GPU part is
// skipped with the reason. Exit status 0 when every check that ran passed.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "kernels/cuda/rwkv7_golden_checks.h"
#include "kernels/cuda/rwkv7_packed_file.h"

int main(int argc, char** argv) {
  using namespace skein::cuda;  // NOLINT: a small tool
  const std::string mode = argc == 5 ? argv[4] : "exact";
  if ((argc != 4 && argc != 5) || (mode != "exact" && mode != "rounded")) {
    std::fprintf(stderr, "usage: %s PACKED GOLDEN BOUND_SIGMA [exact|rounded]\n", argv[0]);
    return 2;
  }
  const bool round_activations = mode == "rounded";
  const double bound = std::atof(argv[3]);
  Rwkv7Packed packed;
  Rwkv7GoldenRun golden;
  for (const Status& s : {ReadRwkv7Packed(argv[1], &packed), ReadRwkv7Golden(argv[2], &golden)}) {
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 2;
    }
  }
  std::printf("model %s %s, %s activations, %zu tokens, bound %.3g sigma\n",
              packed.layout->shape().ToString().c_str(),
              std::string(skein::base::DTypeName(packed.layout->dtype())).c_str(), mode.c_str(),
              golden.tokens.size(), bound);
  testing::Checks checks;
  std::unique_ptr<Rwkv7Engine> host;
  Rwkv7HostEngineOptions host_options;
  host_options.slots = 3;
  host_options.round_activations = round_activations;
  if (Status s = CreateHostRwkv7Engine(*packed.layout, packed.bytes, host_options, &host);
      !s.ok()) {
    checks.Expect("host engine", false, s.message());
    return checks.Finish();
  }
  CheckGoldenRun("host", *host, golden, bound, checks);
  std::string why;
  if (!DeviceAvailable(&why)) {
    std::printf("SKIP gpu: %s\n", why.c_str());
    return checks.Finish();
  }
  std::unique_ptr<Context> ctx;
  std::unique_ptr<Rwkv7Engine> gpu;
  Status s = Context::Create(0, &ctx);
  if (s.ok()) {
    Rwkv7GpuEngineOptions options;
    options.slots = 3;
    options.round_activations = round_activations;
    s = CreateGpuRwkv7Engine(ctx.get(), *packed.layout, packed.bytes, options, &gpu);
  }
  if (!s.ok()) {
    checks.Expect("gpu engine", false, s.message());
    return checks.Finish();
  }
  std::printf("device %s\n", ctx->device_name().c_str());
  CheckGoldenRun("gpu", *gpu, golden, bound, checks);
  return checks.Finish();
}
