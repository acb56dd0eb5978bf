// End to end: `skein cluster up` starts real processes on loopback (state store, tokenizer,
// S×R workers, router) and a gRPC client generates through the router. Greedy output must
// equal the official reference and the single-process engine whatever the pipeline shape;
// concurrent streams must not mix; stop strings, cancellation, deadlines, a restarted
// worker and bad input must behave as router.proto documents.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "skein/v1/router.grpc.pb.h"
#include "skein/v1/worker.grpc.pb.h"
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
using ::skein::testing::RunfilePath;
using ::skein::testing::Skein;
using ::skein::testing::TokenRequest;
using namespace std::chrono_literals;

constexpr char kSmall[] = "golden/rwkv7/small-l4-c256-v1024.pth";
constexpr char kGreedy[] = "golden/rwkv7/small-l4-c256-v1024.greedy.json";
constexpr char kVocab[] = "data/rwkv_vocab_v20230424.txt";

class ServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    model_ = ::skein::testing::FindTestData(kSmall, &why);
    vocab_ = ::skein::testing::FindTestData(kVocab, &why);
    const std::string greedy = ::skein::testing::FindTestData(kGreedy, &why);
    if (model_.empty() || vocab_.empty() || greedy.empty())
      SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
    std::ifstream in(greedy);
    nlohmann::json j = nlohmann::json::parse(in);
    prompt_ = j["prompt"].get<std::vector<uint32_t>>();
    expected_ = j["greedy"].get<std::vector<uint32_t>>();
  }
  std::string model_, vocab_;
  std::vector<uint32_t> prompt_, expected_;
};

TEST_F(ServingTest, GreedyThroughEveryPipelineShapeEqualsTheReferenceAndTheEngine) {
  const std::vector<uint32_t> engine = EngineGreedy(model_, prompt_, expected_.size());
  EXPECT_EQ(engine, expected_);
  for (auto [stages, replicas] :
       std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {3, 1}, {1, 2}, {2, 2}}) {
    SCOPED_TRACE(::testing::Message() << stages << " stages x " << replicas << " replicas");
    Cluster c(model_, vocab_, stages, replicas);
    // One request per replica at least, all at once.
    std::vector<std::thread> threads;
    std::vector<Generated> out(2 * replicas);
    for (size_t i = 0; i < out.size(); ++i) {
      threads.emplace_back(
          [&, i] { out[i] = Generate(c.stub(), TokenRequest(prompt_, expected_.size())); });
    }
    for (auto& t : threads) t.join();
    for (const Generated& g : out) {
      ASSERT_TRUE(g.status.ok()) << g.status.error_message();
      EXPECT_EQ(g.tokens, expected_);
      EXPECT_EQ(g.reason, v1::FINISH_REASON_LENGTH);
    }
    // Every worker computed: the layers were really split across the stages.
    for (const auto& p : c.Processes()) {
      if (p["role"] == "worker") {
        EXPECT_GT(c.Metric(p["name"], "skein_worker_tokens_total"), 0) << p["name"];
      }
    }
  }
}

