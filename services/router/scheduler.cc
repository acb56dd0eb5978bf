#include "services/router/scheduler.h"

#include <algorithm>
#include <future>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/client_channel.h"
#include "services/common/logging.h"
#include "services/common/status.h"

namespace skein::router {
namespace {

// A failed step that a restart from the last snapshot cures: the replica (or one stage) is
// gone or restarted, or a stage lost or advanced the state.
bool Restartable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded:
      return true;
    default:
      return false;
  }
}

constexpr int kMaxStages = 64;

}  // namespace

Generation::Generation(GenerationSpec spec, std::string id, absl::Time submitted, Progress progress,
                       const absl::Mutex* scheduler_mutex)
    : spec_(std::move(spec)),
      id_(std::move(id)),
      submitted_(submitted),
      progress_(scheduler_mutex, std::move(progress)) {}

void Generation::Push(GenerationEvent e) {
  absl::MutexLock lock(&events_mutex_);
  events_.push_back(std::move(e));
  events_ready_.SignalAll();
}

std::vector<GenerationEvent> Generation::Wait(absl::Duration timeout) {
  absl::MutexLock lock(&events_mutex_);
  // A wake-up with nothing to take (spurious) waits again, until the deadline.
  const absl::Time deadline = absl::Now() + timeout;
  while (events_.empty() && !events_ready_.WaitWithDeadline(&events_mutex_, deadline)) {
  }
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
    replicas_.push_back(std::make_unique<Replica>(address, &mutex_));
  }
  if (options_.store != nullptr) {
    for (int i = 0; i < std::max(1, options_.state_threads); ++i) {
      state_threads_.emplace_back([this] { StateThread(); });
    }
  }
  health_ = std::thread([this] { HealthLoop(); });
}

Scheduler::~Scheduler() {
  std::vector<std::thread> loops;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  work_.SignalAll();
  if (health_.joinable()) health_.join();
  {
    // The health thread, which starts the step loops, is gone: no loop is added now.
    absl::MutexLock lock(&mutex_);
    for (auto& r : replicas_) {
      for (std::thread& t : Locked(*r).loops) loops.push_back(std::move(t));
    }
  }
  for (std::thread& t : loops) t.join();
  for (std::thread& t : state_threads_) t.join();
  absl::MutexLock lock(&mutex_);
  const absl::Status why = absl::UnavailableError("the router is shutting down");
  for (auto& r : replicas_) {
    Replica::State& rs = Locked(*r);
    for (auto& g : rs.running) Finish(*g, v1::FINISH_REASON_UNSPECIFIED, why);
    rs.running.clear();
  }
  for (auto& g : queue_) Finish(*g, v1::FINISH_REASON_UNSPECIFIED, why);
  queue_.clear();
}

std::optional<v1::ModelInfo> Scheduler::model() const {
  absl::MutexLock lock(&mutex_);
  return model_;
}

std::string Scheduler::ModelLabel() const { return model_ ? model_->model().name() : "unknown"; }

void Scheduler::PublishLoad() {
  size_t running = 0;
  for (const auto& r : replicas_) running += Locked(*r).running.size();
  const size_t queued = queue_.size();
  metrics_->queue_depth->Increment(static_cast<double>(queued) -
                                   static_cast<double>(reported_queue_));
  metrics_->running->Increment(static_cast<double>(running) -
                               static_cast<double>(reported_running_));
  const std::string model = ModelLabel();
  if (model != reported_model_) {
    // The pipeline named its model: the series under the old label ("unknown") holds nothing.
    if (model_queue_gauge_ != nullptr) model_queue_gauge_->Set(0);
    if (model_running_gauge_ != nullptr) model_running_gauge_->Set(0);
    // Looked up once per label, not on every step.
    model_queue_gauge_ = &metrics_->model_queue_depth->Add({{"model", model}});
    model_running_gauge_ = &metrics_->model_running->Add({{"model", model}});
    reported_model_ = model;
  }
  model_queue_gauge_->Set(static_cast<double>(queued));
  model_running_gauge_->Set(static_cast<double>(running));
  reported_queue_ = queued;
  reported_running_ = running;
}

