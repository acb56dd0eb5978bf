#include "services/router/openai_http.h"

#include <httplib.h>

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "services/common/client_channel.h"
#include "services/common/status.h"
#include "services/router/openai_format.h"

namespace skein::router {
namespace {

using Json = nlohmann::json;

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void SendJson(httplib::Response& res, int status, const Json& j) {
  res.status = status;
  res.set_content(Dump(j), "application/json");
}

void SendError(httplib::Response& res, const absl::Status& s) {
  SendJson(res, HttpStatusFor(s.code()), OpenAiError(s));
}

std::string NewId(const char* prefix) {
  std::random_device rd;
  return absl::StrFormat("%s-%08x%08x", prefix, rd(), rd());
}

int64_t NowSeconds() { return absl::ToUnixSeconds(absl::Now()); }

Json Bytes(absl::string_view s) {
  Json out = Json::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

// A generation being answered: turns the router's chunks into OpenAI's shapes.
class Reply {
 public:
  Reply(bool chat, const OpenAiRequest& request, std::string model,
        const tokenizer::WorldTokenizer* vocab)
      : chat_(chat),
        request_(request),
        model_(std::move(model)),
        vocab_(vocab),
        id_(NewId(chat ? "chatcmpl" : "cmpl")),
        created_(NowSeconds()) {}

  // Adds a chunk; returns its text as the client should see it.
  std::string Add(const v1::GenerateResponse& chunk) {
    std::string text = chunk.text();
    // The model writes the space after "Assistant:" itself; the reply starts after it.
    if (chat_ && !started_ && !text.empty()) {
      started_ = true;
      if (text[0] == ' ') text.erase(0, 1);
    }
    text_ += text;
    for (const v1::TokenLogprobs& lp : chunk.logprobs()) logprobs_.push_back(lp);
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      finish_ = FinishReasonName(chunk.finish_reason());
      usage_ = chunk.usage();
    }
    return text;
  }

  // Log-probabilities of `lps` in the endpoint's shape (null when not asked for).
  Json Logprobs(const std::vector<v1::TokenLogprobs>& lps) const {
    if (!request_.logprobs) return nullptr;
    auto text = [&](uint32_t id) {
      return vocab_ == nullptr ? std::string() : std::string(vocab_->TokenBytes(id));
    };
    if (chat_) {
      Json content = Json::array();
      for (const v1::TokenLogprobs& lp : lps) {
        Json top = Json::array();
        for (const v1::TokenLogprob& t : lp.top()) {
          top.push_back({{"token", text(t.token())},
                         {"logprob", t.logprob()},
                         {"bytes", Bytes(text(t.token()))}});
        }
        content.push_back({{"token", text(lp.token())},
                           {"logprob", lp.logprob()},
                           {"bytes", Bytes(text(lp.token()))},
                           {"top_logprobs", top}});
      }
      return {{"content", content}};
    }
    Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
         offsets = Json::array();
    for (const v1::TokenLogprobs& lp : lps) {
      tokens.push_back(text(lp.token()));
      token_logprobs.push_back(lp.logprob());
      Json alternatives = Json::object();
      for (const v1::TokenLogprob& t : lp.top()) alternatives[text(t.token())] = t.logprob();
      top.push_back(alternatives);
      offsets.push_back(offset_);
      offset_ += text(lp.token()).size();
    }
    return {{"tokens", tokens},
            {"token_logprobs", token_logprobs},
            {"top_logprobs", top},
            {"text_offset", offsets}};
  }

  Json Usage() const {
    Json u = {{"prompt_tokens", usage_.prompt_tokens()},
              {"completion_tokens", usage_.completion_tokens()},
              {"total_tokens", usage_.prompt_tokens() + usage_.completion_tokens()}};
    if (usage_.cached_prompt_tokens() > 0) {
      u["prompt_tokens_details"] = {{"cached_tokens", usage_.cached_prompt_tokens()}};
    }
    return u;
  }

  // The whole answer (not streamed).
  Json Whole() const {
    Json choice = {{"index", 0}, {"logprobs", Logprobs(logprobs_)}, {"finish_reason", finish_}};
    if (chat_) {
      choice["message"] = {{"role", "assistant"}, {"content", text_}};
    } else {
      choice["text"] = text_;
    }
    return {{"id", id_},
            {"object", chat_ ? "chat.completion" : "text_completion"},
            {"created", created_},
            {"model", model_},
            {"choices", Json::array({choice})},
            {"usage", Usage()}};
  }

  // One streamed event for `text` (and, on the last chunk, the finish reason).
  Json Event(const std::string& text, const std::vector<v1::TokenLogprobs>& lps, bool last,
             bool first) const {
    Json choice = {{"index", 0},
                   {"logprobs", Logprobs(lps)},
                   {"finish_reason", last ? Json(finish_) : Json(nullptr)}};
    if (chat_) {
      Json delta = Json::object();
      if (first) delta["role"] = "assistant";
      if (!text.empty() || first) delta["content"] = text;
      choice["delta"] = delta;
    } else {
      choice["text"] = text;
    }
    Json event = {{"id", id_},
                  {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
                  {"created", created_},
                  {"model", model_},
                  {"choices", Json::array({choice})}};
    if (request_.include_usage) event["usage"] = nullptr;
    return event;
  }

  // The usage-only event of stream_options.include_usage.
  Json UsageEvent() const {
    return {{"id", id_},
            {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", model_},
            {"choices", Json::array()},
            {"usage", Usage()}};
  }

 private:
  const bool chat_;
  const OpenAiRequest& request_;
  const std::string model_;
  const tokenizer::WorldTokenizer* vocab_;
  const std::string id_;
  const int64_t created_;
  bool started_ = false;
  std::string text_;
  std::vector<v1::TokenLogprobs> logprobs_;
  std::string finish_ = "stop";
  v1::Usage usage_;
  mutable size_t offset_ = 0;
};

// The streamed call and what answers it, alive as long as httplib's content provider.
struct Call {
  OpenAiRequest request;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader;
  v1::GenerateResponse first;
  std::unique_ptr<Reply> reply;
};

}  // namespace

OpenAiHttpServer::OpenAiHttpServer(
    OpenAiHttpOptions options,
    std::function<absl::StatusOr<const tokenizer::WorldTokenizer*>()> vocabulary)
    : options_(std::move(options)),
      vocabulary_(std::move(vocabulary)),
      server_(
          options_.tls_cert_file.empty()
              ? std::make_unique<httplib::Server>()
              : std::unique_ptr<httplib::Server>(std::make_unique<httplib::SSLServer>(
                    options_.tls_cert_file.c_str(), options_.tls_key_file.c_str(),
                    options_.client_ca_file.empty() ? nullptr : options_.client_ca_file.c_str()))) {
  const int streams = std::max(1, options_.max_streams);
  server_->new_task_queue = [streams] { return new httplib::ThreadPool(streams); };
  server_->Get("/v1/models",
               [this](const httplib::Request& req, httplib::Response& res) { Models(req, res); });
  server_->Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(req, res, /*chat=*/false);
  });
  server_->Post("/v1/chat/completions",
                [this](const httplib::Request& req, httplib::Response& res) {
                  Generate(req, res, /*chat=*/true);
                });
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) {
      const absl::Status s = res.status == 404
                                 ? absl::NotFoundError(absl::StrCat("no route ", req.path))
                                 : absl::InvalidArgumentError("bad request");
      res.set_content(Dump(OpenAiError(s)), "application/json");
    }
  });
}