// RWKV-4, -5 (x052) and -6 (x060) serve like RWKV-7: greedy through a 2-stage pipeline
// equals the single-process engine (which rwkv_multiversion_test holds to the goldens).
TEST_F(ServingTest, EveryVersionThroughTwoStagesEqualsTheEngine) {
  for (auto [file, architecture] : std::vector<std::pair<const char*, const char*>>{
           {"tiny-v6.pth", "x060"}, {"tiny-v5.2.pth", "x052"}, {"tiny-v4.pth", "v4"}}) {
    SCOPED_TRACE(file);
    std::string why;
    const std::string model =
        ::skein::testing::FindTestData(std::string("golden/multiversion/") + file, &why);
    if (model.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
    const std::vector<uint32_t> prompt = {5, 17, 250, 3, 3, 99, 0, 42};
    constexpr int kTokens = 10;
    const std::vector<uint32_t> engine = EngineGreedy(model, prompt, kTokens);
    ASSERT_EQ(engine.size(), static_cast<size_t>(kTokens));
    Cluster c(model, vocab_, 2, 1);
    Generated g = Generate(c.stub(), TokenRequest(prompt, kTokens));
    ASSERT_TRUE(g.status.ok()) << g.status.error_message();
    EXPECT_EQ(g.tokens, engine);
    grpc::ClientContext ctx;
    v1::ListModelsResponse models;
    ASSERT_TRUE(c.stub().ListModels(&ctx, v1::ListModelsRequest(), &models).ok());
    ASSERT_EQ(models.models_size(), 1);
    EXPECT_EQ(models.models(0).architecture(), architecture);
    EXPECT_EQ(models.models(0).num_layers(), 3u);
    int workers = 0;
    for (const auto& p : c.Processes()) {
      if (p["role"] != "worker") continue;
      ++workers;
      const std::string name = p["name"];
      EXPECT_GT(c.Metric(name, "skein_worker_tokens_total"), 0) << name;
      // Each stage says where its activations go and how: stage 0 over a gRPC relay stream
      // (the CPU link) to stage 1, which is last and sends none.
      auto worker = v1::WorkerService::NewStub(
          grpc::CreateChannel(p["address"].get<std::string>(), grpc::InsecureChannelCredentials()));
      grpc::ClientContext info_ctx;
      info_ctx.set_deadline(std::chrono::system_clock::now() + 10s);
      v1::StageInfo info;
      ASSERT_TRUE(worker->GetStageInfo(&info_ctx, v1::GetStageInfoRequest(), &info).ok()) << name;
      EXPECT_EQ(info.stage_count(), 2u) << name;
      EXPECT_EQ(info.device(), "cpu") << name;
      if (info.stage_index() == 0) {
        EXPECT_EQ(info.link(), "grpc") << name;
        EXPECT_FALSE(info.next_stage().empty()) << name;
        EXPECT_EQ(info.link_dtype(), v1::ACTIVATION_DTYPE_FP32) << name;
      } else {
        EXPECT_EQ(info.stage_index(), 1u) << name;
        EXPECT_EQ(info.link(), "") << name;
        EXPECT_EQ(info.next_stage(), "") << name;
        EXPECT_EQ(info.link_dtype(), v1::ACTIVATION_DTYPE_UNSPECIFIED) << name;
      }
    }
    EXPECT_EQ(workers, 2);
  }
}

// Two models in one cluster (`cluster up --model A --model B`): each has its own pipeline,
// ListModels lists both, a request or session names its model and gets that model's output.
TEST_F(ServingTest, SeveralModelsAreRoutedByName) {
  std::string why;
  const std::string v6 = ::skein::testing::FindTestData("golden/multiversion/tiny-v6.pth", &why);
  if (v6.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
  Cluster c(model_, vocab_, 2, 1, {"--model", v6});
  grpc::ClientContext list_ctx;
  v1::ListModelsResponse models;
  ASSERT_TRUE(c.stub().ListModels(&list_ctx, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 2);
  std::map<std::string, std::string> architecture;
  for (const v1::ModelInfo& m : models.models()) architecture[m.model().name()] = m.architecture();
  EXPECT_EQ(architecture["small-l4-c256-v1024"], "x070");
  EXPECT_EQ(architecture["tiny-v6"], "x060");

  const std::vector<uint32_t> prompt = {5, 17, 250, 3, 3, 99};
  constexpr int kTokens = 8;
  size_t v6_tokens = 0;  // generated by tiny-v6, for its metric
  for (auto [name, file] : std::vector<std::pair<std::string, std::string>>{
           {"small-l4-c256-v1024", model_}, {"tiny-v6", v6}}) {
    SCOPED_TRACE(name);
    v1::GenerateRequest request = TokenRequest(prompt, kTokens);
    request.set_model(name);
    Generated g = Generate(c.stub(), request);
    ASSERT_TRUE(g.status.ok()) << g.status.error_message();
    EXPECT_EQ(g.tokens, EngineGreedy(file, prompt, kTokens));
    if (name == "tiny-v6") v6_tokens += g.tokens.size();
  }
  // A session lives on its model.
  grpc::ClientContext create_ctx;
  v1::CreateSessionRequest create;
  create.set_model("tiny-v6");
  create.set_session_id("on-v6");
  v1::Session session;
  ASSERT_TRUE(c.stub().CreateSession(&create_ctx, create, &session).ok());
  EXPECT_EQ(session.model(), "tiny-v6");
  v1::GenerateRequest turn = TokenRequest(prompt, kTokens);
  turn.set_session_id("on-v6");
  Generated t = Generate(c.stub(), turn);
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  EXPECT_EQ(t.tokens, EngineGreedy(v6, prompt, kTokens));
  v6_tokens += t.tokens.size();
  // Errors: no name when several models are served, an unknown name, a session's other model.
  EXPECT_EQ(Generate(c.stub(), TokenRequest(prompt, 2)).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest unknown = TokenRequest(prompt, 2);
  unknown.set_model("nope");
  EXPECT_EQ(Generate(c.stub(), unknown).status.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::GenerateRequest wrong = turn;
  wrong.set_model("small-l4-c256-v1024");
  EXPECT_EQ(Generate(c.stub(), wrong).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The workers of the second model are its own, and the router counts per model.
  EXPECT_GT(c.Metric("worker-m1-r0-s1", "skein_worker_tokens_total"), 0);
  EXPECT_EQ(
      c.Metric("router", "skein_router_model_tokens_total{direction=\"out\",model=\"tiny-v6\"}"),
      static_cast<double>(v6_tokens));
  // Two generations per model reached a first token (a request and a turn on tiny-v6).
  EXPECT_EQ(
      c.Metric("router", "skein_router_model_time_to_first_token_seconds_count{model=\"tiny-v6\"}"),
      2);
  EXPECT_EQ(c.Metric("router",
                     "skein_router_model_time_to_first_token_seconds_count{model="
                     "\"small-l4-c256-v1024\"}"),
            1);
  // Nothing is queued now, for either model, and the router-wide gauge is their sum (each
  // scheduler used to overwrite it with its own count).
  EXPECT_EQ(c.Metric("router", "skein_router_model_queue_depth{model=\"tiny-v6\"}"), 0);
  EXPECT_EQ(c.Metric("router", "skein_router_queue_depth"), 0);
}

TEST_F(ServingTest, SixteenConcurrentStreamsEachEqualTheirOwnRun) {
  Cluster c(model_, vocab_, 2, 1);
  constexpr int kStreams = 16, kTokens = 12;
  std::vector<std::vector<uint32_t>> prompts(kStreams);
  for (int s = 0; s < kStreams; ++s) {
    for (int i = 0; i < 3 + (s * 7) % 40; ++i) prompts[s].push_back((s * 131 + i * 17 + 1) % 1024);
  }
  std::vector<Generated> out(kStreams);
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    threads.emplace_back(
        [&, s] { out[s] = Generate(c.stub(), TokenRequest(prompts[s], kTokens)); });
  }
  for (auto& t : threads) t.join();
  for (int s = 0; s < kStreams; ++s) {
    ASSERT_TRUE(out[s].status.ok()) << out[s].status.error_message();
    EXPECT_EQ(out[s].tokens, EngineGreedy(model_, prompts[s], kTokens)) << "stream " << s;
  }
  // Batching happened: some step carried more than one sequence.
  EXPECT_LT(c.Metric("router", "skein_router_batch_size_count"),
            c.Metric("router", "skein_router_batch_size_sum"));
}

// A 2000-token prompt in one step: its activations (2000 rows x 256 x 2 arrays x 4 bytes,
// about 4 MB) cross the link as several frames, and the result equals the engine's.
TEST_F(ServingTest, LongPromptCrossesTheLinkInSeveralFrames) {
  Cluster c(model_, vocab_, 2, 1,
            {"--router-arg=--max-step-tokens=2048", "--router-arg=--prefill-chunk=2048"});
  std::vector<uint32_t> prompt;
  for (int i = 0; i < 2000; ++i) prompt.push_back((i * 37 + 11) % 1024);
  Generated g = Generate(c.stub(), TokenRequest(prompt, 4));
  ASSERT_TRUE(g.status.ok()) << g.status.error_message();
  EXPECT_EQ(g.tokens, EngineGreedy(model_, prompt, 4));
  // The whole prompt went down the link in one step: more bytes than one frame holds.
  EXPECT_GT(c.Metric("worker-r0-s0", "skein_worker_link_bytes_total"), 3.5 * (1 << 20));
}

TEST_F(ServingTest, CancelledAndExpiredStreamsFreeTheirSlots) {
  Cluster c(model_, vocab_, 1, 1);
  {
    grpc::ClientContext ctx;
    auto reader = c.stub().Generate(&ctx, TokenRequest(prompt_, 60000));
    v1::GenerateResponse chunk;
    ASSERT_TRUE(reader->Read(&chunk));
    ctx.TryCancel();
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  Generated late = Generate(c.stub(), TokenRequest(prompt_, 60000), 300ms);
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // Both slots come free (and the workers forget both states) without waiting for 60000
  // tokens.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until &&
         (c.Metric("router", "skein_router_running_sequences") != 0 ||
          c.Metric("worker-r0-s0", "skein_worker_sessions_resident") != 0)) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(c.Metric("router", "skein_router_running_sequences"), 0);
  EXPECT_EQ(c.Metric("worker-r0-s0", "skein_worker_sessions_resident"), 0);
  EXPECT_EQ(c.Metric("router", "skein_router_rejections_total{reason=\"cancelled\"}"), 1);
  EXPECT_EQ(c.Metric("router", "skein_router_rejections_total{reason=\"deadline\"}"), 1);
  EXPECT_LT(c.Metric("router", "skein_router_tokens_total{direction=\"out\"}"), 50000);
}

TEST_F(ServingTest, BadInputGetsTheDocumentedStatus) {
  Cluster c(model_, vocab_, 1, 1, {"--router-arg=--max-prompt-tokens=64"});
  auto code = [&](const v1::GenerateRequest& r) {
    return Generate(c.stub(), r).status.error_code();
  };
  v1::GenerateRequest unknown_model = TokenRequest(prompt_, 4);
  unknown_model.set_model("no-such-model");
  EXPECT_EQ(code(unknown_model), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(code(TokenRequest({}, 4)), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(TokenRequest(std::vector<uint32_t>(65, 1), 4)),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(code(TokenRequest({1, 1024}, 4)), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest bad_top_p = TokenRequest(prompt_, 4);
  bad_top_p.mutable_sampling()->set_top_p(1.5f);
  EXPECT_EQ(code(bad_top_p), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest bad_temperature = TokenRequest(prompt_, 4);
  bad_temperature.mutable_sampling()->set_temperature(-1.0f);
  EXPECT_EQ(code(bad_temperature), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest bad_utf8 = TokenRequest({}, 4);
  bad_utf8.mutable_prompt()->set_text(std::string("caf\xc3", 4));
  EXPECT_EQ(code(bad_utf8), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest empty_text = TokenRequest({}, 4);
  empty_text.mutable_prompt()->set_text("");
  EXPECT_EQ(code(empty_text), grpc::StatusCode::INVALID_ARGUMENT);
  // After all that, the cluster still serves.
  Generated ok = Generate(c.stub(), TokenRequest(prompt_, 3));
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.tokens, std::vector<uint32_t>(expected_.begin(), expected_.begin() + 3));
}

TEST_F(ServingTest, RouterWithoutAReachablePipelineAnswersUnavailable) {
  const std::string dir = ::skein::testing::MakeTempDir("lonely");
  const int dead = ::skein::testing::PickUnusedPort();
  ChildProcess router({RunfilePath("services/router/skein-router"), "--listen", "127.0.0.1:0",
                       "--metrics-port", "0", "--ready-file", dir + "/ready", "--pipeline",
                       "127.0.0.1:" + std::to_string(dead), "--tokenizer",
                       "127.0.0.1:" + std::to_string(dead)});
  const std::string ready = ::skein::testing::WaitForFile(dir + "/ready", 20s);
  ASSERT_FALSE(ready.empty()) << router.Stderr();
  auto stub = v1::RouterService::NewStub(grpc::CreateChannel(
      nlohmann::json::parse(ready)["grpc"].get<std::string>(), grpc::InsecureChannelCredentials()));
  const auto start = std::chrono::steady_clock::now();
  Generated g = Generate(*stub, TokenRequest({1, 2, 3}, 4), 30s);
  EXPECT_EQ(g.status.error_code(), grpc::StatusCode::UNAVAILABLE) << g.status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // at once, not at the deadline
  router.Signal(SIGTERM);
  EXPECT_EQ(router.Wait(30s), 0);
}

TEST_F(ServingTest, AWorkerRestartedByHandIsPickedUpAgain) {
  Cluster c(model_, vocab_, 1, 1);
  nlohmann::json worker;
  for (const auto& p : c.Processes()) {
    if (p["role"] == "worker") worker = p;
  }
  ASSERT_TRUE(Generate(c.stub(), TokenRequest(prompt_, 2)).status.ok());
  kill(worker["pid"].get<int>(), SIGKILL);
  std::this_thread::sleep_for(200ms);
  Generated down = Generate(c.stub(), TokenRequest(prompt_, 2), 20s);
  EXPECT_EQ(down.status.error_code(), grpc::StatusCode::UNAVAILABLE) << down.status.error_message();
  // The operator starts it again on the same address.
  ChildProcess again({RunfilePath("services/worker/skein-worker"), "--model", model_, "--dtype",
                      "fp32", "--threads", "1", "--listen", worker["address"], "--metrics-port",
                      "0"});
  Generated back;
  const auto until = std::chrono::steady_clock::now() + 30s;
  do {
    std::this_thread::sleep_for(200ms);
    back = Generate(c.stub(), TokenRequest(prompt_, 4), 20s);
  } while (!back.status.ok() && std::chrono::steady_clock::now() < until);
  ASSERT_TRUE(back.status.ok()) << back.status.error_message();
  EXPECT_EQ(back.tokens, std::vector<uint32_t>(expected_.begin(), expected_.begin() + 4));
  again.Signal(SIGTERM);
  again.Wait(30s);
}

// Text in, text out, on a model with the World vocabulary's 65536 rows (random weights).
class TextServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    vocab_ = ::skein::testing::FindTestData(kVocab, &why);
    if (vocab_.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
    model_ = ::skein::testing::MakeTempDir("model") + "/random.pth";
    CmdResult r = Skein({"make-model", "--layers", "2", "--embd", "128", "--vocab", "65536",
                         "--seed", "3", "--out", model_});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  std::string vocab_, model_;
};

TEST_F(TextServingTest, TextStreamsOutAndStopStringsCutAcrossTokens) {
  Cluster c(model_, vocab_, 2, 1);
  v1::GenerateRequest request;
  request.mutable_prompt()->set_text("The quick brown fox jumps over the lazy dog. Café ☕");
  request.mutable_stop()->set_max_tokens(40);
  request.mutable_stop()->set_ignore_eos(true);
  request.set_return_token_ids(true);
  Generated full = Generate(c.stub(), request);
  ASSERT_TRUE(full.status.ok()) << full.status.error_message();
  ASSERT_EQ(full.tokens.size(), 40u);
  // The text is the tokens' bytes (invalid sequences repaired), streamed in pieces.
  v1::DetokenizeRequest d;
  d.mutable_ids()->Add(full.tokens.begin(), full.tokens.end());
  v1::DetokenizeResponse decoded;
  grpc::ClientContext ctx;
  ASSERT_TRUE(c.stub().Detokenize(&ctx, d, &decoded).ok());
  EXPECT_EQ(full.text, decoded.text());
  // The prompt went through the tokenizer: the engine given its ids generates the same.
  v1::TokenizeRequest t;
  t.set_text(request.prompt().text());
  v1::TokenizeResponse ids;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(c.stub().Tokenize(&ctx2, t, &ids).ok());
  EXPECT_EQ(full.tokens, EngineGreedy(model_, {ids.ids().begin(), ids.ids().end()}, 40));

  // A stop string that starts inside one token's text and ends inside a later one.
  std::string token0, token1;
  size_t at = 0;
  for (size_t i = 0; i + 2 < full.tokens.size(); ++i) {
    v1::DetokenizeRequest one;
    one.add_ids(full.tokens[i]);
    v1::DetokenizeResponse r0;
    grpc::ClientContext c0;
    ASSERT_TRUE(c.stub().Detokenize(&c0, one, &r0).ok());
    at += r0.data().size();
    if (i >= 3 && r0.data().size() >= 2 && r0.text() == r0.data()) break;
  }
  ASSERT_LT(at, full.text.size());
  const std::string stop = full.text.substr(at - 1, 3);  // last byte of a token + 2 more
  const size_t first = full.text.find(stop);
  v1::GenerateRequest stopping = request;
  stopping.mutable_stop()->add_stop_sequences(stop);
  Generated cut = Generate(c.stub(), stopping);
  ASSERT_TRUE(cut.status.ok()) << cut.status.error_message();
  EXPECT_EQ(cut.reason, v1::FINISH_REASON_STOP);
  EXPECT_EQ(cut.text, full.text.substr(0, first));
}

}  // namespace
}  // namespace skein