absl::StatusOr<ChainHash> Scheduler::BaseChain(const std::string& initial_state,
                                               std::string* digest) const {
  absl::MutexLock lock(&mutex_);
  return BaseChainLocked(initial_state, digest);
}

absl::StatusOr<ChainHash> Scheduler::BaseChainLocked(const std::string& initial_state,
                                                     std::string* digest) const {
  if (!identity_ || !model_) return absl::UnavailableError("no pipeline replica has answered yet");
  if (digest != nullptr) digest->clear();
  if (initial_state.empty()) return *identity_;
  for (const v1::InitialState& s : model_->initial_states()) {
    if (s.name() != initial_state) continue;
    if (digest != nullptr) *digest = s.digest();
    return InitialStateChain(*identity_, s.digest());
  }
  return absl::NotFoundError(absl::StrCat("model '", model_->model().name(),
                                          "' has no initial state named '", initial_state, "'"));
}

std::optional<ChainHash> Scheduler::identity() const {
  absl::MutexLock lock(&mutex_);
  return identity_;
}

size_t Scheduler::healthy_replicas() const {
  absl::MutexLock lock(&mutex_);
  size_t n = 0;
  for (const auto& r : replicas_) n += r->state.Get(mutex_).healthy ? 1 : 0;
  return n;
}

void Scheduler::DropHot(const std::string& worker_id) {
  absl::MutexLock lock(&mutex_);
  auto it = hot_.find(worker_id);
  if (it == hot_.end()) return;
  Replica::State& rs = Locked(*it->second.replica);
  hot_.erase(it);
  if (!rs.healthy || rs.stages.empty()) return;
  // Every stage holds a slice; drop them all (best effort, off the caller's lock).
  std::vector<std::shared_ptr<WorkerClient>> stages = rs.stages;
  RunStateOp([stages, worker_id] {
    for (const auto& s : stages) (void)s->DropState(worker_id, absl::Seconds(5));
  });
}

absl::StatusOr<std::vector<v1::StageInfo>> Scheduler::DescribeChain(Replica& replica) {
  std::vector<v1::StageInfo> chain;
  std::string address = replica.client.address();
  while (true) {
    std::shared_ptr<WorkerClient>& client = replica.chain_clients[address];
    if (client == nullptr) client = std::make_shared<WorkerClient>(address);
    absl::StatusOr<v1::StageInfo> info = client->Info(absl::Milliseconds(500));
    if (!info.ok()) return info.status();
    if (info->stage_index() != chain.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "stage at ", address, " says it is stage ", info->stage_index(), " but is number ",
          chain.size(), " of the chain from ", replica.client.address()));
    }
    std::string next = info->next_stage();
    chain.push_back(*std::move(info));
    if (next.empty()) break;
    if (chain.size() >= kMaxStages) return absl::FailedPreconditionError("chain too long");
    address = std::move(next);
  }
  return chain;
}

