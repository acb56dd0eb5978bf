// Correctness checks of the CUDA kernels and the GPU forward step against the scalar CPU
// references (reference/), run on a GPU by tools/gpu-check.sh (also under compute-sanitizer).
// Without a usable GPU it prints SKIP and the reason, and exits 0.
//
// Bounds: kernels with fp32 outputs within 1e-5·σ(+1e-5 relative) of the references (double
// sums); 16-bit outputs within one rounding of the output type. Products of fp32 x with bf16
// weights on cuBLASLt (x split into bf16 hi + lo, gemm.h) within 1e-4·σ: the split carries x to
// 2⁻¹⁶, where rounding x to bf16 would be ~3e-3·σ off. Whole-model logits within 1e-4·σ (fp32
// weights), 2e-4·σ (bf16/fp16 weights with exact activations, against the fp32 run of the same
// weights: the split's 2⁻¹⁶ in the prefill products on top of summation order) and 1e-3·σ
// (rounded activations), σ = the reference logits' standard deviation. Batched decode of ≤ 8
// sessions must equal each session run alone bit for bit (the GEMV path), and within the
// logit bound above that. The GPU engine against the host engine (both rwkv7_engine.h, stages
// of three layers): fp32 within the same 1e-4·σ, exact bf16/fp16 within 2e-4·σ, rounded bf16
// within 1e-2·σ (the bf16 rounding flips of reference/rwkv7_host_engine_test.cc, more
// frequent over kAll's rows), fp32 and exact states within 2e-4·σ + 2e-5 relative.
//
//   cuda_kernels_test [--quick]     --quick: the smaller cases only (for compute-sanitizer)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/hash_uniform.h"
#include "kernels/cuda/reference/reference_ops.h"
#include "kernels/cuda/reference/rwkv7_reference_forward.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "kernels/cuda/rwkv7_forward.h"
#include "kernels/cuda/rwkv7_ops.h"

namespace skein::cuda {
namespace {

using testing::Checks;
using testing::Compare;
using testing::Diff;

// The project's dtype names, as a C string for the check labels.
const char* Name(DType t) { return base::DTypeName(t).data(); }

// One rounding of `t`, relative: what an output may differ by when the GPU and the reference
// land on either side of a rounding boundary.
// How a model runs: the weights' type and whether product inputs are rounded to it.
struct Mode {
  DType dtype = DType::kF32;
  bool round_activations = false;
  bool exact() const { return dtype == DType::kF32 || !round_activations; }
};

std::string Name(const Mode& m) {
  if (m.dtype == DType::kF32) return "fp32";
  return std::string(Name(m.dtype)) + (m.round_activations ? "/rounded" : "/exact");
}

double Ulp(DType t) {
  switch (t) {
    case DType::kBF16:
      return 1.0 / 128;
    case DType::kF16:
      return 1.0 / 1024;
    default:
      return 1e-5;
  }
}

std::vector<float> Random(int64_t n, uint64_t seed, float offset = 0.0f, float scale = 1.0f) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = HashUniform(seed, i, offset, scale);
  return v;
}

// Host bytes of `values` stored as `t`.
std::vector<uint8_t> Encode(const std::vector<float>& values, DType t) {
  std::vector<uint8_t> bytes(values.size() * base::DTypeSize(t));
  for (size_t i = 0; i < values.size(); ++i) reference::StoreAs(bytes.data(), t, i, values[i]);
  return bytes;
}

std::vector<float> Decode(const std::vector<uint8_t>& bytes, DType t) {
  std::vector<float> v(bytes.size() / base::DTypeSize(t));
  for (size_t i = 0; i < v.size(); ++i) v[i] = reference::LoadAs(bytes.data(), t, i);
  return v;
}

// Aborting on infrastructure failures (allocation, copies) keeps the checks short: those are
// not what is under test, and nothing after them would mean anything.
void Must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::printf("FAIL %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

class Device {
 public:
  explicit Device(Context& ctx) : ctx_(ctx) {}
  template <typename T>
  void* Upload(const std::vector<T>& host) {
    buffers_.emplace_back();
    Must(DeviceBuffer::Allocate(host.size() * sizeof(T), &buffers_.back()), "allocate");
    Must(CopyToDevice(ctx_, buffers_.back().data(), host.data(), host.size() * sizeof(T)),
         "upload");
    return buffers_.back().data();
  }
  float* UploadF(const std::vector<float>& host) { return static_cast<float*>(Upload(host)); }
  template <typename T>
  std::vector<T> Download(const void* device, size_t count) {
    std::vector<T> host(count);
    Must(CopyToHost(ctx_, host.data(), device, count * sizeof(T)), "download");
    return host;
  }

 private:
  Context& ctx_;
  std::vector<DeviceBuffer> buffers_;
};

void TestFillUniform(Context& ctx, Checks& checks) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int64_t n = 10007;
    Device dev(ctx);
    void* d = dev.Upload(std::vector<uint8_t>(n * base::DTypeSize(t)));
    Must(FillUniform(ctx, d, t, n, 42, 0.25f, 0.75f), "FillUniform");
    const std::vector<uint8_t> got = dev.Download<uint8_t>(d, n * base::DTypeSize(t));
    std::vector<uint8_t> want(got.size());
    reference::FillUniform(want.data(), t, n, 42, 0.25f, 0.75f);
    checks.Expect(std::string("FillUniform/") + Name(t) + " bit-identical to the host",
                  got == want);
  }
}

