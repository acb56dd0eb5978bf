// The NCCL stage link: the sending side (NcclStageLink) and the receiving side (Inbound) of one
// pair of stages. The CUDA and NCCL calls go through the GPU plugin (model/device/gpu_plugin.h:
// a context, staging buffers and one communicator per endpoint), which is loaded at run time;
// without it (a build without CUDA, or a plugin without NCCL) every way in says so.
//
// NCCL's blocking communicators have no time-out: a transfer whose peer is gone waits forever on
// the GPU. So whatever learns that the peer is gone (the end of the Relay stream on the sender, a
// newer OpenNcclLink on the receiver) aborts the communicator, which ends such a transfer and
// frees a thread waiting for it. Taking a communicator and aborting it take the owner's `mu`;
// transfers and waits run without it, so the abort can come from another thread.
#include "services/worker/link/nccl_stage_link.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "kernels/cuda/context.h"
#include "services/common/client_channel.h"
#include "services/worker/link/activation_frames.h"
#include "services/worker/model/device/gpu_plugin.h"
#include "skein/v1/worker.grpc.pb.h"

namespace skein::link {
namespace {

// The sender is rank 0 and the receiver rank 1 of every pair's communicator.
constexpr int kSenderRank = 0;
constexpr int kReceiverRank = 1;
// How long a Send waits to reopen a broken link before failing its step.
constexpr absl::Duration kReopenTimeout = absl::Seconds(10);

absl::Status CudaError(absl::StatusCode code, const std::string& what, const cuda::Status& s) {
  return absl::Status(code, absl::StrCat(what, ": ", s.message()));
}

cuda::DType WireType(v1::ActivationDType dtype) {
  return dtype == v1::ACTIVATION_DTYPE_BF16 ? cuda::DType::kBF16 : cuda::DType::kF32;
}

// The plugin with NCCL, and the device. UNAVAILABLE naming what is missing.
absl::Status DeviceUsable(int device) {
  if (absl::Status s = model::NcclAvailable(); !s.ok()) return s;
  absl::StatusOr<int> devices = model::GpuDeviceCount();
  if (!devices.ok()) return devices.status();
  if (device < 0 || device >= *devices) {
    return absl::UnavailableError(
        absl::StrCat("CUDA device ", device, " does not exist (", *devices, " found)"));
  }
  return absl::OkStatus();
}

class NcclStageLink final : public StageLink {
 public:
  explicit NcclStageLink(NcclStageLinkOptions options)
      : options_(std::move(options)),
        channel_(CreateClientChannel(options_.target)),
        stub_(v1::WorkerService::NewStub(channel_)),
        next_link_id_(static_cast<uint64_t>(absl::GetCurrentTimeNanos()) | 1) {}

  ~NcclStageLink() override {
    absl::MutexLock write_lock(&write_mutex_);
    if (session_ != nullptr) CloseSession(std::move(session_), /*graceful=*/true);
  }

  // Opens the first session (OpenNcclStageLink's contract).
  absl::Status Init(absl::Time deadline) {
    absl::MutexLock write_lock(&write_mutex_);
    absl::StatusOr<std::unique_ptr<Session>> session = OpenSession(deadline);
    if (!session.ok()) return session.status();
    StartSession(*std::move(session));
    return absl::OkStatus();
  }

