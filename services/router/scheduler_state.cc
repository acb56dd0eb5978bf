// The scheduler's state I/O (see the contract in scheduler.h): loading a generation's start
// state onto a replica, snapshots (grid and turn end), and the end of a kept generation.
// Runs on the scheduler's state threads; never inside a step loop.
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/client_channel.h"
#include "services/common/logging.h"
#include "services/common/status.h"
#include "services/router/scheduler.h"

namespace skein::router {

void Scheduler::RunStateOp(std::function<void()> op) {
  state_ops_.push_back(std::move(op));
  work_.SignalAll();
}

void Scheduler::StateThread() {
  absl::MutexLock lock(&mutex_);
  while (!stopping_) {
    if (state_ops_.empty()) {
      work_.WaitWithTimeout(&mutex_, absl::Milliseconds(200));
      continue;
    }
    std::function<void()> op = std::move(state_ops_.front());
    state_ops_.pop_front();
    mutex_.Unlock();
    op();
    mutex_.Lock();
  }
}

absl::Status Scheduler::Load(Replica& replica, const std::string& worker_id,
                             const StartPoint& start) {
  absl::Status status;
  for (int attempt = 0; attempt < 2; ++attempt) {
    status = LoadOnce(replica, worker_id, start);
    if (status.code() != absl::StatusCode::kUnavailable) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return status;
}

absl::Status Scheduler::LoadOnce(Replica& replica, const std::string& worker_id,
                                 const StartPoint& start) {
  std::vector<std::shared_ptr<WorkerClient>> stages;
  {
    absl::MutexLock lock(&mutex_);
    stages = Locked(replica).stages;
  }
  if (stages.empty()) return absl::UnavailableError("the replica's stages are not known yet");
  const absl::Time begin = absl::Now();
  // Every stage reads the version committed now, so the slices come from one commit.
  absl::StatusOr<v1::EntryInfo> info = options_.store->Stat(start.key, options_.state_timeout);
  if (!info.ok()) return info.status();
  if (info->parts_size() != static_cast<int>(stages.size())) {
    return absl::FailedPreconditionError(absl::StrCat("stored state ", start.key, " has ",
                                                      info->parts_size(), " parts for ",
                                                      stages.size(), " stages"));
  }
  const uint64_t version = info->version();
  std::vector<std::future<absl::StatusOr<v1::SessionStateInfo>>> calls;
  for (size_t k = 0; k < stages.size(); ++k) {
    v1::LoadStateRequest request;
    request.set_session_id(worker_id);
    request.mutable_store()->set_key(start.key);
    request.mutable_store()->set_part(static_cast<uint32_t>(k));
    request.mutable_store()->set_version(version);
    if (k + 1 == stages.size()) request.set_sampler_state(start.sampler);
    calls.push_back(std::async(std::launch::async, [stage = stages[k], request, this] {
      return stage->LoadState(request, options_.state_timeout);
    }));
  }
  absl::Status status;
  for (auto& c : calls) {
    absl::StatusOr<v1::SessionStateInfo> info = c.get();
    if (!status.ok()) continue;
    if (!info.ok()) {
      status = info.status();
    } else if (info->metadata().token_position() != start.position) {
      status = absl::DataLossError(absl::StrCat("stored state ", start.key, " holds position ",
                                                info->metadata().token_position(), ", not ",
                                                start.position));
    }
  }
  if (status.ok()) metrics_->load_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - begin));
  return status;
}