void TestGemm(Context& ctx, Checks& checks, bool quick) {
  struct Shape {
    int64_t n, k;
  };
  const std::vector<Shape> shapes =
      quick ? std::vector<Shape>{{96, 256}} : std::vector<Shape>{{96, 256}, {200, 64}, {72, 100}};
  const std::vector<int64_t> ms =
      quick ? std::vector<int64_t>{1, 9} : std::vector<int64_t>{1, 3, 8, 9, 37};
  // (weights, x): x in the weights' type (rounded activations) or fp32 (exact).
  const std::pair<DType, DType> types[] = {{DType::kF32, DType::kF32},
                                           {DType::kBF16, DType::kBF16},
                                           {DType::kBF16, DType::kF32},
                                           {DType::kF16, DType::kF16},
                                           {DType::kF16, DType::kF32}};
  for (const auto& [t, xt] : types) {
    for (WeightLayout layout : {WeightLayout::kOutIn, WeightLayout::kInOut}) {
      for (const Shape& s : shapes) {
        for (int64_t m : ms) {
          for (bool force_cublas : {false, true}) {
            if (force_cublas && (m > kGemvMaxRows || layout == WeightLayout::kInOut)) continue;
            const bool accumulate = m % 2 == 1;
            Device dev(ctx);
            const auto x = Encode(Random(m * s.k, 1 + m), xt);
            const auto w = Encode(Random(s.n * s.k, 2, 0.0f, 0.2f), t);
            const auto y0 = Random(m * s.n, 3);
            GemmArgs g;
            g.x = dev.Upload(x);
            g.w = dev.Upload(w);
            g.type = t;
            g.x_type = xt;
            g.layout = layout;
            g.m = m;
            g.n = s.n;
            g.k = s.k;
            g.y = dev.UploadF(y0);
            g.accumulate = accumulate;
            g.force_cublas = force_cublas;
            const Status st = Gemm(ctx, g);
            char name[160];
            std::snprintf(name, sizeof(name), "Gemm/%s x %s/%s/m%lld n%lld k%lld%s%s", Name(xt),
                          Name(t), layout == WeightLayout::kOutIn ? "out-in" : "in-out",
                          static_cast<long long>(m), static_cast<long long>(s.n),
                          static_cast<long long>(s.k), accumulate ? " +=" : "",
                          force_cublas ? " cublasLt" : "");
            if (!st.ok()) {
              checks.Expect(name, false, st.message());
              continue;
            }
            const auto got = dev.Download<float>(g.y, m * s.n);
            std::vector<float> want = y0;
            GemmArgs h = g;
            h.x = x.data();
            h.w = w.data();
            h.y = want.data();
            reference::Gemm(h);
            // fp32 x with bf16 weights on cuBLASLt: x as bf16 hi + lo, 2⁻¹⁶ (gemm.h).
            const bool split = xt == DType::kF32 && t == DType::kBF16 &&
                               (force_cublas || m > kGemvMaxRows ||
                                layout == WeightLayout::kInOut || s.k % 8 != 0);
            const Diff d = Compare(got, want, split ? 1e-4 : 1e-5, 1e-5);
            checks.Expect(name, d.within, d.Describe());
          }
        }
      }
    }
  }
}

// A group of products with different shapes and epilogues equals the references, and (on the
// GEMV path) equals the same products launched one by one, bit for bit.
void TestGemmGroup(Context& ctx, Checks& checks) {
  struct Job {
    int64_t n, k;
    bool accumulate;
    UnaryOp act;
  };
  const std::vector<Job> shapes = {{256, 128, false, UnaryOp::kIdentity},
                                   {64, 128, false, UnaryOp::kTanh},
                                   {96, 64, true, UnaryOp::kIdentity},
                                   {128, 32, false, UnaryOp::kSigmoid},
                                   {512, 128, false, UnaryOp::kSquaredRelu}};
  const std::pair<DType, DType> types[] = {
      {DType::kBF16, DType::kBF16}, {DType::kBF16, DType::kF32}, {DType::kF32, DType::kF32}};
  for (const auto& [t, xt] : types) {
    for (int64_t m : {1, 5, 12}) {
      Device dev(ctx);
      std::vector<GemmArgs> jobs, singles, host;
      std::vector<std::vector<uint8_t>> xs, ws, acts;
      std::vector<std::vector<float>> ys;
      for (size_t j = 0; j < shapes.size(); ++j) {
        const Job& s = shapes[j];
        xs.push_back(Encode(Random(m * s.k, 200 + j), xt));
        ws.push_back(Encode(Random(s.n * s.k, 300 + j, 0.0f, 0.3f), t));
        ys.push_back(Random(m * s.n, 400 + j));
        acts.emplace_back(m * s.n * base::DTypeSize(xt));
        GemmArgs g;
        g.type = t;
        g.x_type = xt;
        g.m = m;
        g.n = s.n;
        g.k = s.k;
        g.accumulate = s.accumulate;
        g.act = s.act;
        g.x = dev.Upload(xs[j]);
        g.w = dev.Upload(ws[j]);
        g.y = dev.UploadF(ys[j]);
        g.y_act = dev.Upload(acts[j]);
        jobs.push_back(g);
        GemmArgs one = g;
        one.y = dev.UploadF(ys[j]);
        one.y_act = dev.Upload(acts[j]);
        singles.push_back(one);
        GemmArgs h = g;
        h.x = xs[j].data();
        h.w = ws[j].data();
        h.y = ys[j].data();
        h.y_act = acts[j].data();
        host.push_back(h);
      }
      const std::string name =
          std::string("GemmGroup/") + Name(xt) + " x " + Name(t) + "/m" + std::to_string(m);
      // m > 8 runs on cuBLASLt: fp32 x with bf16 weights goes through the hi/lo split.
      const double bound = xt == DType::kF32 && t != DType::kF32 && m > kGemvMaxRows ? 1e-4 : 1e-5;
      Status st = GemmGroup(ctx, jobs.data(), static_cast<int>(jobs.size()));
      for (const GemmArgs& g : singles) {
        if (st.ok()) st = Gemm(ctx, g);
      }
      if (!st.ok()) {
        checks.Expect(name, false, st.message());
        continue;
      }
      reference::GemmGroup(host.data(), static_cast<int>(host.size()));
      bool ok = true, same = true;
      Diff worst;
      for (size_t j = 0; j < shapes.size(); ++j) {
        const size_t count = m * shapes[j].n;
        const auto y = dev.Download<float>(jobs[j].y, count);
        const auto act = Decode(dev.Download<uint8_t>(jobs[j].y_act, acts[j].size()), xt);
        const Diff dy = Compare(y, ys[j], bound, 1e-5);
        // relu² doubles y's error relative to its σ: 10× the bound covers every activation.
        const Diff da = Compare(act, Decode(acts[j], xt), 10 * bound, Ulp(xt) + 1e-5);
        ok = ok && dy.within && da.within;
        if (dy.max_abs >= worst.max_abs) worst = dy;
        same = same && y == dev.Download<float>(singles[j].y, count) &&
               act == Decode(dev.Download<uint8_t>(singles[j].y_act, acts[j].size()), xt);
      }
      checks.Expect(name + " outputs and activations", ok, worst.Describe());
      checks.Expect(name + " grouped equals one by one, bit for bit", same);
    }
  }
}

