// Checks of the CPU references of kernels/cuda, on the CPU alone (runs on any machine, with or
// without a GPU):
//   - the chunked WKV-7 algorithm (reference::Wkv7Chunked, step by step what the GPU's
//     Wkv7Chunked does) equals the sequential recurrence;
//   - the step orchestration the GPU runs (rwkv7_step.h), executed with the scalar reference
//     kernels, equals the independent per-token reference forward (rwkv7_reference_forward.h)
//     within the logit bounds the GPU test uses, for fp32 and bf16, plain and chunked WKV,
//     with rounded activations (against the forward rounding at the same points);
//   - with exact activations (the default), bf16 and fp16 weights compute the fp32 run of
//     the same weights: the step against the per-token forward of the weights widened to an
//     fp32 model, within 1e-4·σ;
//   - the random weights are what the layout says (finite, the init ranges).
// A GPU then only has to show that each kernel matches its reference (cuda_kernels_test).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/hash_uniform.h"
#include "kernels/cuda/reference/host_step.h"
#include "kernels/cuda/reference/reference_ops.h"
#include "kernels/cuda/reference/rwkv7_reference_forward.h"
#include "kernels/cuda/rwkv7_step.h"

namespace skein::cuda {
namespace {

using testing::Checks;
using testing::Compare;
using testing::Diff;

std::vector<float> Random(int64_t n, uint64_t seed, float offset = 0.0f, float scale = 1.0f) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = HashUniform(seed, i, offset, scale);
  return v;
}

void TestChunkedWkv(Checks& checks) {
  const int64_t N = kWkvHeadSize, C = 2 * N, S = 2, slots_total = 3;
  for (int64_t tokens : {1, 37, 130}) {
    for (int64_t chunk : {16, 64}) {
      const int64_t rows = S * tokens;
      std::vector<float> r = Random(rows * C, 1), w = Random(rows * C, 2, 0.775f, 0.22f),
                         k = Random(rows * C, 3), v = Random(rows * C, 4),
                         kappa = Random(rows * C, 5), alpha = Random(rows * C, 6, 0.5f, 0.5f);
      std::vector<float> a(rows * C), b(rows * C);
      for (int64_t h = 0; h < rows * C / N; ++h) {
        double sq = 0;
        for (int64_t j = h * N; j < (h + 1) * N; ++j) sq += kappa[j] * kappa[j];
        for (int64_t j = h * N; j < (h + 1) * N; ++j) {
          const float kh = static_cast<float>(kappa[j] / std::sqrt(sq));
          a[j] = -kh;
          b[j] = kh * alpha[j];
        }
      }
      const std::vector<int32_t> slots = {2, 0};
      std::vector<float> state_seq = Random(slots_total * C * N, 7, 0.0f, 0.5f);
      std::vector<float> state_chunked = state_seq, y_seq(rows * C), y_chunked(rows * C);
      Wkv7Args p;
      p.sessions = S;
      p.tokens = tokens;
      p.C = C;
      p.slot_stride = C * N;
      p.slots = slots.data();
      p.r = r.data();
      p.w = w.data();
      p.k = k.data();
      p.v = v.data();
      p.a = a.data();
      p.b = b.data();
      p.state = state_seq.data();
      p.y = y_seq.data();
      reference::Wkv7(p);
      std::vector<float> scratch(Wkv7ChunkedScratchFloats(S, tokens, C, chunk));
      p.state = state_chunked.data();
      p.y = y_chunked.data();
      reference::Wkv7Chunked(p, chunk, scratch.data());
      const Diff dy = Compare(y_chunked, y_seq, 1e-4, 1e-4);
      const Diff ds = Compare(state_chunked, state_seq, 1e-4, 1e-4);
      const std::string name =
          "Wkv7Chunked/T" + std::to_string(tokens) + " by " + std::to_string(chunk);
      checks.Expect(name + " y equals the sequential recurrence", dy.within, dy.Describe());
      checks.Expect(name + " state equals the sequential recurrence", ds.within, ds.Describe());
    }
  }
}

// Host state and buffers for one step (the same sizes Rwkv7Gpu allocates on the device).
struct HostStep {
  std::vector<int32_t> tokens, slots;
  std::vector<float> att_shift, ffn_shift, wkv_state;
  reference::HostStepScratch scratch;
  Rwkv7StepBuffers buffers;

  HostStep(const Rwkv7Shape& s, int64_t slot_count) {
    const int64_t shift = slot_count * s.layers * s.embd;
    att_shift.assign(shift, 0.0f);
    ffn_shift.assign(shift, 0.0f);
    wkv_state.assign(shift * kWkvHeadSize, 0.0f);
  }

  // Sizes every buffer for S sessions × T tokens and points `buffers` at them.
  void Prepare(const Rwkv7WeightLayout& layout, int64_t S, int64_t T, int64_t chunk,
               bool round_activations) {
    buffers = Rwkv7StepBuffers();
    scratch.Prepare(layout, S, T, LogitsMode::kLast, chunk, round_activations, &buffers);
    buffers.tokens = tokens.data();
    buffers.slots = slots.data();
    buffers.att_shift = att_shift.data();
    buffers.ffn_shift = ffn_shift.data();
    buffers.wkv_state = wkv_state.data();
  }
};

std::vector<int32_t> Tokens(int64_t n, uint64_t seed, int64_t vocab) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(HashIndex(seed, i) % vocab);
  return t;
}

// The project's dtype names, as a C string for the check labels.
const char* Name(DType t) { return base::DTypeName(t).data(); }