absl::StatusOr<StartPoint> Scheduler::Snapshot(Replica& replica, const std::string& worker_id,
                                               uint64_t position, const ChainHash& chain,
                                               bool with_sampler) {
  // A store process that went away (several may share one Redis) fails the calls that were
  // on it; the next attempt goes to another. A dead worker fails both attempts.
  absl::StatusOr<StartPoint> point;
  for (int attempt = 0; attempt < 2; ++attempt) {
    point = SnapshotOnce(replica, worker_id, position, chain, with_sampler);
    if (point.ok() || point.status().code() != absl::StatusCode::kUnavailable) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return point;
}

absl::StatusOr<StartPoint> Scheduler::SnapshotOnce(Replica& replica, const std::string& worker_id,
                                                   uint64_t position, const ChainHash& chain,
                                                   bool with_sampler) {
  std::vector<std::shared_ptr<WorkerClient>> stages;
  ChainHash identity;
  {
    absl::MutexLock lock(&mutex_);
    stages = Locked(replica).stages;
    identity = identity_.value_or(ChainHash{});
  }
  if (stages.empty()) return absl::UnavailableError("the replica's stages are not known yet");
  StartPoint point;
  point.key = StateKey(identity, chain);
  point.position = position;
  point.chain = chain;
  state_store::StateStoreClient& store = *options_.store;
  {
    absl::StatusOr<v1::EntryInfo> info = store.Stat(point.key, options_.state_timeout);
    if (info.ok() && info->parts_size() == static_cast<int>(stages.size()) &&
        info->parts(0).metadata().token_position() == position) {
      // The same tokens through the same pipeline: the state is already stored.
      if (with_sampler) {
        v1::SaveStateRequest request;
        request.set_session_id(worker_id);
        request.set_sampler_only(true);
        absl::StatusOr<v1::SaveStateResponse> last =
            stages.back()->SaveState(request, options_.state_timeout);
        if (!last.ok()) return last.status();
        point.sampler = last->sampler_state();
      }
      return point;
    }
  }
  std::string snapshot_id;
  {
    grpc::ClientContext context;
    SetTimeout(&context, options_.state_timeout);
    v1::BeginSnapshotRequest begin;
    begin.set_key(point.key);
    begin.set_part_count(static_cast<uint32_t>(stages.size()));
    begin.set_ttl_seconds(options_.prefix_ttl_seconds);
    v1::BeginSnapshotResponse begun;
    grpc::Status s = store.stub().BeginSnapshot(&context, begin, &begun);
    if (!s.ok()) return FromGrpcStatus(s);
    snapshot_id = begun.snapshot_id();
  }
  auto abort = [&] {
    grpc::ClientContext context;
    SetTimeout(&context, options_.state_timeout);
    v1::AbortSnapshotRequest request;
    request.set_snapshot_id(snapshot_id);
    v1::AbortSnapshotResponse response;
    (void)store.stub().AbortSnapshot(&context, request, &response);
  };
  std::vector<std::future<absl::StatusOr<v1::SaveStateResponse>>> calls;
  for (size_t k = 0; k < stages.size(); ++k) {
    v1::SaveStateRequest request;
    request.set_session_id(worker_id);
    request.mutable_store()->set_key(point.key);
    request.mutable_store()->set_part(static_cast<uint32_t>(k));
    request.mutable_store()->set_snapshot_id(snapshot_id);
    calls.push_back(std::async(std::launch::async, [stage = stages[k], request, this] {
      return stage->SaveState(request, options_.state_timeout);
    }));
  }
  absl::Status status;
  for (size_t k = 0; k < calls.size(); ++k) {
    absl::StatusOr<v1::SaveStateResponse> saved = calls[k].get();
    if (!status.ok()) continue;
    if (!saved.ok()) {
      status = saved.status();
    } else if (saved->metadata().token_position() != position) {
      status = absl::FailedPreconditionError(
          absl::StrCat("stage ", k, " holds position ", saved->metadata().token_position(), " for ",
                       worker_id, ", expected ", position));
    } else if (k + 1 == calls.size()) {
      point.sampler = saved->sampler_state();
    }
  }
  if (!status.ok()) {
    abort();
    return status;
  }
  grpc::ClientContext context;
  SetTimeout(&context, options_.state_timeout);
  v1::CommitSnapshotRequest commit;
  commit.set_snapshot_id(snapshot_id);
  commit.set_expected_version(0);
  v1::EntryInfo committed;
  grpc::Status s = store.stub().CommitSnapshot(&context, commit, &committed);
  if (!s.ok()) {
    abort();
    // Another writer stored the same tokens' state first: that one serves.
    if (s.error_code() != grpc::StatusCode::ABORTED) return FromGrpcStatus(s);
  }
  return point;
}

void Scheduler::StartLoad(Replica& replica, std::shared_ptr<Generation> gen) {
  Generation::Progress& prog = Locked(*gen);
  prog.phase = Generation::Phase::kBusy;
  // A busy generation's restart point stays as it is until the load is done; the copy keeps
  // the state thread off the generation's fields until it holds the lock again.
  RunStateOp([this, &replica, gen, start = prog.restart] {
    const absl::Status s = Load(replica, gen->id_, start);
    absl::MutexLock lock(&mutex_);
    Generation& g = *gen;
    Generation::Progress& prog = Locked(g);
    prog.phase = Generation::Phase::kReady;
    work_.SignalAll();
    if (s.ok()) {
      prog.started = true;
      return;
    }
    if (!prog.start_tokens.empty() && prog.restart.key == g.spec_.start.key &&
        (s.code() == absl::StatusCode::kNotFound || s.code() == absl::StatusCode::kDataLoss)) {
      // The cached prefix went away (evicted) or is damaged: compute it instead.
      log::Warning(absl::StrCat("prefix state ", prog.restart.key, " unusable (", s.message(),
                                "); computing the prefix"));
      std::vector<uint32_t> feed = prog.start_tokens;
      feed.insert(feed.end(), prog.prompt.begin(), prog.prompt.end());
      prog.prompt = std::move(feed);
      prog.start_tokens.clear();
      prog.restart = StartPoint{};
      prog.restart.chain = BaseChainLocked(g.spec_.initial_state, nullptr).value_or(ChainHash{});
      prog.chain = prog.restart.chain;
      prog.position = 0;
      return;
    }
    if (!Restart(replica, gen, s)) {
      Finish(g, v1::FINISH_REASON_UNSPECIFIED, s);
      Remove(replica, &g);
    }
  });
}

void Scheduler::StartSnapshot(Replica& replica, std::shared_ptr<Generation> gen, bool final) {
  Generation::Progress& prog = Locked(*gen);
  prog.phase = final ? Generation::Phase::kEnding : Generation::Phase::kBusy;
  // Nothing fed since the restart point (or nothing at all): that point is the state.
  const bool unchanged = prog.position == prog.restart.position && prog.since_restart.empty();
  const uint64_t position = prog.position;
  const ChainHash chain = prog.chain;
  RunStateOp([this, &replica, gen, final, unchanged, position, chain, restart = prog.restart] {
    const absl::Time begin = absl::Now();
    absl::StatusOr<StartPoint> point = restart;
    if (!unchanged) point = Snapshot(replica, gen->id_, position, chain, final);
    const char* kind = final ? "turn" : "grid";
    if (!unchanged) {
      metrics_->snapshots->Add({{"kind", kind}, {"result", point.ok() ? "ok" : "failed"}})
          .Increment();
      if (point.ok()) {
        metrics_->snapshot_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - begin));
      }
    }
    if (!final) {
      absl::MutexLock lock(&mutex_);
      Generation::Progress& prog = Locked(*gen);
      prog.phase = Generation::Phase::kReady;
      work_.SignalAll();
      if (!point.ok()) {
        // A missed prefix entry costs only a longer replay should this generation restart.
        log::Warning(absl::StrCat("snapshot of ", gen->id_, " at ", position,
                                  " failed: ", point.status().message()));
        return;
      }
      prog.restart = *std::move(point);
      // Fed after the snapshot position cannot exist: the generation waited for it.
      prog.since_restart.clear();
      return;
    }
    absl::Status status = point.status();
    TurnEnd end;
    if (point.ok()) {
      absl::MutexLock lock(&mutex_);
      const Generation::Progress& prog = Locked(*gen);
      end.snapshot = *point;
      if (prog.pending_token) end.pending.push_back(*prog.pending_token);
      end.generated = prog.generated_tokens;
      end.reason = prog.end_reason;
    }
    // Without the lock: on_end writes the session to the store.
    if (status.ok() && gen->spec_.on_end) status = gen->spec_.on_end(end);
    absl::MutexLock lock(&mutex_);
    Generation& g = *gen;
    Generation::Progress& prog = Locked(g);
    work_.SignalAll();
    if (!point.ok() && Restart(replica, gen, point.status())) return;  // ends after replay
    if (status.ok()) {
      prog.restart = *point;
      prog.since_restart.clear();
      if (!point->key.empty()) hot_[g.id_] = Hot{&replica, point->key};
    } else {
      hot_.erase(g.id_);
    }
    prog.phase = Generation::Phase::kReady;
    prog.released = true;  // the state stays hot on the workers, owned by the session
    Finish(g, prog.end_reason, status);
    Remove(replica, &g);
  });
}

