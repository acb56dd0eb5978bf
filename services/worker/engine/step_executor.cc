#include "services/worker/engine/step_executor.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "services/worker/engine/sampling_params.h"

namespace skein::engine {
namespace {

// Reused across the steps a thread runs: a decode loop then neither allocates nor faults in
// the logits every step.
thread_local model::StepResult tls_model_result;

void FillLogprobs(absl::Span<const float> logits, int32_t chosen, uint32_t top,
                  v1::TokenLogprobs* out) {
  float max = -INFINITY;
  for (float z : logits) max = std::max(max, z);
  double sum = 0;
  for (float z : logits) sum += std::exp(static_cast<double>(z) - max);
  const double log_sum = std::log(sum);
  auto logprob = [&](int32_t t) {
    return static_cast<float>(static_cast<double>(logits[t]) - max - log_sum);
  };
  out->set_token(static_cast<uint32_t>(chosen));
  out->set_logprob(logprob(chosen));
  if (top == 0) return;
  const size_t k = std::min<size_t>(top, logits.size());
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (size_t i = 0; i < k; ++i) {
    v1::TokenLogprob* t = out->add_top();
    t->set_token(static_cast<uint32_t>(order[i]));
    t->set_logprob(logprob(order[i]));
  }
}

}  // namespace

int64_t StepTokenCount(const v1::StepRequest& request) {
  int64_t n = 0;
  for (const v1::SequenceInput& s : request.sequences()) n += s.tokens_size();
  return n;
}

StepExecutor::StepExecutor(StageEngine* engine, SessionTable* sessions, int64_t max_step_tokens,
                           int64_t max_logits_bytes)
    : engine_(engine),
      sessions_(sessions),
      max_step_tokens_(max_step_tokens),
      max_logits_bytes_(max_logits_bytes) {}

absl::Status StepExecutor::Run(const v1::StepRequest& request, const model::StageActivations* input,
                               StepOutcome* out) {
  const int n = request.sequences_size();
  if (n == 0) return absl::InvalidArgumentError("the step has no sequences");
  const int64_t tokens = StepTokenCount(request);
  if (tokens > max_step_tokens_) {
    return absl::ResourceExhaustedError(absl::StrCat("the step carries ", tokens,
                                                     " tokens; this stage takes at most ",
                                                     max_step_tokens_, " per step"));
  }
  const int64_t vocab = engine_->config().vocab;
  const bool last = engine_->is_last();
  absl::flat_hash_set<std::string> ids;
  std::vector<std::optional<model::SamplerOptions>> sampling(n);
  std::vector<const model::RwkvState*> starts(n, nullptr);  // named initial states
  for (int s = 0; s < n; ++s) {
    const v1::SequenceInput& seq = request.sequences(s);
    if (!seq.initial_state().empty()) {
      if (!seq.reset()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "session '", seq.session_id(), "': initial_state applies only to a reset step"));
      }
      const NamedState* named = engine_->FindInitialState(seq.initial_state());
      if (named == nullptr) {
        return absl::NotFoundError(
            absl::StrCat("this model has no initial state named '", seq.initial_state(), "'"));
      }
      starts[s] = &named->state;
    }
    if (seq.session_id().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no session id"));
    }
    if (!ids.insert(seq.session_id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("session '", seq.session_id(), "' appears twice in the step"));
    }
    if (seq.tokens_size() == 0 && !seq.release()) {
      return absl::InvalidArgumentError(
          absl::StrCat("session '", seq.session_id(), "' has no tokens in the step"));
    }
    for (uint32_t t : seq.tokens()) {
      if (t >= static_cast<uint64_t>(vocab)) {
        return absl::InvalidArgumentError(absl::StrCat("session '", seq.session_id(), "': token ",
                                                       t, " is outside the vocabulary [0, ", vocab,
                                                       ")"));
      }
    }
    if (seq.top_logprobs() > kMaxTopLogprobs) {
      return absl::InvalidArgumentError(absl::StrCat("top_logprobs ", seq.top_logprobs(),
                                                     " is over the limit of ", kMaxTopLogprobs));
    }
    if (last && seq.has_sampling() && seq.tokens_size() > 0) {
      absl::StatusOr<model::SamplerOptions> o = ToSamplerOptions(seq.sampling(), vocab);
      if (!o.ok()) return o.status();
      sampling[s] = *std::move(o);
    }
  }

  if (last) {
    int64_t logits_bytes = 0;
    for (const v1::SequenceInput& seq : request.sequences()) {
      if (seq.logits() == v1::SequenceInput::LOGITS_MODE_ALL) {
        logits_bytes += seq.tokens_size() * vocab * static_cast<int64_t>(sizeof(float));
      } else if (seq.logits() == v1::SequenceInput::LOGITS_MODE_LAST) {
        logits_bytes += vocab * static_cast<int64_t>(sizeof(float));
      }
    }
    if (logits_bytes > max_logits_bytes_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the step asks for ", logits_bytes, " bytes of logits; at most ",
                       max_logits_bytes_, " fit one answer (ask for fewer rows per step)"));
    }
  }
  int64_t computing_count = 0;
  for (const v1::SequenceInput& seq : request.sequences()) computing_count += seq.tokens_size() > 0;
  if (static_cast<size_t>(computing_count) > sessions_->capacity()) {
    return absl::ResourceExhaustedError(absl::StrCat("the step names ", computing_count,
                                                     " sessions; this stage holds at most ",
                                                     sessions_->capacity()));
  }
  // Pin the sessions that compute; forget the release-only ones at the end.
  std::vector<int> computing;
  std::vector<Session*> sessions;
  for (int s = 0; s < n; ++s) {
    const v1::SequenceInput& seq = request.sequences(s);
    if (seq.tokens_size() == 0) continue;
    absl::StatusOr<Session*> pinned = sessions_->Pin(
        seq.session_id(), seq.reset(), static_cast<int64_t>(seq.expected_position()), starts[s]);
    if (!pinned.ok()) {
      for (int c : computing) sessions_->Unpin(request.sequences(c).session_id(), false, false);
      return pinned.status();
    }
    computing.push_back(s);
    sessions.push_back(*pinned);
  }
  auto unpin_all = [&](bool commit) {
    for (int c : computing) {
      sessions_->Unpin(request.sequences(c).session_id(), commit,
                       commit && request.sequences(c).release());
    }
  };

  std::vector<std::vector<int32_t>> feeds(computing.size());
  std::vector<model::SequenceStep> steps(computing.size());
  for (size_t i = 0; i < computing.size(); ++i) {
    const v1::SequenceInput& seq = request.sequences(computing[i]);
    model::SequenceStep& step = steps[i];
    step.state = &sessions[i]->state;
    if (engine_->is_first()) {
      feeds[i].assign(seq.tokens().begin(), seq.tokens().end());
      step.tokens = feeds[i];
    } else {
      step.num_tokens = seq.tokens_size();
    }
    const bool wants_row = sampling[computing[i]].has_value() ||
                           seq.logits() == v1::SequenceInput::LOGITS_MODE_LAST ||
                           seq.logits() == v1::SequenceInput::LOGITS_MODE_ALL;
    step.all_logits = seq.logits() == v1::SequenceInput::LOGITS_MODE_ALL;
    step.no_logits = !wants_row;
  }
  model::StepResult& result = tls_model_result;
  absl::Status status = absl::OkStatus();
  if (!computing.empty()) status = engine_->model().Step(steps, input, &result);
  if (!status.ok()) {
    unpin_all(false);
    return status;
  }
  out->rows = tokens;
  out->result.Clear();
  out->result.set_step_id(request.step_id());
  if (!last) {
    if (computing.empty()) {
      // Only releases: the next stages get the step with no rows.
      out->activations = model::StageActivations{};
      out->activations.width = engine_->config().n_embd;
    } else {
      out->activations = std::move(result.activations);
    }
  } else {
    // Outputs and logits first (serially), then the sampling rows in parallel: each session
    // has its own sampler, so the picks are independent.
    struct Pick {
      Session* session;
      const v1::SequenceInput* seq;
      model::SamplerOptions* options;
      absl::Span<const float> row;
      v1::SequenceOutput* out;
      absl::Status status;
    };
    std::vector<Pick> picks;
    int64_t row = 0;
    size_t next = 0;
    for (int s = 0; s < n; ++s) {
      const v1::SequenceInput& seq = request.sequences(s);
      v1::SequenceOutput* o = out->result.add_outputs();
      o->set_session_id(seq.session_id());
      if (next >= computing.size() || computing[next] != s) continue;  // release only
      const size_t i = next++;
      Session& session = *sessions[i];
      o->set_position(static_cast<uint64_t>(session.state.position()));
      const int64_t rows = result.logits_rows[i];
      const absl::Span<const float> all =
          absl::MakeConstSpan(result.logits).subspan(row * vocab, rows * vocab);
      row += rows;
      if (rows == 0) continue;
      const absl::Span<const float> final_row = all.subspan((rows - 1) * vocab, vocab);
      if (seq.logits() == v1::SequenceInput::LOGITS_MODE_ALL) {
        o->set_logits(all.data(), all.size() * sizeof(float));
      } else if (seq.logits() == v1::SequenceInput::LOGITS_MODE_LAST) {
        o->set_logits(final_row.data(), final_row.size() * sizeof(float));
      }
      if (sampling[s]) picks.push_back({&session, &seq, &*sampling[s], final_row, o, {}});
    }
    auto sample = [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        Pick& k = picks[p];
        Session& session = *k.session;
        if (!session.sampler.has_value()) {
          if (!k.seq->sampling().has_seed()) {
            k.options->seed = std::random_device{}() ^ (seed_counter_.fetch_add(1) << 32);
          }
          absl::StatusOr<model::Sampler> created = model::Sampler::Create(*k.options, vocab);
          if (!created.ok()) {
            k.status = created.status();
            continue;
          }
          session.sampler = *std::move(created);
        } else {
          k.status = session.sampler->SetOptions(*k.options);
          if (!k.status.ok()) continue;
          if (k.seq->sampling().has_seed()) session.sampler->Reseed(k.options->seed);
        }
        absl::StatusOr<int32_t> token = session.sampler->Sample(k.row);
        if (!token.ok()) {
          k.status = absl::InternalError(
              absl::StrCat("session '", k.seq->session_id(),
                           "': sampling failed after the step: ", token.status().message()));
          continue;
        }
        k.out->set_sampled_token(static_cast<uint32_t>(*token));
        k.out->set_seed(session.sampler->seed());
        if (k.seq->logprobs()) {
          FillLogprobs(k.row, *token, k.seq->top_logprobs(), k.out->mutable_logprobs());
        }
      }
    };
    if (engine_->pool() != nullptr && picks.size() > 1) {
      engine_->pool()->ParallelFor(static_cast<int64_t>(picks.size()), 1, sample);
    } else {
      sample(0, static_cast<int64_t>(picks.size()));
    }
    for (const Pick& k : picks) {
      if (!k.status.ok()) {
        status = k.status;
        break;
      }
    }
  }
  unpin_all(true);
  // Scratch that one unusual step grew (many logits rows) is not kept by this thread.
  if (result.logits.capacity() * sizeof(float) > (size_t{64} << 20)) {
    std::vector<float>().swap(result.logits);
  }
  for (int s = 0; s < n; ++s) {
    const v1::SequenceInput& seq = request.sequences(s);
    if (seq.tokens_size() == 0 && seq.release()) (void)sessions_->Drop(seq.session_id());
  }
  return status;
}

}  // namespace skein::engine
