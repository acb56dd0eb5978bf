// The CPU stage link: one long-lived Relay stream (worker.proto) to the next stage, opened on
// first use and reopened after it breaks. Frames are written in Send order; results come back
// on the same stream, matched by a link-local step id (so callers' ids may repeat across
// callers). A broken stream fails every step in flight with UNAVAILABLE; the next Send opens a
// new stream.
// Thread-safe.
#ifndef SKEIN_SERVICES_WORKER_LINK_GRPC_RELAY_LINK_H_
#define SKEIN_SERVICES_WORKER_LINK_GRPC_RELAY_LINK_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "grpcpp/grpcpp.h"
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
  LinkStats stats() const override;

 private:
  struct Pending {
    uint64_t caller_step_id;
    Done done;
  };
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::ActivationFrame, v1::StepResult>> rw;
    absl::flat_hash_map<uint64_t, Pending> pending;  // guarded by the link's mutex_
    bool broken = false;
    bool reader_done = false;
    std::thread reader;
  };

  void ReadLoop(Stream* stream);
  // Answers every step of `pending` with `why` (called without mutex_, on steps moved out
  // of a stream under it).
  static void FailAll(absl::flat_hash_map<uint64_t, Pending> pending, const absl::Status& why);

  const std::string target_;
  const v1::ActivationDType dtype_;
  const size_t max_frame_bytes_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;

  std::mutex write_mutex_;    // held while a step's frames are written (orders the steps)
  mutable std::mutex mutex_;  // guards everything below and every Stream's pending/flags
  std::unique_ptr<Stream> stream_;
  std::vector<std::unique_ptr<Stream>> retired_;  // broken streams whose reader may still run
  uint64_t next_id_ = 1;
  LinkStats stats_;
};

}  // namespace skein::link

#endif  // SKEIN_SERVICES_WORKER_LINK_GRPC_RELAY_LINK_H_