void Scheduler::HealthLoop() {
  absl::MutexLock lock(&mutex_);
  while (!stopping_) {
    for (auto& r : replicas_) {
      Replica* replica = r.get();
      mutex_.Unlock();
      absl::StatusOr<std::vector<v1::StageInfo>> chain = DescribeChain(*replica);
      mutex_.Lock();
      if (stopping_) break;
      Replica::State& rs = Locked(*replica);
      std::optional<ChainHash> identity;
      if (chain.ok()) identity = PipelineIdentity(*chain);
      if (chain.ok() && identity_ && *identity != *identity_) {
        chain = absl::FailedPreconditionError("serves another model or layer split");
      }
      if (!chain.ok()) {
        if (rs.healthy) {
          log::Warning(absl::StrCat("pipeline replica ", replica->client.address(),
                                    " is not usable: ", chain.status().message()));
          rs.healthy = false;
          for (auto it = hot_.begin(); it != hot_.end();) {
            if (it->second.replica == replica) {
              hot_.erase(it++);
            } else {
              ++it;
            }
          }
        }
        continue;
      }
      if (!model_) {
        model_ = chain->back().model();
        // The whole model's name and fingerprint: the identity covers every stage.
        model_->mutable_model()->set_fingerprint(HashHex(*identity));
      }
      identity_ = identity;
      const bool draining = std::any_of(chain->begin(), chain->end(),
                                        [](const v1::StageInfo& i) { return i.draining(); });
      if (draining && !rs.draining) {
        log::Info(absl::StrCat("pipeline replica ", replica->client.address(),
                               " is draining: moving its generations"));
        for (auto it = hot_.begin(); it != hot_.end();) {
          if (it->second.replica == replica) {
            hot_.erase(it++);
          } else {
            ++it;
          }
        }
        work_.SignalAll();
      }
      rs.draining = draining;
      rs.stage_count = static_cast<int>(chain->size());
      if (rs.stages.size() != chain->size() || [&] {
            for (size_t i = 1; i < chain->size(); ++i) {
              if (rs.stages[i]->address() != (*chain)[i - 1].next_stage()) return true;
            }
            return false;
          }()) {
        std::vector<std::shared_ptr<WorkerClient>> stages;
        std::string address = replica->client.address();
        for (const v1::StageInfo& info : *chain) {
          stages.push_back(replica->chain_clients[address]);
          address = info.next_stage();
        }
        rs.stages = std::move(stages);
      }
      if (!rs.healthy) {
        rs.healthy = true;
        const int loops = options_.micro_batches > 0 ? options_.micro_batches : rs.stage_count;
        for (; rs.loops_started < loops; ++rs.loops_started) {
          rs.loops.emplace_back([this, replica] { StepLoop(replica); });
        }
        work_.SignalAll();
      }
    }
    bool any = false, all = true;
    size_t healthy = 0;
    for (const auto& r : replicas_) {
      const Replica::State& rs = Locked(*r);
      const bool usable = rs.healthy && !rs.draining;
      any = any || usable;
      all = all && usable;
      healthy += usable ? 1 : 0;
    }
    // Several schedulers (one per model) share the gauge: each adds its own change.
    metrics_->replicas_healthy->Increment(static_cast<double>(healthy) -
                                          static_cast<double>(reported_healthy_));
    reported_healthy_ = healthy;
    if (!any && !queue_.empty()) {
      // Nothing can run what waits: fail it rather than leave it waiting, once a restarted
      // generation has had its grace to see a replica come back.
      const absl::Status why = absl::UnavailableError("no pipeline replica is reachable");
      const absl::Time now = absl::Now();
      for (auto it = queue_.begin(); it != queue_.end();) {
        Generation& g = **it;
        const Generation::Progress& prog = Locked(g);
        const bool restarted = prog.restarts > 0 || prog.queued_at != g.submitted_;
        if (restarted && now - prog.queued_at < options_.no_replica_grace) {
          ++it;
          continue;
        }
        Finish(g, v1::FINISH_REASON_UNSPECIFIED, why);
        it = queue_.erase(it);
      }
      PublishLoad();
    }
    if (any != any_healthy_ && !stopping_) {
      any_healthy_ = any;
      if (options_.on_serving_change) {
        mutex_.Unlock();
        options_.on_serving_change(any);
        mutex_.Lock();
      }
    }
    // Poll quickly while a replica is missing, then every half second; a wake-up that is not
    // the stop (spurious, or another thread's signal) waits again until the deadline.
    const absl::Time deadline = absl::Now() + absl::Milliseconds(all ? 500 : 100);
    while (!stopping_ && !work_.WaitWithDeadline(&mutex_, deadline)) {
    }
  }
}