void Scheduler::End(Replica& replica, const std::shared_ptr<Generation>& gen,
                    v1::FinishReason reason) {
  Generation::Progress& prog = Locked(*gen);
  if (!prog.ending) {
    prog.ending = true;
    prog.end_reason = reason;
  }
  StartSnapshot(replica, gen, /*final=*/true);
}

void Scheduler::MigrateAll(Replica& replica) {
  const absl::Status why = absl::UnavailableError(
      absl::StrCat("pipeline replica ", replica.client.address(), " is draining"));
  std::vector<std::shared_ptr<Generation>> idle;
  for (auto& g : Locked(replica).running) {
    const Generation::Progress& prog = Locked(*g);
    if (!prog.in_step && prog.phase == Generation::Phase::kReady) idle.push_back(g);
  }
  for (auto& gen : idle) {
    Generation& g = *gen;
    Generation::Progress& prog = Locked(g);
    const bool stopping = g.stop_requested_.load() || prog.finished;
    if (stopping && !g.spec_.keep) {
      // Nothing to move: its state dies with the stage.
      prog.released = true;
      Finish(g, static_cast<v1::FinishReason>(g.stop_reason_.load()), absl::OkStatus());
      Remove(replica, &g);
      continue;
    }
    if (stopping || (prog.ending && prog.prompt_fed == prog.prompt.size())) {
      End(replica, gen,
          prog.ending ? prog.end_reason : static_cast<v1::FinishReason>(g.stop_reason_.load()));
      continue;
    }
    if (!prog.started || options_.store == nullptr) {
      // No state here yet (or nowhere to save it): start again elsewhere from the start point.
      if (!Restart(replica, gen, why, /*counts=*/false)) {
        Finish(g, v1::FINISH_REASON_UNSPECIFIED, why);
        Remove(replica, &g);
      }
      continue;
    }
    // Snapshot it here, at this step boundary, then restart it from that snapshot.
    metrics_->migrations->Increment();
    prog.phase = Generation::Phase::kBusy;
    const uint64_t position = prog.position;
    const ChainHash chain = prog.chain;
    RunStateOp([this, &replica, gen, position, chain, why] {
      absl::StatusOr<StartPoint> point =
          Snapshot(replica, gen->id_, position, chain, /*with_sampler=*/true);
      absl::MutexLock lock(&mutex_);
      Generation& g = *gen;
      Generation::Progress& prog = Locked(g);
      prog.phase = Generation::Phase::kReady;
      if (point.ok()) {
        prog.restart = *std::move(point);
        prog.since_restart.clear();
      } else {
        log::Warning(absl::StrCat("snapshot of ", g.id_, " on a draining replica failed (",
                                  point.status().message(), "); replaying from position ",
                                  prog.restart.position));
      }
      if (!Restart(replica, gen, why, /*counts=*/false)) {
        Finish(g, v1::FINISH_REASON_UNSPECIFIED, why);
        Remove(replica, &g);
      }
      work_.SignalAll();
    });
  }
}

}  // namespace skein::router
