// A real Prometheus, configured with deploy/prometheus (its scrape config and alert rules),
// scrapes a running cluster under traffic (stateless requests, a long prompt for the prefix
// cache, a session turn): every process is up, the serving series are there with the values
// the traffic implies, every query of the Grafana dashboard (deploy/grafana) evaluates, and
// the alert rules are loaded and quiet.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/serving_cluster.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using ::skein::testing::Cluster;
using ::skein::testing::Generate;
using ::skein::testing::TokenRequest;
using Json = nlohmann::json;
using namespace std::chrono_literals;

TEST(PrometheusClusterTest, DeployConfigScrapesAClusterAndEveryDashboardQueryEvaluates) {
  std::string why;
  const std::string model =
      ::skein::testing::FindTestData("golden/rwkv7/small-l4-c256-v1024.pth", &why);
  const std::string vocab = ::skein::testing::FindTestData("data/rwkv_vocab_v20230424.txt", &why);
  if (model.empty() || vocab.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
  if (!std::filesystem::exists("/usr/bin/prometheus")) {
    SKEIN_MISSING_PREREQUISITE()
        << "the prometheus server is not installed (tools/setup/install_deps.sh)";
  }
  const std::string root = ::skein::testing::SourceRoot();
  ASSERT_FALSE(root.empty());

  Cluster c(model, vocab, 2, 1);
  // Traffic: stateless requests, one long enough for the prefix cache, twice; a session turn.
  std::vector<uint32_t> prompt;
  for (uint32_t i = 0; i < 300; ++i) prompt.push_back(1 + (i * 37) % 1000);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(Generate(c.stub(), TokenRequest(prompt, 8)).status.ok());
  ASSERT_TRUE(Generate(c.stub(), TokenRequest({1, 2, 3}, 16)).status.ok());
  {
    grpc::ClientContext ctx;
    v1::CreateSessionRequest create;
    create.set_session_id("watched");
    v1::Session session;
    ASSERT_TRUE(c.stub().CreateSession(&ctx, create, &session).ok());
    v1::GenerateRequest turn = TokenRequest({4, 5, 6}, 6);
    turn.set_session_id("watched");
    ASSERT_TRUE(Generate(c.stub(), turn).status.ok());
  }

  // deploy/prometheus as shipped, with the cluster's metrics ports as file-discovered targets
  // and a 1 s scrape interval.
  const std::string dir = ::skein::testing::MakeTempDir("prometheus");
  std::ifstream in(root + "/deploy/prometheus/prometheus.yml");
  std::string config((std::istreambuf_iterator<char>(in)), {});
  config = std::regex_replace(config, std::regex("scrape_interval: 15s"), "scrape_interval: 1s");
  config =
      std::regex_replace(config, std::regex("evaluation_interval: 15s"), "evaluation_interval: 1s");
  config = std::regex_replace(config, std::regex("refresh_interval: 30s"), "refresh_interval: 1s");
  std::ofstream(dir + "/prometheus.yml") << config;
  std::filesystem::copy_file(root + "/deploy/prometheus/alerts.yml", dir + "/alerts.yml");
  std::filesystem::create_directories(dir + "/targets");
  Json targets = Json::array();
  int processes = 0;
  for (const auto& p : c.Processes()) {
    std::ifstream ready(c.dir() + "/" + p["name"].get<std::string>() + ".ready");
    const int port = Json::parse(ready)["metrics_port"].get<int>();
    targets.push_back(
        {{"targets", {"127.0.0.1:" + std::to_string(port)}}, {"labels", {{"process", p["name"]}}}});
    ++processes;
  }
  std::ofstream(dir + "/targets/cluster.json") << targets.dump();

  const int port = ::skein::testing::PickUnusedPort();
  ChildProcess prometheus({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                           "--storage.tsdb.path=" + dir + "/tsdb",
                           "--web.listen-address=127.0.0.1:" + std::to_string(port)});
  auto api = [&](const std::string& path) -> Json {
    auto body = ::skein::testing::HttpGet(port, path);
    if (!body) return Json();
    Json j = Json::parse(*body, nullptr, false);
    return j.is_discarded() ? Json() : j;
  };
  auto query = [&](const std::string& promql) {
    return api("/api/v1/query?query=" + ::skein::testing::UrlEncode(promql));
  };
  auto scalar = [&](const std::string& promql) {
    Json r = query(promql);
    if (r["status"] != "success" || r["data"]["result"].empty()) return -1.0;
    return std::stod(r["data"]["result"][0]["value"][1].get<std::string>());
  };

  // Every process up (bounded wait), then a few more scrapes so that rates have two points.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (scalar("sum(up{job=\"skein\"})") != processes &&
         std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(prometheus.Running()) << prometheus.Stderr();
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_EQ(scalar("sum(up{job=\"skein\"})"), processes) << prometheus.Stderr();
  ASSERT_TRUE(Generate(c.stub(), TokenRequest({9, 9, 9}, 20)).status.ok());
  std::this_thread::sleep_for(3s);

  // The series the traffic implies.
  EXPECT_GE(scalar("sum(skein_router_tokens_total{direction=\"out\"})"), 8 + 8 + 16 + 6 + 20);
  EXPECT_EQ(scalar("sum(skein_router_replicas_healthy)"), 1);
  EXPECT_EQ(scalar("sum(skein_router_prefix_cache_lookups_total{result=\"hit\"})"), 1);
  EXPECT_GE(scalar("sum(skein_router_snapshots_total{kind=\"turn\"})"), 1);
  EXPECT_GT(scalar("sum(skein_worker_steps_total{outcome=\"ok\"})"), 0);
  EXPECT_EQ(scalar("count(skein_worker_memory_read_bandwidth_bytes_per_second > 1e8)"), 2);
  EXPECT_GT(scalar("sum(skein_state_store_put_bytes_total)"), 0);

  // Every dashboard query evaluates (at the dashboard's rate window).
  std::ifstream dashboard_file(root + "/deploy/grafana/skein-dashboard.json");
  const Json dashboard = Json::parse(dashboard_file);
  int queries = 0;
  for (const Json& panel : dashboard["panels"]) {
    for (const Json& target : panel["targets"]) {
      const std::string expr = std::regex_replace(target["expr"].get<std::string>(),
                                                  std::regex("\\$__rate_interval"), "1m");
      Json r = query(expr);
      EXPECT_EQ(r["status"], "success") << panel["title"] << ": " << expr << " -> " << r.dump();
      ++queries;
    }
  }
  EXPECT_GE(queries, 12);
  // Stage step time and throughput have data under this traffic.
  EXPECT_GE(scalar("sum(rate(skein_router_tokens_total[1m]))"), 0);
  EXPECT_FALSE(query("histogram_quantile(0.5, sum by (stage, le) "
                     "(rate(skein_worker_step_seconds_bucket[1m])))")["data"]["result"]
                   .empty());

  // The alert rules are loaded, and none fires on a healthy cluster.
  Json rules = api("/api/v1/rules");
  ASSERT_EQ(rules["status"], "success");
  int rule_count = 0;
  for (const Json& group : rules["data"]["groups"]) rule_count += group["rules"].size();
  EXPECT_EQ(rule_count, 8);
  Json alerts = api("/api/v1/alerts");
  EXPECT_TRUE(alerts["data"]["alerts"].empty()) << alerts.dump();

  prometheus.Signal(SIGTERM);
  prometheus.Wait(20s);
}

}  // namespace
}  // namespace skein
