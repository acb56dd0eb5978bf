// Sessions end to end, on real processes on loopback (`skein cluster up`, memory store):
// a multi-turn session equals one long run; a fork continues exactly like its parent and
// copies no state bytes; a session continued through another router (a router restart, a
// replica that never held it) equals continuing in place; the prefix-state cache serves
// repeated prompts with identical output; a worker killed with SIGKILL mid-stream leaves every
// stream equal to its undisturbed run; bad input gets the status router.proto documents.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/state_store/client.h"
#include "skein/router/session_record.pb.h"
#include "skein/v1/router.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/redis_server.h"
#include "tests/support/serving_cluster.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using ::skein::testing::Cluster;
using ::skein::testing::EngineGreedy;
using ::skein::testing::Generate;
using ::skein::testing::Generated;
using ::skein::testing::RunfilePath;
using ::skein::testing::TokenRequest;
using namespace std::chrono_literals;

constexpr char kSmall[] = "golden/rwkv7/small-l4-c256-v1024.pth";
constexpr char kVocab[] = "data/rwkv_vocab_v20230424.txt";

std::vector<uint32_t> Concat(std::initializer_list<std::vector<uint32_t>> parts) {
  std::vector<uint32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Deterministic pseudo-random token ids below the small model's vocabulary.
std::vector<uint32_t> Tokens(size_t n, uint32_t seed) {
  std::vector<uint32_t> out;
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out.push_back(static_cast<uint32_t>(1 + x % 1000));
  }
  return out;
}

// A router of its own on an existing cluster's store and pipelines: a router restart, or a
// second router of a horizontally scaled deployment. It holds no session hot.
class ExtraRouter {
 public:
  // `only_replica` >= 0: the router knows that pipeline replica alone.
  explicit ExtraRouter(const Cluster& c, int only_replica = -1) {
    const std::string dir = ::skein::testing::MakeTempDir("router2");
    std::vector<std::string> heads;
    std::string store, tokenizer;
    for (int r = 0;; ++r) {
      std::string head;
      for (const auto& p : c.Processes()) {
        if (p["role"] == "worker" && p["stage"] == 0 && p["replica"] == r) head = p["address"];
      }
      if (head.empty()) break;
      if (only_replica < 0 || only_replica == r) heads.push_back(head);
    }
    std::string pipeline;
    for (const auto& h : heads) pipeline += (pipeline.empty() ? "" : ",") + h;
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        RunfilePath("services/router/skein-router"), "--listen", "127.0.0.1:0", "--metrics-port",
        "0", "--ready-file", dir + "/ready", "--pipeline", pipeline, "--tokenizer",
        c.Address("tokenizer"), "--store", c.Address("state-store")});
    const std::string ready = ::skein::testing::WaitForFile(dir + "/ready", 20s);
    EXPECT_FALSE(ready.empty()) << process_->Stderr();
    stub_ = v1::RouterService::NewStub(
        grpc::CreateChannel(nlohmann::json::parse(ready)["grpc"].get<std::string>(),
                            grpc::InsecureChannelCredentials()));
    // Serving once it has seen a replica.
    for (int i = 0; i < 200; ++i) {
      v1::ListModelsResponse models;
      grpc::ClientContext ctx;
      if (stub_->ListModels(&ctx, {}, &models).ok() && models.models_size() > 0) break;
      std::this_thread::sleep_for(50ms);
    }
  }
  ~ExtraRouter() {
    process_->Signal(SIGTERM);
    process_->Wait(30s);
  }
  void Kill() {
    process_->Signal(SIGKILL);
    process_->Wait(30s);
  }
  v1::RouterService::Stub& stub() { return *stub_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<v1::RouterService::Stub> stub_;
};

