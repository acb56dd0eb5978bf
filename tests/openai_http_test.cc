// The router's OpenAI-compatible HTTP front on a real cluster (`skein cluster up`, a model with
// the World vocabulary's 65536 rows): with curl (non-streamed and server-sent events, errors
// in OpenAI's shape) and with the real `openai` npm client (tests/node/openai_client.mjs). Greedy
// answers through HTTP equal the same request through gRPC.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "skein/v1/router.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/serving_cluster.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using ::skein::testing::Cluster;
using ::skein::testing::Skein;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kVocab[] = "data/rwkv_vocab_v20230424.txt";

struct Http {
  int code = 0;
  std::string body;
};

// curl, as a user would call it: the status code on the last line of the output.
Http Curl(const std::string& url, const std::string& body = "", bool post = true) {
  std::vector<std::string> argv = {
      ::skein::testing::FindOnPath("curl"), "-sS", "-N", "-w", "\n%{http_code}", url};
  if (post) {
    argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
  }
  ChildProcess p(argv);
  Http h;
  if (p.Wait(120s).value_or(-1) != 0) return h;
  std::string out = p.Stdout();
  const size_t nl = out.rfind('\n');
  h.code = std::atoi(out.substr(nl + 1).c_str());
  h.body = out.substr(0, nl);
  return h;
}

class OpenAiHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    vocab_ = ::skein::testing::FindTestData(kVocab, &why);
    if (vocab_.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
    if (::skein::testing::FindOnPath("curl").empty())
      SKEIN_MISSING_PREREQUISITE() << "curl not found on PATH";
    model_ = ::skein::testing::MakeTempDir("model") + "/random.pth";
    auto r = Skein({"make-model", "--layers", "2", "--embd", "128", "--vocab", "65536", "--seed",
                    "5", "--out", model_});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static std::string HttpBase(const Cluster& c) {
    for (const auto& p : c.Processes()) {
      if (p["role"] == "router") return "http://" + p["http_address"].get<std::string>();
    }
    return "";
  }
  std::string vocab_, model_;
};

TEST_F(OpenAiHttpTest, CurlGetsCompletionsStreamsAndErrorsInOpenAisShape) {
  Cluster c(model_, vocab_, 1, 1);
  const std::string base = HttpBase(c);
  ASSERT_FALSE(base.empty());

  Http models = Curl(base + "/v1/models", "", /*post=*/false);
  ASSERT_EQ(models.code, 200) << models.body;
  EXPECT_EQ(Json::parse(models.body)["data"][0]["id"], "random");

  const std::string request = R"({"model": "random", "messages": [{"role": "user",
      "content": "Hi there"}], "max_tokens": 10, "temperature": 0})";
  Http whole = Curl(base + "/v1/chat/completions", request);
  ASSERT_EQ(whole.code, 200) << whole.body;
  Json j = Json::parse(whole.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string content = j["choices"][0]["message"]["content"];
  EXPECT_GT(j["usage"]["completion_tokens"].get<int>(), 0);
  EXPECT_EQ(j["usage"]["total_tokens"].get<int>(),
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());

  // The same through gRPC: the World chat format, greedy, stopping at "\n\n".
  v1::GenerateRequest g;
  g.mutable_prompt()->set_text("User: Hi there\n\nAssistant:");
  g.mutable_sampling()->set_temperature(0);
  g.mutable_stop()->set_max_tokens(10);
  g.mutable_stop()->add_stop_sequences("\n\n");
  grpc::ClientContext ctx;
  v1::CompleteResponse direct;
  ASSERT_TRUE(c.stub().Complete(&ctx, g, &direct).ok());
  std::string expected = direct.text();
  if (!expected.empty() && expected[0] == ' ') expected.erase(0, 1);
  EXPECT_EQ(content, expected);

  // Streamed: server-sent events whose deltas add up to the same text, then [DONE].
  std::string streaming = request;
  streaming.insert(streaming.rfind('}'),
                   R"(, "stream": true, "stream_options": {"include_usage": true})");
  Http sse = Curl(base + "/v1/chat/completions", streaming);
  ASSERT_EQ(sse.code, 200) << sse.body;
  std::string joined;
  bool saw_usage = false, saw_done = false, saw_finish = false;
  std::istringstream lines(sse.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("data: ", 0), 0u) << line;
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      saw_done = true;
      continue;
    }
    ASSERT_FALSE(saw_done) << "data after [DONE]";
    Json event = Json::parse(data);
    EXPECT_EQ(event["object"], "chat.completion.chunk");
    if (event["usage"].is_object()) saw_usage = true;
    for (const Json& choice : event["choices"]) {
      joined += choice["delta"].value("content", "");
      if (!choice["finish_reason"].is_null()) saw_finish = true;
    }
  }
  EXPECT_TRUE(saw_done && saw_usage && saw_finish);
  EXPECT_EQ(joined, content);

  // Errors: OpenAI's JSON shape and HTTP codes.
  Http bad_json = Curl(base + "/v1/chat/completions", "{not json");
  EXPECT_EQ(bad_json.code, 400);
  EXPECT_EQ(Json::parse(bad_json.body)["error"]["type"], "invalid_request_error");
  Http n2 = Curl(base + "/v1/completions", R"({"prompt": "x", "n": 2})");
  EXPECT_EQ(n2.code, 400);
  EXPECT_EQ(Json::parse(n2.body)["error"]["param"], "n");
  Http tools = Curl(base + "/v1/chat/completions",
                    R"({"messages": [{"role": "user", "content": "x"}], "tools": []})");
  EXPECT_EQ(tools.code, 400);
  Http unknown = Curl(base + "/v1/completions", R"({"model": "nope", "prompt": "x"})");
  EXPECT_EQ(unknown.code, 404) << unknown.body;
  EXPECT_EQ(Json::parse(unknown.body)["error"]["code"], "not_found");
  Http no_route = Curl(base + "/v1/embeddings", "{}");
  EXPECT_EQ(no_route.code, 404);

  // Skein's session extension: a chat continues from its stored state.
  ASSERT_EQ(Curl(base + "/v1/chat/completions",
                 R"({"messages": [{"role": "user", "content": "x"}], "session_id": "missing"})")
                .code,
            404);
}

