#include "services/router/scheduler.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace skein::router {

void Generation::Push(GenerationEvent e) {
  std::lock_guard<std::mutex> lock(events_mutex_);
  events_.push_back(std::move(e));
  events_ready_.notify_all();
}

std::vector<GenerationEvent> Generation::Wait(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(events_mutex_);
  events_ready_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                         [&] { return !events_.empty(); });
  std::vector<GenerationEvent> out(std::make_move_iterator(events_.begin()),
                                   std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

void Generation::Stop(v1::FinishReason reason) {
  bool expected = false;
  if (stop_requested_.compare_exchange_strong(expected, true)) stop_reason_.store(reason);
}

Scheduler::Scheduler(SchedulerOptions options, RouterMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {
  std::random_device rd;
  id_prefix_ = absl::StrFormat("g%08x", rd());
  for (const std::string& address : options_.replicas) {
    replicas_.push_back(std::make_unique<Replica>(address));
  }
  health_ = std::thread([this] { HealthLoop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  if (health_.joinable()) health_.join();
  for (auto& r : replicas_) {
    for (std::thread& t : r->loops) t.join();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const absl::Status why = absl::UnavailableError("the router is shutting down");
  for (auto& r : replicas_) FailAll(*r, why);
  for (auto& g : queue_) Finish(*g, v1::FINISH_REASON_UNSPECIFIED, why);
  queue_.clear();
}

std::optional<v1::ModelInfo> Scheduler::model() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return model_;
}

size_t Scheduler::healthy_replicas() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = 0;
  for (const auto& r : replicas_) n += r->healthy ? 1 : 0;
  return n;
}

void Scheduler::HealthLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    for (auto& r : replicas_) {
      Replica* replica = r.get();
      lock.unlock();
      absl::StatusOr<v1::StageInfo> info = replica->client.Info(absl::Milliseconds(500));
      lock.lock();
      if (stopping_) break;
      if (!info.ok()) {
        replica->healthy = false;
        continue;
      }
      if (!model_) model_ = info->model();
      replica->stage_count = std::max<int>(1, static_cast<int>(info->stage_count()));
      if (!replica->healthy) {
        replica->healthy = true;
        const int loops =
            options_.micro_batches > 0 ? options_.micro_batches : replica->stage_count;
        for (; replica->loops_started < loops; ++replica->loops_started) {
          replica->loops.emplace_back([this, replica] { StepLoop(replica); });
        }
        work_.notify_all();
      }
    }
    bool any = false, all = true;
    size_t healthy = 0;
    for (const auto& r : replicas_) {
      any = any || r->healthy;
      all = all && r->healthy;
      healthy += r->healthy ? 1 : 0;
    }
    metrics_->replicas_healthy->Set(static_cast<double>(healthy));
    if (!any && !queue_.empty()) {
      // Nothing can run what waits: fail it now rather than leave it waiting.
      const absl::Status why = absl::UnavailableError("no pipeline replica is reachable");
      for (auto& g : queue_) Finish(*g, v1::FINISH_REASON_UNSPECIFIED, why);
      queue_.clear();
      metrics_->queue_depth->Set(0);
    }
    if (any != any_healthy_ && !stopping_) {
      any_healthy_ = any;
      if (options_.on_serving_change) {
        lock.unlock();
        options_.on_serving_change(any);
        lock.lock();
      }
    }
    // Poll quickly while a replica is missing, then every half second.
    work_.wait_for(lock, std::chrono::milliseconds(all ? 500 : 100), [&] { return stopping_; });
  }
}

absl::StatusOr<std::shared_ptr<Generation>> Scheduler::Submit(GenerationSpec spec) {
  auto gen = std::make_shared<Generation>();
  gen->spec_ = std::move(spec);
  gen->submitted_ = absl::Now();
  std::lock_guard<std::mutex> lock(mutex_);
  bool any = false;
  for (const auto& r : replicas_) any = any || r->healthy;
  if (!any) {
    metrics_->Reject("no_pipeline");
    return absl::UnavailableError(
        "no pipeline replica is reachable (check the workers and --pipeline)");
  }
  if (queue_.size() >= options_.max_queue) {
    metrics_->Reject("queue_full");
    return absl::ResourceExhaustedError(absl::StrCat(
        "the router's queue is full (", options_.max_queue, " waiting requests); retry later"));
  }
  gen->id_ = absl::StrCat(id_prefix_, "-", next_id_++);
  metrics_->prompt_tokens->Increment(static_cast<double>(gen->spec_.prompt.size()));
  queue_.push_back(gen);
  metrics_->queue_depth->Set(static_cast<double>(queue_.size()));
  work_.notify_all();
  return gen;
}

void Scheduler::Finish(Generation& gen, v1::FinishReason reason, absl::Status error) {
  if (gen.finished_) return;
  gen.finished_ = true;
  GenerationEvent e;
  e.finished = true;
  e.reason = reason;
  e.error = std::move(error);
  e.position = gen.position_;
  metrics_->end_to_end->Observe(absl::ToDoubleSeconds(absl::Now() - gen.submitted_));
  metrics_->finished->Add({{"reason", e.error.ok() ? v1::FinishReason_Name(reason) : "ERROR"}})
      .Increment();
  gen.Push(std::move(e));
}

void Scheduler::Remove(Replica& replica, const Generation* gen) {
  auto& v = replica.running;
  v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& g) { return g.get() == gen; }),
          v.end());
}