void TestUnary(Context& ctx, Checks& checks) {
  const int64_t n = 5000;
  const auto x = Random(n, 7, 0.0f, 6.0f);
  for (UnaryOp op :
       {UnaryOp::kIdentity, UnaryOp::kTanh, UnaryOp::kSigmoid, UnaryOp::kSquaredRelu}) {
    for (DType t : {DType::kF32, DType::kBF16}) {
      Device dev(ctx);
      float* dx = dev.UploadF(x);
      void* dy = dev.Upload(std::vector<uint8_t>(n * base::DTypeSize(t)));
      Must(Unary(ctx, op, dx, dy, t, n), "Unary");
      const auto got = Decode(dev.Download<uint8_t>(dy, n * base::DTypeSize(t)), t);
      std::vector<uint8_t> want_bytes(n * base::DTypeSize(t));
      reference::Unary(op, x.data(), want_bytes.data(), t, n);
      const Diff d = Compare(got, Decode(want_bytes, t), 1e-6, Ulp(t) + 2e-6);
      checks.Expect("Unary/" + std::to_string(static_cast<int>(op)) + "/" + Name(t), d.within,
                    d.Describe());
    }
  }
}

void TestEmbed(Context& ctx, Checks& checks) {
  const int64_t V = 50, C = 192, rows = 5;
  for (DType t : {DType::kF32, DType::kBF16}) {
    Device dev(ctx);
    const auto emb = Encode(Random(V * C, 11), t);
    const auto ln_w = Random(C, 12, 1.0f, 0.2f), ln_b = Random(C, 13, 0.0f, 0.2f);
    const std::vector<int32_t> tokens = {3, 49, 0, 3, 17};
    EmbedArgs a;
    a.emb = dev.Upload(emb);
    a.emb_type = t;
    a.tokens = static_cast<const int32_t*>(dev.Upload(tokens));
    a.ln_w = dev.UploadF(ln_w);
    a.ln_b = dev.UploadF(ln_b);
    a.rows = rows;
    a.C = C;
    a.x = dev.UploadF(std::vector<float>(rows * C));
    Must(EmbedLayerNorm(ctx, a), "EmbedLayerNorm");
    const auto got = dev.Download<float>(a.x, rows * C);
    std::vector<float> want(rows * C);
    EmbedArgs h = a;
    h.emb = emb.data();
    h.tokens = tokens.data();
    h.ln_w = ln_w.data();
    h.ln_b = ln_b.data();
    h.x = want.data();
    reference::EmbedLayerNorm(h);
    const Diff d = Compare(got, want, 1e-5, 1e-5);
    checks.Expect(std::string("EmbedLayerNorm/") + Name(t), d.within, d.Describe());
  }
}

void TestShiftMix(Context& ctx, Checks& checks) {
  const int64_t S = 3, C = 320, slots_total = 5;
  const std::vector<int32_t> slots = {2, 0, 4};
  for (int64_t T : {1, 4}) {
    for (int mixes : {6, 1}) {
      const DType t = mixes == 6 ? DType::kBF16 : DType::kF32;
      Device dev(ctx);
      const auto x = Random(S * T * C, 21, 0.3f, 2.0f);
      const auto ln_w = Random(C, 22, 1.0f, 0.2f), ln_b = Random(C, 23, 0.0f, 0.2f);
      const auto state0 = Random(slots_total * C, 24);
      std::vector<std::vector<float>> mix(mixes);
      ShiftMixArgs a;
      a.x = dev.UploadF(x);
      a.ln_w = dev.UploadF(ln_w);
      a.ln_b = dev.UploadF(ln_b);
      a.sessions = S;
      a.tokens = T;
      a.C = C;
      a.shift_state = dev.UploadF(state0);
      a.slot_stride = C;
      a.slots = static_cast<const int32_t*>(dev.Upload(slots));
      a.mixes = mixes;
      a.out_type = t;
      a.saved = dev.UploadF(std::vector<float>(S * C));
      for (int m = 0; m < mixes; ++m) {
        mix[m] = Random(C, 30 + m, 0.5f, 0.5f);
        a.mix[m] = dev.UploadF(mix[m]);
        a.out[m] = dev.Upload(std::vector<uint8_t>(S * T * C * base::DTypeSize(t)));
      }
      Must(ShiftMix(ctx, a), "ShiftMix");
      if (T > 1) {
        Must(CommitShift(ctx, a.saved, a.shift_state, C, a.slots, S, C), "CommitShift");
      }
      ShiftMixArgs h = a;
      std::vector<float> state = state0, saved(S * C);
      std::vector<std::vector<uint8_t>> outs(mixes);
      h.x = x.data();
      h.ln_w = ln_w.data();
      h.ln_b = ln_b.data();
      h.shift_state = state.data();
      h.slots = slots.data();
      h.saved = saved.data();
      for (int m = 0; m < mixes; ++m) {
        h.mix[m] = mix[m].data();
        outs[m].resize(S * T * C * base::DTypeSize(t));
        h.out[m] = outs[m].data();
      }
      reference::ShiftMix(h);
      if (T > 1) reference::CommitShift(saved.data(), state.data(), C, slots.data(), S, C);
      const std::string name =
          "ShiftMix/T" + std::to_string(T) + "/" + std::to_string(mixes) + " mixes/" + Name(t);
      bool ok = true;
      std::string detail;
      for (int m = 0; m < mixes; ++m) {
        const auto got = Decode(dev.Download<uint8_t>(a.out[m], outs[m].size()), t);
        const Diff d = Compare(got, Decode(outs[m], t), 1e-5, Ulp(t) + 1e-5);
        ok = ok && d.within;
        if (m == 0) detail = d.Describe();
      }
      const Diff ds = Compare(dev.Download<float>(a.shift_state, state.size()), state, 1e-5, 1e-5);
      checks.Expect(name + " outputs", ok, detail);
      checks.Expect(name + " saved state", ds.within, ds.Describe());
    }
  }
}

