// Checks of the host engine (CreateHostRwkv7Engine, rwkv7_engine.h) on the CPU alone (runs on
// any machine), with random weights on a small shape: fp32; bf16 and fp16 with exact
// activations (against the fp32 run of the same weights); bf16 with rounded activations:
//   - stage layouts: the right tensors present, the same random weights as the whole model's;
//   - the whole model, sessions of different histories batched in one S×T step, equals the
//     per-token reference forward (rwkv7_reference_forward.h): kLast, kAll for every token,
//     kNone writing nothing and still advancing the state; ReadSlot equals the reference state;
//   - a split into two stages [0, k) + [k, L), each from bytes cut out of the whole buffer
//     (CopyStageWeights), equals the whole model exactly: logits and states;
//   - WriteSlot/ReadSlot round-trip exactly, and a step continuing from a written state equals
//     the reference continuing from it;
//   - every argument error is returned and changes no slot.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/hash_uniform.h"
#include "kernels/cuda/reference/rwkv7_reference_forward.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda {
namespace {

using reference::Rwkv7HostState;
using reference::Rwkv7ReferenceModel;
using testing::Checks;
using testing::Compare;
using testing::Diff;

constexpr int64_t kN = kWkvHeadSize;

// How a run computes: the weights' type and whether product inputs are rounded to it.
struct Mode {
  DType dtype = DType::kF32;
  bool round_activations = false;
  std::string Name() const {
    const char* t = dtype == DType::kBF16 ? "bf16" : dtype == DType::kF16 ? "fp16" : "fp32";
    return std::string(t) + (dtype == DType::kF32 ? "" : round_activations ? "/rounded" : "/exact");
  }
};

// fp32 weights, and exact activations with any weights: the GPU test's whole-model bound
// (cuda_kernels_test.cc), 1e-4·σ (the reference is then the fp32 run of the same weights,
// which the random weights, made in the run dtype, widen to without loss). Rounded bf16: the
// host engine and the per-token forward round the same values at the same points and agree
// bit for bit, until their summation orders (float against double LayerNorms) put a value on
// either side of a bf16 rounding boundary. Each such flip moves a product input by 2⁻⁸ and
// the logits by a few 1e-3·σ at this width (up to 5e-3·σ seen at C = 128), more than the GPU
// test's 1e-3·σ for its wider, shorter runs: so 1e-2·σ here. The fp32 and exact checks and
// the exact stage-split checks are the orchestration's real test.
double LogitBound(const Mode& m) {
  return m.dtype == DType::kF32 || !m.round_activations ? 1e-4 : 1e-2;
}

// The per-token forward `m` is checked against: rounding where the engine rounds, else the
// fp32 run of the same weights.
Rwkv7ReferenceModel Reference(const Mode& m, const Rwkv7WeightLayout& layout,
                              const std::vector<uint8_t>& bytes) {
  if (m.round_activations) return Rwkv7ReferenceModel(layout, bytes, true);
  const Rwkv7WeightLayout f32(layout.shape(), DType::kF32);
  return Rwkv7ReferenceModel(f32, Rwkv7ReferenceModel::WidenToF32(layout, bytes));
}

Rwkv7Shape SmallShape() { return Rwkv7Shape::Official(3, 128, 97); }

std::vector<int32_t> Tokens(int64_t n, uint64_t seed, int64_t vocab) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(HashIndex(seed, i) % vocab);
  return t;
}

std::vector<uint8_t> Cut(const Rwkv7WeightLayout& whole, const std::vector<uint8_t>& bytes,
                         const Rwkv7WeightLayout& stage) {
  std::vector<uint8_t> out(stage.total_bytes());
  if (!CopyStageWeights(whole, bytes.data(), stage, out.data())) {
    std::printf("FAIL CopyStageWeights\n");
    std::exit(1);
  }
  return out;
}

