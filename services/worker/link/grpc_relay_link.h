// The CPU stage link: one long-lived Relay stream (worker.proto) to the next stage, opened on
// first use and reopened after it breaks. Frames are written in Send order; results come back
// on the same stream, matched by a link-local step id (so callers' ids may repeat across
// callers). A broken stream fails every step in flight with UNAVAILABLE; the next Send opens a
// new stream.
// Thread-safe.
#ifndef SKEIN_SERVICES_WORKER_LINK_GRPC_RELAY_LINK_H_
#define SKEIN_SERVICES_WORKER_LINK_GRPC_RELAY_LINK_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "services/common/externally_guarded.h"
#include "services/worker/link/activation_frames.h"
#include "services/worker/link/stage_link.h"
#include "skein/v1/worker.grpc.pb.h"

namespace skein::link {

class GrpcRelayLink : public StageLink {
 public:
  GrpcRelayLink(std::string target, v1::ActivationDType dtype,
                size_t max_frame_bytes = kDefaultMaxFrameBytes);
  ~GrpcRelayLink() override;

  void Send(const v1::StepRequest& step, const model::StageActivations& activations,
            Done done) override;
  std::string peer() const override { return target_; }
  std::string kind() const override { return "grpc"; }
  LinkStats stats() const override;

 private:
  struct Pending {
    uint64_t caller_step_id;
    Done done;
  };
  struct Stream {
    // What the stream's reader and the senders share.
    struct Shared {
      absl::flat_hash_map<uint64_t, Pending> pending;
      bool broken = false;
      bool reader_done = false;
    };
    Stream(const absl::Mutex* link_mutex, const absl::Mutex* link_write_mutex)
        : shared(link_mutex), reader(link_write_mutex) {}
    grpc::ClientContext context;  // TryCancel is thread-safe
    // Set before the reader starts. Then the reader reads (and finishes) and one sender at a
    // time (write_mutex_) writes, as gRPC allows.
    std::unique_ptr<grpc::ClientReaderWriter<v1::ActivationFrame, v1::StepResult>> rw;
    ExternallyGuarded<Shared> shared;  // guarded by the link's mutex_
    // Started and joined by Send or the destructor, with the link's write_mutex_ held.
    ExternallyGuarded<std::thread> reader;
  };

  void ReadLoop(Stream* stream) ABSL_LOCKS_EXCLUDED(mutex_);
  // Answers every step of `pending` with `why` (called without mutex_, on steps moved out
  // of a stream under it).
  static void FailAll(absl::flat_hash_map<uint64_t, Pending> pending, const absl::Status& why);

  const std::string target_;
  const v1::ActivationDType dtype_;
  const size_t max_frame_bytes_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;

  // Held while a step's frames are written (orders the steps); taken before mutex_.
  absl::Mutex write_mutex_;
  // Guards what follows and every Stream's Shared part. Never held while writing frames, so
  // the reader delivers results while a write waits on flow control.
  mutable absl::Mutex mutex_ ABSL_ACQUIRED_AFTER(write_mutex_);
  std::unique_ptr<Stream> stream_ ABSL_GUARDED_BY(mutex_);
  // Broken streams whose reader may still run.
  std::vector<std::unique_ptr<Stream>> retired_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_id_ ABSL_GUARDED_BY(mutex_) = 1;
  LinkStats stats_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace skein::link

#endif  // SKEIN_SERVICES_WORKER_LINK_GRPC_RELAY_LINK_H_