void TestPrepare(Context& ctx, Checks& checks) {
  const int64_t rows = 4, C = 256, N = 64;
  for (bool first : {true, false}) {
    Device dev(ctx);
    auto decay = Random(rows * C, 41, 0.0f, 3.0f), alpha = Random(rows * C, 42, 0.0f, 3.0f);
    auto k = Random(rows * C, 43), v = Random(rows * C, 44), v_first = Random(rows * C, 45);
    const auto v_gate = Random(rows * C, 46, 0.0f, 2.0f);
    const auto w0 = Random(C, 47, -1.0f, 2.0f), a0 = Random(C, 48), k_k = Random(C, 49, 1.0f, 0.5f),
               k_a = Random(C, 50, 0.5f, 0.5f), v0 = Random(C, 51);
    PrepareArgs p;
    p.rows = rows;
    p.C = C;
    p.head_size = N;
    p.first_layer = first;
    p.decay = dev.UploadF(decay);
    p.w0 = dev.UploadF(w0);
    p.alpha = dev.UploadF(alpha);
    p.a0 = dev.UploadF(a0);
    p.k = dev.UploadF(k);
    p.k_k = dev.UploadF(k_k);
    p.k_a = dev.UploadF(k_a);
    p.v = dev.UploadF(v);
    p.v_gate = dev.UploadF(v_gate);
    p.v0 = dev.UploadF(v0);
    p.v_first = dev.UploadF(v_first);
    p.a = dev.UploadF(std::vector<float>(rows * C));
    p.b = dev.UploadF(std::vector<float>(rows * C));
    Must(Rwkv7Prepare(ctx, p), "Rwkv7Prepare");
    std::vector<float> a(rows * C), b(rows * C);
    PrepareArgs h = p;
    h.decay = decay.data();
    h.w0 = w0.data();
    h.alpha = alpha.data();
    h.a0 = a0.data();
    h.k = k.data();
    h.k_k = k_k.data();
    h.k_a = k_a.data();
    h.v = v.data();
    h.v_gate = v_gate.data();
    h.v0 = v0.data();
    h.v_first = v_first.data();
    h.a = a.data();
    h.b = b.data();
    reference::Rwkv7Prepare(h);
    const std::string name = std::string("Rwkv7Prepare/") + (first ? "layer 0" : "layer 1");
    struct Out {
      const char* what;
      const float* device;
      const std::vector<float>* want;
    } outs[] = {{"decay", p.decay, &decay},       {"k", p.k, &k}, {"v", p.v, &v},
                {"v_first", p.v_first, &v_first}, {"a", p.a, &a}, {"b", p.b, &b}};
    for (const Out& o : outs) {
      const Diff d = Compare(dev.Download<float>(o.device, rows * C), *o.want, 1e-5, 1e-5);
      checks.Expect(name + " " + o.what, d.within, d.Describe());
    }
  }
}

// Inputs of a WKV-7 step in their real ranges: w in (0.55, 1), κ̂ unit per head, α in (0, 1).
struct WkvInputs {
  std::vector<float> r, w, k, v, a, b;
  WkvInputs(int64_t rows, int64_t C, uint64_t seed) {
    r = Random(rows * C, seed);
    w = Random(rows * C, seed + 1, 0.775f, 0.22f);
    k = Random(rows * C, seed + 2);
    v = Random(rows * C, seed + 3);
    std::vector<float> kappa = Random(rows * C, seed + 4),
                       alpha = Random(rows * C, seed + 5, 0.5f, 0.5f);
    a.resize(rows * C);
    b.resize(rows * C);
    for (int64_t h = 0; h < rows * C / kWkvHeadSize; ++h) {
      double sq = 0;
      for (int64_t j = h * kWkvHeadSize; j < (h + 1) * kWkvHeadSize; ++j) sq += kappa[j] * kappa[j];
      const float inv = static_cast<float>(1.0 / std::sqrt(sq));
      for (int64_t j = h * kWkvHeadSize; j < (h + 1) * kWkvHeadSize; ++j) {
        a[j] = -kappa[j] * inv;
        b[j] = kappa[j] * inv * alpha[j];
      }
    }
  }
};

void TestWkv(Context& ctx, Checks& checks, bool quick) {
  struct Case {
    int64_t sessions, tokens, chunk;  // chunk 0: Wkv7
  };
  std::vector<Case> cases = {{3, 1, 0}, {3, 5, 0}, {1, 37, 16}};
  if (!quick) cases.push_back({2, 200, 64});
  const int64_t C = 128, N = kWkvHeadSize, slots_total = 4;
  const std::vector<int32_t> slots = {1, 3, 0};
  for (const Case& c : cases) {
    const int64_t rows = c.sessions * c.tokens;
    const WkvInputs in(rows, C, 60);
    const auto state0 = Random(slots_total * C * N, 70, 0.0f, 0.5f);
    Device dev(ctx);
    Wkv7Args p;
    p.sessions = c.sessions;
    p.tokens = c.tokens;
    p.C = C;
    p.state = dev.UploadF(state0);
    p.slot_stride = C * N;
    p.slots = static_cast<const int32_t*>(dev.Upload(slots));
    p.r = dev.UploadF(in.r);
    p.w = dev.UploadF(in.w);
    p.k = dev.UploadF(in.k);
    p.v = dev.UploadF(in.v);
    p.a = dev.UploadF(in.a);
    p.b = dev.UploadF(in.b);
    p.y = dev.UploadF(std::vector<float>(rows * C));
    Status st;
    if (c.chunk == 0) {
      st = Wkv7(ctx, p);
    } else {
      float* scratch = dev.UploadF(
          std::vector<float>(Wkv7ChunkedScratchFloats(c.sessions, c.tokens, C, c.chunk)));
      st = Wkv7Chunked(ctx, p, c.chunk, scratch);
    }
    const std::string name = "Wkv7/S" + std::to_string(c.sessions) + " T" +
                             std::to_string(c.tokens) +
                             (c.chunk ? " chunked by " + std::to_string(c.chunk) : "");
    if (!st.ok()) {
      checks.Expect(name, false, st.message());
      continue;
    }
    std::vector<float> state = state0, y(rows * C);
    Wkv7Args h = p;
    h.state = state.data();
    h.slots = slots.data();
    h.r = in.r.data();
    h.w = in.w.data();
    h.k = in.k.data();
    h.v = in.v.data();
    h.a = in.a.data();
    h.b = in.b.data();
    h.y = y.data();
    reference::Wkv7(h);
    // The chunked form reassociates the recurrence (products of transfer matrices): looser.
    const double tol = c.chunk ? 1e-4 : 1e-5;
    const Diff dy = Compare(dev.Download<float>(p.y, rows * C), y, tol, tol);
    const Diff ds = Compare(dev.Download<float>(p.state, state.size()), state, tol, tol);
    checks.Expect(name + " y", dy.within, dy.Describe());
    checks.Expect(name + " state", ds.within, ds.Describe());
  }
}

