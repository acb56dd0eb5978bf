// A Skein cluster for a test: `skein cluster up` on loopback, a router stub, metrics
// scraped from the processes, and helpers to generate through it and to ask the
// single-process engine for the reference continuation.
#ifndef SKEIN_TESTS_SUPPORT_SERVING_CLUSTER_H_
#define SKEIN_TESTS_SUPPORT_SERVING_CLUSTER_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "skein/v1/router.grpc.pb.h"

namespace skein::testing {

struct CmdResult {
  int code = -1;
  std::string out, err;
};

// Runs the `skein` CLI with `args`.
CmdResult Skein(std::vector<std::string> args,
                std::chrono::milliseconds timeout = std::chrono::seconds(180));

// A cluster for the lifetime of the object: fp32 workers, and an in-memory store unless
// `extra` names a --store.
class Cluster {
 public:
  Cluster(const std::string& model, const std::string& vocab, int stages, int replicas,
          std::vector<std::string> extra = {});
  ~Cluster();
  // Where the service binaries are (the Bazel runfiles root).
  static std::string BinDir();
  v1::RouterService::Stub& stub() { return *stub_; }
  const std::string& router() const { return router_; }
  const std::string& dir() const { return dir_; }
  // DIR/cluster.json's "processes".
  nlohmann::json Processes() const;
  // The address a role's process listens on ("state-store", "tokenizer", "router").
  std::string Address(const std::string& process) const;
  // One metric's value (summed over its series) from the named process's /metrics.
  double Metric(const std::string& process, const std::string& name) const;

 private:
  std::string dir_, router_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RouterService::Stub> stub_;
};

struct Generated {
  grpc::Status status;
  std::vector<uint32_t> tokens;
  std::string text;
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  uint64_t session_position = 0;
  int chunks = 0;
};

// Streams one Generate. `owner` is sent as the x-skein-owner header when not empty.
Generated Generate(v1::RouterService::Stub& stub, const v1::GenerateRequest& request,
                   std::chrono::milliseconds deadline = std::chrono::seconds(120),
                   const std::string& owner = "");

// A greedy request for `prompt`'s ids: max_tokens, EOS ignored, ids returned.
v1::GenerateRequest TokenRequest(const std::vector<uint32_t>& prompt, uint32_t max_tokens);

std::string Join(const std::vector<uint32_t>& ids);

// The single-process engine's greedy continuation (`skein generate`, fp32), from the zero
// state or from an initial-state file.
std::vector<uint32_t> EngineGreedy(const std::string& model, const std::vector<uint32_t>& prompt,
                                   int n, const std::string& initial_state = "");

}  // namespace skein::testing

#endif  // SKEIN_TESTS_SUPPORT_SERVING_CLUSTER_H_
