// The public gRPC API from another language: Node.js with @grpc/grpc-js and
// @grpc/proto-loader on the repository's own .proto files (tests/node/grpc_client.mjs) —
// streaming generation, a unary completion, a session's turns, fork and delete, an owner
// check, an unknown session, and a stream the client cancels — against a real cluster.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
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
using ::skein::testing::EngineGreedy;
using Json = nlohmann::json;
using namespace std::chrono_literals;

std::vector<uint32_t> Ids(const Json& j) { return j.get<std::vector<uint32_t>>(); }

TEST(NodeGrpcTest, TheContractHoldsFromNodeJs) {
  std::string why;
  const std::string model =
      ::skein::testing::FindTestData("golden/rwkv7/small-l4-c256-v1024.pth", &why);
  const std::string vocab = ::skein::testing::FindTestData("data/rwkv_vocab_v20230424.txt", &why);
  if (model.empty() || vocab.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
  const std::string root = ::skein::testing::SourceRoot();
  if (root.empty() || !std::filesystem::exists(root + "/tests/node/node_modules/@grpc/grpc-js")) {
    SKEIN_MISSING_PREREQUISITE()
        << "@grpc/grpc-js is not installed (tools/setup/install_node_deps.sh)";
  }
  const std::string node_binary = ::skein::testing::FindOnPath("node");
  if (node_binary.empty()) SKEIN_MISSING_PREREQUISITE() << "node not found on PATH";

  Cluster c(model, vocab, 1, 1);
  ChildProcess node(
      {node_binary, root + "/tests/node/grpc_client.mjs", c.router(), root + "/proto"});
  ASSERT_EQ(node.Wait(180s).value_or(-1), 0) << node.Stderr();
  Json out = Json::parse(node.Stdout());

  EXPECT_EQ(out["models"], Json::array({"small-l4-c256-v1024"}));
  const std::vector<uint32_t> greedy = EngineGreedy(model, {1, 2, 3, 4, 5}, 8);
  EXPECT_EQ(Ids(out["generate"]["tokens"]), greedy);
  EXPECT_EQ(out["generate"]["finish_reason"], "FINISH_REASON_LENGTH");
  EXPECT_EQ(out["generate"]["code"], 0);
  EXPECT_EQ(Ids(out["complete"]["tokens"]), greedy);

  // Session turns continue the conversation.
  EXPECT_EQ(out["create"]["session_id"], "from-node");
  EXPECT_EQ(out["create"]["owner"], "node");
  const std::vector<uint32_t> t1 = Ids(out["turn1"]["tokens"]);
  EXPECT_EQ(t1, EngineGreedy(model, {7, 8, 9}, 4));
  std::vector<uint32_t> history = {7, 8, 9};
  history.insert(history.end(), t1.begin(), t1.end());
  history.insert(history.end(), {10, 11});
  EXPECT_EQ(Ids(out["turn2"]["tokens"]), EngineGreedy(model, history, 4));
  EXPECT_EQ(out["turn2"]["session_position"], 13);
  EXPECT_EQ(out["get"]["position"], 13);
  EXPECT_EQ(out["fork"]["forked_from"], "from-node");
  EXPECT_EQ(out["other_owner"]["code"], 7);  // PERMISSION_DENIED
  EXPECT_EQ(out["missing"]["code"], 5);      // NOT_FOUND
  EXPECT_EQ(out["deleted"]["existed"], true);

  // A stream the client cancels ends with CANCELLED, long before its 60,000 tokens.
  EXPECT_EQ(out["cancelled"]["code"], 1);
  EXPECT_GE(out["cancelled"]["tokens"].size(), 5u);
  EXPECT_LT(out["cancelled"]["tokens"].size(), 1000u);
}

}  // namespace
}  // namespace skein
