// The link from one pipeline stage to the next. A stage hands each step's activations to its
// link and gets the last stage's result back asynchronously, so that while one micro-batch
// is downstream the stage computes the next (with S stages, S micro-batches in flight keep
// every stage busy). The gRPC Relay stream (grpc_relay_link.h) is the CPU link; the GPU
// issue's NCCL link implements the same interface.
#ifndef SKEIN_SERVICES_WORKER_LINK_STAGE_LINK_H_
#define SKEIN_SERVICES_WORKER_LINK_STAGE_LINK_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "services/worker/model/rwkv_model.h"
#include "skein/v1/worker.pb.h"

namespace skein::link {

struct LinkStats {
  uint64_t bytes_sent = 0;
  uint64_t frames_sent = 0;
  uint32_t in_flight = 0;
};

class StageLink {
 public:
  // Called once per Send, on a thread of the link's, with the last stage's result for the
  // step (its step_id as the caller sent it) or an error: UNAVAILABLE when the next stage
  // cannot be reached or the link broke with the step in flight; the step's own error
  // otherwise. Must not block for long.
  using Done = std::function<void(absl::StatusOr<v1::StepResult>)>;

  virtual ~StageLink() = default;

  // Sends one step and its activations to the next stage. Steps are delivered in Send order.
  // Thread-safe.
  virtual void Send(const v1::StepRequest& step, const model::StageActivations& activations,
                    Done done) = 0;

  // The next stage's address, for logs and StageInfo.
  virtual std::string peer() const = 0;
  // How activations travel to the next stage: "grpc" (a relay stream) or "nccl" (GPU to GPU),
  // for StageInfo.link.
  virtual std::string kind() const = 0;
  virtual LinkStats stats() const = 0;
};

}  // namespace skein::link

#endif  // SKEIN_SERVICES_WORKER_LINK_STAGE_LINK_H_