void TestTimeMixCore(Context& ctx, Checks& checks) {
  const int64_t C = 256, slots_total = 4;
  const std::vector<int32_t> slots = {3, 0, 2};
  for (int64_t T : {1, 4}) {
    for (bool first : {true, false}) {
      const int64_t S = 3, rows = S * T;
      const DType t = first ? DType::kF32 : DType::kBF16;
      Device dev(ctx);
      const auto decay = Random(rows * C, 501, 0.0f, 3.0f),
                 alpha = Random(rows * C, 502, 0.0f, 3.0f),
                 v_gate = Random(rows * C, 503, 0.0f, 2.0f), r = Random(rows * C, 504),
                 k = Random(rows * C, 505), v = Random(rows * C, 506), g = Random(rows * C, 507);
      const auto w0 = Random(C, 511, -1.0f, 2.0f), a0 = Random(C, 512), v0 = Random(C, 513),
                 k_k = Random(C, 514, 1.0f, 0.5f), k_a = Random(C, 515, 0.5f, 0.5f),
                 r_k = Random(C, 516, 0.0f, 0.5f), ln_w = Random(C, 517, 1.0f, 0.2f),
                 ln_b = Random(C, 518, 0.0f, 0.2f);
      const auto state0 = Random(slots_total * C * kWkvHeadSize, 519, 0.0f, 0.5f);
      std::vector<float> v_first = Random(rows * C, 520);
      TimeMixCoreArgs a;
      a.sessions = S;
      a.tokens = T;
      a.C = C;
      a.first_layer = first;
      a.decay = dev.UploadF(decay);
      a.alpha = dev.UploadF(alpha);
      a.v_gate = dev.UploadF(v_gate);
      a.r = dev.UploadF(r);
      a.k = dev.UploadF(k);
      a.v = dev.UploadF(v);
      a.g = dev.UploadF(g);
      a.v_first = dev.UploadF(v_first);
      a.w0 = dev.UploadF(w0);
      a.a0 = dev.UploadF(a0);
      a.v0 = dev.UploadF(v0);
      a.k_k = dev.UploadF(k_k);
      a.k_a = dev.UploadF(k_a);
      a.r_k = dev.UploadF(r_k);
      a.ln_w = dev.UploadF(ln_w);
      a.ln_b = dev.UploadF(ln_b);
      a.state = dev.UploadF(state0);
      a.slot_stride = C * kWkvHeadSize;
      a.slots = static_cast<const int32_t*>(dev.Upload(slots));
      a.out = dev.Upload(std::vector<uint8_t>(rows * C * base::DTypeSize(t)));
      a.out_type = t;
      Must(Rwkv7TimeMixCore(ctx, a), "Rwkv7TimeMixCore");
      std::vector<float> state = state0;
      std::vector<uint8_t> out(rows * C * base::DTypeSize(t));
      TimeMixCoreArgs h = a;
      h.decay = decay.data();
      h.alpha = alpha.data();
      h.v_gate = v_gate.data();
      h.r = r.data();
      h.k = k.data();
      h.v = v.data();
      h.g = g.data();
      h.v_first = v_first.data();
      h.w0 = w0.data();
      h.a0 = a0.data();
      h.v0 = v0.data();
      h.k_k = k_k.data();
      h.k_a = k_a.data();
      h.r_k = r_k.data();
      h.ln_w = ln_w.data();
      h.ln_b = ln_b.data();
      h.state = state.data();
      h.slots = slots.data();
      h.out = out.data();
      reference::Rwkv7TimeMixCore(h);
      const std::string name =
          "TimeMixCore/T" + std::to_string(T) + (first ? "/layer 0/" : "/layer 1/") + Name(t);
      const Diff d_out = Compare(Decode(dev.Download<uint8_t>(a.out, out.size()), t),
                                 Decode(out, t), 1e-5, Ulp(t) + 1e-5);
      const Diff d_state = Compare(dev.Download<float>(a.state, state.size()), state, 1e-5, 1e-5);
      const Diff d_first =
          Compare(dev.Download<float>(a.v_first, v_first.size()), v_first, 0.0, 0.0);
      checks.Expect(name + " output", d_out.within, d_out.Describe());
      checks.Expect(name + " state", d_state.within, d_state.Describe());
      checks.Expect(name + " v_first", d_first.within, d_first.Describe());
    }
  }
}

void TestGroupNorm(Context& ctx, Checks& checks) {
  const int64_t rows = 3, C = 256, N = 64;
  for (DType t : {DType::kF32, DType::kBF16}) {
    Device dev(ctx);
    const auto y = Random(rows * C, 81, 0.1f, 3.0f), r = Random(rows * C, 82),
               k = Random(rows * C, 83), v = Random(rows * C, 84), g = Random(rows * C, 85),
               r_k = Random(C, 86, 0.0f, 0.5f), ln_w = Random(C, 87, 1.0f, 0.2f),
               ln_b = Random(C, 88, 0.0f, 0.2f);
    GroupNormBonusGateArgs a;
    a.rows = rows;
    a.C = C;
    a.head_size = N;
    a.y = dev.UploadF(y);
    a.r = dev.UploadF(r);
    a.k = dev.UploadF(k);
    a.v = dev.UploadF(v);
    a.r_k = dev.UploadF(r_k);
    a.ln_w = dev.UploadF(ln_w);
    a.ln_b = dev.UploadF(ln_b);
    a.g = dev.UploadF(g);
    a.out = dev.Upload(std::vector<uint8_t>(rows * C * base::DTypeSize(t)));
    a.out_type = t;
    Must(GroupNormBonusGate(ctx, a), "GroupNormBonusGate");
    std::vector<uint8_t> want(rows * C * base::DTypeSize(t));
    GroupNormBonusGateArgs h = a;
    h.y = y.data();
    h.r = r.data();
    h.k = k.data();
    h.v = v.data();
    h.r_k = r_k.data();
    h.ln_w = ln_w.data();
    h.ln_b = ln_b.data();
    h.g = g.data();
    h.out = want.data();
    reference::GroupNormBonusGate(h);
    const Diff d = Compare(Decode(dev.Download<uint8_t>(a.out, want.size()), t), Decode(want, t),
                           1e-5, Ulp(t) + 1e-5);
    checks.Expect(std::string("GroupNormBonusGate/") + Name(t), d.within, d.Describe());
  }
}

void TestLayerNormLastRows(Context& ctx, Checks& checks) {
  const int64_t S = 3, T = 4, C = 320;
  Device dev(ctx);
  const auto x = Random(S * T * C, 91, 0.5f, 2.0f), w = Random(C, 92, 1.0f, 0.2f),
             b = Random(C, 93, 0.0f, 0.2f);
  const float* dx = dev.UploadF(x);
  void* out = dev.Upload(std::vector<float>(S * C));
  Must(LayerNormLastRows(ctx, dx, dev.UploadF(w), dev.UploadF(b), S, T, C, out, DType::kF32),
       "LayerNormLastRows");
  std::vector<float> want(S * C);
  reference::LayerNormLastRows(x.data(), w.data(), b.data(), S, T, C, want.data(), DType::kF32);
  const Diff d = Compare(dev.Download<float>(out, S * C), want, 1e-5, 1e-5);
  checks.Expect("LayerNormLastRows", d.within, d.Describe());
}

// ---- the whole forward step ----

std::vector<int32_t> Tokens(int64_t n, uint64_t seed, int64_t vocab) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(HashIndex(seed, i) % vocab);
  return t;
}