  void Send(const v1::StepRequest& step, const model::StageActivations& acts, Done done) override {
    // write_mutex_ orders the steps: each frame is followed by its transfer before the next
    // frame is written, so the receiver posts its receives in the order of the sends.
    absl::MutexLock write_lock(&write_mutex_);
    if (session_ != nullptr && !Live(session_->link_id)) {
      CloseSession(std::move(session_), /*graceful=*/false);
    }
    if (session_ == nullptr) {
      absl::StatusOr<std::unique_ptr<Session>> fresh = OpenSession(absl::Now() + kReopenTimeout);
      if (!fresh.ok()) {
        done(absl::UnavailableError(
            absl::StrCat("NCCL link to the next stage (", options_.target,
                         ") is broken and did not reopen: ", fresh.status().message())));
        return;
      }
      StartSession(*std::move(fresh));
    }
    Session* s = session_.get();
    uint64_t id = 0;
    {
      absl::MutexLock lock(&mutex_);
      if (live_link_id_ == s->link_id) {
        id = next_step_id_++;
        pending_.emplace(id, Pending{step.step_id(), s->link_id, std::move(done)});
      }
    }
    if (id == 0) {
      // The stream ended since the check above; its reader no longer fails what is pending.
      done(absl::UnavailableError(absl::StrCat("NCCL link to the next stage (", options_.target,
                                               ") broke before the step was sent")));
      return;
    }
    v1::StepRequest relayed = step;
    relayed.set_step_id(id);
    if (!s->rw->Write(EncodeNcclFrame(relayed, acts, options_.dtype, s->link_id))) {
      // No transfer follows a frame that was not written. The reader sees the end and fails
      // what is pending, this step too.
      s->context.TryCancel();
      return;
    }
    EncodeNcclPayload(acts, options_.dtype, &host_);
    const cuda::Status sent = Transfer(s);
    {
      absl::MutexLock lock(&mutex_);
      stats_.bytes_sent += host_.size();
      stats_.frames_sent += 1;
    }
    if (sent.ok()) return;
    // The next stage waits for rows that will not come: the pair no longer agrees on what
    // follows, so this communicator is done. This step fails with NCCL's reason; the reader
    // fails the others when the cancelled stream ends, and the next Send reopens.
    Pending failed;
    bool found = false;
    {
      absl::MutexLock lock(&mutex_);
      auto it = pending_.find(id);
      if (it != pending_.end()) {
        failed = std::move(it->second);
        pending_.erase(it);
        found = true;
      }
    }
    AbortComm(s);
    s->context.TryCancel();
    if (found) {
      failed.done(CudaError(absl::StatusCode::kInternal,
                            absl::StrCat("sending activations to ", options_.target), sent));
    }
  }

  std::string peer() const override { return options_.target; }
  std::string kind() const override { return "nccl"; }

  LinkStats stats() const override {
    absl::MutexLock lock(&mutex_);
    LinkStats s = stats_;
    s.in_flight = static_cast<uint32_t>(pending_.size());
    return s;
  }

 private:
  struct Pending {
    uint64_t caller_step_id = 0;
    uint64_t link_id = 0;
    Done done;
  };
  // One communicator with the Relay stream that carries its frames and results.
  struct Session {
    uint64_t link_id = 0;
    absl::Mutex mu;
    // Removed only by CloseSession (under write_mutex_), so a holder of write_mutex_ may use
    // it without `mu`.
    std::unique_ptr<SkeinNcclEndpoint> nccl ABSL_GUARDED_BY(mu);
    grpc::ClientContext context;  // TryCancel is thread-safe
    // Written by one sender at a time (write_mutex_), read by the reader.
    std::unique_ptr<grpc::ClientReaderWriter<v1::ActivationFrame, v1::StepResult>> rw;
    std::thread reader;
    // Set when this side closes the session, so that the reader does not abort a
    // communicator that is being shut down in order.
    std::atomic<bool> closing{false};
  };

  bool Live(uint64_t link_id) const ABSL_LOCKS_EXCLUDED(mutex_) {
    absl::MutexLock lock(&mutex_);
    return live_link_id_ == link_id;
  }

