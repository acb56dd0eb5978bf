// Initial states (state-tuning files) end to end: `skein cluster up --initial-state` loads one
// into every worker of a 2-stage pipeline; a stateless request or a session that names it
// starts from it and equals the single-process engine started from the same file; prefix-cache
// entries grown from it never serve a request from the zero state (or the reverse); unknown
// names and misuse get the documented errors; a worker refuses a state of another model.
#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/worker/model/checkpoint/checkpoint_writer.h"
#include "skein/v1/router.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/serving_cluster.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using ::skein::testing::Cluster;
using ::skein::testing::CmdResult;
using ::skein::testing::EngineGreedy;
using ::skein::testing::Generate;
using ::skein::testing::Generated;
using ::skein::testing::MakeTempDir;
using ::skein::testing::RunfilePath;
using ::skein::testing::Skein;
using ::skein::testing::TokenRequest;
using ::testing::HasSubstr;

constexpr char kSmall[] = "golden/rwkv7/small-l4-c256-v1024.pth";  // L4, 4 heads of 64
constexpr char kVocab[] = "data/rwkv_vocab_v20230424.txt";

// A state file of `layers` × [heads, 64, 64] with smooth, transpose-sensitive values.
std::string WriteState(const std::string& dir, const std::string& name, int layers, int heads) {
  const std::string path = dir + "/" + name;
  std::vector<model::TensorSpec> specs;
  for (int l = 0; l < layers; ++l) {
    specs.push_back(
        {"blocks." + std::to_string(l) + ".att.time_state", model::DType::kF32, {heads, 64, 64}});
  }
  auto writer = model::CreateCheckpointWriter(path, specs, {});
  EXPECT_TRUE(writer.ok()) << writer.status();
  for (int l = 0; l < layers; ++l) {
    std::vector<float> v(static_cast<size_t>(heads) * 64 * 64);
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = 0.5f * std::sin(0.37f * static_cast<float>(i % 4096) + 1.3f * static_cast<float>(l)) +
             0.2f * std::cos(0.011f * static_cast<float>(i));
    }
    EXPECT_TRUE(
        (*writer)
            ->Append(std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * 4))
            .ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  return path;
}

class InitialStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    model_ = ::skein::testing::FindTestData(kSmall, &why);
    vocab_ = ::skein::testing::FindTestData(kVocab, &why);
    if (model_.empty() || vocab_.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
    dir_ = MakeTempDir("states");
    tuned_ = WriteState(dir_, "tuned.safetensors", 4, 4);
  }
  std::string model_, vocab_, dir_, tuned_;
};

