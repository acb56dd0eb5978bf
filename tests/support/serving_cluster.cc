#include "tests/support/serving_cluster.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/child_process.h"

namespace skein::testing {
namespace {

using namespace std::chrono_literals;

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

}  // namespace

CmdResult Skein(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  args.insert(args.begin(), RunfilePath("tools/skein"));
  ChildProcess p(args);
  CmdResult r;
  std::optional<int> code = p.Wait(timeout);
  r.code = code.value_or(-1);
  r.out = p.Stdout();
  r.err = p.Stderr();
  return r;
}

Cluster::Cluster(const std::string& model, const std::string& vocab, int stages, int replicas,
                 std::vector<std::string> extra) {
  dir_ = MakeTempDir("cluster");
  std::vector<std::string> args = {"cluster",    "up",
                                   "--model",    model,
                                   "--vocab",    vocab,
                                   "--stages",   std::to_string(stages),
                                   "--replicas", std::to_string(replicas),
                                   "--dir",      dir_,
                                   "--dtype",    "fp32",
                                   "--bin-dir",  BinDir()};
  if (std::find(extra.begin(), extra.end(), "--store") == extra.end()) {
    args.insert(args.end(), {"--store", "memory"});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  CmdResult r = Skein(args);
  EXPECT_EQ(r.code, 0) << r.err;
  router_ = LastLine(r.out);
  channel_ = grpc::CreateChannel(router_, grpc::InsecureChannelCredentials());
  stub_ = v1::RouterService::NewStub(channel_);
  // The router serves once one replica answers; wait until it has seen them all (`replicas`
  // for each model: one, plus each further --model in `extra`).
  const int models = 1 + static_cast<int>(std::count(extra.begin(), extra.end(), "--model"));
  const double expected = static_cast<double>(replicas * models);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (Metric("router", "skein_router_replicas_healthy") < expected &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(Metric("router", "skein_router_replicas_healthy"), expected);
}

Cluster::~Cluster() {
  CmdResult r = Skein({"cluster", "down", "--dir", dir_, "--drain-seconds", "5"});
  EXPECT_EQ(r.code, 0) << r.err;
}

std::string Cluster::BinDir() {
  // RunfilePath("tools/skein") is <root>/tools/skein; the services sit under <root>.
  return std::filesystem::path(RunfilePath("tools/skein")).parent_path().parent_path().string();
}

nlohmann::json Cluster::Processes() const {
  std::ifstream in(dir_ + "/cluster.json");
  return nlohmann::json::parse(in)["processes"];
}

std::string Cluster::Address(const std::string& process) const {
  std::ifstream in(dir_ + "/" + process + ".ready");
  return nlohmann::json::parse(in)["grpc"].get<std::string>();
}

double Cluster::Metric(const std::string& process, const std::string& name) const {
  std::ifstream in(dir_ + "/" + process + ".ready");
  const int port = nlohmann::json::parse(in)["metrics_port"].get<int>();
  std::optional<std::string> body = HttpGet(port, "/metrics");
  double sum = 0;
  if (!body) return -1;
  std::istringstream lines(*body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

Generated Generate(v1::RouterService::Stub& stub, const v1::GenerateRequest& request,
                   std::chrono::milliseconds deadline, const std::string& owner) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  if (!owner.empty()) ctx.AddMetadata("x-skein-owner", owner);
  auto reader = stub.Generate(&ctx, request);
  Generated g;
  v1::GenerateResponse chunk;
  while (reader->Read(&chunk)) {
    ++g.chunks;
    g.tokens.insert(g.tokens.end(), chunk.token_ids().begin(), chunk.token_ids().end());
    g.text += chunk.text();
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      g.reason = chunk.finish_reason();
      g.session_position = chunk.session_position();
    }
  }
  g.status = reader->Finish();
  return g;
}

v1::GenerateRequest TokenRequest(const std::vector<uint32_t>& prompt, uint32_t max_tokens) {
  v1::GenerateRequest r;
  for (uint32_t t : prompt) r.mutable_prompt()->mutable_tokens()->add_ids(t);
  r.mutable_stop()->set_max_tokens(max_tokens);
  r.mutable_stop()->set_ignore_eos(true);
  r.set_return_token_ids(true);
  return r;
}

std::string Join(const std::vector<uint32_t>& ids) {
  std::string s;
  for (uint32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

std::vector<uint32_t> EngineGreedy(const std::string& model, const std::vector<uint32_t>& prompt,
                                   int n, const std::string& initial_state) {
  std::vector<std::string> args = {
      "generate",        "--model", model,  "--prompt-tokens", Join(prompt), "--max-tokens",
      std::to_string(n), "--dtype", "fp32", "--threads",       "1"};
  if (!initial_state.empty()) args.insert(args.end(), {"--initial-state", initial_state});
  CmdResult r = Skein(args);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out)["tokens"].get<std::vector<uint32_t>>();
}

}  // namespace skein::testing