double LogitBound(const Mode& m) {
  if (m.dtype == DType::kF32) return 1e-4;
  return m.round_activations ? 1e-3 : 2e-4;
}

// The per-token forward a GPU run in `m` is checked against: rounding where the GPU rounds,
// else the fp32 run of the same weights.
reference::Rwkv7ReferenceModel ReferenceFor(const Mode& m, const Rwkv7WeightLayout& layout,
                                            const std::vector<uint8_t>& bytes) {
  if (m.round_activations) return reference::Rwkv7ReferenceModel(layout, bytes, true);
  const Rwkv7WeightLayout f32(layout.shape(), DType::kF32);
  return reference::Rwkv7ReferenceModel(f32,
                                        reference::Rwkv7ReferenceModel::WidenToF32(layout, bytes));
}

std::unique_ptr<Rwkv7Gpu> MakeModel(Context& ctx, const Rwkv7Shape& shape,
                                    const Rwkv7GpuOptions& options) {
  std::unique_ptr<Rwkv7Gpu> model;
  Must(Rwkv7Gpu::Create(&ctx, shape, options, &model), "Rwkv7Gpu::Create");
  return model;
}

// Prefill S sessions × T tokens in one step, then `decode` single-token steps; after each step
// the logits of every session must match the per-token CPU reference.
void TestForwardAgainstReference(Context& ctx, Checks& checks, const Rwkv7Shape& shape,
                                 const Mode& mode, int64_t chunked_min_tokens, int64_t chunk,
                                 int64_t T, const std::string& label) {
  Rwkv7GpuOptions options;
  options.dtype = mode.dtype;
  options.round_activations = mode.round_activations;
  options.seed = 1000;
  options.slots = 6;
  options.wkv_chunked_min_tokens = chunked_min_tokens;
  options.wkv_chunk = chunk;
  auto model = MakeModel(ctx, shape, options);
  std::vector<uint8_t> bytes;
  Must(model->DownloadWeights(&bytes), "DownloadWeights");
  const std::string name = "Forward/" + Name(mode) + "/" + label;
  checks.Expect(
      name + " device weights equal the host-made ones",
      bytes == reference::Rwkv7ReferenceModel::MakeRandomWeights(model->layout(), options.seed));
  const reference::Rwkv7ReferenceModel ref = ReferenceFor(mode, model->layout(), bytes);
  const int64_t S = 3, V = shape.vocab;
  const std::vector<int32_t> slots = {5, 1, 3};
  std::vector<reference::Rwkv7HostState> states(S, ref.NewState());
  std::vector<float> want(S * V), logits;
  auto check_step = [&](const std::vector<int32_t>& tokens, int64_t per, const std::string& step) {
    const Status st = model->Step(tokens.data(), slots.data(), S, per);
    if (!st.ok()) {
      checks.Expect(name + " " + step, false, st.message());
      return;
    }
    std::vector<float> one;
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t i = 0; i < per; ++i) ref.Token(tokens[s * per + i], &states[s], &one);
      std::copy(one.begin(), one.end(), want.begin() + s * V);
    }
    Must(model->CopyLogits(S, &logits), "CopyLogits");
    const Diff d = Compare(logits, want, LogitBound(mode), 0.0);
    checks.Expect(name + " " + step + " logits", d.within, d.Describe());
  };
  check_step(Tokens(S * T, 5, V), T, "prefill " + std::to_string(T));
  for (int step = 0; step < 3; ++step) {
    check_step(Tokens(S, 100 + step, V), 1, "decode " + std::to_string(step));
  }
  if (mode.exact()) {
    std::vector<float> att, wkv, ffn;
    Must(model->DownloadState(slots[1], &att, &wkv, &ffn), "DownloadState");
    const double b = mode.dtype == DType::kF32 ? 1e-4 : 2e-4;
    const Diff da = Compare(att, states[1].att_x_prev, b, b / 10);
    const Diff dw = Compare(wkv, states[1].wkv, b, b / 10);
    const Diff df = Compare(ffn, states[1].ffn_x_prev, b, b / 10);
    checks.Expect(name + " state after the steps", da.within && dw.within && df.within,
                  dw.Describe());
  }
}

// Sessions decoded together equal the same sessions decoded one at a time; graphs equal eager.
void TestBatchInvariance(Context& ctx, Checks& checks, const Rwkv7Shape& shape, const Mode& mode,
                         int64_t S) {
  Rwkv7GpuOptions options;
  options.dtype = mode.dtype;
  options.round_activations = mode.round_activations;
  options.seed = 2000;
  options.slots = 2 * S;
  auto batched = MakeModel(ctx, shape, options);
  options.use_graphs = false;
  auto eager = MakeModel(ctx, shape, options);
  const int64_t V = shape.vocab, steps = 4;
  std::vector<int32_t> together(S), alone_slots(S);
  for (int64_t s = 0; s < S; ++s) {
    together[s] = static_cast<int32_t>(s);
    alone_slots[s] = static_cast<int32_t>(S + s);
  }
  bool bitwise = true, graph_equal = true, ok = true;
  Diff worst;
  for (int64_t step = 0; step < steps; ++step) {
    const std::vector<int32_t> tokens = Tokens(S, 300 + step, V);
    std::vector<float> all, eager_all, one;
    Must(batched->Step(tokens.data(), together.data(), S, 1), "Step");
    Must(batched->CopyLogits(S, &all), "CopyLogits");
    Must(eager->Step(tokens.data(), together.data(), S, 1), "Step");
    Must(eager->CopyLogits(S, &eager_all), "CopyLogits");
    graph_equal = graph_equal && all == eager_all;
    std::vector<float> singles(S * V);
    for (int64_t s = 0; s < S; ++s) {
      Must(batched->Step(&tokens[s], &alone_slots[s], 1, 1), "Step");
      Must(batched->CopyLogits(1, &one), "CopyLogits");
      std::copy(one.begin(), one.end(), singles.begin() + s * V);
    }
    bitwise = bitwise && singles == all;
    const Diff d = Compare(all, singles, LogitBound(mode), 0.0);
    ok = ok && d.within;
    if (d.max_abs >= worst.max_abs) worst = d;
  }
  const std::string name = "Batch/" + Name(mode) + "/S" + std::to_string(S);
  checks.Expect(name + " CUDA-graph decode equals eager decode", graph_equal);
  if (S <= kGemvMaxRows) {
    checks.Expect(name + " batched decode equals per-session decode bit for bit", bitwise,
                  worst.Describe());
  } else {
    checks.Expect(name + " batched decode equals per-session decode within the bound", ok,
                  worst.Describe() + (bitwise ? ", bit-identical" : ""));
  }
}