std::unique_ptr<Rwkv7Engine> MakeEngine(const Rwkv7WeightLayout& layout, std::vector<uint8_t> bytes,
                                        int64_t slots, bool round_activations = false) {
  std::unique_ptr<Rwkv7Engine> engine;
  Rwkv7HostEngineOptions options;
  options.slots = slots;
  options.round_activations = round_activations;
  const Status st = CreateHostRwkv7Engine(layout, std::move(bytes), options, &engine);
  if (!st.ok()) {
    std::printf("FAIL CreateHostRwkv7Engine: %s\n", st.message().c_str());
    std::exit(1);
  }
  return engine;
}

// A reference state in the engine's slot layout (rwkv7_engine.h), for layers [first, last).
std::vector<float> EngineState(const Rwkv7HostState& s, int64_t C, int64_t first, int64_t last) {
  std::vector<float> out;
  for (int64_t l = first; l < last; ++l) {
    out.insert(out.end(), s.att_x_prev.begin() + l * C, s.att_x_prev.begin() + (l + 1) * C);
    out.insert(out.end(), s.wkv.begin() + l * C * kN, s.wkv.begin() + (l + 1) * C * kN);
    out.insert(out.end(), s.ffn_x_prev.begin() + l * C, s.ffn_x_prev.begin() + (l + 1) * C);
  }
  return out;
}

std::vector<float> Read(Rwkv7Engine& e, int32_t slot) {
  std::vector<float> state(e.StateFloats());
  const Status st = e.ReadSlot(slot, state.data());
  if (!st.ok()) std::printf("FAIL ReadSlot: %s\n", st.message().c_str());
  return state;
}

std::vector<std::vector<float>> ReadAll(Rwkv7Engine& e) {
  std::vector<std::vector<float>> all;
  for (int32_t s = 0; s < e.slots(); ++s) all.push_back(Read(e, s));
  return all;
}

// A step through the whole model or a chain of stages (each stage's outputs the next one's
// inputs), writing the last stage's logits.
Status RunChain(const std::vector<Rwkv7Engine*>& stages, const std::vector<int32_t>& slots,
                const std::vector<int32_t>& tokens, int64_t T, LogitsMode mode,
                std::vector<float>* logits) {
  const int64_t S = static_cast<int64_t>(slots.size());
  const Rwkv7Shape& shape = stages.front()->layout().shape();
  const int64_t rows = S * T, C = shape.embd;
  std::vector<float> hidden, v_first, hidden_out(rows * C), v_first_out(rows * C);
  for (Rwkv7Engine* e : stages) {
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
    SKEIN_CUDA_RETURN_IF_ERROR(e->Step(io));
    hidden = hidden_out;
    v_first = v_first_out;
  }
  return Status();
}