  // The rendezvous: a fresh id, the next stage's OpenNcclLink (retried while it answers
  // UNAVAILABLE, e.g. while it loads, until `deadline`), then this side's join.
  absl::StatusOr<std::unique_ptr<Session>> OpenSession(absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mutex_) {
    auto session = std::make_unique<Session>();
    session->link_id = next_link_id_++;
    std::string id;
    for (;;) {
      // A fresh id for every try: a try that timed out may have started the peer's join on
      // the previous one, which must not meet this side's.
      absl::StatusOr<std::string> fresh = model::NewNcclUniqueId();
      if (!fresh.ok()) return fresh.status();
      id = *std::move(fresh);
      v1::OpenNcclLinkRequest request;
      request.set_unique_id(id);
      request.set_world(2);
      request.set_rank(kReceiverRank);
      request.set_link_id(session->link_id);
      request.set_dtype(options_.dtype);
      request.set_width(options_.width);
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(10))));
      v1::OpenNcclLinkResponse response;
      const grpc::Status status = stub_->OpenNcclLink(&context, request, &response);
      if (status.ok()) break;
      const bool retry = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      if (!retry) {
        return absl::Status(
            static_cast<absl::StatusCode>(status.error_code()),
            absl::StrCat("OpenNcclLink on ", options_.target, ": ", status.error_message()));
      }
      if (absl::Now() >= deadline) {
        return absl::UnavailableError(
            absl::StrCat("OpenNcclLink on ", options_.target,
                         " did not succeed in time: ", status.error_message()));
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    // The next stage is joining as rank 1; this returns once both have.
    absl::StatusOr<std::unique_ptr<SkeinNcclEndpoint>> nccl =
        model::JoinNccl(options_.cuda_device, id, 2, kSenderRank);
    if (!nccl.ok()) {
      return absl::Status(nccl.status().code(),
                          absl::StrCat("joining the NCCL link to ", options_.target, ": ",
                                       nccl.status().message()));
    }
    absl::MutexLock lock(&session->mu);
    session->nccl = *std::move(nccl);
    return session;
  }

  void StartSession(std::unique_ptr<Session> s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mutex_) {
    s->rw = stub_->Relay(&s->context);
    {
      absl::MutexLock lock(&mutex_);
      live_link_id_ = s->link_id;
    }
    Session* raw = s.get();
    s->reader = std::thread([this, raw] { ReadLoop(raw); });
    session_ = std::move(s);
  }

  // Gracefully: lets the queued transfers finish (the next stage receives them: their frames
  // went first), then ends the stream and destroys the communicator. Otherwise aborts it.
  void CloseSession(std::unique_ptr<Session> s, bool graceful)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mutex_) {
    // Until `closing` is set, a reader that sees the stream end aborts the communicator,
    // which frees this wait if the next stage is gone.
    if (graceful) {
      SkeinNcclEndpoint* endpoint = nullptr;
      {
        absl::MutexLock lock(&s->mu);
        endpoint = s->nccl.get();
      }
      if (endpoint != nullptr) (void)endpoint->Synchronize();
    }
    s->closing = true;
    s->context.TryCancel();
    if (s->reader.joinable()) s->reader.join();
    std::unique_ptr<SkeinNcclEndpoint> nccl;
    {
      absl::MutexLock lock(&s->mu);
      nccl = std::move(s->nccl);
    }
    if (nccl != nullptr && !graceful) nccl->Abort();
    nccl.reset();  // ncclCommDestroy, once the stream is idle
  }

  static void AbortComm(Session* s) {
    absl::MutexLock lock(&s->mu);
    if (s->nccl != nullptr) s->nccl->Abort();
  }

  // Sends host_ to the next stage: staged on the device behind the previous step's transfer
  // (back-pressure from the next stage), then queued. Without `mu`, so that the reader can
  // abort a transfer that never ends.
  cuda::Status Transfer(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mutex_) {
    if (host_.empty()) return cuda::Status();  // a step without rows: the receiver expects none
    SkeinNcclEndpoint* endpoint = nullptr;
    {
      absl::MutexLock lock(&s->mu);
      endpoint = s->nccl.get();
    }
    if (endpoint == nullptr) return cuda::Status::Error("the NCCL link was closed");
    return endpoint->SendFromHost(host_.data(), host_.size() / ActivationValueBytes(options_.dtype),
                                  WireType(options_.dtype), kReceiverRank);
  }