// The step with weights in `dt` against the per-token forward. Rounded activations: the
// forward rounding at the same points, within the GPU test's bounds (1e-4·σ fp32, 1e-3·σ
// else). Exact activations: the forward of the same weights as an fp32 model (the fp32 run),
// within 1e-4·σ: the random weights are made in `dt`, so widening them loses nothing, and the
// two differ by summation order alone.
void TestStepAgainstForward(Checks& checks, DType dt, int64_t chunk, int64_t T,
                            bool round_activations) {
  const Rwkv7Shape shape = Rwkv7Shape::Official(2, 128, 300);
  const Rwkv7WeightLayout layout(shape, dt), f32_layout(shape, DType::kF32);
  const std::vector<uint8_t> weights = reference::Rwkv7ReferenceModel::MakeRandomWeights(layout, 9);
  const reference::Rwkv7ReferenceModel ref =
      round_activations
          ? reference::Rwkv7ReferenceModel(layout, weights, /*round_activations=*/true)
          : reference::Rwkv7ReferenceModel(
                f32_layout, reference::Rwkv7ReferenceModel::WidenToF32(layout, weights));
  const int64_t S = 3, V = shape.vocab;
  HostStep step(shape, 5);
  step.slots = {4, 0, 2};
  std::vector<reference::Rwkv7HostState> states(S, ref.NewState());
  const std::string name = std::string("Step/") + Name(dt) +
                           (round_activations ? "/rounded" : "/exact") +
                           (chunk ? "/chunked WKV" : "/plain WKV");
  const double bound = dt == DType::kF32 || !round_activations ? 1e-4 : 1e-3;
  auto run = [&](const std::vector<int32_t>& tokens, int64_t per, const std::string& what) {
    step.tokens = tokens;
    step.Prepare(layout, S, per, per > 1 ? chunk : 0, round_activations);
    reference::HostOps ops;
    const Status st = RunRwkv7Step(ops, layout, weights.data(), step.buffers, S, per);
    if (!st.ok()) {
      checks.Expect(name + " " + what, false, st.message());
      return;
    }
    std::vector<float> want(S * V), one;
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t t = 0; t < per; ++t) ref.Token(tokens[s * per + t], &states[s], &one);
      std::copy(one.begin(), one.end(), want.begin() + s * V);
    }
    const Diff d = Compare(step.scratch.logits(), want, bound, 0.0);
    checks.Expect(name + " " + what + " logits equal the per-token forward" +
                      (round_activations || dt == DType::kF32 ? "" : "'s fp32 run"),
                  d.within, d.Describe());
  };
  run(Tokens(S * T, 1, V), T, "prefill " + std::to_string(T));
  run(Tokens(S, 2, V), 1, "decode 0");
  run(Tokens(S, 3, V), 1, "decode 1");
  if (dt == DType::kF32 || !round_activations) {
    // Slot 0 holds session 1.
    const int64_t L = shape.layers, C = shape.embd;
    const std::vector<float> wkv(step.wkv_state.begin(),
                                 step.wkv_state.begin() + L * C * kWkvHeadSize);
    const Diff d = Compare(wkv, states[1].wkv, 1e-4, 1e-5);
    checks.Expect(name + " state equals the per-token forward", d.within, d.Describe());
  }
}

void TestWeights(Checks& checks) {
  const Rwkv7WeightLayout layout(Rwkv7Shape::Official(2, 128, 300), DType::kBF16);
  const auto bytes = reference::Rwkv7ReferenceModel::MakeRandomWeights(layout, 3);
  bool in_range = true;
  for (const TensorSpec& t : layout.tensors()) {
    const DType type = t.matrix ? DType::kBF16 : DType::kF32;
    for (int64_t i = 0; i < t.count(); ++i) {
      const float v = reference::LoadAs(bytes.data() + t.offset, type, i);
      // bf16 rounding may land one ulp outside the half-open range.
      const float slack = std::fabs(t.init_offset) / 64 + std::fabs(t.init_scale) / 64;
      if (!std::isfinite(v) || v < t.init_offset - t.init_scale - slack ||
          v > t.init_offset + t.init_scale + slack) {
        in_range = false;
      }
    }
    if (t.offset % 256 != 0) in_range = false;
  }
  checks.Expect("Weights/random tensors within their init ranges, 256-byte aligned", in_range);
  const Rwkv7Shape s01 = Rwkv7Shape::Official(12, 768, 65536);
  const Rwkv7Shape s15 = Rwkv7Shape::Official(24, 2048, 65536);
  checks.Expect("Weights/0.1B LoRA ranks 64/64/32/128",
                s01.d_decay == 64 && s01.d_iclr == 64 && s01.d_value == 32 && s01.d_gate == 128);
  checks.Expect("Weights/1.5B LoRA ranks 96/96/64/256",
                s15.d_decay == 96 && s15.d_iclr == 96 && s15.d_value == 64 && s15.d_gate == 256);
}

int Main() {
  Checks checks;
  TestWeights(checks);
  TestChunkedWkv(checks);
  // fp32 weights: rounding to fp32 changes nothing, one run.
  TestStepAgainstForward(checks, DType::kF32, 0, 5, false);
  for (DType dt : {DType::kBF16, DType::kF16}) {
    for (bool round_activations : {false, true}) {
      TestStepAgainstForward(checks, dt, 0, 5, round_activations);
    }
  }
  TestStepAgainstForward(checks, DType::kF32, 4, 11, false);
  TestStepAgainstForward(checks, DType::kBF16, 4, 11, false);
  return checks.Finish();
}

}  // namespace
}  // namespace skein::cuda

int main() { return skein::cuda::Main(); }