TEST_F(InitialStateTest, RequestsAndSessionsStartFromTheNamedState) {
  Cluster c(model_, vocab_, 2, 1, {"--initial-state", "tuned=" + tuned_});
  // The model lists it, with the digest `skein state-file inspect` gives.
  grpc::ClientContext list_ctx;
  v1::ListModelsResponse models;
  ASSERT_TRUE(c.stub().ListModels(&list_ctx, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  ASSERT_EQ(models.models(0).initial_states_size(), 1);
  EXPECT_EQ(models.models(0).initial_states(0).name(), "tuned");
  CmdResult inspect = Skein({"state-file", "inspect", "--file", tuned_, "--model", model_});
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr("digest: " + models.models(0).initial_states(0).digest()));
  EXPECT_THAT(inspect.out, HasSubstr("fits"));

  const std::vector<uint32_t> prompt = {11, 200, 37, 5, 999};
  constexpr int kTokens = 8;
  const std::vector<uint32_t> tuned = EngineGreedy(model_, prompt, kTokens, tuned_);
  const std::vector<uint32_t> zero = EngineGreedy(model_, prompt, kTokens);
  ASSERT_NE(tuned, zero) << "the state should change what the model says";

  v1::GenerateRequest request = TokenRequest(prompt, kTokens);
  request.set_initial_state("tuned");
  Generated g = Generate(c.stub(), request);
  ASSERT_TRUE(g.status.ok()) << g.status.error_message();
  EXPECT_EQ(g.tokens, tuned);
  Generated plain = Generate(c.stub(), TokenRequest(prompt, kTokens));
  ASSERT_TRUE(plain.status.ok()) << plain.status.error_message();
  EXPECT_EQ(plain.tokens, zero);

  // A session created from the state: its first turn continues from it.
  grpc::ClientContext create_ctx;
  v1::CreateSessionRequest create;
  create.set_session_id("tuned-session");
  create.set_initial_state("tuned");
  v1::Session session;
  ASSERT_TRUE(c.stub().CreateSession(&create_ctx, create, &session).ok());
  EXPECT_EQ(session.initial_state(), "tuned");
  v1::GenerateRequest turn = TokenRequest(prompt, kTokens);
  turn.set_session_id("tuned-session");
  Generated t = Generate(c.stub(), turn);
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  EXPECT_EQ(t.tokens, tuned);

  // A session created from the state with a prefix: the prefix is fed after the state.
  grpc::ClientContext prefixed_ctx;
  v1::CreateSessionRequest prefixed = create;
  prefixed.set_session_id("tuned-prefixed");
  prefixed.mutable_prefix()->mutable_tokens()->mutable_ids()->Add(prompt.begin(), prompt.end() - 1);
  ASSERT_TRUE(c.stub().CreateSession(&prefixed_ctx, prefixed, &session).ok());
  v1::GenerateRequest rest = TokenRequest({prompt.back()}, kTokens);
  rest.set_session_id("tuned-prefixed");
  Generated r = Generate(c.stub(), rest);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens, tuned);

  // Errors.
  v1::GenerateRequest unknown = TokenRequest(prompt, 2);
  unknown.set_initial_state("nope");
  EXPECT_EQ(Generate(c.stub(), unknown).status.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::GenerateRequest with_session = turn;
  with_session.set_initial_state("tuned");
  EXPECT_EQ(Generate(c.stub(), with_session).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext bad_ctx;
  v1::CreateSessionRequest bad = create;
  bad.set_session_id("other");
  bad.set_initial_state("nope");
  EXPECT_EQ(c.stub().CreateSession(&bad_ctx, bad, &session).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// A prompt long enough to be stored in the prefix cache, from the named state and from zeros:
// each run equals its own engine run, so neither start ever reuses the other's entries.
TEST_F(InitialStateTest, PrefixCacheEntriesAreKeptApartByStartingState) {
  Cluster c(model_, vocab_, 1, 1, {"--initial-state", "tuned=" + tuned_});
  std::vector<uint32_t> prompt;
  for (int i = 0; i < 300; ++i) prompt.push_back((i * 53 + 7) % 1024);
  constexpr int kTokens = 4;
  const std::vector<uint32_t> tuned = EngineGreedy(model_, prompt, kTokens, tuned_);
  const std::vector<uint32_t> zero = EngineGreedy(model_, prompt, kTokens);
  v1::GenerateRequest from_state = TokenRequest(prompt, kTokens);
  from_state.set_initial_state("tuned");
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    Generated a = Generate(c.stub(), from_state);
    ASSERT_TRUE(a.status.ok()) << a.status.error_message();
    EXPECT_EQ(a.tokens, tuned);
    Generated b = Generate(c.stub(), TokenRequest(prompt, kTokens));
    ASSERT_TRUE(b.status.ok()) << b.status.error_message();
    EXPECT_EQ(b.tokens, zero);
  }
  // The second round found both prefixes (299 tokens each) in the cache.
  EXPECT_GE(c.Metric("router", "skein_router_prefix_cache_tokens_reused_total"), 2 * 256);
}

// With several models a state names its model (MODEL:NAME=PATH) and loads on its workers only.
TEST_F(InitialStateTest, WithSeveralModelsAStateBelongsToTheModelItNames) {
  std::string why;
  const std::string v6 = ::skein::testing::FindTestData("golden/multiversion/tiny-v6.pth", &why);
  if (v6.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
  const std::string dir = MakeTempDir("refused");
  for (const auto& [spec, says] : std::vector<std::pair<std::string, std::string>>{
           {"tuned=" + tuned_, "say which: MODEL:NAME=PATH"},
           {"nope:tuned=" + tuned_, "names no --model called 'nope'"},
           {"small-l4-c256-v1024:=" + tuned_, "wants [MODEL:]NAME=PATH"}}) {
    CmdResult r = Skein({"cluster", "up", "--dir", dir, "--vocab", vocab_, "--model", model_,
                         "--model", v6, "--initial-state", spec});
    EXPECT_EQ(r.code, 2) << spec << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(says)) << spec;
  }

  Cluster c(model_, vocab_, 1, 1,
            {"--model", v6, "--initial-state", "small-l4-c256-v1024:tuned=" + tuned_});
  grpc::ClientContext list_ctx;
  v1::ListModelsResponse models;
  ASSERT_TRUE(c.stub().ListModels(&list_ctx, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 2);
  for (const v1::ModelInfo& m : models.models()) {
    EXPECT_EQ(m.initial_states_size(), m.model().name() == "tiny-v6" ? 0 : 1) << m.model().name();
  }
  const std::vector<uint32_t> prompt = {5, 17, 250, 3};
  v1::GenerateRequest on_small = TokenRequest(prompt, 4);
  on_small.set_model("small-l4-c256-v1024");
  on_small.set_initial_state("tuned");
  Generated g = Generate(c.stub(), on_small);
  ASSERT_TRUE(g.status.ok()) << g.status.error_message();
  EXPECT_EQ(g.tokens, EngineGreedy(model_, prompt, 4, tuned_));
  v1::GenerateRequest on_v6 = on_small;
  on_v6.set_model("tiny-v6");
  EXPECT_EQ(Generate(c.stub(), on_v6).status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(InitialStateTest, AWorkerRefusesAStateOfAnotherModel) {
  const std::string other = WriteState(dir_, "other.pth", 3, 4);  // 3 layers, not 4
  CmdResult inspect = Skein({"state-file", "inspect", "--file", other, "--model", model_});
  EXPECT_EQ(inspect.code, 3) << inspect.out << inspect.err;
  EXPECT_THAT(inspect.err, HasSubstr("this model has 4 layers"));
  ChildProcess worker({RunfilePath("services/worker/skein-worker"), "--model", model_, "--listen",
                       "127.0.0.1:0", "--metrics-port", "0", "--dtype", "fp32", "--initial-state",
                       "other=" + other});
  std::optional<int> code = worker.Wait(std::chrono::seconds(60));
  ASSERT_TRUE(code.has_value()) << "the worker should exit";
  EXPECT_NE(*code, 0);
  EXPECT_THAT(worker.Stderr(), HasSubstr("this model has 4 layers"));
}

}  // namespace
}  // namespace skein
