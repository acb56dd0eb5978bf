#include "services/router/openai_format.h"

#include "gtest/gtest.h"

namespace skein::router {
namespace {

using Json = nlohmann::json;

TEST(CleanChatMessage, FollowsTheWorldChatRules) {
  EXPECT_EQ(CleanChatMessage("  hi\r\nthere\n\n\nfriend \n"), "hi\nthere\nfriend");
  EXPECT_EQ(CleanChatMessage("\n\n"), "");
  EXPECT_EQ(CleanChatMessage("a\r\n\r\nb"), "a\nb");
}

TEST(FormatChatPrompt, RolesTurnsAndTheOpenAssistantTurn) {
  absl::StatusOr<std::string> p = FormatChatPrompt(Json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi\n\nthere"},
    {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
    {"role": "user", "content": "Bye"}])"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p,
            "System: Be brief.\n\nUser: Hi\nthere\n\nAssistant: Hello.\n\nUser: Bye\n\n"
            "Assistant:");
  EXPECT_EQ(FormatChatPrompt(Json::array()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FormatChatPrompt(Json::parse(R"([{"role": "tool", "content": "x"}])")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      FormatChatPrompt(Json::parse(R"([{"role": "user", "content": [{"type": "image_url"}]}])"))
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ParseOpenAiRequest, MapsEveryParameter) {
  absl::StatusOr<OpenAiRequest> r = ParseOpenAiRequest(Json::parse(R"({
      "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7,
      "temperature": 0.5, "top_p": 0.9, "presence_penalty": 0.1, "frequency_penalty": -0.2,
      "seed": 42, "stop": ["END", "\n\nUser:"], "logprobs": true, "top_logprobs": 3,
      "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
      "logit_bias": {"11": -100}, "session_id": "chat-1", "initial_state": "tuned"})"),
                                                       OpenAiEndpoint::kChatCompletions);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::GenerateRequest& g = r->generate;
  EXPECT_EQ(g.model(), "m");
  EXPECT_EQ(g.prompt().text(), "User: hi\n\nAssistant:");
  EXPECT_EQ(g.stop().max_tokens(), 7u);
  EXPECT_FLOAT_EQ(g.sampling().temperature(), 0.5f);
  EXPECT_FLOAT_EQ(g.sampling().top_p(), 0.9f);
  EXPECT_FLOAT_EQ(g.sampling().presence_penalty(), 0.1f);
  EXPECT_FLOAT_EQ(g.sampling().frequency_penalty(), -0.2f);
  EXPECT_EQ(g.sampling().seed(), 42u);
  EXPECT_FLOAT_EQ(g.sampling().logit_bias().at(11), -100.0f);
  // The chat turn ends at "\n\n", and the caller's stops come too.
  ASSERT_EQ(g.stop().stop_sequences_size(), 3);
  EXPECT_EQ(g.stop().stop_sequences(0), "\n\n");
  EXPECT_TRUE(g.logprobs());
  EXPECT_EQ(g.top_logprobs(), 3u);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(g.session_id(), "chat-1");
  EXPECT_EQ(g.initial_state(), "tuned");
}

TEST(ParseOpenAiRequest, CompletionsDefaultsAndPromptForms) {
  absl::StatusOr<OpenAiRequest> r =
      ParseOpenAiRequest(Json::parse(R"({"prompt": "Once"})"), OpenAiEndpoint::kCompletions);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->generate.prompt().text(), "Once");
  EXPECT_EQ(r->generate.stop().max_tokens(), 16u);              // OpenAI's default
  EXPECT_FLOAT_EQ(r->generate.sampling().temperature(), 1.0f);  // OpenAI's default
  EXPECT_EQ(r->generate.stop().stop_sequences_size(), 0);
  r = ParseOpenAiRequest(Json::parse(R"({"prompt": [1, 2, 3], "logprobs": 2})"),
                         OpenAiEndpoint::kCompletions);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->generate.prompt().tokens().ids_size(), 3);
  EXPECT_EQ(r->top_logprobs, 2u);
  r = ParseOpenAiRequest(Json::parse(R"({"prompt": ["only one"]})"), OpenAiEndpoint::kCompletions);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->generate.prompt().text(), "only one");
}

TEST(ParseOpenAiRequest, WhatSkeinDoesNotDoIsRefusedByName) {
  const char* bad[] = {
      R"({"prompt": "x", "n": 2})",
      R"({"prompt": "x", "best_of": 3})",
      R"({"prompt": "x", "echo": true})",
      R"({"prompt": "x", "suffix": "y"})",
      R"({"prompt": ["a", "b"]})",
      R"({"prompt": "x", "temperature": 3})",
      R"({"prompt": "x", "top_p": 0})",
      R"({"prompt": "x", "max_tokens": 0})",
      R"({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})",
      R"({"prompt": "x", "logprobs": 6})",
      R"({"prompt": "x", "stream_options": {"include_usage": true}})",
      R"({"prompt": "x", "tools": [{"type": "function"}]})",
      R"({"prompt": "x", "response_format": {"type": "json_object"}})",
      R"({"prompt": "x", "logit_bias": {"abc": 1}})",
      R"({"prompt": "x", "initial_state": 3})",
      R"({"nothing": true})",
  };
  for (const char* body : bad) {
    absl::StatusOr<OpenAiRequest> r =
        ParseOpenAiRequest(Json::parse(body), OpenAiEndpoint::kCompletions);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << body;
  }
  absl::StatusOr<OpenAiRequest> r = ParseOpenAiRequest(
      Json::parse(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})"),
      OpenAiEndpoint::kChatCompletions);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OpenAiError, ShapeAndHttpCodes) {
  Json e = OpenAiError(absl::InvalidArgumentError("n: only n = 1 is supported"));
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "n");
  EXPECT_EQ(e["error"]["message"], "n: only n = 1 is supported");
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(OpenAiError(absl::NotFoundError("model 'x' is not served"))["error"]["code"],
            "not_found");
  EXPECT_EQ(FinishReasonName(v1::FINISH_REASON_LENGTH), "length");
  EXPECT_EQ(FinishReasonName(v1::FINISH_REASON_END_OF_TEXT), "stop");
}

}  // namespace
}  // namespace skein::router