  void ReadLoop(Session* s) ABSL_LOCKS_EXCLUDED(mutex_) {
    v1::StepResult result;
    while (s->rw->Read(&result)) {
      Pending p;
      {
        absl::MutexLock lock(&mutex_);
        auto it = pending_.find(result.step_id());
        if (it == pending_.end() || it->second.link_id != s->link_id) continue;  // not ours
        p = std::move(it->second);
        pending_.erase(it);
      }
      result.set_step_id(p.caller_step_id);
      if (result.error_code() != 0) {
        p.done(absl::Status(static_cast<absl::StatusCode>(result.error_code()),
                            result.error_message()));
      } else {
        p.done(std::move(result));
      }
      result.Clear();
    }
    const grpc::Status status = s->rw->Finish();
    // The next stage is gone or the stream was cut: transfers to it may never finish.
    if (!s->closing) AbortComm(s);
    std::vector<Pending> failed;
    {
      absl::MutexLock lock(&mutex_);
      if (live_link_id_ == s->link_id) live_link_id_ = 0;
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.link_id == s->link_id) {
          failed.push_back(std::move(it->second));
          pending_.erase(it++);
        } else {
          ++it;
        }
      }
    }
    const absl::Status why = absl::UnavailableError(
        absl::StrCat("NCCL link to the next stage (", options_.target,
                     ") broke: ", status.ok() ? "stream ended" : status.error_message()));
    for (Pending& p : failed) p.done(why);
  }

  const NcclStageLinkOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;

  // Held by a Send from its frame to its transfer (orders the steps), by reopening and by
  // teardown; taken before mutex_. Guards the device side of the sender.
  absl::Mutex write_mutex_;
  std::string host_ ABSL_GUARDED_BY(write_mutex_);
  std::unique_ptr<Session> session_ ABSL_GUARDED_BY(write_mutex_);
  uint64_t next_link_id_ ABSL_GUARDED_BY(write_mutex_);

  // Guards the bookkeeping the reader shares with the senders. Never held while writing or
  // transferring.
  mutable absl::Mutex mutex_ ABSL_ACQUIRED_AFTER(write_mutex_);
  // The session whose stream is up (0: none); a Send finding its session not live reopens.
  uint64_t live_link_id_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::flat_hash_map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_step_id_ ABSL_GUARDED_BY(mutex_) = 1;
  LinkStats stats_ ABSL_GUARDED_BY(mutex_);
};

// What the receiving side shares with the thread that joins its communicator, which may
// outlive it (a sender that never joins leaves that thread blocked).
struct InboundShared {
  absl::Mutex mu;
  // Set once by the join; destroyed only with the link (no Receive runs then), so a Receive
  // may use it without `mu` while Abort ends its transfer.
  std::unique_ptr<SkeinNcclEndpoint> nccl ABSL_GUARDED_BY(mu);
  // The join ended (`nccl` set, or `join_error`), or the link was aborted.
  bool settled ABSL_GUARDED_BY(mu) = false;
  bool aborted ABSL_GUARDED_BY(mu) = false;
  std::string join_error ABSL_GUARDED_BY(mu);
};

class Inbound final : public NcclInboundLink {
 public:
  Inbound(uint64_t link_id, std::shared_ptr<InboundShared> shared)
      : link_id_(link_id), shared_(std::move(shared)) {}