void TestLayouts(Checks& checks) {
  const Rwkv7Shape shape = SmallShape();
  const Rwkv7WeightLayout whole(shape, DType::kBF16);
  const Rwkv7WeightLayout a(shape, DType::kBF16, 0, 1), b(shape, DType::kBF16, 1, 2),
      c(shape, DType::kBF16, 2);
  checks.Expect("Layout/whole model by default",
                whole.first_layer() == 0 && whole.last_layer() == 3 && whole.stage_layers() == 3 &&
                    whole.whole_model());
  checks.Expect("Layout/stage flags", a.has_embedding() && !a.has_head() && !b.has_embedding() &&
                                          !b.has_head() && !c.has_embedding() && c.has_head() &&
                                          c.last_layer() == 3 && c.stage_layers() == 1);
  bool present = true, aligned = true;
  for (const Rwkv7WeightLayout* l : {&a, &b, &c}) {
    present = present && l->get(kEmb).present == l->has_embedding() &&
              l->get(kLn0W).present == l->has_embedding() &&
              l->get(kHead).present == l->has_head() && l->get(kLnOutB).present == l->has_head();
    for (size_t i = 0; i < l->tensors().size(); ++i) {
      const TensorSpec& t = l->tensors()[i];
      const TensorSpec& w = whole.tensors()[i];
      const int64_t layer = (static_cast<int64_t>(i) - kGlobalTensors) / kLayerTensors;
      if (static_cast<int64_t>(i) >= kGlobalTensors) {
        const bool in = layer >= l->first_layer() && layer < l->last_layer();
        present = present && t.present == in;
      }
      if (t.present) {
        present = present && t.bytes == w.bytes && t.name == w.name;
        aligned = aligned && t.offset % 256 == 0 && t.offset + t.bytes <= l->total_bytes();
      } else {
        present = present && t.bytes == 0 && t.count() == 0 && t.name == w.name;
      }
    }
  }
  checks.Expect("Layout/stages hold their tensors only, in the whole model's sizes", present);
  checks.Expect("Layout/present tensors 256-byte aligned within the stage's buffer", aligned);
  checks.Expect("Layout/stage buffers add up to the whole",
                a.total_bytes() + b.total_bytes() + c.total_bytes() == whole.total_bytes());
  checks.Expect("Layout/get(layer) takes the whole model's layer numbering",
                b.get(1, kWr).present && b.get(1, kWr).name == "blocks.1.att.receptance.weight");
  const auto bytes = Rwkv7ReferenceModel::MakeRandomWeights(whole, 5);
  checks.Expect("Layout/a stage's random weights are the whole model's",
                Rwkv7ReferenceModel::MakeRandomWeights(b, 5) == Cut(whole, bytes, b) &&
                    Rwkv7ReferenceModel::MakeRandomWeights(c, 5) == Cut(whole, bytes, c));
  std::vector<uint8_t> sink(a.total_bytes());
  checks.Expect("Layout/CopyStageWeights refuses a source without the stage's tensors",
                !CopyStageWeights(b, Cut(whole, bytes, b).data(), a, sink.data()));
}

// Whole model against the per-token forward, then the same steps through two stages.
void TestWholeAndStages(Checks& checks, const Mode& mode) {
  const Rwkv7Shape shape = SmallShape();
  const DType dt = mode.dtype;
  const bool round = mode.round_activations;
  const int64_t L = shape.layers, C = shape.embd, V = shape.vocab, slot_count = 6;
  const Rwkv7WeightLayout layout(shape, dt);
  const std::vector<uint8_t> bytes = Rwkv7ReferenceModel::MakeRandomWeights(layout, 17);
  const Rwkv7ReferenceModel ref = Reference(mode, layout, bytes);
  auto whole = MakeEngine(layout, bytes, slot_count, round);
  // Two splits, each a chain of two engines on bytes cut from the whole buffer.
  std::vector<std::unique_ptr<Rwkv7Engine>> split_engines;
  std::vector<std::vector<Rwkv7Engine*>> splits;
  for (int64_t k : {1, 2}) {
    const Rwkv7WeightLayout first(shape, dt, 0, k), second(shape, dt, k);
    split_engines.push_back(MakeEngine(first, Cut(layout, bytes, first), slot_count, round));
    split_engines.push_back(MakeEngine(second, Cut(layout, bytes, second), slot_count, round));
    splits.push_back({split_engines[split_engines.size() - 2].get(), split_engines.back().get()});
  }
  std::vector<Rwkv7HostState> states(slot_count, ref.NewState());
  const std::string name = "Engine/" + mode.Name();
  const double bound = LogitBound(mode);
  int step_index = 0;
  auto step = [&](const std::vector<int32_t>& slots, int64_t T, LogitsMode mode,
                  const std::string& what) {
    const int64_t S = static_cast<int64_t>(slots.size());
    const std::vector<int32_t> tokens = Tokens(S * T, 50 + step_index++, V);
    const int64_t rows = LogitRows(mode, S, T);
    // A sentinel that kNone must leave in place.
    std::vector<float> logits(std::max<int64_t>(rows, S) * V, 12345.0f);
    const Status st = RunChain({whole.get()}, slots, tokens, T, mode, &logits);
    if (!st.ok()) {
      checks.Expect(name + " " + what, false, st.message());
      return;
    }
    std::vector<float> want, one;
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t t = 0; t < T; ++t) {
        ref.Token(tokens[s * T + t], &states[slots[s]], &one);
        if (mode == LogitsMode::kAll || (mode == LogitsMode::kLast && t == T - 1)) {
          want.insert(want.end(), one.begin(), one.end());
        }
      }
    }
    if (mode == LogitsMode::kNone) {
      bool untouched = true;
      for (float v : logits) untouched = untouched && v == 12345.0f;
      checks.Expect(name + " " + what + " writes no logits", untouched);
    } else {
      logits.resize(rows * V);
      const Diff d = Compare(logits, want, bound, 0.0);
      checks.Expect(name + " " + what + " logits equal the per-token forward", d.within,
                    d.Describe());
    }
    for (size_t i = 0; i < splits.size(); ++i) {
      std::vector<float> staged(logits.size(), 12345.0f);
      const Status sst = RunChain(splits[i], slots, tokens, T, mode, &staged);
      if (mode != LogitsMode::kNone) staged.resize(rows * V);
      checks.Expect(name + " " + what + " split at " + std::to_string(i + 1) +
                        " equals the whole model exactly",
                    sst.ok() && staged == logits, sst.message());
    }
  };
  // Sessions of different histories share steps: slot 4 and 1 start, slot 0 joins later.
  step({4, 1}, 5, LogitsMode::kLast, "prefill S2 T5 kLast");
  step({1, 0, 4}, 3, LogitsMode::kAll, "S3 T3 kAll");
  step({0, 4}, 2, LogitsMode::kNone, "S2 T2 kNone");
  step({4, 0, 1}, 1, LogitsMode::kLast, "decode S3 kLast");
  step({1}, 1, LogitsMode::kAll, "decode S1 kAll");

  bool states_match = true, splits_match = true;
  Diff worst;
  for (int32_t slot : {0, 1, 4, 5}) {
    const std::vector<float> got = Read(*whole, slot);
    const Diff d = Compare(got, EngineState(states[slot], C, 0, L), bound, bound);
    states_match = states_match && d.within;
    if (d.max_abs >= worst.max_abs) worst = d;
    for (const auto& chain : splits) {
      std::vector<float> joined = Read(*chain[0], slot), tail = Read(*chain[1], slot);
      joined.insert(joined.end(), tail.begin(), tail.end());
      splits_match = splits_match && joined == got;
    }
  }
  checks.Expect(name + " ReadSlot equals the per-token forward's state", states_match,
                worst.Describe());
  checks.Expect(name + " stage states joined equal the whole model's exactly", splits_match);
}