// The same steps with overlapped launches (programmatic dependent launch) on a second context
// give the same logits, bit for bit, as with plain launches: the overlap changes when kernels
// start, never what they compute.
void TestOverlappedLaunches(Context& plain, Checks& checks, const Rwkv7Shape& shape) {
  std::unique_ptr<Context> overlapped;
  Must(Context::Create(0, &overlapped), "Context::Create");
  overlapped->set_overlapped_launches(true);
  if (!overlapped->overlapped_launches()) {
    std::printf("SKIP overlapped launches: need sm_90 or newer\n");
    return;
  }
  for (DType t : {DType::kBF16, DType::kF32}) {
    Rwkv7GpuOptions options;
    options.dtype = t;
    options.seed = 3000;
    options.slots = 12;
    options.wkv_chunked_min_tokens = 8;  // the chunked kernels too
    options.wkv_chunk = 4;
    auto a = MakeModel(plain, shape, options);
    auto b = MakeModel(*overlapped, shape, options);
    bool same = true;
    for (int64_t S : {3, 12}) {
      std::vector<int32_t> slots(S);
      for (int64_t s = 0; s < S; ++s) slots[s] = static_cast<int32_t>(s);
      Must(a->ResetSlots(slots), "ResetSlots");
      Must(b->ResetSlots(slots), "ResetSlots");
      for (int step = 0; step < 4; ++step) {
        const int64_t T = step == 0 ? 9 : 1;
        const std::vector<int32_t> tokens = Tokens(S * T, 400 + step, shape.vocab);
        std::vector<float> la, lb;
        Must(a->Step(tokens.data(), slots.data(), S, T), "Step");
        Must(b->Step(tokens.data(), slots.data(), S, T), "Step");
        Must(a->CopyLogits(S, &la), "CopyLogits");
        Must(b->CopyLogits(S, &lb), "CopyLogits");
        same = same && la == lb;
      }
    }
    checks.Expect(std::string("Overlapped launches/") + Name(t) +
                      " prefill (chunked) and decode equal plain launches bit for bit",
                  same);
  }
  Must(overlapped->Synchronize(), "synchronize");
}

// ---- the engines (rwkv7_engine.h) ----

// One step through a chain of stage engines (each one's outputs the next one's inputs); the
// last stage's logits into *logits, the first stage's output rows into *hidden/*v_first.
Status RunChain(const std::vector<Rwkv7Engine*>& stages, const std::vector<int32_t>& slots,
                const std::vector<int32_t>& tokens, int64_t T, LogitsMode mode,
                std::vector<float>* logits, std::vector<float>* first_hidden,
                std::vector<float>* first_v_first) {
  const int64_t S = static_cast<int64_t>(slots.size());
  const int64_t rows = S * T, C = stages.front()->layout().shape().embd;
  std::vector<float> hidden, v_first, hidden_out(rows * C), v_first_out(rows * C);
  for (size_t i = 0; i < stages.size(); ++i) {
    Rwkv7StepIo io;
    io.sessions = S;
    io.tokens = T;
    io.slots = slots.data();
    io.token_ids = tokens.data();
    io.hidden_in = hidden.data();
    io.v_first_in = v_first.data();
    io.logits_mode = mode;
    io.logits = logits->data();
    io.hidden_out = hidden_out.data();
    io.v_first_out = v_first_out.data();
    SKEIN_CUDA_RETURN_IF_ERROR(stages[i]->Step(io));
    hidden = hidden_out;
    v_first = v_first_out;
    if (i == 0) {
      *first_hidden = hidden;
      *first_v_first = v_first;
    }
  }
  return Status();
}

std::vector<float> ReadSlot(Rwkv7Engine& e, int32_t slot) {
  std::vector<float> state(e.StateFloats());
  Must(e.ReadSlot(slot, state.data()), "ReadSlot");
  return state;
}

