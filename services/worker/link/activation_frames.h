// Activations on the wire between stages (skein.v1.ActivationFrame): a step's rows encoded in
// fp32 (exact) or bf16 (half the bytes, rounded to nearest even) and cut into frames of at
// most `max_frame_bytes` of row data, so a long prefill never exceeds the message limit.
// Thread-safe (pure functions) apart from FrameAssembler, which is one per stream.
#ifndef SKEIN_SERVICES_WORKER_LINK_ACTIVATION_FRAMES_H_
#define SKEIN_SERVICES_WORKER_LINK_ACTIVATION_FRAMES_H_

#include <cstddef>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "services/worker/model/rwkv_model.h"
#include "skein/v1/worker.pb.h"

namespace skein::link {

// 3 MiB of rows per frame leaves room under gRPC's default 4 MiB message limit.
inline constexpr size_t kDefaultMaxFrameBytes = 3u << 20;

// Encodes `acts` for `step` as one or more frames (part i of part_count, rows in order; only
// the first frame carries `step`). A step with no rows is one frame without rows.
std::vector<v1::ActivationFrame> EncodeFrames(const v1::StepRequest& step,
                                              const model::StageActivations& acts,
                                              v1::ActivationDType dtype,
                                              size_t max_frame_bytes = kDefaultMaxFrameBytes);

// Collects the frames of one step at a time, in order.
class FrameAssembler {
 public:
  struct Step {
    v1::StepRequest request;
    model::StageActivations activations;
  };
  // Adds a frame; returns the whole step once its last part arrived, nullopt before.
  // INVALID_ARGUMENT for frames out of order, with sizes that disagree with each other, or
  // with bytes that do not match rows × width in their dtype (the assembler is reset).
  absl::StatusOr<std::optional<Step>> Add(v1::ActivationFrame&& frame);

 private:
  std::optional<Step> pending_;
  uint32_t next_part_ = 0;
  uint32_t part_count_ = 0;
};

}  // namespace skein::link

#endif  // SKEIN_SERVICES_WORKER_LINK_ACTIVATION_FRAMES_H_
