// The OpenAI-compatible HTTP API's request and response shapes (docs/api.md, "OpenAI-compatible
// HTTP"), as pure functions: request JSON -> GenerateRequest, the RWKV World chat format
// (spec §9.3), errors in OpenAI's JSON shape with their HTTP codes. No I/O; thread-safe.
#ifndef SKEIN_SERVICES_ROUTER_OPENAI_FORMAT_H_
#define SKEIN_SERVICES_ROUTER_OPENAI_FORMAT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "skein/v1/router.pb.h"

namespace skein::router {

enum class OpenAiEndpoint { kCompletions, kChatCompletions };

// A request, as the router will run it, plus what shapes the answer.
struct OpenAiRequest {
  v1::GenerateRequest generate;
  std::string model;  // as the client named it (echoed back)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  // The legacy completions API asks for `logprobs: N` (top N); chat for `logprobs: true` with
  // `top_logprobs: N`.
  uint32_t top_logprobs = 0;
};

// One message's text cleaned as spec §9.3 says: "\r\n" -> "\n", runs of newlines -> one "\n",
// surrounding whitespace stripped.
std::string CleanChatMessage(const std::string& text);

// "System: ...\n\nUser: ...\n\nAssistant: ...\n\nUser: ...\n\nAssistant:" from OpenAI
// `messages` (roles system, developer (as system), user, assistant; content a string or an
// array of text parts). INVALID_ARGUMENT for an empty list, an unknown role, non-text content.
// A session's later turn sends only its new messages: the text then continues the session's
// conversation, whose last reply ended with the "\n\n" that stopped it.
absl::StatusOr<std::string> FormatChatPrompt(const nlohmann::json& messages);

// Parses and checks a request body for `endpoint`. INVALID_ARGUMENT names the field for what is
// malformed and for what Skein does not do (n > 1, best_of > 1, echo, suffix, tools, functions,
// response_format other than text, logprobs over the limits), never silently ignored.
absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(const nlohmann::json& body,
                                                 OpenAiEndpoint endpoint);

// The HTTP status for a gRPC/absl code, as OpenAI's API uses them.
int HttpStatusFor(absl::StatusCode code);
// {"error": {"message", "type", "param", "code"}}.
nlohmann::json OpenAiError(const absl::Status& status);

// The OpenAI name of a finish reason ("stop", "length").
std::string FinishReasonName(v1::FinishReason reason);

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_OPENAI_FORMAT_H_