void TestSlots(Checks& checks, const Mode& mode) {
  const Rwkv7Shape shape = SmallShape();
  const DType dt = mode.dtype;
  const int64_t C = shape.embd, V = shape.vocab;
  const Rwkv7WeightLayout layout(shape, dt);
  const std::vector<uint8_t> bytes = Rwkv7ReferenceModel::MakeRandomWeights(layout, 23);
  const Rwkv7ReferenceModel ref = Reference(mode, layout, bytes);
  const std::string name = "Slots/" + mode.Name();
  for (int64_t first : {0, 1}) {
    const Rwkv7WeightLayout stage(shape, dt, first, first + 2);
    auto engine = MakeEngine(stage, Cut(layout, bytes, stage), 3, mode.round_activations);
    std::vector<float> state(engine->StateFloats());
    for (size_t i = 0; i < state.size(); ++i) state[i] = HashUniform(31, i, 0.0f, 1.0f);
    const Status st = engine->WriteSlot(2, state.data());
    const std::vector<float> back = Read(*engine, 2);
    checks.Expect(name + " layers [" + std::to_string(first) + ", " + std::to_string(first + 2) +
                      ") WriteSlot then ReadSlot round-trips exactly",
                  st.ok() && back == state && Read(*engine, 1) == std::vector<float>(state.size()));
  }
  // A state from the reference, written into a fresh engine's slot, continues as the reference.
  Rwkv7HostState state = ref.NewState();
  std::vector<float> one;
  for (int32_t t : Tokens(7, 61, V)) ref.Token(t, &state, &one);
  auto engine = MakeEngine(layout, bytes, 2, mode.round_activations);
  const Status written = engine->WriteSlot(1, EngineState(state, C, 0, shape.layers).data());
  const std::vector<int32_t> tokens = Tokens(4, 62, V), slots = {1};
  std::vector<float> logits(V);
  const Status st = RunChain({engine.get()}, slots, tokens, 4, LogitsMode::kLast, &logits);
  for (int32_t t : tokens) ref.Token(t, &state, &one);
  const Diff d = Compare(logits, one, LogitBound(mode), 0.0);
  checks.Expect(name + " a step from a written state continues as the reference",
                written.ok() && st.ok() && d.within, d.Describe());
}