grpc::Status CreateSession(v1::RouterService::Stub& stub, const std::string& id,
                           const std::vector<uint32_t>& prefix = {}, const std::string& owner = "",
                           v1::Session* out = nullptr) {
  grpc::ClientContext ctx;
  if (!owner.empty()) ctx.AddMetadata("x-skein-owner", owner);
  v1::CreateSessionRequest request;
  request.set_session_id(id);
  for (uint32_t t : prefix) request.mutable_prefix()->mutable_tokens()->add_ids(t);
  v1::Session session;
  grpc::Status s = stub.CreateSession(&ctx, request, &session);
  if (out != nullptr) *out = session;
  return s;
}

grpc::Status GetSession(v1::RouterService::Stub& stub, const std::string& id, v1::Session* out,
                        const std::string& owner = "") {
  grpc::ClientContext ctx;
  if (!owner.empty()) ctx.AddMetadata("x-skein-owner", owner);
  v1::GetSessionRequest request;
  request.set_session_id(id);
  return stub.GetSession(&ctx, request, out);
}

grpc::Status Fork(v1::RouterService::Stub& stub, const std::string& from, const std::string& to) {
  grpc::ClientContext ctx;
  v1::ForkSessionRequest request;
  request.set_session_id(from);
  request.set_new_session_id(to);
  v1::Session out;
  return stub.ForkSession(&ctx, request, &out);
}

Generated Turn(v1::RouterService::Stub& stub, const std::string& id,
               const std::vector<uint32_t>& prompt, uint32_t max_tokens,
               const std::string& owner = "") {
  v1::GenerateRequest r = TokenRequest(prompt, max_tokens);
  r.set_session_id(id);
  return Generate(stub, r, 120s, owner);
}

// Reads a session's record straight from the store.
router::SessionRecord Record(const Cluster& c, const std::string& id) {
  state_store::StateStoreClient store(
      grpc::CreateChannel(c.Address("state-store"), grpc::InsecureChannelCredentials()));
  absl::StatusOr<state_store::ClientBlob> blob = store.Get("skein/sessions/" + id);
  EXPECT_TRUE(blob.ok()) << blob.status();
  router::SessionRecord r;
  if (blob.ok()) {
    EXPECT_TRUE(r.ParseFromString(blob->data));
  }
  return r;
}

class SessionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    model_ = ::skein::testing::FindTestData(kSmall, &why);
    vocab_ = ::skein::testing::FindTestData(kVocab, &why);
    if (model_.empty() || vocab_.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
  }
  std::string model_, vocab_;
};

