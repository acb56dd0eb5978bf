#include "kernels/cuda/rwkv7_golden_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace skein::cuda {
namespace {

std::string Sigmas(double worst) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "worst %.3g sigma", worst);
  return buf;
}

// Worst deviation, in σ of each golden row, of `got` rows [rows][V] against golden rows
// starting at `first`.
double Worst(const std::vector<float>& got, const Rwkv7GoldenRun& golden, size_t first,
             size_t rows) {
  const size_t V = static_cast<size_t>(golden.vocab);
  double worst = 0;
  for (size_t r = 0; r < rows; ++r) {
    const std::vector<float> g(got.begin() + r * V, got.begin() + (r + 1) * V);
    const std::vector<float> w(golden.logits.begin() + (first + r) * V,
                               golden.logits.begin() + (first + r + 1) * V);
    const testing::Diff d = testing::Compare(g, w, 0, 0);
    const double s = d.sigma > 0 ? d.max_abs / d.sigma : d.max_abs;
    worst = std::max(worst, std::isnan(s) ? INFINITY : s);
  }
  return worst;
}

}  // namespace

double CheckGoldenRun(const std::string& name, Rwkv7Engine& engine, const Rwkv7GoldenRun& golden,
                      double bound, testing::Checks& checks) {
  const size_t n = golden.tokens.size(), V = static_cast<size_t>(golden.vocab);
  const std::vector<float> zero(static_cast<size_t>(engine.StateFloats()), 0.0f);
  double overall = 0;
  auto expect = [&](const std::string& what, const Status& s, double worst) {
    const bool ok = s.ok() && worst <= bound;
    checks.Expect(name + " " + what, ok, s.ok() ? Sigmas(worst) : s.message());
    overall = std::max(overall, s.ok() ? worst : INFINITY);
  };
  if (engine.slots() < 3 || !engine.layout().whole_model() ||
      engine.layout().shape().vocab != golden.vocab) {
    checks.Expect(name + " setup", false,
                  "needs a whole model of the golden's vocabulary, 3 slots");
    return INFINITY;
  }

  // Feeds token t of the golden run to the session in `slot`; its logits to `logits` ([V]).
  auto step_one = [&](const int32_t& slot, size_t t, float* logits) {
    Rwkv7StepIo io;
    io.sessions = 1;
    io.tokens = 1;
    io.slots = &slot;
    io.token_ids = &golden.tokens[t];
    io.logits = logits;
    return engine.Step(io);
  };

  // One token per step.
  {
    Status s = engine.WriteSlot(0, zero.data());
    std::vector<float> all(n * V);
    for (size_t t = 0; t < n && s.ok(); ++t) s = step_one(0, t, all.data() + t * V);
    expect("token by token", s, s.ok() ? Worst(all, golden, 0, n) : 0);
  }
  // The whole sequence in one step, every token's logits.
  {
    Status s = engine.WriteSlot(1, zero.data());
    std::vector<float> all(n * V);
    const int32_t slot = 1;
    Rwkv7StepIo io;
    io.sessions = 1;
    io.tokens = static_cast<int64_t>(n);
    io.slots = &slot;
    io.token_ids = golden.tokens.data();
    io.logits_mode = LogitsMode::kAll;
    io.logits = all.data();
    if (s.ok()) s = engine.Step(io);
    expect("whole sequence", s, s.ok() ? Worst(all, golden, 0, n) : 0);
  }
  // Two sessions per step; the second starts from the first's state after `split` tokens.
  {
    const size_t split = n / 2;
    Status s = engine.WriteSlot(0, zero.data());
    std::vector<float> logits(2 * V), first_half(V);
    for (size_t t = 0; t < split && s.ok(); ++t) s = step_one(0, t, first_half.data());
    std::vector<float> state(zero.size());
    if (s.ok()) s = engine.ReadSlot(0, state.data());
    if (s.ok()) s = engine.WriteSlot(2, state.data());
    const int32_t slots[2] = {0, 2};
    double worst = 0;
    for (size_t t = split; t < n && s.ok(); ++t) {
      const int32_t ids[2] = {golden.tokens[t], golden.tokens[t]};
      Rwkv7StepIo io;
      io.sessions = 2;
      io.tokens = 1;
      io.slots = slots;
      io.token_ids = ids;
      io.logits = logits.data();
      s = engine.Step(io);
      if (!s.ok()) break;
      std::vector<float> a(logits.begin(), logits.begin() + V);
      std::vector<float> b(logits.begin() + V, logits.end());
      worst = std::max({worst, Worst(a, golden, t, 1), Worst(b, golden, t, 1)});
    }
    expect("two sessions from a restored state", s, worst);
  }
  return overall;
}

}  // namespace skein::cuda