OpenAiHttpServer::~OpenAiHttpServer() { Stop(); }

absl::StatusOr<int> OpenAiHttpServer::Bind() {
  const int port = options_.port == 0
                       ? server_->bind_to_any_port(options_.host)
                       : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind the HTTP front to ", options_.host, ":", options_.port));
  }
  return port;
}

void OpenAiHttpServer::Start(std::shared_ptr<grpc::Channel> router) {
  stub_ = v1::RouterService::NewStub(std::move(router));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void OpenAiHttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

namespace {
// The client's credentials and identity go to the router, which checks them.
void PassOn(const httplib::Request& req, grpc::ClientContext* context) {
  if (req.has_header("Authorization")) {
    context->AddMetadata("authorization", req.get_header_value("Authorization"));
  }
  if (req.has_header("x-skein-owner")) {
    context->AddMetadata("x-skein-owner", req.get_header_value("x-skein-owner"));
  }
}
}  // namespace

void OpenAiHttpServer::Models(const httplib::Request& req, httplib::Response& res) {
  grpc::ClientContext context;
  SetTimeout(&context, absl::Seconds(10));
  PassOn(req, &context);
  v1::ListModelsResponse models;
  grpc::Status s = stub_->ListModels(&context, v1::ListModelsRequest(), &models);
  if (!s.ok()) return SendError(res, FromGrpcStatus(s));
  Json data = Json::array();
  for (const v1::ModelInfo& m : models.models()) {
    data.push_back({{"id", m.model().name()},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "skein"},
                    {"fingerprint", m.model().fingerprint()}});
  }
  SendJson(res, 200, {{"object", "list"}, {"data", data}});
}