TEST_F(SessionsTest, TurnsForksAndOtherRoutersAllEqualOneLongRun) {
  Cluster c(model_, vocab_, 2, 2);
  const std::vector<uint32_t> a = Tokens(12, 1), b = Tokens(3, 2), d = Tokens(4, 3),
                              e = Tokens(2, 4);
  ASSERT_TRUE(CreateSession(c.stub(), "chat").ok());

  Generated t1 = Turn(c.stub(), "chat", a, 6);
  ASSERT_TRUE(t1.status.ok()) << t1.status.error_message();
  EXPECT_EQ(t1.tokens, EngineGreedy(model_, a, 6));
  EXPECT_EQ(t1.session_position, a.size() + 6);

  // The second turn continues the conversation: the first turn's tokens, all of them, then
  // the new prompt.
  Generated t2 = Turn(c.stub(), "chat", b, 6);
  ASSERT_TRUE(t2.status.ok()) << t2.status.error_message();
  const std::vector<uint32_t> history = Concat({a, t1.tokens, b});
  EXPECT_EQ(t2.tokens, EngineGreedy(model_, history, 6));
  v1::Session s;
  ASSERT_TRUE(GetSession(c.stub(), "chat", &s).ok());
  EXPECT_EQ(s.position(), history.size() + 6);
  EXPECT_FALSE(s.busy());

  // A fork names the parent's stored state: no state byte is written for it.
  const double stored = c.Metric("state-store", "skein_state_store_stored_bytes");
  ASSERT_TRUE(Fork(c.stub(), "chat", "chat-fork").ok());
  EXPECT_EQ(Record(c, "chat-fork").state_key(), Record(c, "chat").state_key());
  EXPECT_LT(c.Metric("state-store", "skein_state_store_stored_bytes") - stored, 4096);
  Generated parent = Turn(c.stub(), "chat", d, 5);
  Generated fork = Turn(c.stub(), "chat-fork", d, 5);
  ASSERT_TRUE(parent.status.ok()) << parent.status.error_message();
  ASSERT_TRUE(fork.status.ok()) << fork.status.error_message();
  const std::vector<uint32_t> longer = Concat({history, t2.tokens, d});
  EXPECT_EQ(parent.tokens, EngineGreedy(model_, longer, 5));
  EXPECT_EQ(fork.tokens, parent.tokens);
  // The same conversation is the same content-addressed state: stored once for both.
  EXPECT_EQ(Record(c, "chat-fork").state_key(), Record(c, "chat").state_key());

  // Another router (a restarted one) knows nothing hot: it loads the committed snapshot onto
  // whichever replica it picks, and the conversation goes on exactly.
  {
    ExtraRouter other(c);
    Generated moved = Turn(other.stub(), "chat", e, 5);
    ASSERT_TRUE(moved.status.ok()) << moved.status.error_message();
    EXPECT_EQ(moved.tokens, EngineGreedy(model_, Concat({longer, parent.tokens, e}), 5));
  }
  EXPECT_GT(c.Metric("router", "skein_router_snapshots_total"), 0);

  // The same snapshot continued on each replica in turn (through forks, so both continue
  // from one state): at least one of them is not where the snapshot was taken, and both equal
  // continuing in place.
  const std::vector<uint32_t> f = Tokens(3, 5);
  ASSERT_TRUE(Fork(c.stub(), "chat", "via-replica-0").ok());
  ASSERT_TRUE(Fork(c.stub(), "chat", "via-replica-1").ok());
  const Generated in_place = Turn(c.stub(), "chat", f, 4);
  ASSERT_TRUE(in_place.status.ok()) << in_place.status.error_message();
  for (int r = 0; r < 2; ++r) {
    ExtraRouter pinned(c, r);
    Generated g = Turn(pinned.stub(), "via-replica-" + std::to_string(r), f, 4);
    ASSERT_TRUE(g.status.ok()) << g.status.error_message();
    EXPECT_EQ(g.tokens, in_place.tokens) << "replica " << r;
  }

  // Listing shows both sessions (for this owner) and deleting one leaves the other.
  {
    grpc::ClientContext ctx;
    v1::ListSessionsResponse list;
    ASSERT_TRUE(c.stub().ListSessions(&ctx, {}, &list).ok());
    std::vector<std::string> ids;
    for (const auto& x : list.sessions()) ids.push_back(x.session_id());
    EXPECT_EQ(ids,
              (std::vector<std::string>{"chat", "chat-fork", "via-replica-0", "via-replica-1"}));
  }
  {
    grpc::ClientContext ctx;
    v1::DeleteSessionRequest del;
    del.set_session_id("chat-fork");
    v1::DeleteSessionResponse deleted;
    ASSERT_TRUE(c.stub().DeleteSession(&ctx, del, &deleted).ok());
    EXPECT_TRUE(deleted.existed());
  }
  EXPECT_EQ(GetSession(c.stub(), "chat-fork", &s).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(GetSession(c.stub(), "chat", &s).ok());
}

// Workers on the device engine (`--device reference`: the GPU engine's launch sequence with the
// scalar reference kernels, so this runs without a GPU), two stages, two state slots per stage
// for three sessions: states live in the device's slots between turns, are evicted to host
// memory and brought back, and are read back from the device for every snapshot. Every turn
// equals the CPU engine's one long run, and a router that never held the sessions continues
// them from their snapshots exactly.
TEST_F(SessionsTest, DeviceStagesKeepSessionsExactAcrossSlotsAndSnapshots) {
  Cluster c(model_, vocab_, 2, 1,
            {"--worker-arg=--device=reference", "--worker-arg=--device-slots=2"});
  std::map<std::string, std::vector<uint32_t>> history;
  for (int turn = 0; turn < 3; ++turn) {
    for (const std::string id : {"dev-a", "dev-b", "dev-c"}) {
      if (turn == 0) {
        ASSERT_TRUE(CreateSession(c.stub(), id).ok());
      }
      const std::vector<uint32_t> prompt = Tokens(turn == 0 ? 9 : 2, turn * 7 + id.back());
      history[id].insert(history[id].end(), prompt.begin(), prompt.end());
      Generated g = Turn(c.stub(), id, prompt, 4);
      ASSERT_TRUE(g.status.ok()) << id << " turn " << turn << ": " << g.status.error_message();
      EXPECT_EQ(g.tokens, EngineGreedy(model_, history[id], 4)) << id << " turn " << turn;
      history[id].insert(history[id].end(), g.tokens.begin(), g.tokens.end());
    }
  }
  ExtraRouter other(c);
  const std::vector<uint32_t> more = Tokens(3, 77);
  for (const std::string id : {"dev-a", "dev-c"}) {
    history[id].insert(history[id].end(), more.begin(), more.end());
    Generated g = Turn(other.stub(), id, more, 4);
    ASSERT_TRUE(g.status.ok()) << id << ": " << g.status.error_message();
    EXPECT_EQ(g.tokens, EngineGreedy(model_, history[id], 4)) << id << " via another router";
  }
  for (const auto& p : c.Processes()) {
    if (p["role"] == "worker") {
      EXPECT_GT(c.Metric(p["name"], "skein_worker_device_evictions_total"), 0) << p["name"];
    }
  }
}

TEST_F(SessionsTest, CachedPrefixesGiveTheSameOutputAndAreCounted) {
  Cluster c(model_, vocab_, 2, 1, {"--router-arg=--snapshot-grid=64"});
  const std::vector<uint32_t> prompt = Tokens(300, 7);
  const std::vector<uint32_t> reference = EngineGreedy(model_, prompt, 8);
  Generated cold = Generate(c.stub(), TokenRequest(prompt, 8));
  ASSERT_TRUE(cold.status.ok()) << cold.status.error_message();
  EXPECT_EQ(cold.tokens, reference);
  EXPECT_EQ(c.Metric("router", "skein_router_prefix_cache_lookups_total{result=\"miss\"}"), 1);
  // The same prompt again starts from the state before its last token.
  Generated warm = Generate(c.stub(), TokenRequest(prompt, 8));
  ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();
  EXPECT_EQ(warm.tokens, reference);
  EXPECT_EQ(c.Metric("router", "skein_router_prefix_cache_lookups_total{result=\"hit\"}"), 1);
  EXPECT_EQ(c.Metric("router", "skein_router_prefix_cache_tokens_reused_total"), 299);
  // A prompt sharing 200 tokens starts from the grid point at 192.
  const std::vector<uint32_t> shared =
      Concat({std::vector<uint32_t>(prompt.begin(), prompt.begin() + 200), Tokens(30, 8)});
  Generated partial = Generate(c.stub(), TokenRequest(shared, 8));
  ASSERT_TRUE(partial.status.ok()) << partial.status.error_message();
  EXPECT_EQ(partial.tokens, EngineGreedy(model_, shared, 8));
  EXPECT_EQ(c.Metric("router", "skein_router_prefix_cache_tokens_reused_total"), 299 + 192);

  // A session primed with the prompt as its prefix finds it whole (a new session of the same
  // system prompt computes nothing), and its first turn continues exactly.
  v1::Session primed;
  ASSERT_TRUE(CreateSession(c.stub(), "primed", prompt, "", &primed).ok());
  EXPECT_EQ(primed.position(), prompt.size());
  v1::Session again;
  ASSERT_TRUE(CreateSession(c.stub(), "primed-2", prompt, "", &again).ok());
  EXPECT_EQ(c.Metric("router", "skein_router_prefix_cache_tokens_reused_total"),
            299 + 192 + 256 + 300);
  const std::vector<uint32_t> question = Tokens(5, 9);
  Generated t1 = Turn(c.stub(), "primed", question, 6);
  Generated t2 = Turn(c.stub(), "primed-2", question, 6);
  ASSERT_TRUE(t1.status.ok()) << t1.status.error_message();
  EXPECT_EQ(t1.tokens, EngineGreedy(model_, Concat({prompt, question}), 6));
  EXPECT_EQ(t2.tokens, t1.tokens);
}

TEST_F(SessionsTest, BadInputGetsTheDocumentedStatus) {
  Cluster c(model_, vocab_, 1, 1);
  const std::vector<uint32_t> a = Tokens(8, 11);
  EXPECT_EQ(Turn(c.stub(), "nobody", a, 2).status.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::Session s;
  EXPECT_EQ(GetSession(c.stub(), "nobody", &s).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Fork(c.stub(), "nobody", "x").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(CreateSession(c.stub(), "bad/id").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  {
    grpc::ClientContext ctx;
    v1::DeleteSessionRequest del;
    del.set_session_id("nobody");
    v1::DeleteSessionResponse r;
    ASSERT_TRUE(c.stub().DeleteSession(&ctx, del, &r).ok());  // idempotent
    EXPECT_FALSE(r.existed());
  }

  ASSERT_TRUE(CreateSession(c.stub(), "mine", {}, "alice").ok());
  EXPECT_EQ(CreateSession(c.stub(), "mine", {}, "alice").error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Turn(c.stub(), "mine", a, 2, "bob").status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetSession(c.stub(), "mine", &s, "bob").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Turn(c.stub(), "mine", a, 2).status.error_code(),  // no owner is not alice either
            grpc::StatusCode::PERMISSION_DENIED);

  // A turn with an idempotency key runs once: the retry answers the same tokens and the
  // session does not move.
  v1::GenerateRequest keyed = TokenRequest(a, 4);
  keyed.set_session_id("mine");
  keyed.set_idempotency_key("turn-1");
  Generated first = Generate(c.stub(), keyed, 60s, "alice");
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  Generated retry = Generate(c.stub(), keyed, 60s, "alice");
  ASSERT_TRUE(retry.status.ok()) << retry.status.error_message();
  EXPECT_EQ(retry.tokens, first.tokens);
  EXPECT_EQ(retry.session_position, first.session_position);
  ASSERT_TRUE(GetSession(c.stub(), "mine", &s, "alice").ok());
  EXPECT_EQ(s.position(), a.size() + 4);
  // A stale expected position is refused before anything runs.
  v1::GenerateRequest stale = TokenRequest(a, 4);
  stale.set_session_id("mine");
  stale.set_expected_position(3);
  EXPECT_EQ(Generate(c.stub(), stale, 60s, "alice").status.error_code(), grpc::StatusCode::ABORTED);

  // A session busy in one stream refuses a second one, a fork and a delete.
  std::thread long_turn([&] {
    v1::GenerateRequest r = TokenRequest(a, 60000);
    r.set_session_id("mine");
    Generate(c.stub(), r, 3s, "alice");  // ends at its deadline
  });
  for (int i = 0; i < 100 && !s.busy(); ++i) {
    std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(GetSession(c.stub(), "mine", &s, "alice").ok());
  }
  EXPECT_TRUE(s.busy());
  EXPECT_EQ(Turn(c.stub(), "mine", a, 2, "alice").status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-skein-owner", "alice");
    v1::DeleteSessionRequest del;
    del.set_session_id("mine");
    v1::DeleteSessionResponse r;
    EXPECT_EQ(c.stub().DeleteSession(&ctx, del, &r).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  long_turn.join();
  // The cancelled turn kept what it generated: the session moved on and is free again.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(GetSession(c.stub(), "mine", &s, "alice").ok());
    if (!s.busy()) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_FALSE(s.busy());
  EXPECT_GT(s.position(), a.size() + 4 + a.size());

  // A damaged snapshot: DATA_LOSS, and the session does not move.
  const router::SessionRecord record = Record(c, "mine");
  ASSERT_FALSE(record.state_key().empty());
  {
    state_store::StateStoreClient store(
        grpc::CreateChannel(c.Address("state-store"), grpc::InsecureChannelCredentials()));
    ASSERT_TRUE(store.Put(record.state_key(), std::string(1000, 'x')).ok());
  }
  ExtraRouter other(c);  // holds nothing hot, so it must read the snapshot
  Generated damaged = Turn(other.stub(), "mine", a, 2, "alice");
  EXPECT_EQ(damaged.status.error_code(), grpc::StatusCode::DATA_LOSS)
      << damaged.status.error_message();
  v1::Session after;
  ASSERT_TRUE(GetSession(c.stub(), "mine", &after, "alice").ok());
  EXPECT_EQ(after.position(), s.position());
}

TEST_F(SessionsTest, CommandLineSessionsFollowTheApi) {
  Cluster c(model_, vocab_, 1, 1);
  using ::skein::testing::Join;
  using ::skein::testing::Skein;
  auto json = [](const ::skein::testing::CmdResult& r) {
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out.empty() ? "{}" : r.out);
  };
  const std::vector<uint32_t> prefix = Tokens(10, 21), prompt = Tokens(3, 22);
  nlohmann::json created = json(Skein({"client", "session", "create", "--router", c.router(),
                                       "--id", "cli", "--prefix-tokens", Join(prefix)}));
  EXPECT_EQ(created["session_id"], "cli");
  EXPECT_EQ(created["position"], "10");  // uint64 in proto JSON is a string
  nlohmann::json turn =
      json(Skein({"client", "generate", "--router", c.router(), "--session", "cli",
                  "--prompt-tokens", Join(prompt), "--max-tokens", "4", "--ignore-eos", "--json"}));
  EXPECT_EQ(turn["tokens"].get<std::vector<uint32_t>>(),
            EngineGreedy(model_, Concat({prefix, prompt}), 4));
  EXPECT_EQ(turn["session_position"], 17);
  nlohmann::json forked = json(Skein(
      {"client", "session", "fork", "--router", c.router(), "--id", "cli", "--new-id", "cli-2"}));
  EXPECT_EQ(forked["forked_from"], "cli");
  EXPECT_EQ(json(Skein(
                {"client", "session", "get", "--router", c.router(), "--id", "cli-2"}))["position"],
            "17");
  nlohmann::json list =
      json(Skein({"client", "session", "list", "--router", c.router(), "--page-size", "1"}));
  ASSERT_EQ(list["sessions"].size(), 2u);
  EXPECT_EQ(list["sessions"][1]["session_id"], "cli-2");
  EXPECT_EQ(
      json(Skein({"client", "session", "rm", "--router", c.router(), "--id", "cli"}))["existed"],
      true);
  ::skein::testing::CmdResult gone =
      Skein({"client", "session", "get", "--router", c.router(), "--id", "cli"});
  EXPECT_EQ(gone.code, 1);
  EXPECT_NE(gone.err.find("NOT_FOUND"), std::string::npos) << gone.err;
}

// SIGKILL of one worker while 16 greedy streams run on 2 replicas × 2 stages: every stream
// ends with exactly the tokens of an undisturbed run.
void KillDuringStreams(const std::string& model, const std::string& vocab, int stage) {
  Cluster c(model, vocab, 2, 2);
  constexpr int kStreams = 16, kTokens = 120;
  std::vector<std::vector<uint32_t>> prompts, expected;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(Tokens(20 + 70 * i, 100 + i));
    expected.push_back(EngineGreedy(model, prompts.back(), kTokens));
  }
  pid_t victim = -1;
  for (const auto& p : c.Processes()) {
    if (p["role"] == "worker" && p["stage"] == stage && p["replica"] == 0) victim = p["pid"];
  }
  ASSERT_GT(victim, 0);
  std::vector<Generated> out(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back(
        [&, i] { out[i] = Generate(c.stub(), TokenRequest(prompts[i % 4], kTokens), 120s); });
  }
  // Kill once the streams are well under way.
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (c.Metric("router", "skein_router_tokens_total{direction=\"out\"}") < kStreams * 10 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  kill(victim, SIGKILL);
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStreams; ++i) {
    SCOPED_TRACE(::testing::Message() << "stream " << i);
    ASSERT_TRUE(out[i].status.ok()) << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, expected[i % 4]);
  }
  EXPECT_GT(c.Metric("router", "skein_router_generation_restarts_total"), 0);
}

TEST_F(SessionsTest, LastStageKilledMidStreamLosesNoToken) { KillDuringStreams(model_, vocab_, 1); }

TEST_F(SessionsTest, FirstStageKilledMidStreamLosesNoToken) {
  KillDuringStreams(model_, vocab_, 0);
}

TEST_F(SessionsTest, RollingRestartOfEveryWorkerLosesNoStream) {
  Cluster c(model_, vocab_, 2, 2);
  constexpr int kStreams = 16, kTokens = 2000;
  std::vector<std::vector<uint32_t>> prompts, expected;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(Tokens(10 + 40 * i, 200 + i));
    expected.push_back(EngineGreedy(model_, prompts.back(), kTokens));
  }
  std::vector<Generated> out(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back(
        [&, i] { out[i] = Generate(c.stub(), TokenRequest(prompts[i % 4], kTokens), 300s); });
  }
  // Restart every worker, one at a time, the way a rolling upgrade does: SIGTERM (it drains
  // and exits), then the same command on the same address.
  std::vector<std::unique_ptr<ChildProcess>> restarted;
  for (const auto& p : c.Processes()) {
    if (p["role"] != "worker") continue;
    SCOPED_TRACE(p["name"].get<std::string>());
    const pid_t pid = p["pid"];
    kill(pid, SIGTERM);
    for (int i = 0; i < 800 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(50ms);
    ASSERT_NE(kill(pid, 0), 0) << "the worker did not exit after SIGTERM";
    std::vector<std::string> argv = p["argv"];
    for (std::string& arg : argv) {
      if (arg == "127.0.0.1:0") arg = p["address"];
    }
    restarted.push_back(std::make_unique<ChildProcess>(argv));
    // Back in the router's pool before the next one goes.
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (c.Metric("router", "skein_router_replicas_healthy") < 2 &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(c.Metric("router", "skein_router_replicas_healthy"), 2);
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStreams; ++i) {
    SCOPED_TRACE(::testing::Message() << "stream " << i);
    ASSERT_TRUE(out[i].status.ok()) << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, expected[i % 4]);
  }
  EXPECT_GT(c.Metric("router", "skein_router_generation_migrations_total"), 0);
  for (auto& p : restarted) p->Signal(SIGTERM);
}

TEST_F(SessionsTest, RouterKilledMidTurnLeavesTheSessionAtItsLastTurn) {
  Cluster c(model_, vocab_, 1, 2);
  const std::vector<uint32_t> a = Tokens(9, 31), b = Tokens(4, 32);
  ASSERT_TRUE(CreateSession(c.stub(), "durable").ok());
  Generated t1 = Turn(c.stub(), "durable", a, 5);
  ASSERT_TRUE(t1.status.ok()) << t1.status.error_message();
  {
    // A turn through a second router that dies (SIGKILL) while streaming.
    ExtraRouter doomed(c);
    std::thread turn([&] { Turn(doomed.stub(), "durable", b, 60000); });
    std::this_thread::sleep_for(500ms);
    doomed.Kill();
    turn.join();
  }
  // The session is what the last committed turn left; a client continues it elsewhere.
  v1::Session s;
  ASSERT_TRUE(GetSession(c.stub(), "durable", &s).ok());
  EXPECT_EQ(s.position(), a.size() + 5);
  Generated t2 = Turn(c.stub(), "durable", b, 5);
  ASSERT_TRUE(t2.status.ok()) << t2.status.error_message();
  EXPECT_EQ(t2.tokens, EngineGreedy(model_, Concat({a, t1.tokens, b}), 5));
}

// Two store processes share a Redis Cluster of three masters; one is killed (SIGKILL) while 16
// greedy streams run on 2 stages x 2 replicas, 4 of them session turns. Every stream ends with the
// tokens of an undisturbed run, and every committed turn is still there: the next turns continue
// exactly.
TEST_F(SessionsTest, AStoreProcessKilledUnderLoadLosesNoStreamAndNoCommittedTurn) {
  std::string why;
  std::unique_ptr<::skein::testing::RedisCluster> redis =
      ::skein::testing::RedisCluster::Start(3, &why);
  if (redis == nullptr) SKEIN_MISSING_PREREQUISITE() << why;
  Cluster c(model_, vocab_, 2, 2,
            {"--store", "redis", "--redis", redis->address(), "--stores", "2",
             "--router-arg=--snapshot-grid=64"});
  constexpr int kTokens = 60;
  // Sessions with one committed turn each.
  std::vector<std::vector<uint32_t>> history(4);
  for (int s = 0; s < 4; ++s) {
    const std::string id = "kept-" + std::to_string(s);
    ASSERT_TRUE(CreateSession(c.stub(), id).ok());
    const std::vector<uint32_t> first = Tokens(30, 300 + s);
    Generated t = Turn(c.stub(), id, first, 5);
    ASSERT_TRUE(t.status.ok()) << t.status.error_message();
    history[s] = Concat({first, t.tokens});
  }
  std::vector<std::vector<uint32_t>> prompts, expected;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(Tokens(150 + 40 * i, 400 + i));
    expected.push_back(EngineGreedy(model_, prompts.back(), kTokens));
  }
  const std::vector<uint32_t> next = Tokens(6, 500);
  std::vector<std::vector<uint32_t>> session_expected;
  for (int s = 0; s < 4; ++s) {
    session_expected.push_back(EngineGreedy(model_, Concat({history[s], next}), kTokens));
  }
  pid_t victim = -1;
  for (const auto& p : c.Processes()) {
    if (p["name"] == "state-store-2") victim = p["pid"];
  }
  ASSERT_GT(victim, 0);
  std::vector<Generated> out(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      if (i < 12) {
        out[i] = Generate(c.stub(), TokenRequest(prompts[i % 4], kTokens), 120s);
      } else {
        out[i] = Turn(c.stub(), "kept-" + std::to_string(i - 12), next, kTokens);
      }
    });
  }
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (c.Metric("router", "skein_router_tokens_total{direction=\"out\"}") < 4 * 5 + 60 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  kill(victim, SIGKILL);
  for (auto& t : threads) t.join();
  for (int i = 0; i < 16; ++i) {
    SCOPED_TRACE(::testing::Message() << "stream " << i);
    ASSERT_TRUE(out[i].status.ok()) << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, i < 12 ? expected[i % 4] : session_expected[i - 12]);
  }
  // Every committed turn survived: the next turn of each session continues exactly.
  for (int s = 0; s < 4; ++s) {
    const std::string id = "kept-" + std::to_string(s);
    v1::Session session;
    ASSERT_TRUE(GetSession(c.stub(), id, &session).ok());
    const std::vector<uint32_t> whole = Concat({history[s], next, session_expected[s]});
    EXPECT_EQ(session.position(), whole.size());
    const std::vector<uint32_t> more = Tokens(3, 600 + s);
    Generated after = Turn(c.stub(), id, more, 4);
    ASSERT_TRUE(after.status.ok()) << after.status.error_message();
    EXPECT_EQ(after.tokens, EngineGreedy(model_, Concat({whole, more}), 4));
  }
}

}  // namespace
}  // namespace skein