absl::StatusOr<std::shared_ptr<Generation>> Scheduler::Submit(GenerationSpec spec) {
  if (!spec.start.key.empty() && options_.store == nullptr) {
    return absl::FailedPreconditionError("a stored start state needs a state store");
  }
  if (spec.max_tokens == 0 && !spec.keep) {
    return absl::InvalidArgumentError("a generation that samples nothing must keep its state");
  }
  const absl::Time submitted = absl::Now();
  Generation::Progress progress;
  progress.prompt = std::move(spec.prompt);
  progress.start_tokens = std::move(spec.start_tokens);
  spec.prompt.clear();
  spec.start_tokens.clear();
  absl::MutexLock lock(&mutex_);
  // Without a stored state the generation starts from its base state: the zero state, whose
  // chain hash is the pipeline identity, or a named initial state.
  if (spec.start.key.empty()) {
    absl::StatusOr<ChainHash> base = BaseChainLocked(spec.initial_state, nullptr);
    if (!base.ok() && base.status().code() == absl::StatusCode::kNotFound) return base.status();
    spec.start.chain = base.value_or(ChainHash{});
  }
  progress.restart = spec.start;
  progress.position = progress.restart.position;
  progress.chain = progress.restart.chain;
  bool any = false;
  for (const auto& r : replicas_) {
    const Replica::State& rs = Locked(*r);
    any = any || (rs.healthy && !rs.draining);
  }
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
  progress.queued_at = submitted;
  std::string id =
      spec.worker_id.empty() ? absl::StrCat(id_prefix_, "-", next_id_++) : spec.worker_id;
  metrics_->prompt_tokens->Increment(static_cast<double>(progress.prompt.size()));
  metrics_->model_tokens->Add({{"model", ModelLabel()}, {"direction", "in"}})
      .Increment(static_cast<double>(progress.prompt.size()));
  // Generation's constructor is private (for Submit alone): no make_shared.
  std::shared_ptr<Generation> gen(
      new Generation(std::move(spec), std::move(id), submitted, std::move(progress), &mutex_));
  queue_.push_back(gen);
  PublishLoad();
  work_.SignalAll();
  return gen;
}

void Scheduler::Finish(Generation& gen, v1::FinishReason reason, absl::Status error) {
  Generation::Progress& prog = Locked(gen);
  if (prog.finished) return;
  prog.finished = true;
  if (gen.spec_.on_finished) gen.spec_.on_finished();
  GenerationEvent e;
  e.finished = true;
  e.reason = reason;
  e.error = std::move(error);
  e.position = prog.position;
  metrics_->end_to_end->Observe(absl::ToDoubleSeconds(absl::Now() - gen.submitted_));
  const std::string why = e.error.ok() ? v1::FinishReason_Name(reason) : "ERROR";
  metrics_->finished->Add({{"reason", why}}).Increment();
  metrics_->model_finished->Add({{"model", ModelLabel()}, {"reason", why}}).Increment();
  gen.Push(std::move(e));
}

void Scheduler::Remove(Replica& replica, const Generation* gen) {
  auto& v = Locked(replica).running;
  v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& g) { return g.get() == gen; }),
          v.end());
}

void Scheduler::FailAll(Replica& replica, const absl::Status& why) {
  std::vector<std::shared_ptr<Generation>> idle;
  for (auto& g : Locked(replica).running) {
    const Generation::Progress& prog = Locked(*g);
    if (!prog.in_step && prog.phase != Generation::Phase::kBusy &&
        prog.phase != Generation::Phase::kEnding) {
      idle.push_back(g);
    }
  }
  for (auto& g : idle) {
    if (!Restart(replica, g, why)) {
      Finish(*g, v1::FINISH_REASON_UNSPECIFIED, why);
      Remove(replica, g.get());
    }
  }
}

