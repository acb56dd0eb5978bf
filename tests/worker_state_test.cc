// skein-worker with a real skein-state-store: a session saved to the store, dropped and
// loaded back (or forked, or evicted past --max-sessions and restored) continues exactly as
// an uninterrupted one; bad blobs and keys get the documented codes.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "skein/v1/worker.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using ::skein::testing::RunfilePath;
using namespace std::chrono_literals;

struct Service {
  std::unique_ptr<ChildProcess> process;
  std::string address;
  int metrics_port = 0;
};

Service Start(std::vector<std::string> argv, const std::string& name) {
  const std::string ready = ::skein::testing::MakeTempDir(name) + "/ready";
  argv.insert(argv.end(),
              {"--listen", "127.0.0.1:0", "--metrics-port", "0", "--ready-file", ready});
  Service s;
  s.process = std::make_unique<ChildProcess>(argv);
  const std::string content = ::skein::testing::WaitForFile(ready, 30s);
  EXPECT_FALSE(content.empty()) << name << ": " << s.process->Stderr();
  if (content.empty()) return s;
  auto j = nlohmann::json::parse(content);
  s.address = j["grpc"];
  s.metrics_port = j["metrics_port"];
  return s;
}

class WorkerStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    model_ = ::skein::testing::FindTestData("golden/rwkv7/small-l4-c256-v1024.pth", &why);
    if (model_.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
    store_ = Start({RunfilePath("services/state_store/skein-state-store"), "--backend", "memory"},
                   "store");
    worker_ = Start({RunfilePath("services/worker/skein-worker"), "--model", model_, "--dtype",
                     "fp32", "--threads", "1", "--store", store_.address, "--max-sessions", "2"},
                    "worker");
    stub_ = v1::WorkerService::NewStub(
        grpc::CreateChannel(worker_.address, grpc::InsecureChannelCredentials()));
    // Wait until the model is loaded.
    for (int i = 0; i < 300; ++i) {
      grpc::ClientContext ctx;
      v1::StageInfo info;
      if (stub_->GetStageInfo(&ctx, v1::GetStageInfoRequest(), &info).ok()) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "the worker never loaded its model: " << worker_.process->Stderr();
  }

  // One step of one session; returns the sampled token (greedy), or the status.
  absl::StatusOr<uint32_t> Step(const std::string& id, std::vector<uint32_t> tokens,
                                uint64_t position) {
    v1::StepRequest req;
    v1::SequenceInput* s = req.add_sequences();
    s->set_session_id(id);
    for (uint32_t t : tokens) s->add_tokens(t);
    s->set_expected_position(position);
    s->set_reset(position == 0);
    s->mutable_sampling()->set_temperature(0);
    grpc::ClientContext ctx;
    v1::StepResult result;
    grpc::Status st = stub_->Step(&ctx, req, &result);
    if (!st.ok())
      return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
    return result.outputs(0).sampled_token();
  }

  // Greedy: `n` tokens after the prompt, continuing session `id` at `position` (0: new).
  std::vector<uint32_t> Continue(const std::string& id, uint32_t next, uint64_t position, int n) {
    std::vector<uint32_t> out;
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<uint32_t> t = Step(id, {next}, position++);
      EXPECT_TRUE(t.ok()) << t.status();
      if (!t.ok()) break;
      out.push_back(next = *t);
    }
    return out;
  }

  double Metric(const std::string& series) {
    std::optional<std::string> body = ::skein::testing::HttpGet(worker_.metrics_port, "/metrics");
    if (!body) return -1;
    const size_t at = body->find(series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(body->substr(at + series.size() + 1));
  }

  std::string model_;
  Service store_, worker_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const std::vector<uint32_t> prompt_ = {131, 636, 668, 433, 656, 403, 661, 972};
};

TEST_F(WorkerStateTest, SavedDroppedAndLoadedSessionContinuesExactly) {
  absl::StatusOr<uint32_t> first = Step("a", prompt_, 0);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<uint32_t> expected =
      Continue("b-reference", *Step("b-reference", prompt_, 0), 8, 6);

  v1::SaveStateRequest save;
  save.set_session_id("a");
  save.mutable_store()->set_key("test/a");
  v1::SaveStateResponse saved;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->SaveState(&ctx, save, &saved).ok());
  }
  EXPECT_EQ(saved.metadata().token_position(), prompt_.size());
  EXPECT_EQ(saved.metadata().layers().last(), 4u);
  EXPECT_GT(saved.store_version(), 0u);
  {
    grpc::ClientContext ctx;
    v1::DropStateRequest drop;
    drop.set_session_id("a");
    v1::DropStateResponse dropped;
    ASSERT_TRUE(stub_->DropState(&ctx, drop, &dropped).ok());
    EXPECT_TRUE(dropped.existed());
  }
  EXPECT_EQ(Step("a", {*first}, 8).status().code(), absl::StatusCode::kNotFound);
  {
    grpc::ClientContext ctx;
    v1::LoadStateRequest load;
    load.set_session_id("a");
    load.mutable_store()->set_key("test/a");
    v1::SessionStateInfo info;
    ASSERT_TRUE(stub_->LoadState(&ctx, load, &info).ok());
    EXPECT_EQ(info.metadata().token_position(), prompt_.size());
  }
  EXPECT_EQ(Continue("a", *first, 8, 6), expected);
}

TEST_F(WorkerStateTest, ForkContinuesLikeItsSource) {
  absl::StatusOr<uint32_t> first = Step("src", prompt_, 0);
  ASSERT_TRUE(first.ok());
  grpc::ClientContext ctx;
  v1::ForkStateRequest fork;
  fork.set_source_session_id("src");
  fork.set_target_session_id("copy");
  v1::SessionStateInfo info;
  ASSERT_TRUE(stub_->ForkState(&ctx, fork, &info).ok());
  EXPECT_EQ(info.metadata().token_position(), prompt_.size());
  EXPECT_EQ(Continue("copy", *first, 8, 5), Continue("src", *first, 8, 5));
}