void Scheduler::FailAll(Replica& replica, const absl::Status& why) {
  for (auto& g : replica.running) {
    if (!g->in_step_) Finish(*g, v1::FINISH_REASON_UNSPECIFIED, why);
  }
  replica.running.erase(std::remove_if(replica.running.begin(), replica.running.end(),
                                       [](const auto& g) { return !g->in_step_; }),
                        replica.running.end());
}

std::vector<Scheduler::Planned> Scheduler::Plan(Replica& replica, v1::StepRequest* request) {
  // Pull queued generations while this replica has room and is among the least loaded
  // healthy replicas, so that a burst spreads over the replicas instead of landing on
  // whichever loop woke first.
  auto least_loaded = [&] {
    for (const auto& other : replicas_) {
      if (other.get() != &replica && other->healthy &&
          other->running.size() < replica.running.size()) {
        return false;
      }
    }
    return true;
  };
  while (!queue_.empty() && replica.running.size() < options_.max_running_per_replica &&
         least_loaded()) {
    std::shared_ptr<Generation> g = std::move(queue_.front());
    queue_.pop_front();
    if (g->stop_requested_.load()) {
      Finish(*g, static_cast<v1::FinishReason>(g->stop_reason_.load()), absl::OkStatus());
      continue;
    }
    replica.running.push_back(std::move(g));
  }
  metrics_->queue_depth->Set(static_cast<double>(queue_.size()));

  // Each of the replica's loops takes its share, so that micro-batches split the work.
  const int loops = std::max(1, replica.loops_started);
  const size_t share = (replica.running.size() + loops - 1) / loops;
  std::vector<Planned> plan;
  int64_t budget = options_.max_step_tokens;
  // Releases and decode tokens first, then prompt chunks.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& g : replica.running) {
      if (g->in_step_ || plan.size() >= share) continue;
      const bool stopping = g->stop_requested_.load() || g->finished_;
      if (pass == 0 && stopping) {
        // Released on the workers if they hold its state, else just retired (see below).
        plan.push_back({g, Planned::kRelease, 0});
      } else if (pass == 0 && g->pending_token_ && budget >= 1) {
        plan.push_back({g, Planned::kDecode, 1});
        budget -= 1;
      } else if (pass == 1 && !stopping && !g->pending_token_ && budget > 0) {
        const size_t left = g->spec_.prompt.size() - g->prompt_fed_;
        const size_t n = std::min<size_t>(
            {left, static_cast<size_t>(budget), static_cast<size_t>(options_.prefill_chunk)});
        if (n == 0) continue;
        plan.push_back({g, Planned::kPrefill, n});
        budget -= static_cast<int64_t>(n);
      }
    }
  }
  // Build the request: retired generations that hold no worker state need no sequence.
  request->Clear();
  request->set_step_id(next_step_id_++);
  for (Planned& p : plan) {
    Generation& g = *p.gen;
    g.in_step_ = true;
    if (p.kind == Planned::kRelease) {
      if (!g.started_ || g.released_) continue;
      v1::SequenceInput* s = request->add_sequences();
      s->set_session_id(g.id_);
      s->set_expected_position(g.position_);
      s->set_release(true);
      continue;
    }
    v1::SequenceInput* s = request->add_sequences();
    s->set_session_id(g.id_);
    s->set_expected_position(g.position_);
    s->set_reset(!g.started_);
    if (p.kind == Planned::kDecode) {
      s->add_tokens(*g.pending_token_);
    } else {
      for (size_t i = 0; i < p.tokens; ++i) s->add_tokens(g.spec_.prompt[g.prompt_fed_ + i]);
    }
    const bool samples =
        p.kind == Planned::kDecode || g.prompt_fed_ + p.tokens == g.spec_.prompt.size();
    if (samples) {
      *s->mutable_sampling() = g.spec_.sampling;
      if (g.seed_sent_) s->mutable_sampling()->clear_seed();
      s->set_logprobs(g.spec_.logprobs);
      s->set_top_logprobs(g.spec_.top_logprobs);
      // The step that samples the last allowed token also frees the state.
      if (g.generated_ + 1 >= g.spec_.max_tokens) s->set_release(true);
    }
  }
  return plan;
}

