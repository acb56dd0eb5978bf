// `skein bench-serve --router ADDR --streams N --seconds S [--prompt-tokens P]
// [--max-tokens M]`: a bounded load generator for a running router (loopback only). N
// clients each stream generations back to back (random token prompts of P tokens, greedy,
// M tokens, end of text ignored) for S seconds; prints one JSON object with the aggregate
// generated tokens per second and the p50/p99 of the time to first token and of the time
// between tokens, as the clients saw them. Requests still running when the window closes are
// cut off by their deadline; only tokens inside the window count.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "skein/v1/router.grpc.pb.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {
namespace {

struct BenchServeArgs {
  std::string router = "127.0.0.1:7700";
  int streams = 16;
  double seconds = 20;
  int prompt_tokens = 16;
  int max_tokens = 64;
  int vocab = 0;  // 0: ask ListModels
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

void RunBenchServe(const BenchServeArgs& a) {
  if (a.streams < 1 || a.seconds <= 0 || a.prompt_tokens < 1 || a.max_tokens < 1) {
    throw CommandError(2, "--streams, --seconds, --prompt-tokens and --max-tokens must be > 0");
  }
  if (a.router.rfind("127.", 0) != 0 && a.router.rfind("localhost", 0) != 0 &&
      a.router.rfind("[::1]", 0) != 0) {
    throw CommandError(2, "bench-serve only targets loopback routers (127.x, localhost, [::1])");
  }
  auto channel = grpc::CreateChannel(a.router, grpc::InsecureChannelCredentials());
  auto stub = v1::RouterService::NewStub(channel);
  int vocab = a.vocab;
  if (vocab == 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListModelsResponse models;
    grpc::Status s = stub->ListModels(&ctx, v1::ListModelsRequest(), &models);
    if (!s.ok() || models.models_size() == 0) {
      throw CommandError(1, "the router names no model (is a pipeline up?): " + s.error_message());
    }
    vocab = static_cast<int>(models.models(0).vocab_size());
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto end = start + std::chrono::milliseconds(static_cast<int64_t>(a.seconds * 1000));
  // Every client's latencies, merged as each one ends.
  struct Latencies {
    absl::Mutex mu;
    std::vector<double> ttft ABSL_GUARDED_BY(mu);
    std::vector<double> itl ABSL_GUARDED_BY(mu);
  } all;
  std::atomic<int64_t> tokens{0}, requests{0}, failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < a.streams; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(1234 + c);
      std::uniform_int_distribution<int> id(1, std::min(vocab - 1, 65529));
      std::vector<double> my_ttft, my_itl;
      while (Clock::now() < end) {
        v1::GenerateRequest r;
        for (int i = 0; i < a.prompt_tokens; ++i) {
          r.mutable_prompt()->mutable_tokens()->add_ids(static_cast<uint32_t>(id(rng)));
        }
        r.mutable_stop()->set_max_tokens(static_cast<uint32_t>(a.max_tokens));
        r.mutable_stop()->set_ignore_eos(true);
        r.set_return_token_ids(true);
        grpc::ClientContext ctx;
        // Requests still running when the window closes end with it (DEADLINE_EXCEEDED).
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()));
        const auto sent = Clock::now();
        auto last = sent;
        auto reader = stub->Generate(&ctx, r);
        v1::GenerateResponse chunk;
        bool first = true;
        while (reader->Read(&chunk)) {
          if (chunk.token_ids_size() == 0) continue;
          const auto now = Clock::now();
          if (now > end) continue;  // only tokens inside the window count
          const double dt = std::chrono::duration<double>(now - (first ? sent : last)).count();
          (first ? my_ttft : my_itl).push_back(dt);
          first = false;
          last = now;
          tokens += chunk.token_ids_size();
        }
        const grpc::Status status = reader->Finish();
        if (status.ok()) {
          ++requests;
        } else if (status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
          ++failures;
        }
      }
      absl::MutexLock lock(&all.mu);
      all.ttft.insert(all.ttft.end(), my_ttft.begin(), my_ttft.end());
      all.itl.insert(all.itl.end(), my_itl.begin(), my_itl.end());
    });
  }
  for (auto& t : clients) t.join();
  // Every client has ended; the lock is free and keeps each access to the latencies checked.
  absl::MutexLock lock(&all.mu);
  nlohmann::json out;
  out["router"] = a.router;
  out["streams"] = a.streams;
  out["seconds"] = a.seconds;
  out["prompt_tokens"] = a.prompt_tokens;
  out["max_tokens"] = a.max_tokens;
  out["requests_completed"] = requests.load();
  out["requests_failed"] = failures.load();
  out["tokens_per_second"] = static_cast<double>(tokens.load()) / a.seconds;
  out["ttft_p50_ms"] = Percentile(all.ttft, 0.5) * 1e3;
  out["ttft_p99_ms"] = Percentile(all.ttft, 0.99) * 1e3;
  out["inter_token_p50_ms"] = Percentile(all.itl, 0.5) * 1e3;
  out["inter_token_p99_ms"] = Percentile(all.itl, 0.99) * 1e3;
  std::printf("%s\n", out.dump().c_str());
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(bench_serve, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("bench-serve", "Load a running router (loopback) and time it");
  auto a = std::make_shared<skein::cli::BenchServeArgs>();
  cmd->add_option("--router", a->router, "Router address (default 127.0.0.1:7700)");
  cmd->add_option("--streams", a->streams, "Concurrent streaming clients (default 16)");
  cmd->add_option("--seconds", a->seconds, "Measurement window (default 20)");
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "Prompt length (default 16)");
  cmd->add_option("--max-tokens", a->max_tokens, "Tokens per request (default 64)");
  cmd->add_option("--vocab", a->vocab, "Token ids are drawn below this (default: the model's)");
  cmd->callback([a] { skein::cli::RunBenchServe(*a); });
});
