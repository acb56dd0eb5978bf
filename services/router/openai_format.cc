#include "services/router/openai_format.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace skein::router {
namespace {

absl::Status Bad(const std::string& param, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(param, ": ", message));
}

bool IsNumber(const nlohmann::json& j) { return j.is_number() && std::isfinite(j.get<double>()); }

// The text of a message's `content`: a string, or text parts ({"type":"text","text":...}).
absl::StatusOr<std::string> ContentText(const nlohmann::json& content, size_t index) {
  const std::string where = absl::StrCat("messages[", index, "].content");
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return std::string();
  if (!content.is_array()) return Bad(where, "must be a string or an array of text parts");
  std::string text;
  for (const nlohmann::json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part["text"].is_string()) {
      return Bad(where, "only text parts ({\"type\":\"text\",\"text\":...}) are supported");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

std::string CleanChatMessage(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    if (c == '\n' && !out.empty() && out.back() == '\n') continue;
    out.push_back(c);
  }
  const size_t first = out.find_first_not_of(" \t\n");
  if (first == std::string::npos) return "";
  const size_t last = out.find_last_not_of(" \t\n");
  return out.substr(first, last - first + 1);
}

absl::StatusOr<std::string> FormatChatPrompt(const nlohmann::json& messages) {
  if (!messages.is_array() || messages.empty()) {
    return Bad("messages", "must be a non-empty array");
  }
  std::string prompt;
  for (size_t i = 0; i < messages.size(); ++i) {
    const nlohmann::json& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return Bad(absl::StrCat("messages[", i, "]"), "needs a string role");
    }
    const std::string role = m["role"].get<std::string>();
    std::string name;
    if (role == "system" || role == "developer") {
      name = "System";
    } else if (role == "user") {
      name = "User";
    } else if (role == "assistant") {
      name = "Assistant";
    } else {
      return Bad(absl::StrCat("messages[", i, "].role"),
                 absl::StrCat("'", role, "' is not supported (system, user, assistant)"));
    }
    absl::StatusOr<std::string> text = ContentText(m.value("content", nlohmann::json()), i);
    if (!text.ok()) return text.status();
    if (!prompt.empty()) prompt += "\n\n";
    // spec §9.3: "Assistant: reply", "User: text"; turns are separated by "\n\n" only.
    prompt += name + ": " + CleanChatMessage(*text);
  }
  // The reply follows "Assistant:" with no space: the model writes the space itself.
  prompt += "\n\nAssistant:";
  return prompt;
}

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(const nlohmann::json& body,
                                                 OpenAiEndpoint endpoint) {
  if (!body.is_object()) return Bad("body", "must be a JSON object");
  const bool chat = endpoint == OpenAiEndpoint::kChatCompletions;
  OpenAiRequest out;
  v1::GenerateRequest& g = out.generate;
  g.set_return_token_ids(true);
  if (body.contains("model")) {
    if (!body["model"].is_string()) return Bad("model", "must be a string");
    out.model = body["model"].get<std::string>();
    g.set_model(out.model);
  }
  // What Skein does not do is refused, not ignored.
  for (const char* field : {"tools", "tool_choice", "functions", "function_call",
                            "parallel_tool_calls", "audio", "modalities", "prediction"}) {
    if (body.contains(field) && !body[field].is_null()) {
      return Bad(field, "is not supported by Skein");
    }
  }
  if (body.contains("n") && !body["n"].is_null() && body["n"] != 1) {
    return Bad("n", "only n = 1 is supported");
  }
  if (body.contains("best_of") && !body["best_of"].is_null() && body["best_of"] != 1) {
    return Bad("best_of", "only best_of = 1 is supported");
  }
  if (body.value("echo", false)) return Bad("echo", "is not supported");
  if (body.contains("suffix") && !body["suffix"].is_null() && body["suffix"] != "") {
    return Bad("suffix", "is not supported (RWKV does not fill in the middle)");
  }
  if (body.contains("response_format") && !body["response_format"].is_null()) {
    const nlohmann::json& rf = body["response_format"];
    if (!rf.is_object() || rf.value("type", "") != "text") {
      return Bad("response_format", "only {\"type\":\"text\"} is supported");
    }
  }

  // The prompt.
  if (chat) {
    if (!body.contains("messages")) return Bad("messages", "is required");
    absl::StatusOr<std::string> prompt = FormatChatPrompt(body["messages"]);
    if (!prompt.ok()) return prompt.status();
    g.mutable_prompt()->set_text(*prompt);
    // A reply ends where the next turn would begin.
    g.mutable_stop()->add_stop_sequences("\n\n");
  } else {
    if (!body.contains("prompt")) return Bad("prompt", "is required");
    const nlohmann::json& p = body["prompt"];
    if (p.is_string()) {
      g.mutable_prompt()->set_text(p.get<std::string>());
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
      g.mutable_prompt()->set_text(p[0].get<std::string>());
    } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
      for (const nlohmann::json& t : p) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > 0xffffffffLL) {
          return Bad("prompt", "a token list must hold non-negative integers");
        }
        g.mutable_prompt()->mutable_tokens()->add_ids(t.get<uint32_t>());
      }
    } else if (p.is_array()) {
      return Bad("prompt", "only one prompt per request is supported (a string, or token ids)");
    } else {
      return Bad("prompt", "must be a string or an array of token ids");
    }
  }

  // Sampling. OpenAI's defaults: temperature 1, top_p 1.
  v1::SamplingParams* s = g.mutable_sampling();
  s->set_temperature(1.0f);
  if (body.contains("temperature") && !body["temperature"].is_null()) {
    if (!IsNumber(body["temperature"]) || body["temperature"].get<double>() < 0 ||
        body["temperature"].get<double>() > 2) {
      return Bad("temperature", "must be a number in [0, 2]");
    }
    s->set_temperature(body["temperature"].get<float>());
  }
  if (body.contains("top_p") && !body["top_p"].is_null()) {
    if (!IsNumber(body["top_p"]) || body["top_p"].get<double>() <= 0 ||
        body["top_p"].get<double>() > 1) {
      return Bad("top_p", "must be a number in (0, 1]");
    }
    s->set_top_p(body["top_p"].get<float>());
  }
  for (const char* penalty : {"presence_penalty", "frequency_penalty"}) {
    if (!body.contains(penalty) || body[penalty].is_null()) continue;
    if (!IsNumber(body[penalty]) || std::abs(body[penalty].get<double>()) > 2) {
      return Bad(penalty, "must be a number in [-2, 2]");
    }
    if (std::string(penalty) == "presence_penalty") {
      s->set_presence_penalty(body[penalty].get<float>());
    } else {
      s->set_frequency_penalty(body[penalty].get<float>());
    }
  }
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) return Bad("seed", "must be an integer");
    s->set_seed(static_cast<uint64_t>(body["seed"].get<int64_t>()));
  }
  if (body.contains("logit_bias") && !body["logit_bias"].is_null()) {
    if (!body["logit_bias"].is_object()) return Bad("logit_bias", "must map token ids to numbers");
    for (const auto& [id, bias] : body["logit_bias"].items()) {
      char* end = nullptr;
      const unsigned long token = std::strtoul(id.c_str(), &end, 10);
      if (id.empty() || *end != '\0' || !IsNumber(bias) || std::abs(bias.get<double>()) > 100) {
        return Bad("logit_bias",
                   absl::StrCat("entry '", id, "' must be a token id -> [-100, 100]"));
      }
      (*s->mutable_logit_bias())[static_cast<uint32_t>(token)] = bias.get<float>();
    }
  }

  // Length and stops.
  const char* max_field =
      chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (body.contains(max_field) && !body[max_field].is_null()) {
    if (!body[max_field].is_number_integer() || body[max_field].get<int64_t>() < 1) {
      return Bad(max_field, "must be a positive integer");
    }
    g.mutable_stop()->set_max_tokens(
        static_cast<uint32_t>(std::min<int64_t>(body[max_field].get<int64_t>(), 0xffffffffLL)));
  } else if (!chat) {
    g.mutable_stop()->set_max_tokens(16);  // the completions API's default
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const nlohmann::json& stop = body["stop"];
    std::vector<std::string> stops;
    if (stop.is_string()) {
      stops.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 4) {
      for (const nlohmann::json& x : stop) {
        if (!x.is_string()) return Bad("stop", "must be a string or up to 4 strings");
        stops.push_back(x.get<std::string>());
      }
    } else {
      return Bad("stop", "must be a string or up to 4 strings");
    }
    for (const std::string& x : stops) {
      if (!x.empty()) g.mutable_stop()->add_stop_sequences(x);
    }
  }

  // Log-probabilities.
  if (chat) {
    out.logprobs = body.value("logprobs", false);
    if (body.contains("top_logprobs") && !body["top_logprobs"].is_null()) {
      if (!body["top_logprobs"].is_number_integer() || body["top_logprobs"].get<int>() < 0 ||
          body["top_logprobs"].get<int>() > 20) {
        return Bad("top_logprobs", "must be an integer in [0, 20]");
      }
      if (!out.logprobs) return Bad("top_logprobs", "needs logprobs: true");
      out.top_logprobs = body["top_logprobs"].get<uint32_t>();
    }
  } else if (body.contains("logprobs") && !body["logprobs"].is_null()) {
    if (!body["logprobs"].is_number_integer() || body["logprobs"].get<int>() < 0 ||
        body["logprobs"].get<int>() > 5) {
      return Bad("logprobs", "must be an integer in [0, 5]");
    }
    out.logprobs = true;
    out.top_logprobs = body["logprobs"].get<uint32_t>();
  }
  g.set_logprobs(out.logprobs);
  g.set_top_logprobs(out.top_logprobs);

  // Streaming.
  out.stream = body.value("stream", false);
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    if (!out.stream) return Bad("stream_options", "needs stream: true");
    out.include_usage = body["stream_options"].value("include_usage", false);
  }

  // Skein's extension: continue a stored session instead of re-reading the conversation.
  if (body.contains("session_id") && !body["session_id"].is_null()) {
    if (!body["session_id"].is_string()) return Bad("session_id", "must be a string");
    g.set_session_id(body["session_id"].get<std::string>());
  }
  // And another: start a stateless request from a named initial state (ListModels lists them).
  if (body.contains("initial_state") && !body["initial_state"].is_null()) {
    if (!body["initial_state"].is_string()) return Bad("initial_state", "must be a string");
    g.set_initial_state(body["initial_state"].get<std::string>());
  }
  if (body.contains("user") && !body["user"].is_null() && !body["user"].is_string()) {
    return Bad("user", "must be a string");
  }
  return out;
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

nlohmann::json OpenAiError(const absl::Status& status) {
  std::string type = "server_error";
  std::string code;
  const int http = HttpStatusFor(status.code());
  if (http == 400) type = "invalid_request_error";
  if (http == 401) type = "authentication_error";
  if (http == 403) type = "permission_error";
  if (http == 404) {
    type = "invalid_request_error";
    code = "not_found";
  }
  if (http == 409) type = "conflict_error";
  if (http == 429) {
    type = "rate_limit_error";
    code = "rate_limit_exceeded";
  }
  std::string message(status.message());
  nlohmann::json param = nullptr;
  // Messages of ParseOpenAiRequest start with the parameter's name.
  if (http == 400) {
    const size_t colon = message.find(": ");
    if (colon != std::string::npos && message.find(' ') > colon) param = message.substr(0, colon);
  }
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param},
            {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}}}};
}

std::string FinishReasonName(v1::FinishReason reason) {
  return reason == v1::FINISH_REASON_LENGTH ? "length" : "stop";
}

}  // namespace skein::router