TEST_F(OpenAiHttpTest, TheOpenAiNpmClientWorksUnchanged) {
  const std::string root = ::skein::testing::SourceRoot();
  const std::string script = root + "/tests/node/openai_client.mjs";
  if (root.empty() || !std::filesystem::exists(root + "/tests/node/node_modules/openai")) {
    SKEIN_MISSING_PREREQUISITE()
        << "the openai npm package is not installed (tools/setup/install_node_deps.sh)";
  }
  const std::string node_binary = ::skein::testing::FindOnPath("node");
  if (node_binary.empty()) SKEIN_MISSING_PREREQUISITE() << "node not found on PATH";
  Cluster c(model_, vocab_, 1, 1);
  ChildProcess node({node_binary, script, HttpBase(c) + "/v1"});
  ASSERT_EQ(node.Wait(180s).value_or(-1), 0) << node.Stderr();
  Json out = Json::parse(node.Stdout());
  EXPECT_EQ(out["models"], Json::array({"random"}));
  EXPECT_EQ(out["chat"]["object"], "chat.completion");
  EXPECT_EQ(out["chat"]["role"], "assistant");
  EXPECT_GT(out["chat"]["usage"]["completion_tokens"].get<int>(), 0);
  // Streaming gives the same greedy text, in several chunks, with usage at the end.
  EXPECT_EQ(out["chat_stream"]["content"], out["chat"]["content"]);
  EXPECT_GT(out["chat_stream"]["chunks"].get<int>(), 1);
  EXPECT_EQ(out["chat_stream"]["finish_reason"], out["chat"]["finish_reason"]);
  EXPECT_EQ(out["chat_stream"]["usage"]["completion_tokens"],
            out["chat"]["usage"]["completion_tokens"]);
  // Completions with log-probabilities: one entry per token, two alternatives each.
  EXPECT_EQ(out["completion"]["logprob_tokens"], out["completion"]["usage"]["completion_tokens"]);
  EXPECT_EQ(out["completion"]["top_logprobs"], 2);
  EXPECT_EQ(out["completion_stream"]["text"], out["completion"]["text"]);
  // What is not supported is a clear 400 the client raises; an unknown model a 404.
  EXPECT_EQ(out["refused"]["status"], 400);
  EXPECT_EQ(out["refused"]["param"], "n");
  EXPECT_EQ(out["unknown_model"]["status"], 404);
}

}  // namespace
}  // namespace skein