bool Scheduler::Restart(Replica& replica, const std::shared_ptr<Generation>& gen,
                        const absl::Status& why, bool counts) {
  Generation& g = *gen;
  Generation::Progress& prog = Locked(g);
  if (prog.finished || (counts && prog.restarts >= options_.max_restarts) || !Restartable(why)) {
    return false;
  }
  // Everything fed since the restart point, the sampled token not yet fed, then the rest of
  // the prompt: fed again from the restart point, it rebuilds the state exactly.
  std::vector<uint32_t> feed = prog.since_restart;
  if (prog.pending_token) feed.push_back(*prog.pending_token);
  feed.insert(feed.end(), prog.prompt.begin() + static_cast<std::ptrdiff_t>(prog.prompt_fed),
              prog.prompt.end());
  if (feed.empty() && !prog.ending) return false;
  if (counts) {
    ++prog.restarts;
    metrics_->restarts->Increment();
  }
  prog.queued_at = absl::Now();
  log::Warning(absl::StrCat("restarting generation ", g.id_, " from position ",
                            prog.restart.position, " (", feed.size(),
                            " tokens to feed again) after: ", why.message()));
  prog.prompt = std::move(feed);
  prog.prompt_fed = 0;
  prog.pending_token.reset();
  prog.position = prog.restart.position;
  prog.chain = prog.restart.chain;
  prog.since_restart.clear();
  prog.started = false;
  prog.released = false;
  prog.in_step = false;
  prog.phase = Generation::Phase::kReady;
  // A sampler made afresh on the new replica starts from the seed again.
  prog.seed_sent = false;
  hot_.erase(g.id_);
  Remove(replica, &g);
  queue_.push_front(gen);
  PublishLoad();
  return true;
}

