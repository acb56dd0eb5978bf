#include "services/router/router_service.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/common/status.h"
#include "services/router/stop_matcher.h"
#include "services/tokenizer/stream_detokenizer.h"
#include "services/tokenizer/utf8.h"
#include "services/worker/engine/sampling_params.h"

namespace skein::router {
RouterService::RouterService(std::vector<Scheduler*> schedulers, TokenizerClient* tokenizer,
                             RouterMetrics* metrics, RouterLimits limits, SessionStore* sessions)
    : schedulers_(std::move(schedulers)),
      tokenizer_(tokenizer),
      metrics_(metrics),
      limits_(limits),
      sessions_(sessions) {
  std::random_device rd;
  router_id_ = absl::StrFormat("%08x%08x", rd(), rd());
}

absl::Status RouterService::Authorize(const grpc::ServerContext* context) const {
  if (tokens_.empty()) return absl::OkStatus();
  auto it = context->client_metadata().find("authorization");
  if (it == context->client_metadata().end()) {
    return absl::UnauthenticatedError(
        "this router needs a bearer token (authorization: Bearer TOKEN)");
  }
  const std::string value(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.rfind(kBearer, 0) != 0) {
    return absl::UnauthenticatedError("the authorization metadata is not a bearer token");
  }
  const std::string_view token = std::string_view(value).substr(kBearer.size());
  bool match = false;
  for (const std::string& t : tokens_) {
    // Every byte compared whatever the first difference, so timing says nothing.
    unsigned char diff = t.size() == token.size() ? 0 : 1;
    for (size_t i = 0; i < t.size(); ++i) {
      diff |= static_cast<unsigned char>(t[i] ^ (i < token.size() ? token[i] : 0));
    }
    match = match || diff == 0;
  }
  if (!match) return absl::UnauthenticatedError("the bearer token is not valid here");
  return absl::OkStatus();
}

absl::StatusOr<RouterService::ServedModel> RouterService::ResolveModel(const std::string& name) {
  std::vector<std::string> known;
  bool unknown = false;
  for (Scheduler* s : schedulers_) {
    std::optional<v1::ModelInfo> model = s->model();
    if (!model) {
      unknown = true;
      continue;
    }
    if (name == model->model().name() || (name.empty() && schedulers_.size() == 1)) {
      return ServedModel{s, *std::move(model)};
    }
    known.push_back(absl::StrCat("'", model->model().name(), "'"));
  }
  if (name.empty() && schedulers_.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("this cluster serves several models (",
                                                   absl::StrJoin(known, ", "), "): name one"));
  }
  if (unknown) {
    return absl::UnavailableError(
        known.empty()
            ? "no pipeline replica has answered yet, so no model is known"
            : absl::StrCat("model '", name, "' is not known (yet): this cluster serves ",
                           absl::StrJoin(known, ", "), " and a pipeline that has not answered"));
  }
  return absl::NotFoundError(absl::StrCat("model '", name,
                                          "' is not served here (this cluster serves ",
                                          absl::StrJoin(known, ", "), ")"));
}

absl::Status RouterService::CheckModelName(const std::string& name) {
  absl::StatusOr<ServedModel> model = ResolveModel(name);
  // Tokenizing needs no worker: without a name it works before any replica answered, and
  // every model here shares the tokenizer.
  if (!model.ok() &&
      !(name.empty() && (model.status().code() == absl::StatusCode::kUnavailable ||
                         model.status().code() == absl::StatusCode::kInvalidArgument))) {
    return model.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<const tokenizer::WorldTokenizer*> RouterService::Vocabulary() {
  absl::MutexLock lock(&vocab_mutex_);
  if (vocab_ == nullptr) {
    absl::StatusOr<tokenizer::WorldTokenizer> v =
        tokenizer_->FetchVocabulary(limits_.tokenizer_timeout);
    if (!v.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cannot fetch the vocabulary from the tokenizer: ", v.status().message()));
    }
    vocab_ = std::make_unique<tokenizer::WorldTokenizer>(*std::move(v));
  }
  return vocab_.get();
}

absl::StatusOr<std::vector<uint32_t>> RouterService::PromptTokens(const v1::Prompt& prompt,
                                                                  int64_t vocab) {
  std::vector<uint32_t> ids;
  switch (prompt.content_case()) {
    case v1::Prompt::kText: {
      const std::string& text = prompt.text();
      if (!tokenizer::IsValidUtf8(text)) {
        return absl::InvalidArgumentError("prompt.text is not valid UTF-8");
      }
      if (text.empty()) break;
      absl::StatusOr<std::vector<uint32_t>> encoded =
          tokenizer_->Encode(text, limits_.tokenizer_timeout);
      if (!encoded.ok()) return encoded.status();
      ids = *std::move(encoded);
      break;
    }
    case v1::Prompt::kTokens:
      ids.assign(prompt.tokens().ids().begin(), prompt.tokens().ids().end());
      break;
    default:
      break;
  }
  if (ids.size() > limits_.max_prompt_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the prompt has ", ids.size(), " tokens; the limit is ", limits_.max_prompt_tokens));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token ", i, " is ", ids[i],
                                                     ", outside the vocabulary [0, ", vocab, ")"));
    }
  }
  return ids;
}

