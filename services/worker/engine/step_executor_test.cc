#include "services/worker/engine/step_executor.h"

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "services/worker/model/testing/random_rwkv7_archive.h"

namespace skein::engine {
namespace {

model::RandomModelShape SmallShape() {
  model::RandomModelShape d;
  d.n_layer = 4;
  d.n_embd = 128;
  d.head_size = 64;
  d.vocab = 300;
  d.ffn = 256;
  d.lora = {16, 16, 8, 16};
  return d;
}

std::shared_ptr<const model::TensorArchive> Archive() {
  static std::shared_ptr<const model::TensorArchive> archive = [] {
    auto a = model::MakeRandomRwkv7Archive(SmallShape(), 11, model::DType::kF32);
    EXPECT_TRUE(a.ok()) << a.status();
    return std::shared_ptr<const model::TensorArchive>(*std::move(a));
  }();
  return archive;
}

// A spill kept in memory, counting what goes through it.
class MemorySpill : public SessionSpill {
 public:
  absl::Status Save(const std::string& id, std::shared_ptr<const std::string> blob,
                    int64_t /*position*/, const std::string& sampler) override {
    absl::MutexLock lock(&mu_);
    saved_[id] = {*blob, sampler};
    return absl::OkStatus();
  }
  absl::StatusOr<SpilledSession> Load(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    auto it = saved_.find(id);
    if (it == saved_.end()) return absl::NotFoundError(id);
    return it->second;
  }
  void Forget(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    saved_.erase(id);
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return saved_.size();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, SpilledSession> saved_ ABSL_GUARDED_BY(mu_);
};

// One stage: an engine over a layer range, its session table and executor.
struct Stage {
  Stage(int first, int last, size_t capacity = 64, SessionSpill* spill = nullptr) {
    StageEngineOptions o;
    o.first_layer = first;
    o.last_layer = last;
    o.threads = 1;
    auto e = StageEngine::FromArchive(Archive(), o);
    EXPECT_TRUE(e.ok()) << e.status();
    engine = *std::move(e);
    SessionTableOptions t;
    t.capacity = capacity;
    t.shape = engine->weights().state_shape();
    t.model_fingerprint = engine->weights().fingerprint();
    t.vocab = engine->config().vocab;
    t.spill = spill;
    table = std::make_unique<SessionTable>(t);
    executor = std::make_unique<StepExecutor>(engine.get(), table.get(), 512);
  }
  std::unique_ptr<StageEngine> engine;
  std::unique_ptr<SessionTable> table;
  std::unique_ptr<StepExecutor> executor;
};

v1::SequenceInput* AddSequence(v1::StepRequest& step, const std::string& id,
                               std::vector<uint32_t> tokens, uint64_t position, bool sample,
                               float temperature = 0.0f) {
  v1::SequenceInput* s = step.add_sequences();
  s->set_session_id(id);
  for (uint32_t t : tokens) s->add_tokens(t);
  s->set_expected_position(position);
  s->set_reset(position == 0);
  if (sample) {
    s->mutable_sampling()->set_temperature(temperature);
    s->mutable_sampling()->set_seed(42);
  }
  return s;
}

// Runs a request through a chain of stages, as the worker service does.
absl::StatusOr<v1::StepResult> RunChain(std::vector<Stage*> chain, const v1::StepRequest& req) {
  StepOutcome out;
  model::StageActivations carried;
  for (size_t i = 0; i < chain.size(); ++i) {
    absl::Status s = chain[i]->executor->Run(req, i == 0 ? nullptr : &carried, &out);
    if (!s.ok()) return s;
    if (i + 1 < chain.size()) {
      // What goes down the link has exactly one row per token of the step.
      EXPECT_EQ(out.activations.rows, StepTokenCount(req));
      EXPECT_EQ(out.activations.width, 128);
      EXPECT_EQ(out.activations.hidden.size(), static_cast<size_t>(StepTokenCount(req) * 128));
    }
    carried = std::move(out.activations);
  }
  return out.result;
}

// Greedy generation for several sessions at once, prompts prefilled in chunks mixed with
// decode steps, through `chain`; returns each session's tokens.
std::vector<std::vector<uint32_t>> Generate(std::vector<Stage*> chain, int steps,
                                            float temperature = 0.0f,
                                            const std::function<void()>& between = {}) {
  const std::vector<std::vector<uint32_t>> prompts = {{1, 2, 3, 4, 5, 6, 7}, {9}, {100, 200, 17}};
  std::vector<std::vector<uint32_t>> out(prompts.size());
  std::vector<uint64_t> position(prompts.size(), 0);
  // Step 0: session 0 feeds its first 4 prompt tokens (no sampling), the others all of theirs.
  v1::StepRequest first;
  AddSequence(first, "s0", {1, 2, 3, 4}, 0, false);
  AddSequence(first, "s1", prompts[1], 0, true, temperature);
  AddSequence(first, "s2", prompts[2], 0, true, temperature);
  absl::StatusOr<v1::StepResult> r = RunChain(chain, first);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return out;
  EXPECT_FALSE(r->outputs(0).has_sampled_token());
  position = {4, 1, 3};
  out[1].push_back(r->outputs(1).sampled_token());
  out[2].push_back(r->outputs(2).sampled_token());
  for (int step = 0; step < steps; ++step) {
    v1::StepRequest req;
    for (size_t s = 0; s < prompts.size(); ++s) {
      std::vector<uint32_t> feed;
      if (s == 0 && out[0].empty()) {
        feed.assign(prompts[0].begin() + 4, prompts[0].end());
      } else {
        feed = {out[s].back()};
      }
      v1::SequenceInput* in =
          AddSequence(req, "s" + std::to_string(s), feed, position[s], true, temperature);
      in->clear_reset();
      // Seeded at a session's first sampled token; afterwards the generator goes on.
      if (!(s == 0 && out[0].empty())) in->mutable_sampling()->clear_seed();
      position[s] += feed.size();
    }
    if (between) between();
    r = RunChain(chain, req);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return out;
    for (size_t s = 0; s < prompts.size(); ++s) {
      EXPECT_EQ(r->outputs(s).position(), position[s]);
      out[s].push_back(r->outputs(s).sampled_token());
    }
  }
  return out;
}

TEST(StepExecutorTest, TwoStagesGenerateWhatOneStageGenerates) {
  Stage whole(0, 4), a(0, 2), b(2, 4);
  for (float temperature : {0.0f, 1.0f}) {
    SCOPED_TRACE(temperature);
    std::vector<std::vector<uint32_t>> one = Generate({&whole}, 6, temperature);
    std::vector<std::vector<uint32_t>> two = Generate({&a, &b}, 6, temperature);
    EXPECT_EQ(one, two);
    EXPECT_EQ(one[0].size(), 6u);
    // Sessions are fresh each round (reset), so the rounds do not interfere.
  }
}

TEST(StepExecutorTest, EvictedSessionsComeBackFromTheSpillExactly) {
  Stage roomy(0, 4);
  MemorySpill spill;
  Stage tight(0, 4, /*capacity=*/3, &spill);
  std::vector<std::vector<uint32_t>> expected = Generate({&roomy}, 5, 1.0f);
  // Between the steps, three other sessions push the generating ones out of memory.
  int round = 0;
  auto crowd = [&] {
    v1::StepRequest other;
    for (int i = 0; i < 3; ++i) {
      AddSequence(other, "crowd" + std::to_string(round * 3 + i), {7, 8}, 0, true, 1.0f);
    }
    ++round;
    ASSERT_TRUE(RunChain({&tight}, other).ok());
  };
  std::vector<std::vector<uint32_t>> got = Generate({&tight}, 5, 1.0f, crowd);
  EXPECT_EQ(got, expected);
  EXPECT_GT(tight.table->stats().spilled, 0u);
  EXPECT_GT(tight.table->stats().restored, 0u);
  EXPECT_LE(tight.table->stats().resident, 3u);
  // A step that needs more sessions than the stage holds is refused up front.
  v1::StepRequest too_many;
  for (int i = 0; i < 4; ++i) AddSequence(too_many, "many" + std::to_string(i), {1}, 0, true);
  EXPECT_EQ(RunChain({&tight}, too_many).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(StepExecutorTest, ReleaseForgetsTheSessionOnEveryStage) {
  Stage a(0, 2), b(2, 4);
  v1::StepRequest req;
  AddSequence(req, "gone", {5, 6}, 0, true)->set_release(true);
  AddSequence(req, "kept", {5, 6}, 0, true);
  ASSERT_TRUE(RunChain({&a, &b}, req).ok());
  EXPECT_EQ(a.table->stats().resident, 1u);
  EXPECT_EQ(b.table->stats().resident, 1u);
  v1::StepRequest drop;
  AddSequence(drop, "kept", {}, 2, false)->set_release(true);
  drop.mutable_sequences(0)->clear_reset();
  absl::StatusOr<v1::StepResult> r = RunChain({&a, &b}, drop);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(a.table->stats().resident, 0u);
  EXPECT_EQ(b.table->stats().resident, 0u);
}

TEST(StepExecutorTest, BadStepsFailWithTheDocumentedCodeAndChangeNothing) {
  Stage s(0, 4);
  v1::StepRequest ok;
  AddSequence(ok, "x", {1, 2}, 0, true);
  ASSERT_TRUE(RunChain({&s}, ok).ok());
  auto code = [&](const v1::StepRequest& r) { return RunChain({&s}, r).status().code(); };

  v1::StepRequest empty;
  EXPECT_EQ(code(empty), absl::StatusCode::kInvalidArgument);
  v1::StepRequest wrong_position;
  AddSequence(wrong_position, "x", {3}, 5, true)->clear_reset();
  EXPECT_EQ(code(wrong_position), absl::StatusCode::kFailedPrecondition);
  v1::StepRequest unknown;
  AddSequence(unknown, "nobody", {3}, 1, true)->clear_reset();
  EXPECT_EQ(code(unknown), absl::StatusCode::kNotFound);
  v1::StepRequest big_token;
  AddSequence(big_token, "x", {300}, 2, true)->clear_reset();
  EXPECT_EQ(code(big_token), absl::StatusCode::kInvalidArgument);
  v1::StepRequest twice;
  AddSequence(twice, "y", {1}, 0, true);
  AddSequence(twice, "y", {1}, 0, true);
  EXPECT_EQ(code(twice), absl::StatusCode::kInvalidArgument);
  v1::StepRequest bad_sampling;
  AddSequence(bad_sampling, "x", {3}, 2, true)->mutable_sampling()->set_top_p(1.5f);
  bad_sampling.mutable_sequences(0)->clear_reset();
  EXPECT_EQ(code(bad_sampling), absl::StatusCode::kInvalidArgument);
  v1::StepRequest all_banned;
  v1::SequenceInput* in = AddSequence(all_banned, "x", {3}, 2, true);
  in->clear_reset();
  for (uint32_t t = 0; t < 300; ++t) in->mutable_sampling()->add_banned_tokens(t);
  EXPECT_EQ(code(all_banned), absl::StatusCode::kInvalidArgument);
  // A named initial state this stage does not hold, or one named without a reset.
  v1::StepRequest unknown_state;
  AddSequence(unknown_state, "fresh", {1}, 0, true)->set_initial_state("nope");
  EXPECT_EQ(code(unknown_state), absl::StatusCode::kNotFound);
  v1::StepRequest state_without_reset;
  v1::SequenceInput* named = AddSequence(state_without_reset, "x", {3}, 2, true);
  named->clear_reset();
  named->set_initial_state("nope");
  EXPECT_EQ(code(state_without_reset), absl::StatusCode::kInvalidArgument);
  v1::StepRequest too_long;
  AddSequence(too_long, "z", std::vector<uint32_t>(513, 1), 0, true);
  EXPECT_EQ(code(too_long), absl::StatusCode::kResourceExhausted);
  v1::StepRequest reset_at_5;
  AddSequence(reset_at_5, "w", {1}, 5, true)->set_reset(true);
  EXPECT_EQ(code(reset_at_5), absl::StatusCode::kInvalidArgument);
  // A failure in the middle of pinning leaves the first session unpinned and unchanged.
  v1::StepRequest half;
  AddSequence(half, "x", {3}, 2, true)->clear_reset();
  AddSequence(half, "nobody", {3}, 1, true)->clear_reset();
  EXPECT_EQ(code(half), absl::StatusCode::kNotFound);
  v1::StepRequest next;
  AddSequence(next, "x", {3}, 2, true)->clear_reset();
  absl::StatusOr<v1::StepResult> r = RunChain({&s}, next);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outputs(0).position(), 3u);
}

TEST(StepExecutorTest, MoreLogitsThanOneAnswerHoldsAreRefused) {
  Stage s(0, 4);
  // 300 floats a row: 8 rows of all logits are 9600 bytes.
  StepExecutor small(s.engine.get(), s.table.get(), 512, 9000);
  v1::StepRequest req;
  AddSequence(req, "l", {1, 2, 3, 4, 5, 6, 7, 8}, 0, false)
      ->set_logits(v1::SequenceInput::LOGITS_MODE_ALL);
  StepOutcome out;
  EXPECT_EQ(small.Run(req, nullptr, &out).code(), absl::StatusCode::kResourceExhausted);
  req.mutable_sequences(0)->mutable_tokens()->Truncate(7);  // 8400 bytes fit
  ASSERT_TRUE(small.Run(req, nullptr, &out).ok());
  EXPECT_EQ(out.result.outputs(0).logits().size(), 7u * 300 * sizeof(float));
}

TEST(StepExecutorTest, LogprobsDescribeTheModelsDistribution) {
  Stage s(0, 4);
  v1::StepRequest req;
  v1::SequenceInput* in = AddSequence(req, "p", {4, 8, 15}, 0, true);
  in->set_logprobs(true);
  in->set_top_logprobs(5);
  in->set_logits(v1::SequenceInput::LOGITS_MODE_LAST);
  absl::StatusOr<v1::StepResult> r = RunChain({&s}, req);
  ASSERT_TRUE(r.ok());
  const v1::SequenceOutput& o = r->outputs(0);
  ASSERT_EQ(o.logprobs().top_size(), 5);
  // Greedy: the chosen token is the most likely one.
  EXPECT_EQ(o.logprobs().token(), o.sampled_token());
  EXPECT_EQ(o.logprobs().top(0).token(), o.sampled_token());
  EXPECT_FLOAT_EQ(o.logprobs().top(0).logprob(), o.logprobs().logprob());
  double mass = 0;
  for (int i = 0; i < 5; ++i) {
    EXPECT_LE(o.logprobs().top(i).logprob(), 0.0f);
    if (i > 0) {
      EXPECT_LE(o.logprobs().top(i).logprob(), o.logprobs().top(i - 1).logprob());
    }
    mass += std::exp(o.logprobs().top(i).logprob());
  }
  EXPECT_LE(mass, 1.0 + 1e-5);
  // The returned logits agree: log-softmax of the chosen logit.
  ASSERT_EQ(o.logits().size(), 300 * sizeof(float));
  const float* z = reinterpret_cast<const float*>(o.logits().data());
  double sum = 0, max = z[0];
  for (int i = 0; i < 300; ++i) max = std::max<double>(max, z[i]);
  for (int i = 0; i < 300; ++i) sum += std::exp(z[i] - max);
  EXPECT_NEAR(o.logprobs().logprob(), z[o.sampled_token()] - max - std::log(sum), 1e-4);
}

}  // namespace
}  // namespace skein::engine