std::vector<Scheduler::Planned> Scheduler::Plan(Replica& replica, v1::StepRequest* request) {
  // Pull queued generations while this replica has room. A generation whose state is hot on
  // a healthy replica waits for that one, unless it runs `affinity_slack` more than the least
  // loaded; the rest go to the least loaded replicas, so that a burst spreads over the
  // replicas instead of landing on whichever loop woke first.
  Replica::State& rs = Locked(replica);
  if (rs.draining) {
    MigrateAll(replica);
    return {};
  }
  // The least load among the replicas taking work (this one included); recomputed as this
  // replica takes generations, so that a burst spreads instead of landing here.
  auto min_load_now = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    size_t m = rs.running.size();
    for (const auto& other : replicas_) {
      const Replica::State& os = Locked(*other);
      if (os.healthy && !os.draining) m = std::min(m, os.running.size());
    }
    return m;
  };
  for (auto it = queue_.begin();
       it != queue_.end() && rs.running.size() < options_.max_running_per_replica;) {
    const size_t min_load = min_load_now();
    const bool least_loaded = rs.running.size() <= min_load;
    std::shared_ptr<Generation>& g = *it;
    if (g->stop_requested_.load() && !g->spec_.keep) {
      Finish(*g, static_cast<v1::FinishReason>(g->stop_reason_.load()), absl::OkStatus());
      it = queue_.erase(it);
      continue;
    }
    Replica* hot = nullptr;
    if (auto h = hot_.find(g->id_); h != hot_.end() && h->second.key == Locked(*g).restart.key &&
                                    Locked(*h->second.replica).healthy &&
                                    !Locked(*h->second.replica).draining) {
      hot = h->second.replica;
    }
    const bool mine = hot == &replica;
    const bool within_slack = hot != nullptr &&
                              Locked(*hot).running.size() <= min_load + options_.affinity_slack &&
                              Locked(*hot).running.size() < options_.max_running_per_replica;
    const bool take =
        mine ? within_slack || least_loaded : (hot == nullptr || !within_slack) && least_loaded;
    if (!take) {
      ++it;
      continue;
    }
    std::shared_ptr<Generation> gen = std::move(g);
    it = queue_.erase(it);
    if (mine) {
      Locked(*gen).started = true;  // the workers hold its state at restart.position
    } else {
      hot_.erase(gen->id_);
      if (!Locked(*gen).restart.key.empty()) StartLoad(replica, gen);
    }
    rs.running.push_back(std::move(gen));
  }
  PublishLoad();

  // Each of the replica's loops takes its share, so that micro-batches split the work.
  const int loops = std::max(1, rs.loops_started);
  const size_t share = (rs.running.size() + loops - 1) / loops;
  std::vector<Planned> plan;
  std::vector<std::shared_ptr<Generation>> ending;
  int64_t budget = options_.max_step_tokens;
  const int64_t grid = options_.store != nullptr ? options_.snapshot_grid : 0;
  // Releases and decode tokens first, then prompt chunks.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& g : rs.running) {
      Generation::Progress& prog = Locked(*g);
      if (prog.in_step || prog.phase != Generation::Phase::kReady || plan.size() >= share) {
        continue;
      }
      const bool stopping = g->stop_requested_.load() || prog.finished;
      const bool prompt_done = prog.prompt_fed == prog.prompt.size();
      if (pass == 0 && stopping && g->spec_.keep) {
        // A session turn ends by snapshotting its state, never by releasing it, and only
        // once its whole prompt is fed (a turn never leaves half a prompt in a session).
        if (!prog.ending) {
          prog.ending = true;
          prog.end_reason = static_cast<v1::FinishReason>(g->stop_reason_.load());
        }
        if (prompt_done && !prog.finished) ending.push_back(g);
      } else if (pass == 0 && stopping) {
        // Released on the workers if they hold its state, else just retired (see below).
        plan.push_back({g, Planned::kRelease, 0});
      } else if (pass == 0 && prog.pending_token && !prog.ending && budget >= 1) {
        plan.push_back({g, Planned::kDecode, 1});
        budget -= 1;
      } else if (pass == 1 && (!stopping || (g->spec_.keep && !prog.finished)) &&
                 !prog.pending_token && !prompt_done && budget > 0) {
        const size_t left = prog.prompt.size() - prog.prompt_fed;
        size_t n = std::min<size_t>(
            {left, static_cast<size_t>(budget), static_cast<size_t>(options_.prefill_chunk)});
        if (grid > 0) {
          // Chunks end on the snapshot grid, so that every grid point can be stored.
          const uint64_t next = (prog.position / grid + 1) * grid;
          n = std::min<size_t>(n, next - prog.position);
        }
        if (options_.store != nullptr && g->spec_.snapshot_at > prog.position) {
          n = std::min<size_t>(n, g->spec_.snapshot_at - prog.position);
        }
        if (n == 0) continue;
        plan.push_back({g, Planned::kPrefill, n});
        budget -= static_cast<int64_t>(n);
      }
    }
  }
  for (auto& g : ending) End(replica, g, Locked(*g).end_reason);
  // Build the request: retired generations that hold no worker state need no sequence.
  request->Clear();
  request->set_step_id(next_step_id_++);
  for (Planned& p : plan) {
    Generation& g = *p.gen;
    Generation::Progress& prog = Locked(g);
    prog.in_step = true;
    if (p.kind == Planned::kRelease) {
      if (!prog.started || prog.released) continue;
      v1::SequenceInput* s = request->add_sequences();
      s->set_session_id(g.id_);
      s->set_expected_position(prog.position);
      s->set_release(true);
      continue;
    }
    v1::SequenceInput* s = request->add_sequences();
    s->set_session_id(g.id_);
    s->set_expected_position(prog.position);
    s->set_reset(!prog.started);
    if (!prog.started) s->set_initial_state(g.spec_.initial_state);
    if (p.kind == Planned::kDecode) {
      s->add_tokens(*prog.pending_token);
    } else {
      for (size_t i = 0; i < p.tokens; ++i) s->add_tokens(prog.prompt[prog.prompt_fed + i]);
    }
    const bool prompt_done =
        p.kind == Planned::kDecode || prog.prompt_fed + p.tokens == prog.prompt.size();
    const bool samples = prompt_done && !prog.ending && prog.generated < g.spec_.max_tokens;
    if (samples) {
      *s->mutable_sampling() = g.spec_.sampling;
      if (prog.seed_sent) s->mutable_sampling()->clear_seed();
      s->set_logprobs(g.spec_.logprobs);
      s->set_top_logprobs(g.spec_.top_logprobs);
      // The step that samples the last allowed token also frees the state (unless kept).
      if (!g.spec_.keep && prog.generated + 1 >= g.spec_.max_tokens) s->set_release(true);
    }
  }
  return plan;
}