absl::StatusOr<GenerationSpec> RouterService::Prepare(const v1::GenerateRequest& request,
                                                      bool allow_empty, Scheduler** scheduler) {
  absl::StatusOr<ServedModel> model = ResolveModel(request.model());
  if (!model.ok()) return model.status();
  *scheduler = model->scheduler;
  const int64_t vocab = model->info.vocab_size();
  GenerationSpec spec;
  absl::StatusOr<std::vector<uint32_t>> prompt = PromptTokens(request.prompt(), vocab);
  if (!prompt.ok()) return prompt.status();
  spec.prompt = *std::move(prompt);
  if (spec.prompt.empty() && !allow_empty) {
    return absl::InvalidArgumentError("the prompt is empty");
  }
  absl::StatusOr<model::SamplerOptions> sampling =
      engine::ToSamplerOptions(request.sampling(), vocab);
  if (!sampling.ok()) return sampling.status();
  spec.sampling = request.sampling();
  if (!spec.sampling.has_seed())
    spec.sampling.set_seed((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}());
  if (request.top_logprobs() > engine::kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("top_logprobs ", request.top_logprobs(),
                                                   " is over the limit of ",
                                                   engine::kMaxTopLogprobs));
  }
  spec.logprobs = request.logprobs() || request.top_logprobs() > 0;
  spec.top_logprobs = request.top_logprobs();
  spec.max_tokens =
      request.stop().max_tokens() == 0 ? limits_.default_max_tokens : request.stop().max_tokens();
  if (spec.max_tokens > limits_.max_tokens_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens ", spec.max_tokens, " is over the limit of ", limits_.max_tokens_limit));
  }
  for (uint32_t t : request.stop().stop_tokens()) {
    if (t >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop token ", t, " is outside the vocabulary [0, ", vocab, ")"));
    }
    spec.stop_tokens.insert(t);
  }
  spec.ignore_eos = request.stop().ignore_eos();
  return spec;
}

void RouterService::UsePrefixCache(Scheduler& scheduler, GenerationSpec* spec, size_t keep_last) {
  const int64_t grid = limits_.snapshot_grid;
  std::optional<ChainHash> identity = scheduler.identity();
  if (sessions_ == nullptr || grid <= 0 || !identity || spec->prompt.size() <= keep_last) return;
  const size_t max_position = spec->prompt.size() - keep_last;
  // Short prompts are cheap to compute and never stored: no lookup.
  if (max_position < static_cast<size_t>(grid)) return;
  // Chain hashes at every grid point and at the longest usable prefix, longest first.
  std::vector<std::pair<size_t, ChainHash>> candidates;
  absl::StatusOr<ChainHash> base = scheduler.BaseChain(spec->initial_state);
  if (!base.ok()) return;
  ChainHash h = *base;
  size_t done = 0;
  auto advance_to = [&](size_t position) {
    h = ExtendChain(h, std::span<const uint32_t>(spec->prompt).subspan(done, position - done));
    done = position;
  };
  for (size_t g = static_cast<size_t>(grid); g <= max_position; g += static_cast<size_t>(grid)) {
    advance_to(g);
    candidates.emplace_back(g, h);
  }
  if (candidates.back().first != max_position) {
    advance_to(max_position);
    candidates.emplace_back(max_position, h);
  }
  for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
    const std::string key = StateKey(*identity, it->second);
    if (!sessions_->HasState(key, it->first)) continue;
    metrics_->prefix_hits->Increment();
    metrics_->prefix_tokens_reused->Increment(static_cast<double>(it->first));
    spec->start.key = key;
    spec->start.position = it->first;
    spec->start.chain = it->second;
    spec->start_tokens.assign(spec->prompt.begin(),
                              spec->prompt.begin() + static_cast<std::ptrdiff_t>(it->first));
    spec->prompt.erase(spec->prompt.begin(),
                       spec->prompt.begin() + static_cast<std::ptrdiff_t>(it->first));
    return;
  }
  metrics_->prefix_misses->Increment();
}