  ~Inbound() override {
    // No Receive runs (its caller holds the link). Nothing is queued either: every Receive
    // waited for its transfer. So destroying the communicator waits for nothing.
    std::unique_ptr<SkeinNcclEndpoint> nccl;
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->aborted = true;  // a join still under way discards its result
      nccl = std::move(shared_->nccl);
    }
    nccl.reset();
  }

  uint64_t link_id() const override { return link_id_; }

  absl::Status Receive(uint32_t rows, uint32_t width, bool v_first, v1::ActivationDType dtype,
                       model::StageActivations* acts) override {
    absl::MutexLock recv_lock(&recv_mutex_);
    {
      absl::MutexLock lock(&shared_->mu);
      // The sender sends frames only once it has joined, which completes this side's join
      // too: this waits at most for the join's last steps.
      shared_->mu.Await(absl::Condition(&shared_->settled));
      if (absl::Status s = UsableLocked(); !s.ok()) return s;
    }
    const size_t bytes = NcclPayloadBytes(rows, width, v_first, dtype);
    if (bytes == 0) return DecodeNcclPayload(nullptr, 0, rows, width, v_first, dtype, acts);
    SkeinNcclEndpoint* endpoint = nullptr;
    {
      absl::MutexLock lock(&shared_->mu);
      if (absl::Status s = UsableLocked(); !s.ok()) return s;
      endpoint = shared_->nccl.get();
    }
    host_.resize(bytes);
    // Waits for the transfer, without the lock, so that Abort can end it.
    const cuda::Status st = endpoint->ReceiveToHost(
        host_.data(), bytes / ActivationValueBytes(dtype), WireType(dtype), kSenderRank);
    {
      absl::MutexLock lock(&shared_->mu);
      // An aborted transfer may end without an error, and without the rows.
      if (absl::Status s = UsableLocked(); !s.ok()) return s;
    }
    if (!st.ok()) {
      // The two sides no longer agree on what comes next.
      Abort();
      return CudaError(absl::StatusCode::kInternal,
                       absl::StrCat("receiving activations over NCCL link ", link_id_), st);
    }
    return DecodeNcclPayload(host_.data(), bytes, rows, width, v_first, dtype, acts);
  }

  void Abort() override {
    absl::MutexLock lock(&shared_->mu);
    shared_->aborted = true;
    shared_->settled = true;
    // Kept (aborted) rather than destroyed: a Receive may still wait on its stream.
    if (shared_->nccl != nullptr) shared_->nccl->Abort();
  }

 private:
  absl::Status UsableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
    if (shared_->aborted) {
      return absl::UnavailableError(
          absl::StrCat("NCCL link ", link_id_, " was aborted or replaced by a newer one"));
    }
    if (!shared_->join_error.empty()) {
      return absl::UnavailableError(
          absl::StrCat("NCCL link ", link_id_, " could not be joined: ", shared_->join_error));
    }
    return absl::OkStatus();
  }

  const uint64_t link_id_;
  const std::shared_ptr<InboundShared> shared_;
  // One Receive at a time: they share the staging buffers and must post in frame order.
  absl::Mutex recv_mutex_;
  std::string host_ ABSL_GUARDED_BY(recv_mutex_);
};

}  // namespace

bool NcclLinkBuilt() { return model::NcclAvailable().ok(); }

int NcclUsableDevices(std::string* why) {
  if (absl::Status s = model::NcclAvailable(); !s.ok()) {
    if (why != nullptr) *why = std::string(s.message());
    return 0;
  }
  absl::StatusOr<int> devices = model::GpuDeviceCount();
  if (!devices.ok()) {
    if (why != nullptr) *why = std::string(devices.status().message());
    return 0;
  }
  return *devices;
}

absl::StatusOr<std::unique_ptr<StageLink>> OpenNcclStageLink(const NcclStageLinkOptions& options) {
  if (options.width == 0) return absl::InvalidArgumentError("NCCL link: width must be positive");
  if (options.dtype != v1::ACTIVATION_DTYPE_UNSPECIFIED &&
      options.dtype != v1::ACTIVATION_DTYPE_FP32 && options.dtype != v1::ACTIVATION_DTYPE_BF16) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL link: unknown dtype ", options.dtype));
  }
  if (absl::Status s = DeviceUsable(options.cuda_device); !s.ok()) return s;
  auto link = std::make_unique<NcclStageLink>(options);
  if (absl::Status s = link->Init(absl::Now() + options.open_timeout); !s.ok()) return s;
  return std::unique_ptr<StageLink>(std::move(link));
}

absl::StatusOr<std::unique_ptr<NcclInboundLink>> AcceptNcclLink(
    const v1::OpenNcclLinkRequest& request, int cuda_device) {
  if (absl::Status s = DeviceUsable(cuda_device); !s.ok()) return s;
  auto shared = std::make_shared<InboundShared>();
  // Joining blocks until the sender joins too, which it does once this RPC has answered: so
  // the join runs on a thread of its own, detached because a sender that dies first leaves it
  // blocked for good (NCCL's blocking initialisation has no time-out).
  std::thread([shared, id = request.unique_id(), cuda_device] {
    absl::StatusOr<std::unique_ptr<SkeinNcclEndpoint>> nccl =
        model::JoinNccl(cuda_device, id, 2, kReceiverRank);
    absl::MutexLock lock(&shared->mu);
    if (!nccl.ok()) {
      shared->join_error = std::string(nccl.status().message());
    } else if (shared->aborted) {
      (*nccl)->Abort();  // replaced while joining
    } else {
      shared->nccl = *std::move(nccl);
    }
    shared->settled = true;
  }).detach();
  return std::unique_ptr<NcclInboundLink>(new Inbound(request.link_id(), std::move(shared)));
}

}  // namespace skein::link
