// Activations on the wire between stages (skein.v1.ActivationFrame): a step's rows encoded in
// fp32 (exact) or bf16 (half the bytes, rounded to nearest even) and cut into frames of at
// most `max_frame_bytes` of row data, so a long prefill never exceeds the message limit.
// Thread-safe (pure functions) apart from FrameAssembler, which is one per stream.
#ifndef SKEIN_SERVICES_WORKER_LINK_ACTIVATION_FRAMES_H_
#define SKEIN_SERVICES_WORKER_LINK_ACTIVATION_FRAMES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
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

// Bytes of one activation value in `dtype` (UNSPECIFIED reads as fp32).
size_t ActivationValueBytes(v1::ActivationDType dtype);

// The one frame of a step whose rows travel over NCCL link `link_id` (ActivationFrame.nccl):
// the step, rows, width and dtype of `acts`, and no row bytes.
v1::ActivationFrame EncodeNcclFrame(const v1::StepRequest& step,
                                    const model::StageActivations& acts, v1::ActivationDType dtype,
                                    uint64_t link_id);

// What the NCCL transfer of such a frame carries: the hidden rows, then the v_first rows when
// `acts` has them, in `dtype`. Replaces *out.
void EncodeNcclPayload(const model::StageActivations& acts, v1::ActivationDType dtype,
                       std::string* out);
// Its size in bytes.
size_t NcclPayloadBytes(uint32_t rows, uint32_t width, bool v_first, v1::ActivationDType dtype);
// Decodes a payload of `rows` × `width` (with v_first rows when `v_first`) into *acts,
// replacing its contents. INVALID_ARGUMENT when `size` is not NcclPayloadBytes of the shape.
absl::Status DecodeNcclPayload(const void* data, size_t size, uint32_t rows, uint32_t width,
                               bool v_first, v1::ActivationDType dtype,
                               model::StageActivations* acts);

// One step as FrameAssembler puts it together (outside the class so that its member
// initializers are complete where the class keeps one in a std::optional).
struct AssembledStep {
  v1::StepRequest request;
  // For a step whose rows travel over NCCL (`nccl` set), only `rows` and `width` are filled in:
  // the receiver fetches the rows from the link (DecodeNcclPayload).
  model::StageActivations activations;
  std::optional<v1::NcclPayload> nccl;
  v1::ActivationDType dtype = v1::ACTIVATION_DTYPE_FP32;
};

// Collects the frames of one step at a time, in order.
class FrameAssembler {
 public:
  using Step = AssembledStep;
  // Adds a frame; returns the whole step once its last part arrived, nullopt before.
  // INVALID_ARGUMENT for frames out of order, with sizes that disagree with each other, or
  // with bytes that do not match rows × width in their dtype, and for an NCCL frame that is
  // not its step's only one, carries row bytes or names link 0 (the assembler is reset).
  absl::StatusOr<std::optional<Step>> Add(v1::ActivationFrame&& frame);

 private:
  std::optional<Step> pending_;
  uint32_t next_part_ = 0;
  uint32_t part_count_ = 0;
};

}  // namespace skein::link

#endif  // SKEIN_SERVICES_WORKER_LINK_ACTIVATION_FRAMES_H_