grpc::Status RouterService::Run(grpc::ServerContext* context, const v1::GenerateRequest& request,
                                const std::function<bool(v1::GenerateResponse&)>& emit) {
  const auto received = std::chrono::system_clock::now();
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  GenerationSpec spec;
  std::shared_ptr<TurnContext> turn;
  uint32_t prompt_tokens = 0;
  Scheduler* scheduler = nullptr;
  if (!request.session_id().empty()) {
    std::optional<v1::CompleteResponse> replay;
    absl::Status s = PrepareTurn(context, request, &spec, &turn, &replay, &scheduler);
    if (!s.ok()) {
      if (s.code() == absl::StatusCode::kInvalidArgument) metrics_->Reject("invalid");
      return ToGrpcStatus(s);
    }
    if (replay) return ReplayTurn(request, *replay, emit);
    prompt_tokens = turn->prompt_tokens;
  } else {
    absl::StatusOr<GenerationSpec> prepared = Prepare(request, /*allow_empty=*/false, &scheduler);
    if (!prepared.ok()) {
      if (prepared.status().code() == absl::StatusCode::kInvalidArgument) {
        metrics_->Reject("invalid");
      }
      return ToGrpcStatus(prepared.status());
    }
    spec = *std::move(prepared);
    if (!request.initial_state().empty()) {
      // Unknown names fail here, before anything is queued.
      if (absl::StatusOr<ChainHash> base = scheduler->BaseChain(request.initial_state());
          !base.ok()) {
        return ToGrpcStatus(base.status());
      }
      spec.initial_state = request.initial_state();
    }
    prompt_tokens = static_cast<uint32_t>(spec.prompt.size());
    UsePrefixCache(*scheduler, &spec, 1);
    // A long prompt's state before its last token is stored, so a repeat feeds one token.
    const uint64_t before_last = spec.start.position + spec.prompt.size() - 1;
    if (sessions_ != nullptr && limits_.snapshot_grid > 0 &&
        before_last >= static_cast<uint64_t>(limits_.snapshot_grid) &&
        before_last > spec.start.position) {
      spec.snapshot_at = before_last;
    }
  }
  absl::StatusOr<const tokenizer::WorldTokenizer*> vocab = Vocabulary();
  if (!vocab.ok()) {
    if (turn) ClearBusy(request.session_id());
    return ToGrpcStatus(vocab.status());
  }
  const uint64_t seed = spec.sampling.seed();
  const uint32_t cached = turn ? 0 : static_cast<uint32_t>(spec.start_tokens.size());
  absl::StatusOr<std::shared_ptr<Generation>> submitted = scheduler->Submit(std::move(spec));
  if (!submitted.ok()) {
    if (turn) ClearBusy(request.session_id());
    return ToGrpcStatus(submitted.status());
  }
  std::shared_ptr<Generation> gen = *std::move(submitted);

  tokenizer::StreamDetokenizer detokenizer(*vocab, tokenizer::DecodeMode::kLenient);
  StopMatcher stops(
      {request.stop().stop_sequences().begin(), request.stop().stop_sequences().end()});
  uint32_t completion = 0;
  bool first = true;
  auto finish = [&](v1::FinishReason reason, uint64_t position, std::string tail) {
    v1::GenerateResponse last;
    last.set_text(std::move(tail));
    last.set_finish_reason(reason);
    last.mutable_usage()->set_prompt_tokens(prompt_tokens);
    last.mutable_usage()->set_completion_tokens(completion);
    last.mutable_usage()->set_cached_prompt_tokens(cached);
    // A session reports its conversation's length as committed.
    last.set_session_position(turn ? turn->position : position);
    if (first && seed != 0) last.set_seed(seed);
    emit(last);
    return grpc::Status::OK;
  };
  bool stopped = false;  // a stop string matched: wait for the end, send nothing more
  for (;;) {
    // Events wake this thread at once; the time-out only bounds how late a cancelled or
    // expired call is noticed (a sync server has no cancellation callback).
    std::vector<GenerationEvent> events = gen->Wait(absl::Milliseconds(50));
    if (context->IsCancelled()) {
      gen->Stop();
      // The client's transport cancels the call at its deadline, a moment before the
      // server's copy of it passes (the server's copy is later by however long the call took
      // to arrive, which on a busy machine is hundreds of milliseconds): a cancellation in the
      // last second, or the last half, of the call's time counts as expiry.
      const auto now = std::chrono::system_clock::now();
      const auto left = context->deadline() - now;
      const bool expired = left <= std::chrono::seconds(1) || left <= now - received;
      metrics_->Reject(expired ? "deadline" : "cancelled");
      return grpc::Status(
          expired ? grpc::StatusCode::DEADLINE_EXCEEDED : grpc::StatusCode::CANCELLED,
          expired ? "the request's deadline passed" : "the client cancelled");
    }
    for (GenerationEvent& e : events) {
      if (!e.tokens.empty() && !stopped) {
        completion += static_cast<uint32_t>(e.tokens.size());
        std::string text;
        (void)detokenizer.Push(e.tokens, &text);
        v1::GenerateResponse chunk;
        chunk.set_text(stops.Push(text));
        if (request.return_token_ids()) {
          chunk.mutable_token_ids()->Add(e.tokens.begin(), e.tokens.end());
        }
        for (v1::TokenLogprobs& lp : e.logprobs) *chunk.add_logprobs() = std::move(lp);
        if (first) chunk.set_seed(seed);
        if (stops.stopped()) {
          // The end comes once the scheduler has released (or, for a session, committed)
          // the state.
          gen->Stop(v1::FINISH_REASON_STOP);
          stopped = true;
          if (!chunk.text().empty() || chunk.token_ids_size() > 0) {
            if (!emit(chunk)) {
              metrics_->Reject("cancelled");
              return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
            }
            first = false;
          }
          continue;
        }
        if (!chunk.text().empty() || chunk.token_ids_size() > 0 || chunk.logprobs_size() > 0) {
          if (!emit(chunk)) {
            gen->Stop();
            metrics_->Reject("cancelled");
            return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
          }
          first = false;
        }
      }
      if (e.finished) {
        if (!e.error.ok()) return ToGrpcStatus(e.error);
        if (stopped) return finish(v1::FINISH_REASON_STOP, e.position, "");
        std::string tail = stops.Push(detokenizer.Finish());
        if (stops.stopped()) return finish(v1::FINISH_REASON_STOP, e.position, tail);
        tail += stops.Flush();
        return finish(e.reason, e.position, tail);
      }
    }
  }
}