void Scheduler::Apply(Replica& replica, std::vector<Planned>& plan,
                      const absl::StatusOr<v1::StepResult>& result) {
  int index = 0;  // into result->outputs(), which follows the request's sequences
  const absl::Time now = absl::Now();
  const int64_t grid = options_.store != nullptr ? options_.snapshot_grid : 0;
  for (Planned& p : plan) {
    Generation& g = *p.gen;
    Generation::Progress& prog = Locked(g);
    prog.in_step = false;
    const bool had_sequence = p.kind != Planned::kRelease || (prog.started && !prog.released);
    const v1::SequenceOutput* out = nullptr;
    if (had_sequence && result.ok()) {
      if (index < result->outputs_size()) out = &result->outputs(index);
      ++index;
    }
    if (!result.ok()) {
      if (p.kind != Planned::kRelease && Restart(replica, p.gen, result.status())) continue;
      // The workers' view of this generation is unknown; its state there is dropped by
      // their LRU. The client hears why.
      metrics_->Reject("step_failed");
      prog.released = true;
      Finish(g, v1::FINISH_REASON_UNSPECIFIED, result.status());
      Remove(replica, &g);
      continue;
    }
    if (p.kind == Planned::kRelease) {
      prog.released = true;
      if (!prog.finished) {
        Finish(g, static_cast<v1::FinishReason>(g.stop_reason_.load()), absl::OkStatus());
      }
      Remove(replica, &g);
      continue;
    }
    prog.started = true;
    if (out != nullptr) prog.position = out->position();
    // The token log: what was fed, for the chain hash and for a replay.
    const size_t log_start = prog.since_restart.size();
    if (p.kind == Planned::kPrefill) {
      prog.since_restart.insert(
          prog.since_restart.end(),
          prog.prompt.begin() + static_cast<std::ptrdiff_t>(prog.prompt_fed),
          prog.prompt.begin() + static_cast<std::ptrdiff_t>(prog.prompt_fed + p.tokens));
      prog.prompt_fed += p.tokens;
    } else {
      prog.since_restart.push_back(*prog.pending_token);
      prog.pending_token.reset();
    }
    if (options_.store != nullptr) {
      prog.chain =
          ExtendChain(prog.chain, std::span<const uint32_t>(prog.since_restart).subspan(log_start));
    }
    const bool prompt_done = prog.prompt_fed == prog.prompt.size();
    if (out == nullptr || !out->has_sampled_token()) {
      // A prompt chunk. A kept generation that samples nothing more ends once it is fed.
      if (prompt_done && g.spec_.keep && (prog.ending || prog.generated >= g.spec_.max_tokens)) {
        End(replica, p.gen, prog.ending ? prog.end_reason : v1::FINISH_REASON_LENGTH);
      } else if (options_.store != nullptr && p.kind == Planned::kPrefill &&
                 ((grid > 0 && prog.position % grid == 0) ||
                  prog.position == g.spec_.snapshot_at) &&
                 prog.position > prog.restart.position && !g.stop_requested_.load()) {
        StartSnapshot(replica, p.gen, /*final=*/false);
      }
      continue;
    }
    if (g.stop_requested_.load() || prog.finished) continue;  // released or ended next step
    const uint32_t token = out->sampled_token();
    prog.seed_sent = true;
    ++prog.generated;
    const bool last_allowed = prog.generated >= g.spec_.max_tokens;
    if (last_allowed && !g.spec_.keep) prog.released = true;  // the step carried `release`
    // A kept generation keeps every sampled token in its conversation (fed next turn).
    if (g.spec_.keep) prog.pending_token = token;
    if (!g.spec_.ignore_eos && token == 0) {
      if (g.spec_.keep) {
        End(replica, p.gen, v1::FINISH_REASON_END_OF_TEXT);
      } else {
        Finish(g, v1::FINISH_REASON_END_OF_TEXT, absl::OkStatus());
      }
      continue;
    }
    if (g.spec_.stop_tokens.contains(token)) {
      if (g.spec_.keep) {
        End(replica, p.gen, v1::FINISH_REASON_STOP);
      } else {
        Finish(g, v1::FINISH_REASON_STOP, absl::OkStatus());
      }
      continue;
    }
    prog.generated_tokens.push_back(token);  // as the client sees them
    GenerationEvent e;
    e.tokens.push_back(token);
    if (g.spec_.logprobs) e.logprobs.push_back(out->logprobs());
    e.position = prog.position;
    metrics_->completion_tokens->Increment();
    metrics_->model_tokens->Add({{"model", ModelLabel()}, {"direction", "out"}}).Increment();
    if (prog.generated == 1) {
      metrics_->ttft->Observe(absl::ToDoubleSeconds(now - g.submitted_));
      metrics_->ModelTtft(ModelLabel()).Observe(absl::ToDoubleSeconds(now - g.submitted_));
    } else {
      metrics_->inter_token->Observe(absl::ToDoubleSeconds(now - prog.last_token_time));
    }
    prog.last_token_time = now;
    g.Push(std::move(e));
    if (last_allowed) {
      if (g.spec_.keep) {
        End(replica, p.gen, v1::FINISH_REASON_LENGTH);
      } else {
        Finish(g, v1::FINISH_REASON_LENGTH, absl::OkStatus());
      }
    } else {
      prog.pending_token = token;
    }
  }
  // Generations that finished and hold no state leave now.
  std::vector<std::shared_ptr<Generation>>& running = Locked(replica).running;
  running.erase(std::remove_if(running.begin(), running.end(),
                               [&](const auto& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
                                 const Generation::Progress& prog = Locked(*g);
                                 return !prog.in_step && prog.finished &&
                                        (prog.released || !prog.started);
                               }),
                running.end());
}

