#include "services/worker/link/grpc_relay_link.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/client_channel.h"

namespace skein::link {

GrpcRelayLink::GrpcRelayLink(std::string target, v1::ActivationDType dtype, size_t max_frame_bytes)
    : target_(std::move(target)), dtype_(dtype), max_frame_bytes_(max_frame_bytes) {
  channel_ = CreateClientChannel(target_);
  stub_ = v1::WorkerService::NewStub(channel_);
}

GrpcRelayLink::~GrpcRelayLink() {
  // write_mutex_ stays held while the readers are joined (it owns their threads); a reader
  // never takes it, nor do the callbacks it runs.
  absl::MutexLock write_lock(&write_mutex_);
  std::vector<std::unique_ptr<Stream>> streams;
  {
    absl::MutexLock lock(&mutex_);
    if (stream_) streams.push_back(std::move(stream_));
    for (auto& s : retired_) streams.push_back(std::move(s));
  }
  for (auto& s : streams) {
    s->context.TryCancel();
    std::thread& reader = s->reader.Get(write_mutex_);
    if (reader.joinable()) reader.join();
  }
}

void GrpcRelayLink::FailAll(absl::flat_hash_map<uint64_t, Pending> pending,
                            const absl::Status& why) {
  for (auto& [id, p] : pending) p.done(why);
}

void GrpcRelayLink::Send(const v1::StepRequest& step, const model::StageActivations& acts,
                         Done done) {
  v1::StepRequest relayed = step;
  // write_mutex_ keeps frames of different steps from interleaving and orders the steps;
  // mutex_ guards only the bookkeeping, so the reader delivers results while a write waits
  // on flow control.
  absl::MutexLock write_lock(&write_mutex_);
  Stream* s = nullptr;
  std::vector<std::unique_ptr<Stream>> finished;
  {
    absl::MutexLock lock(&mutex_);
    if (stream_ != nullptr && stream_->shared.Get(mutex_).broken) {
      retired_.push_back(std::move(stream_));
    }
    // Readers of broken streams end once their pending steps have failed; collect them.
    for (auto it = retired_.begin(); it != retired_.end();) {
      const Stream::Shared& shared = (*it)->shared.Get(mutex_);
      if (shared.pending.empty() && shared.reader_done) {
        finished.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
    s = stream_.get();
  }
  // Their readers have nothing left to touch; join them, and the streams go with `finished`.
  for (auto& f : finished) f->reader.Get(write_mutex_).join();
  if (s == nullptr) {
    auto fresh = std::make_unique<Stream>(&mutex_, &write_mutex_);
    fresh->rw = stub_->Relay(&fresh->context);
    s = fresh.get();
    {
      absl::MutexLock lock(&mutex_);
      stream_ = std::move(fresh);
    }
    s->reader.Get(write_mutex_) = std::thread([this, s] { ReadLoop(s); });
  }
  bool dead = false;
  {
    absl::MutexLock lock(&mutex_);
    Stream::Shared& shared = s->shared.Get(mutex_);
    // The reader may have ended between the check above and now; it no longer fails what is
    // pending, so a step registered there would never be answered.
    dead = shared.broken;
    if (!dead) {
      const uint64_t id = next_id_++;
      relayed.set_step_id(id);
      shared.pending.emplace(id, Pending{step.step_id(), std::move(done)});
    }
  }
  if (dead) {
    done(absl::UnavailableError(
        absl::StrCat("link to the next stage (", target_, ") broke before the step was sent")));
    return;
  }
  const std::vector<v1::ActivationFrame> frames =
      EncodeFrames(relayed, acts, dtype_, max_frame_bytes_);
  uint64_t bytes = 0;
  bool ok = true;
  for (const v1::ActivationFrame& f : frames) {
    bytes += f.hidden().size() + f.v_first().size();
    if (!s->rw->Write(f)) {
      ok = false;
      break;
    }
  }
  absl::MutexLock lock(&mutex_);
  stats_.bytes_sent += bytes;
  stats_.frames_sent += frames.size();
  if (!ok) {
    // The stream is gone; its reader sees the end and fails what is pending (this step too).
    s->shared.Get(mutex_).broken = true;
    s->context.TryCancel();
  }
}

void GrpcRelayLink::ReadLoop(Stream* s) {
  v1::StepResult result;
  while (s->rw->Read(&result)) {
    Pending p;
    {
      absl::MutexLock lock(&mutex_);
      absl::flat_hash_map<uint64_t, Pending>& pending = s->shared.Get(mutex_).pending;
      auto it = pending.find(result.step_id());
      if (it == pending.end()) continue;  // not ours: ignore
      p = std::move(it->second);
      pending.erase(it);
    }
    result.set_step_id(p.caller_step_id);
    if (result.error_code() != 0) {
      p.done(
          absl::Status(static_cast<absl::StatusCode>(result.error_code()), result.error_message()));
    } else {
      p.done(std::move(result));
    }
    result.Clear();
  }
  grpc::Status status = s->rw->Finish();
  absl::flat_hash_map<uint64_t, Pending> pending;
  {
    absl::MutexLock lock(&mutex_);
    Stream::Shared& shared = s->shared.Get(mutex_);
    shared.broken = true;
    pending = std::move(shared.pending);
    shared.pending.clear();
  }
  const absl::Status why = absl::UnavailableError(
      absl::StrCat("link to the next stage (", target_,
                   ") broke: ", status.ok() ? "stream ended" : status.error_message()));
  FailAll(std::move(pending), why);
  absl::MutexLock lock(&mutex_);
  s->shared.Get(mutex_).reader_done = true;
}

LinkStats GrpcRelayLink::stats() const {
  absl::MutexLock lock(&mutex_);
  LinkStats s = stats_;
  if (stream_) s.in_flight = static_cast<uint32_t>(stream_->shared.Get(mutex_).pending.size());
  return s;
}

}  // namespace skein::link