grpc::Status RouterService::Generate(grpc::ServerContext* context,
                                     const v1::GenerateRequest* request,
                                     grpc::ServerWriter<v1::GenerateResponse>* writer) {
  return Run(context, *request, [&](v1::GenerateResponse& chunk) { return writer->Write(chunk); });
}

grpc::Status RouterService::Complete(grpc::ServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::CompleteResponse* response) {
  std::string text;
  grpc::Status s = Run(context, *request, [&](v1::GenerateResponse& chunk) {
    text += chunk.text();
    response->mutable_token_ids()->MergeFrom(chunk.token_ids());
    response->mutable_logprobs()->MergeFrom(chunk.logprobs());
    if (chunk.seed() != 0) response->set_seed(chunk.seed());
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      response->set_finish_reason(chunk.finish_reason());
      *response->mutable_usage() = chunk.usage();
      response->set_session_position(chunk.session_position());
    }
    return true;
  });
  response->set_text(std::move(text));
  return s;
}

grpc::Status RouterService::ListModels(grpc::ServerContext* context, const v1::ListModelsRequest*,
                                       v1::ListModelsResponse* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  for (Scheduler* s : schedulers_) {
    std::optional<v1::ModelInfo> model = s->model();
    if (model) *response->add_models() = *std::move(model);
  }
  return grpc::Status::OK;
}

grpc::Status RouterService::Tokenize(grpc::ServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = CheckModelName(request->model()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::vector<uint32_t>> ids =
      tokenizer_->Encode(request->text(), limits_.tokenizer_timeout);
  if (!ids.ok()) return ToGrpcStatus(ids.status());
  response->mutable_ids()->Add(ids->begin(), ids->end());
  return grpc::Status::OK;
}

grpc::Status RouterService::Detokenize(grpc::ServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) {
  if (absl::Status s = Authorize(context); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = CheckModelName(request->model()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<v1::DecodeResponse> decoded =
      tokenizer_->Decode(std::vector<uint32_t>(request->ids().begin(), request->ids().end()),
                         limits_.tokenizer_timeout);
  if (!decoded.ok()) return ToGrpcStatus(decoded.status());
  response->set_data(decoded->data());
  response->set_text(decoded->text());
  return grpc::Status::OK;
}

}  // namespace skein::router