TEST_F(WorkerStateTest, SessionsPastMaxSessionsGoToTheStoreAndComeBack) {
  // Three sessions on a worker that keeps two: the least recently used is spilled.
  std::vector<uint32_t> next;
  for (const char* id : {"x", "y", "z"}) {
    absl::StatusOr<uint32_t> t = Step(id, prompt_, 0);
    ASSERT_TRUE(t.ok()) << t.status();
    next.push_back(*t);
  }
  EXPECT_GE(Metric("skein_worker_sessions_moved_total{direction=\"spilled\",stage=\"0\"}"), 1);
  EXPECT_LE(Metric("skein_worker_sessions_resident{stage=\"0\"}"), 2);
  // All three continue exactly as one that never left memory.
  const std::vector<uint32_t> expected = Continue("ref", *Step("ref", prompt_, 0), 8, 4);
  for (int round = 0; round < 4; ++round) {
    for (int s = 0; s < 3; ++s) {
      const std::string id(1, "xyz"[s]);
      absl::StatusOr<uint32_t> t = Step(id, {next[s]}, 8 + round);
      ASSERT_TRUE(t.ok()) << id << ": " << t.status();
      EXPECT_EQ(*t, expected[round]) << id << " round " << round;
      next[s] = *t;
    }
  }
  EXPECT_GE(Metric("skein_worker_sessions_moved_total{direction=\"restored\",stage=\"0\"}"), 3);
}

TEST_F(WorkerStateTest, BadStateSourcesGetTheDocumentedCodes) {
  ASSERT_TRUE(Step("good", prompt_, 0).ok());
  v1::SaveStateRequest save;
  save.set_session_id("good");
  v1::SaveStateResponse inline_blob;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->SaveState(&ctx, save, &inline_blob).ok());
  }
  ASSERT_FALSE(inline_blob.blob().empty());
  // The sampler alone, for a state already stored: no blob, the same position and sampler.
  {
    v1::SaveStateRequest sampler_only = save;
    sampler_only.set_sampler_only(true);
    v1::SaveStateResponse r;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->SaveState(&ctx, sampler_only, &r).ok());
    EXPECT_TRUE(r.blob().empty());
    EXPECT_EQ(r.metadata().token_position(), inline_blob.metadata().token_position());
    EXPECT_FALSE(r.sampler_state().empty());
    EXPECT_EQ(r.sampler_state(), inline_blob.sampler_state());
  }
  auto load = [&](v1::LoadStateRequest r) {
    grpc::ClientContext ctx;
    v1::SessionStateInfo info;
    return stub_->LoadState(&ctx, r, &info).error_code();
  };
  v1::LoadStateRequest r;
  r.set_session_id("bad");
  r.mutable_store()->set_key("test/never-written");
  EXPECT_EQ(load(r), grpc::StatusCode::NOT_FOUND);
  std::string corrupt = inline_blob.blob();
  corrupt[100] ^= 0x5a;
  r.set_blob(corrupt);
  EXPECT_EQ(load(r), grpc::StatusCode::DATA_LOSS);
  r.set_blob("not a state blob at all");
  EXPECT_EQ(load(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.set_blob(inline_blob.blob());
  EXPECT_EQ(load(r), grpc::StatusCode::OK);

  // A stored slice read at another version than the one named: ABORTED (every stage of a
  // pipeline restoring a snapshot names the version it saw, so none reads a newer commit).
  v1::SaveStateRequest to_store = save;
  to_store.mutable_store()->set_key("test/versioned");
  v1::SaveStateResponse saved;
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->SaveState(&c, to_store, &saved).ok());
  }
  v1::LoadStateRequest versioned;
  versioned.set_session_id("v");
  versioned.mutable_store()->set_key("test/versioned");
  versioned.mutable_store()->set_version(saved.store_version() + 1);
  EXPECT_EQ(load(versioned), grpc::StatusCode::ABORTED);
  versioned.mutable_store()->set_version(saved.store_version());
  EXPECT_EQ(load(versioned), grpc::StatusCode::OK);

  // A state of another model of the very same shape: FAILED_PRECONDITION, never applied.
  const std::string other = ::skein::testing::MakeTempDir("other") + "/other.pth";
  ChildProcess made({RunfilePath("tools/skein"), "make-model", "--layers", "4", "--embd", "256",
                     "--vocab", "1024", "--seed", "77", "--out", other});
  ASSERT_EQ(made.Wait(60s).value_or(-1), 0) << made.Stderr();
  Service stranger = Start({RunfilePath("services/worker/skein-worker"), "--model", other,
                            "--dtype", "fp32", "--threads", "1"},
                           "stranger");
  auto stranger_stub = v1::WorkerService::NewStub(
      grpc::CreateChannel(stranger.address, grpc::InsecureChannelCredentials()));
  {
    v1::LoadStateRequest foreign;
    foreign.set_session_id("foreign");
    foreign.set_blob(inline_blob.blob());
    v1::SessionStateInfo info;
    grpc::Status status;
    // The worker answers UNAVAILABLE until its model is loaded.
    for (int i = 0; i < 100; ++i) {
      grpc::ClientContext attempt;
      status = stranger_stub->LoadState(&attempt, foreign, &info);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  }
  grpc::ClientContext ctx;
  v1::ForkStateRequest fork;
  fork.set_source_session_id("nobody");
  fork.set_target_session_id("t");
  v1::SessionStateInfo info;
  EXPECT_EQ(stub_->ForkState(&ctx, fork, &info).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace skein