void TestErrors(Checks& checks) {
  const Rwkv7Shape shape = SmallShape();
  const int64_t C = shape.embd, V = shape.vocab, T = 2;
  const Rwkv7WeightLayout layout(shape, DType::kF32);
  const auto bytes = Rwkv7ReferenceModel::MakeRandomWeights(layout, 29);
  std::unique_ptr<Rwkv7Engine> engine;
  checks.Expect("Errors/Create: wrong buffer size",
                !CreateHostRwkv7Engine(layout, std::vector<uint8_t>(10), 2, &engine).ok());
  checks.Expect("Errors/Create: no slots", !CreateHostRwkv7Engine(layout, bytes, 0, &engine).ok());
  Rwkv7Shape odd = shape;
  odd.head_size = 32;
  const Rwkv7WeightLayout odd_layout(odd, DType::kF32);
  checks.Expect(
      "Errors/Create: head size 32",
      !CreateHostRwkv7Engine(odd_layout, std::vector<uint8_t>(odd_layout.total_bytes()), 2, &engine)
           .ok());
  const Rwkv7WeightLayout int8_layout(shape, DType::kI8);
  checks.Expect("Errors/Create: int8",
                !CreateHostRwkv7Engine(int8_layout, std::vector<uint8_t>(int8_layout.total_bytes()),
                                       2, &engine)
                     .ok());

  // Three engines: a whole model, a first stage and a last stage, each with history in its
  // slots, so that a step that wrongly ran would show.
  const Rwkv7WeightLayout head_stage(shape, DType::kF32, 1), first_stage(shape, DType::kF32, 0, 1);
  auto whole = MakeEngine(layout, bytes, 3);
  auto first = MakeEngine(first_stage, Cut(layout, bytes, first_stage), 3);
  auto last = MakeEngine(head_stage, Cut(layout, bytes, head_stage), 3);
  const std::vector<int32_t> all_slots = {0, 1, 2}, tokens = Tokens(3 * T, 71, V);
  std::vector<float> logits(3 * T * V);
  if (!RunChain({whole.get()}, all_slots, tokens, T, LogitsMode::kLast, &logits).ok() ||
      !RunChain({first.get(), last.get()}, all_slots, tokens, T, LogitsMode::kLast, &logits).ok()) {
    checks.Expect("Errors/history", false);
    return;
  }
  std::vector<float> hidden(3 * T * C, 0.5f), v_first(3 * T * C, 0.25f), out(3 * T * C);
  std::vector<int32_t> ids = tokens;
  std::vector<int32_t> slots = {2, 0};
  auto base = [&](Rwkv7Engine* e) {
    Rwkv7StepIo io;
    io.sessions = 2;
    io.tokens = T;
    io.slots = slots.data();
    if (e->layout().has_embedding()) io.token_ids = ids.data();
    if (!e->layout().has_embedding()) {
      io.hidden_in = hidden.data();
      io.v_first_in = v_first.data();
    }
    if (e->layout().has_head()) io.logits = logits.data();
    if (!e->layout().has_head()) {
      io.hidden_out = out.data();
      io.v_first_out = out.data();
    }
    return io;
  };
  struct Case {
    std::string name;
    Rwkv7Engine* engine;
    void (*edit)(Rwkv7StepIo&, std::vector<int32_t>&, std::vector<int32_t>&);
  };
  const std::vector<Case> cases = {
      {"no sessions", whole.get(), [](Rwkv7StepIo& io, auto&, auto&) { io.sessions = 0; }},
      {"no tokens", whole.get(), [](Rwkv7StepIo& io, auto&, auto&) { io.tokens = 0; }},
      {"more sessions than slots", whole.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.sessions = 4; }},
      {"no slots", whole.get(), [](Rwkv7StepIo& io, auto&, auto&) { io.slots = nullptr; }},
      {"slot out of range", whole.get(), [](Rwkv7StepIo&, auto& s, auto&) { s[1] = 3; }},
      {"negative slot", whole.get(), [](Rwkv7StepIo&, auto& s, auto&) { s[0] = -1; }},
      {"repeated slot", whole.get(), [](Rwkv7StepIo&, auto& s, auto&) { s[1] = s[0]; }},
      {"token id = V", whole.get(),
       [](Rwkv7StepIo&, auto&, auto& t) { t[3] = static_cast<int32_t>(SmallShape().vocab); }},
      {"negative token id", whole.get(), [](Rwkv7StepIo&, auto&, auto& t) { t[0] = -1; }},
      {"no token ids", whole.get(), [](Rwkv7StepIo& io, auto&, auto&) { io.token_ids = nullptr; }},
      {"kLast without logits", whole.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.logits = nullptr; }},
      {"kAll without logits", whole.get(),
       [](Rwkv7StepIo& io, auto&, auto&) {
         io.logits = nullptr;
         io.logits_mode = LogitsMode::kAll;
       }},
      {"unknown logits mode", whole.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.logits_mode = static_cast<LogitsMode>(7); }},
      {"first stage without token ids", first.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.token_ids = nullptr; }},
      {"first stage without hidden_out", first.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.hidden_out = nullptr; }},
      {"first stage without v_first_out", first.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.v_first_out = nullptr; }},
      {"last stage without hidden_in", last.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.hidden_in = nullptr; }},
      {"last stage without v_first_in", last.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.v_first_in = nullptr; }},
      {"last stage without logits", last.get(),
       [](Rwkv7StepIo& io, auto&, auto&) { io.logits = nullptr; }},
  };
  for (const Case& c : cases) {
    slots = {2, 0};
    ids = tokens;
    Rwkv7StepIo io = base(c.engine);
    c.edit(io, slots, ids);
    const auto before = ReadAll(*c.engine);
    std::fill(logits.begin(), logits.end(), 7.0f);
    std::fill(out.begin(), out.end(), 7.0f);
    const Status st = c.engine->Step(io);
    bool untouched = ReadAll(*c.engine) == before;
    for (float v : logits) untouched = untouched && v == 7.0f;
    for (float v : out) untouched = untouched && v == 7.0f;
    checks.Expect("Errors/Step: " + c.name + " fails and changes nothing", !st.ok() && untouched,
                  st.message());
  }
  // The same arguments unedited run (the cases fail for their edit alone).
  slots = {2, 0};
  ids = tokens;
  bool ok = true;
  for (Rwkv7Engine* e : {whole.get(), first.get(), last.get()}) ok = ok && e->Step(base(e)).ok();
  checks.Expect("Errors/the unedited steps run", ok);
  std::vector<float> state(whole->StateFloats());
  checks.Expect(
      "Errors/WriteSlot and ReadSlot out of range fail",
      !whole->WriteSlot(3, state.data()).ok() && !whole->WriteSlot(-1, state.data()).ok() &&
          !whole->ReadSlot(3, state.data()).ok() && !whole->ReadSlot(-1, state.data()).ok());
}

int Main() {
  Checks checks;
  TestLayouts(checks);
  for (const Mode& mode : {Mode{DType::kF32, false}, Mode{DType::kBF16, false},
                           Mode{DType::kF16, false}, Mode{DType::kBF16, true}}) {
    TestWholeAndStages(checks, mode);
    TestSlots(checks, mode);
  }
  TestErrors(checks);
  return checks.Finish();
}

}  // namespace
}  // namespace skein::cuda

int main() { return skein::cuda::Main(); }