// The GPU engine against the host engine on the same bytes, as two stages [0, 1) + [1, 3):
// prefill with kLast, kAll, decode steps replaying their CUDA graphs (kLast twice, kAll, kNone,
// kAll again), slot reads, writes and a step from a written state, and a refused step.
void TestEngines(Context& ctx, Checks& checks, const Mode& run) {
  const DType t = run.dtype;
  const Rwkv7Shape shape = Rwkv7Shape::Official(3, 256, 1000);
  const int64_t V = shape.vocab, slot_count = 4;
  const Rwkv7WeightLayout whole(shape, t), first(shape, t, 0, 1), second(shape, t, 1);
  const std::vector<uint8_t> bytes = reference::Rwkv7ReferenceModel::MakeRandomWeights(whole, 4000);
  std::unique_ptr<Rwkv7Engine> host[2], gpu[2];
  const Rwkv7WeightLayout* stages[2] = {&first, &second};
  Rwkv7GpuEngineOptions options;
  options.slots = slot_count;
  options.round_activations = run.round_activations;
  Rwkv7HostEngineOptions host_options;
  host_options.slots = slot_count;
  host_options.round_activations = run.round_activations;
  for (int i = 0; i < 2; ++i) {
    std::vector<uint8_t> cut(stages[i]->total_bytes());
    if (!CopyStageWeights(whole, bytes.data(), *stages[i], cut.data())) {
      checks.Expect("Engine/CopyStageWeights", false);
      return;
    }
    Must(CreateHostRwkv7Engine(*stages[i], cut, host_options, &host[i]), "CreateHostRwkv7Engine");
    Must(CreateGpuRwkv7Engine(&ctx, *stages[i], cut, options, &gpu[i]), "CreateGpuRwkv7Engine");
  }
  const std::vector<Rwkv7Engine*> host_chain = {host[0].get(), host[1].get()},
                                  gpu_chain = {gpu[0].get(), gpu[1].get()};
  const std::string name = "Engine/" + Name(run);
  const double bound = t == DType::kF32 ? 1e-4 : run.round_activations ? 1e-2 : 2e-4;
  int index = 0;
  auto step = [&](const std::vector<int32_t>& slots, int64_t T, LogitsMode mode,
                  const std::string& what) {
    const int64_t S = static_cast<int64_t>(slots.size());
    const std::vector<int32_t> tokens = Tokens(S * T, 4100 + index++, V);
    const int64_t rows = LogitRows(mode, S, T);
    std::vector<float> want(std::max<int64_t>(rows, 1) * V, 7.0f), got = want;
    std::vector<float> want_hidden, want_v_first, got_hidden, got_v_first;
    Must(RunChain(host_chain, slots, tokens, T, mode, &want, &want_hidden, &want_v_first),
         "host step");
    const Status st = RunChain(gpu_chain, slots, tokens, T, mode, &got, &got_hidden, &got_v_first);
    if (!st.ok()) {
      checks.Expect(name + " " + what, false, st.message());
      return;
    }
    if (mode == LogitsMode::kNone) {
      bool untouched = true;
      for (float v : got) untouched = untouched && v == 7.0f;
      checks.Expect(name + " " + what + " writes no logits", untouched);
    } else {
      const Diff d = Compare(got, want, bound, 0.0);
      checks.Expect(name + " " + what + " logits equal the host engine's", d.within, d.Describe());
    }
    if (run.exact()) {
      const Diff dh = Compare(got_hidden, want_hidden, bound, 0.0);
      const Diff dv = Compare(got_v_first, want_v_first, bound, 0.0);
      checks.Expect(name + " " + what + " first stage's hidden and v_first rows",
                    dh.within && dv.within, dh.Describe());
    }
  };
  step({3, 0, 1}, 6, LogitsMode::kLast, "prefill S3 T6 kLast");
  step({1, 3}, 4, LogitsMode::kAll, "S2 T4 kAll");
  step({0, 3, 1}, 1, LogitsMode::kLast, "decode S3 kLast (graph captured)");
  step({1, 0, 3}, 1, LogitsMode::kLast, "decode S3 kLast (graph replayed)");
  step({3, 0}, 1, LogitsMode::kAll, "decode S2 kAll");
  step({3, 0}, 1, LogitsMode::kNone, "decode S2 kNone");
  step({0, 3}, 1, LogitsMode::kAll, "decode S2 kAll again");

  if (run.exact()) {
    bool ok = true;
    Diff worst;
    for (int i = 0; i < 2; ++i) {
      for (int32_t slot : {0, 1, 3}) {
        const double b = t == DType::kF32 ? 1e-4 : 2e-4;
        const Diff d = Compare(ReadSlot(*gpu[i], slot), ReadSlot(*host[i], slot), b, b / 10);
        ok = ok && d.within;
        if (d.max_abs >= worst.max_abs) worst = d;
      }
    }
    checks.Expect(name + " ReadSlot equals the host engine's states", ok, worst.Describe());
  }
  // Round trip, and both engines continuing from the same written state.
  bool round_trip = true;
  for (int i = 0; i < 2; ++i) {
    std::vector<float> state(gpu[i]->StateFloats());
    for (size_t j = 0; j < state.size(); ++j) state[j] = HashUniform(4200 + i, j, 0.0f, 1.0f);
    Must(gpu[i]->WriteSlot(2, state.data()), "WriteSlot");
    round_trip = round_trip && ReadSlot(*gpu[i], 2) == state;
    const std::vector<float> from_host = ReadSlot(*host[i], 3);
    Must(gpu[i]->WriteSlot(2, from_host.data()), "WriteSlot");
    Must(host[i]->WriteSlot(2, from_host.data()), "WriteSlot");
  }
  checks.Expect(name + " WriteSlot then ReadSlot round-trips exactly", round_trip);
  step({2}, 3, LogitsMode::kAll, "S1 T3 kAll from a written state");
  step({2}, 1, LogitsMode::kLast, "decode S1 from a written state");

  // A refused step changes nothing.
  const std::vector<float> before = ReadSlot(*gpu[1], 0);
  std::vector<float> hidden(2 * shape.embd), logits(2 * V);
  const std::vector<int32_t> repeated = {0, 0};
  Rwkv7StepIo io;
  io.sessions = 2;
  io.tokens = 1;
  io.slots = repeated.data();
  io.hidden_in = hidden.data();
  io.v_first_in = hidden.data();
  io.logits = logits.data();
  const Status refused = gpu[1]->Step(io);
  checks.Expect(name + " a step with a repeated slot fails and changes nothing",
                !refused.ok() && ReadSlot(*gpu[1], 0) == before, refused.message());
}

int Main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
  }
  std::string why;
  if (!DeviceAvailable(&why)) {
    return testing::SkipProgram("cuda_kernels_test", "no usable GPU (" + why + ")");
  }
  std::unique_ptr<Context> ctx;
  Must(Context::Create(0, &ctx), "Context::Create");
  std::printf("device: %s\n", ctx->device_name().c_str());
  Checks checks;
  TestFillUniform(*ctx, checks);
  TestGemm(*ctx, checks, quick);
  TestGemmGroup(*ctx, checks);
  TestUnary(*ctx, checks);
  TestEmbed(*ctx, checks);
  TestShiftMix(*ctx, checks);
  TestPrepare(*ctx, checks);
  TestWkv(*ctx, checks, quick);
  TestGroupNorm(*ctx, checks);
  TestTimeMixCore(*ctx, checks);
  TestLayerNormLastRows(*ctx, checks);

  // Tiny model: two layers (layer 0 has no value residual), four heads, an odd vocabulary.
  const Rwkv7Shape tiny = Rwkv7Shape::Official(2, 256, 1000);
  const Mode fp32{DType::kF32, false}, bf16{DType::kBF16, false}, fp16{DType::kF16, false},
      bf16_rounded{DType::kBF16, true}, fp16_rounded{DType::kF16, true};
  for (const Mode& m : {fp32, bf16, fp16, bf16_rounded, fp16_rounded}) {
    if (quick && m.dtype == DType::kF16) continue;
    TestForwardAgainstReference(*ctx, checks, tiny, m, 128, 64, 6, "plain WKV");
  }
  TestForwardAgainstReference(*ctx, checks, tiny, fp32, 8, 4, 11, "chunked WKV");
  TestForwardAgainstReference(*ctx, checks, tiny, bf16, 8, 4, 11, "chunked WKV");
  TestBatchInvariance(*ctx, checks, tiny, bf16, 3);
  TestBatchInvariance(*ctx, checks, tiny, bf16_rounded, 3);
  if (!quick) TestBatchInvariance(*ctx, checks, tiny, bf16, 12);
  if (!quick) TestBatchInvariance(*ctx, checks, tiny, bf16_rounded, 12);
  TestOverlappedLaunches(*ctx, checks, tiny);
  TestEngines(*ctx, checks, fp32);
  TestEngines(*ctx, checks, bf16);
  if (!quick) TestEngines(*ctx, checks, fp16);
  if (!quick) TestEngines(*ctx, checks, bf16_rounded);
  Must(ctx->Synchronize(), "final synchronize");
  return checks.Finish();
}

}  // namespace
}  // namespace skein::cuda

int main(int argc, char** argv) { return skein::cuda::Main(argc, argv); }