std::string OpenAiHttpServer::ServedModel(const httplib::Request& req) {
  {
    absl::MutexLock lock(&model_mutex_);
    if (!served_model_.empty()) return served_model_;
  }
  grpc::ClientContext context;
  SetTimeout(&context, absl::Seconds(10));
  PassOn(req, &context);
  v1::ListModelsResponse models;
  if (!stub_->ListModels(&context, v1::ListModelsRequest(), &models).ok() ||
      models.models_size() == 0) {
    return "";
  }
  absl::MutexLock lock(&model_mutex_);
  served_model_ = models.models(0).model().name();
  return served_model_;
}

void OpenAiHttpServer::Generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  Json body = Json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    return SendError(res, absl::InvalidArgumentError("body: is not valid JSON"));
  }
  absl::StatusOr<OpenAiRequest> parsed = ParseOpenAiRequest(
      body, chat ? OpenAiEndpoint::kChatCompletions : OpenAiEndpoint::kCompletions);
  if (!parsed.ok()) return SendError(res, parsed.status());
  absl::StatusOr<const tokenizer::WorldTokenizer*> vocab = vocabulary_();
  if (!vocab.ok()) return SendError(res, vocab.status());

  auto call = std::make_shared<Call>();
  call->request = *std::move(parsed);
  SetTimeout(&call->context, options_.request_timeout);
  PassOn(req, &call->context);
  std::string model = call->request.model;
  if (model.empty()) model = ServedModel(req);
  call->reply = std::make_unique<Reply>(chat, call->request, model, *vocab);
  call->reader = stub_->Generate(&call->context, call->request.generate);
  // The first message decides the answer: an error the router finds at once (unknown model
  // or session, a full queue) is an HTTP error, not a broken stream.
  if (!call->reader->Read(&call->first)) {
    return SendError(res, FromGrpcStatus(call->reader->Finish()));
  }

  if (!call->request.stream) {
    call->reply->Add(call->first);
    v1::GenerateResponse chunk;
    while (call->first.finish_reason() == v1::FINISH_REASON_UNSPECIFIED &&
           call->reader->Read(&chunk)) {
      call->reply->Add(chunk);
      if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) break;
    }
    grpc::Status s = call->reader->Finish();
    if (!s.ok()) return SendError(res, FromGrpcStatus(s));
    return SendJson(res, 200, call->reply->Whole());
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [call](size_t, httplib::DataSink& sink) {
    auto send = [&](const std::string& data) {
      if (!sink.write(data.data(), data.size())) {
        call->context.TryCancel();  // the client went away: stop generating
        return false;
      }
      return true;
    };
    auto event = [](const Json& j) { return "data: " + Dump(j) + "\n\n"; };
    bool first = true;
    v1::GenerateResponse chunk = call->first;
    bool have = true;
    while (have) {
      const std::string text = call->reply->Add(chunk);
      const bool last = chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED;
      const std::vector<v1::TokenLogprobs> lps(chunk.logprobs().begin(), chunk.logprobs().end());
      if (first || last || !text.empty() || !lps.empty()) {
        if (!send(event(call->reply->Event(text, lps, last, first)))) return false;
        first = false;
      }
      if (last) break;
      have = call->reader->Read(&chunk);
    }
    grpc::Status s = call->reader->Finish();
    if (!s.ok()) {
      // Mid-stream failures arrive as an error event (the status line is long gone).
      send(event(OpenAiError(FromGrpcStatus(s))));
    } else if (call->request.include_usage) {
      if (!send(event(call->reply->UsageEvent()))) return false;
    }
    send("data: [DONE]\n\n");
    sink.done();
    return true;
  });
}

}  // namespace skein::router
