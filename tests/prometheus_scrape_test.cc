// A real Prometheus server scrapes every Skein binary's /metrics: the targets come up and the
// per-RPC series can be queried through Prometheus' own API, as an operator would.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using namespace std::chrono_literals;

struct Service {
  std::string name;
  std::unique_ptr<ChildProcess> process;
  std::string grpc_address;
  int metrics_port = 0;
};

// Percent-encodes a PromQL query for a URL.
TEST(PrometheusScrapeTest, PrometheusScrapesEveryServiceAndSeesRpcSeries) {
  if (std::system("command -v prometheus >/dev/null 2>&1") != 0) {
    SKEIN_MISSING_PREREQUISITE()
        << "the prometheus server is not installed (tools/setup/install_deps.sh)";
  }
  SKEIN_REQUIRE_TEST_DATA(vocab, "data/rwkv_vocab_v20230424.txt");
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/tiny-l2-c128-v256.pth");
  std::string dir = testing::MakeTempDir("prom");

  std::vector<Service> services;
  for (const auto& [name, path] : std::vector<std::pair<std::string, std::string>>{
           {"router", "services/router/skein-router"},
           {"tokenizer", "services/tokenizer/skein-tokenizer"},
           {"state_store", "services/state_store/skein-state-store"},
           {"worker", "services/worker/skein-worker"}}) {
    Service s;
    s.name = name;
    std::string ready = dir + "/" + name + ".ready";
    std::vector<std::string> argv = {testing::RunfilePath(path),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--metrics-port",
                                     "0",
                                     "--ready-file",
                                     ready};
    if (name == "tokenizer") argv.insert(argv.end(), {"--vocab", vocab});
    if (name == "worker") argv.insert(argv.end(), {"--model", model, "--threads", "1"});
    if (name == "router")
      argv.insert(argv.end(), {"--pipeline", "127.0.0.1:1", "--require-pipeline=false"});
    s.process = std::make_unique<ChildProcess>(argv);
    std::string content = testing::WaitForFile(ready, 30s);
    ASSERT_FALSE(content.empty()) << name << " did not start: " << s.process->Stderr();
    auto json = nlohmann::json::parse(content);
    s.grpc_address = json["grpc"];
    s.metrics_port = json["metrics_port"];
    services.push_back(std::move(s));
  }

  // One health check per service, so each has a non-zero per-RPC series.
  for (const Service& s : services) {
    auto channel = grpc::CreateChannel(s.grpc_address, grpc::InsecureChannelCredentials());
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel)
                    ->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp)
                    .ok());
  }

  int prom_port = testing::PickUnusedPort();
  std::string config = dir + "/prometheus.yml";
  {
    std::ofstream out(config);
    out << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "scrape_configs:\n  - job_name: skein\n    static_configs:\n";
    for (const Service& s : services) {
      out << "      - targets: ['127.0.0.1:" << s.metrics_port << "']\n"
          << "        labels: {skein: '" << s.name << "'}\n";
    }
  }
  ChildProcess prometheus({"/usr/bin/prometheus", "--config.file=" + config,
                           "--storage.tsdb.path=" + dir + "/tsdb",
                           "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)});

  auto query = [&](const std::string& promql) -> nlohmann::json {
    auto body =
        testing::HttpGet(prom_port, "/api/v1/query?query=" + ::skein::testing::UrlEncode(promql));
    if (!body) return nlohmann::json();
    auto json = nlohmann::json::parse(*body, nullptr, false);
    if (json.is_discarded() || json["status"] != "success") return nlohmann::json();
    return json["data"]["result"];
  };

  // Wait (bounded) until Prometheus has scraped all four targets successfully.
  nlohmann::json up;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    up = query("sum(up{job=\"skein\"})");
    if (up.is_array() && up.size() == 1 && up[0]["value"][1] == "4") break;
    ASSERT_TRUE(prometheus.Running()) << prometheus.Stderr();
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_TRUE(up.is_array() && up.size() == 1) << up.dump() << "\n" << prometheus.Stderr();
  EXPECT_EQ(up[0]["value"][1], "4");

  // The health check each service answered is visible per service, method and code.
  nlohmann::json checks =
      query("skein_grpc_server_handled_total{method=\"/grpc.health.v1.Health/Check\",code=\"OK\"}");
  ASSERT_TRUE(checks.is_array());
  std::vector<std::string> seen;
  for (const auto& series : checks) {
    if (series["value"][1] == "1") seen.push_back(series["metric"]["service"]);
  }
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("skein-router", "skein-tokenizer",
                                                    "skein-state-store", "skein-worker"));
  nlohmann::json cpu = query("process_cpu_seconds_total");
  EXPECT_TRUE(cpu.is_array() && cpu.size() == 4) << cpu.dump();

  prometheus.Signal(SIGTERM);
  prometheus.Wait(20s);
  for (Service& s : services) {
    s.process->Signal(SIGTERM);
    EXPECT_EQ(s.process->Wait(20s), 0) << s.name;
  }
}

}  // namespace
}  // namespace skein
