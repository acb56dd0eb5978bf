// `skein bench-sessions --router ADDR --scenario prefix|turns|failover [...]`: measurements of
// the durable-session machinery against a running router (loopback only), one JSON object
// per scenario:
//   prefix    time to first token of a session turn whose 2,000-token prefix (a system
//             prompt) is computed cold against one whose prefix is in the prefix-state cache
//             (CreateSession with the prefix, then a short turn), and of stateless requests
//             that share a cached prefix (a grid hit) against cold ones;
//   turns     wall time of a session turn (hot state, snapshot at its end) against a stateless
//             request of the same shape (same prompt and output lengths): the snapshot's cost;
//   failover  N greedy streams; after --kill-after seconds the process --kill-pid is killed
//             (SIGKILL); the stall each stream saw (its longest gap between tokens) is
//             reported as p50/p99, beside the gaps before the kill.
// Prompts are random token ids, so no run shares a prefix with an earlier one by chance.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "skein/v1/router.grpc.pb.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchSessionsArgs {
  std::string router = "127.0.0.1:7700";
  std::string scenario;
  int prefix_tokens = 2000;
  int question_tokens = 16;
  int repeats = 5;
  int turn_tokens = 64;
  int turns = 6;
  int streams = 8;
  int max_tokens = 200;
  int kill_pid = 0;
  double kill_after = 3;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

class Bench {
 public:
  explicit Bench(const BenchSessionsArgs& a)
      : a_(a),
        stub_(v1::RouterService::NewStub(
            grpc::CreateChannel(a.router, grpc::InsecureChannelCredentials()))),
        rng_(std::random_device{}()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListModelsResponse models;
    grpc::Status s = stub_->ListModels(&ctx, v1::ListModelsRequest(), &models);
    if (!s.ok() || models.models_size() == 0) {
      throw CommandError(1, "the router names no model (is a pipeline up?): " + s.error_message());
    }
    vocab_ = static_cast<int>(models.models(0).vocab_size());
  }