void Scheduler::StepLoop(Replica* replica) {
  absl::MutexLock lock(&mutex_);
  const std::string label = replica->client.address();
  prometheus::Histogram& step_seconds = metrics_->step_seconds->Add(
      {{"replica", label}}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.02,
                                                                    0.05, 0.1, 0.2, 0.5, 1, 2, 5});
  v1::StepRequest request;
  while (!stopping_) {
    if (!Locked(*replica).healthy) {
      if (!Locked(*replica).running.empty()) {
        FailAll(*replica, absl::UnavailableError(
                              absl::StrCat("pipeline replica ", label, " became unreachable")));
      }
      work_.WaitWithTimeout(&mutex_, absl::Milliseconds(200));
      continue;
    }
    std::vector<Planned> plan = Plan(*replica, &request);
    PublishLoad();
    if (plan.empty()) {
      work_.WaitWithTimeout(&mutex_, absl::Milliseconds(50));
      continue;
    }
    absl::StatusOr<v1::StepResult> result = v1::StepResult();
    if (request.sequences_size() > 0) {
      int64_t tokens = 0;
      for (const auto& s : request.sequences()) tokens += s.tokens_size();
      metrics_->batch_size->Observe(request.sequences_size());
      metrics_->step_tokens->Observe(static_cast<double>(tokens));
      mutex_.Unlock();
      const absl::Time start = absl::Now();
      result = replica->client.Step(request, options_.step_timeout);
      step_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
      mutex_.Lock();
      if (!result.ok() && result.status().code() == absl::StatusCode::kUnavailable) {
        Locked(*replica).healthy = false;
      }
    }
    Apply(*replica, plan, result);
    if (!Locked(*replica).healthy)
      FailAll(*replica, absl::UnavailableError(
                            absl::StrCat("pipeline replica ", label, " became unreachable")));
    work_.SignalAll();
  }
}

}  // namespace skein::router