void Scheduler::Apply(Replica& replica, std::vector<Planned>& plan,
                      const absl::StatusOr<v1::StepResult>& result) {
  int index = 0;  // into result->outputs(), which follows the request's sequences
  const absl::Time now = absl::Now();
  for (Planned& p : plan) {
    Generation& g = *p.gen;
    g.in_step_ = false;
    const bool had_sequence = p.kind != Planned::kRelease || (g.started_ && !g.released_);
    const v1::SequenceOutput* out = nullptr;
    if (had_sequence && result.ok()) {
      if (index < result->outputs_size()) out = &result->outputs(index);
      ++index;
    }
    if (!result.ok()) {
      // The workers' view of this generation is unknown; its state there is dropped by
      // their LRU. The client hears why.
      metrics_->Reject("step_failed");
      g.released_ = true;
      Finish(g, v1::FINISH_REASON_UNSPECIFIED, result.status());
      Remove(replica, &g);
      continue;
    }
    if (p.kind == Planned::kRelease) {
      g.released_ = true;
      if (!g.finished_) {
        Finish(g, static_cast<v1::FinishReason>(g.stop_reason_.load()), absl::OkStatus());
      }
      Remove(replica, &g);
      continue;
    }
    g.started_ = true;
    if (out != nullptr) g.position_ = out->position();
    if (p.kind == Planned::kPrefill) {
      g.prompt_fed_ += p.tokens;
    } else {
      g.pending_token_.reset();
    }
    if (out == nullptr || !out->has_sampled_token()) continue;  // a prompt chunk
    if (g.stop_requested_.load() || g.finished_) continue;      // released next step
    const uint32_t token = out->sampled_token();
    g.seed_sent_ = true;
    ++g.generated_;
    const bool last_allowed = g.generated_ >= g.spec_.max_tokens;
    if (last_allowed) g.released_ = true;  // the step carried `release`
    if (!g.spec_.ignore_eos && token == 0) {
      Finish(g, v1::FINISH_REASON_END_OF_TEXT, absl::OkStatus());
      continue;
    }
    if (g.spec_.stop_tokens.contains(token)) {
      Finish(g, v1::FINISH_REASON_STOP, absl::OkStatus());
      continue;
    }
    GenerationEvent e;
    e.tokens.push_back(token);
    if (g.spec_.logprobs) e.logprobs.push_back(out->logprobs());
    e.position = g.position_;
    metrics_->completion_tokens->Increment();
    if (g.generated_ == 1) {
      metrics_->ttft->Observe(absl::ToDoubleSeconds(now - g.submitted_));
    } else {
      metrics_->inter_token->Observe(absl::ToDoubleSeconds(now - g.last_token_time_));
    }
    g.last_token_time_ = now;
    g.Push(std::move(e));
    if (last_allowed) {
      Finish(g, v1::FINISH_REASON_LENGTH, absl::OkStatus());
    } else {
      g.pending_token_ = token;
    }
  }
  // Generations that finished and hold no state leave now.
  replica.running.erase(std::remove_if(replica.running.begin(), replica.running.end(),
                                       [](const auto& g) {
                                         return !g->in_step_ && g->finished_ &&
                                                (g->released_ || !g->started_);
                                       }),
                        replica.running.end());
}

void Scheduler::StepLoop(Replica* replica) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::string label = replica->client.address();
  prometheus::Histogram& step_seconds = metrics_->step_seconds->Add(
      {{"replica", label}}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.02,
                                                                    0.05, 0.1, 0.2, 0.5, 1, 2, 5});
  v1::StepRequest request;
  while (!stopping_) {
    if (!replica->healthy) {
      work_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    std::vector<Planned> plan = Plan(*replica, &request);
    size_t running = 0;
    for (const auto& r : replicas_) running += r->running.size();
    metrics_->running->Set(static_cast<double>(running));
    if (plan.empty()) {
      work_.wait_for(lock, std::chrono::milliseconds(50));
      continue;
    }
    absl::StatusOr<v1::StepResult> result = v1::StepResult();
    if (request.sequences_size() > 0) {
      int64_t tokens = 0;
      for (const auto& s : request.sequences()) tokens += s.tokens_size();
      metrics_->batch_size->Observe(request.sequences_size());
      metrics_->step_tokens->Observe(static_cast<double>(tokens));
      lock.unlock();
      const absl::Time start = absl::Now();
      result = replica->client.Step(request, options_.step_timeout);
      step_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
      lock.lock();
      if (!result.ok() && result.status().code() == absl::StatusCode::kUnavailable) {
        replica->healthy = false;
      }
    }
    Apply(*replica, plan, result);
    if (!replica->healthy)
      FailAll(*replica, absl::UnavailableError(
                            absl::StrCat("pipeline replica ", label, " became unreachable")));
    work_.notify_all();
  }
}

}  // namespace skein::router