  std::vector<uint32_t> Random(int n) {
    std::uniform_int_distribution<int> id(1, std::min(vocab_ - 1, 65529));
    std::vector<uint32_t> out;
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint32_t>(id(rng_)));
    return out;
  }

  // Streams one request; returns seconds from `since` to its first token (0 on failure), and
  // the gaps between its tokens when asked for.
  double FirstToken(const std::vector<uint32_t>& prompt, const std::string& session, int max_tokens,
                    Clock::time_point since, std::vector<double>* gaps = nullptr,
                    std::vector<Clock::time_point>* times = nullptr) {
    v1::GenerateRequest r;
    for (uint32_t t : prompt) r.mutable_prompt()->mutable_tokens()->add_ids(t);
    r.set_session_id(session);
    r.mutable_stop()->set_max_tokens(static_cast<uint32_t>(max_tokens));
    r.mutable_stop()->set_ignore_eos(true);
    r.set_return_token_ids(true);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    auto reader = stub_->Generate(&ctx, r);
    v1::GenerateResponse chunk;
    double first = 0;
    Clock::time_point last{};
    while (reader->Read(&chunk)) {
      if (chunk.token_ids_size() == 0) continue;
      const Clock::time_point now = Clock::now();
      if (first == 0) first = std::chrono::duration<double>(now - since).count();
      if (gaps != nullptr && last != Clock::time_point{}) {
        gaps->push_back(std::chrono::duration<double>(now - last).count());
      }
      if (times != nullptr) times->push_back(now);
      last = now;
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) {
      throw CommandError(
          1, "a request failed: " + std::to_string(s.error_code()) + " " + s.error_message());
    }
    return first;
  }

  void CreateSession(const std::string& id, const std::vector<uint32_t>& prefix) {
    v1::CreateSessionRequest r;
    r.set_session_id(id);
    for (uint32_t t : prefix) r.mutable_prefix()->mutable_tokens()->add_ids(t);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    v1::Session out;
    grpc::Status s = stub_->CreateSession(&ctx, r, &out);
    if (!s.ok()) throw CommandError(1, "CreateSession failed: " + s.error_message());
    created_.push_back(id);
  }

  ~Bench() {
    for (const std::string& id : created_) {
      grpc::ClientContext ctx;
      v1::DeleteSessionRequest r;
      r.set_session_id(id);
      v1::DeleteSessionResponse out;
      (void)stub_->DeleteSession(&ctx, r, &out);
    }
  }

  nlohmann::json Prefix() {
    std::vector<double> cold, warm, cold_stateless, warm_stateless;
    const std::string tag = std::to_string(std::random_device{}());
    for (int i = 0; i < a_.repeats; ++i) {
      const std::vector<uint32_t> prefix = Random(a_.prefix_tokens);
      const std::string id = "bench-" + tag + "-" + std::to_string(i);
      // Cold: the prefix is new to the cluster.
      auto t0 = Clock::now();
      CreateSession(id + "-a", prefix);
      cold.push_back(FirstToken(Random(a_.question_tokens), id + "-a", 1, t0));
      // Warm: another session with the same system prompt.
      t0 = Clock::now();
      CreateSession(id + "-b", prefix);
      warm.push_back(FirstToken(Random(a_.question_tokens), id + "-b", 1, t0));
      // Stateless: a fresh prompt, then one sharing its first prefix_tokens tokens.
      std::vector<uint32_t> fresh = Random(a_.prefix_tokens + a_.question_tokens);
      t0 = Clock::now();
      cold_stateless.push_back(FirstToken(fresh, "", 1, t0));
      std::vector<uint32_t> shared(fresh.begin(), fresh.begin() + a_.prefix_tokens);
      const std::vector<uint32_t> q = Random(a_.question_tokens);
      shared.insert(shared.end(), q.begin(), q.end());
      t0 = Clock::now();
      warm_stateless.push_back(FirstToken(shared, "", 1, t0));
    }
    nlohmann::json out;
    out["scenario"] = "prefix";
    out["prefix_tokens"] = a_.prefix_tokens;
    out["question_tokens"] = a_.question_tokens;
    out["session_ttft_cold_ms"] = Median(cold) * 1e3;
    out["session_ttft_cached_ms"] = Median(warm) * 1e3;
    out["session_speedup"] = Median(cold) / std::max(1e-9, Median(warm));
    out["stateless_ttft_cold_ms"] = Median(cold_stateless) * 1e3;
    out["stateless_ttft_grid_hit_ms"] = Median(warm_stateless) * 1e3;
    out["stateless_speedup"] = Median(cold_stateless) / std::max(1e-9, Median(warm_stateless));
    return out;
  }

  nlohmann::json Turns() {
    const std::string id = "bench-turns-" + std::to_string(std::random_device{}());
    CreateSession(id, {});
    std::vector<double> turn, stateless;
    for (int i = 0; i < a_.turns; ++i) {
      const std::vector<uint32_t> prompt = Random(a_.question_tokens);
      auto t0 = Clock::now();
      FirstToken(prompt, id, a_.turn_tokens, t0);
      const double turn_s = std::chrono::duration<double>(Clock::now() - t0).count();
      t0 = Clock::now();
      FirstToken(prompt, "", a_.turn_tokens, t0);
      const double stateless_s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (i > 0) {  // the first turn warms the session up
        turn.push_back(turn_s);
        stateless.push_back(stateless_s);
      }
    }
    nlohmann::json out;
    out["scenario"] = "turns";
    out["turn_tokens"] = a_.turn_tokens;
    out["turn_ms"] = Median(turn) * 1e3;
    out["stateless_ms"] = Median(stateless) * 1e3;
    out["snapshot_overhead_percent"] =
        100.0 * (Median(turn) - Median(stateless)) / std::max(1e-9, Median(stateless));
    return out;
  }

  nlohmann::json Failover() {
    if (a_.kill_pid <= 0) throw CommandError(2, "--scenario failover needs --kill-pid");
    std::vector<std::vector<double>> gaps(a_.streams);
    std::vector<std::vector<Clock::time_point>> times(a_.streams);
    std::vector<std::string> errors(a_.streams);
    std::vector<std::thread> threads;
    std::vector<std::vector<uint32_t>> prompts;
    for (int i = 0; i < a_.streams; ++i) prompts.push_back(Random(a_.question_tokens));
    for (int i = 0; i < a_.streams; ++i) {
      threads.emplace_back([&, i] {
        try {
          FirstToken(prompts[i], "", a_.max_tokens, Clock::now(), &gaps[i], &times[i]);
        } catch (const CommandError& e) {
          errors[i] = e.what();
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(a_.kill_after * 1000)));
    const Clock::time_point killed = Clock::now();
    if (kill(a_.kill_pid, SIGKILL) != 0) throw CommandError(1, "cannot kill --kill-pid");
    for (auto& t : threads) t.join();
    std::vector<double> stalls, before;
    int failed = 0;
    for (int i = 0; i < a_.streams; ++i) {
      if (!errors[i].empty()) {
        ++failed;
        continue;
      }
      // The gap that spans the kill, and the ordinary gaps before it.
      double stall = 0;
      for (size_t k = 1; k < times[i].size(); ++k) {
        const double g = std::chrono::duration<double>(times[i][k] - times[i][k - 1]).count();
        if (times[i][k] <= killed) {
          before.push_back(g);
        } else {
          stall = std::max(stall, g);
        }
      }
      stalls.push_back(stall);
    }
    nlohmann::json out;
    out["scenario"] = "failover";
    out["streams"] = a_.streams;
    out["streams_failed"] = failed;
    out["stall_p50_ms"] = Percentile(stalls, 0.5) * 1e3;
    out["stall_p99_ms"] = Percentile(stalls, 0.99) * 1e3;
    out["inter_token_before_kill_p99_ms"] = Percentile(before, 0.99) * 1e3;
    return out;
  }

 private:
  const BenchSessionsArgs& a_;
  std::unique_ptr<v1::RouterService::Stub> stub_;
  std::mt19937 rng_;
  int vocab_ = 0;
  std::vector<std::string> created_;
};

void RunBenchSessions(const BenchSessionsArgs& a) {
  if (a.router.rfind("127.", 0) != 0 && a.router.rfind("localhost", 0) != 0 &&
      a.router.rfind("[::1]", 0) != 0) {
    throw CommandError(2, "bench-sessions only targets loopback routers (127.x, localhost, [::1])");
  }
  Bench bench(a);
  nlohmann::json out;
  if (a.scenario == "prefix") {
    out = bench.Prefix();
  } else if (a.scenario == "turns") {
    out = bench.Turns();
  } else if (a.scenario == "failover") {
    out = bench.Failover();
  } else {
    throw CommandError(2, "--scenario must be prefix, turns or failover");
  }
  std::printf("%s\n", out.dump().c_str());
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(bench_sessions, [](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench-sessions", "Measure prefix-cache hits, snapshot cost and failover on a local router");
  auto a = std::make_shared<skein::cli::BenchSessionsArgs>();
  cmd->add_option("--router", a->router, "Router address (default 127.0.0.1:7700)");
  cmd->add_option("--scenario", a->scenario, "prefix, turns or failover")->required();
  cmd->add_option("--prefix-tokens", a->prefix_tokens, "Shared prefix length (prefix; 2000)");
  cmd->add_option("--question-tokens", a->question_tokens, "Prompt after it (16)");
  cmd->add_option("--repeats", a->repeats, "Measurements per case (prefix; 5)");
  cmd->add_option("--turn-tokens", a->turn_tokens, "Tokens per turn (turns; 64)");
  cmd->add_option("--turns", a->turns, "Turns measured, plus one to warm up (turns; 6)");
  cmd->add_option("--streams", a->streams, "Concurrent streams (failover; 8)");
  cmd->add_option("--max-tokens", a->max_tokens, "Tokens per stream (failover; 200)");
  cmd->add_option("--kill-pid", a->kill_pid, "Process to SIGKILL (failover)");
  cmd->add_option("--kill-after", a->kill_after, "Seconds before the kill (failover; 3)");
  cmd->callback([a] { skein::cli::RunBenchSessions(*a); });
});
