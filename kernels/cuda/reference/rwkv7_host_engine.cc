// The Rwkv7Engine on the host (rwkv7_engine.h): the step orchestration of rwkv7_step.h with the
// scalar references, over slots kept in host memory in the GPU's slot-major layout.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/reference/host_step.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "kernels/cuda/rwkv7_ops.h"
#include "kernels/cuda/rwkv7_step.h"

namespace skein::cuda {

Status CheckRwkv7StepIo(const Rwkv7WeightLayout& layout, int64_t slots, const Rwkv7StepIo& io) {
  const int64_t S = io.sessions, T = io.tokens;
  if (S < 1 || T < 1) return Status::Error("Step: needs at least one session and one token");
  if (S > slots) return Status::Error("Step: more sessions than slots");
  if (io.slots == nullptr) return Status::Error("Step: no slots");
  std::vector<bool> used(slots, false);
  for (int64_t s = 0; s < S; ++s) {
    const int32_t slot = io.slots[s];
    if (slot < 0 || slot >= slots) {
      return Status::Error("Step: slot " + std::to_string(slot) + " out of range [0, " +
                           std::to_string(slots) + ")");
    }
    if (used[slot]) return Status::Error("Step: slot " + std::to_string(slot) + " repeated");
    used[slot] = true;
  }
  if (layout.has_embedding()) {
    if (io.token_ids == nullptr) return Status::Error("Step: a first stage needs token_ids");
    const int64_t V = layout.shape().vocab;
    for (int64_t i = 0; i < S * T; ++i) {
      if (io.token_ids[i] < 0 || io.token_ids[i] >= V) {
        return Status::Error("Step: token id " + std::to_string(io.token_ids[i]) +
                             " out of range [0, " + std::to_string(V) + ")");
      }
    }
  } else if (io.hidden_in == nullptr || io.v_first_in == nullptr) {
    return Status::Error("Step: a later stage needs hidden_in and v_first_in");
  }
  if (layout.has_head()) {
    switch (io.logits_mode) {
      case LogitsMode::kLast:
      case LogitsMode::kAll:
        if (io.logits == nullptr) return Status::Error("Step: logits requested but no buffer");
        break;
      case LogitsMode::kNone:
        break;
      default:
        return Status::Error("Step: unknown logits mode");
    }
  } else if (io.hidden_out == nullptr || io.v_first_out == nullptr) {
    return Status::Error("Step: a stage before the last needs hidden_out and v_first_out");
  }
  return Status();
}

namespace {

class HostRwkv7Engine : public Rwkv7Engine {
 public:
  HostRwkv7Engine(const Rwkv7WeightLayout& layout, std::vector<uint8_t> bytes, int64_t slots,
                  bool round_activations)
      : layout_(layout),
        bytes_(std::move(bytes)),
        slots_(slots),
        round_activations_(round_activations) {
    const int64_t shift = slots * layout.stage_layers() * layout.shape().embd;
    att_shift_.assign(shift, 0.0f);
    ffn_shift_.assign(shift, 0.0f);
    wkv_state_.assign(shift * kWkvHeadSize, 0.0f);
  }

  const Rwkv7WeightLayout& layout() const override { return layout_; }
  int64_t slots() const override { return slots_; }

  Status Step(const Rwkv7StepIo& io) override {
    SKEIN_CUDA_RETURN_IF_ERROR(CheckRwkv7StepIo(layout_, slots_, io));
    const int64_t S = io.sessions, T = io.tokens, R = S * T, C = layout_.shape().embd;
    Rwkv7StepBuffers b;
    scratch_.Prepare(layout_, S, T, io.logits_mode, /*chunk=*/0, round_activations_, &b);
    b.tokens = layout_.has_embedding() ? io.token_ids : nullptr;
    b.slots = io.slots;
    b.att_shift = att_shift_.data();
    b.ffn_shift = ffn_shift_.data();
    b.wkv_state = wkv_state_.data();
    if (!layout_.has_embedding()) {
      std::copy(io.hidden_in, io.hidden_in + R * C, scratch_.x().begin());
      std::copy(io.v_first_in, io.v_first_in + R * C, scratch_.v_first().begin());
    }
    reference::HostOps ops;
    SKEIN_CUDA_RETURN_IF_ERROR(RunRwkv7Step(ops, layout_, bytes_.data(), b, S, T, io.logits_mode));
    if (!layout_.has_head()) {
      std::copy(scratch_.x().begin(), scratch_.x().end(), io.hidden_out);
      std::copy(scratch_.v_first().begin(), scratch_.v_first().end(), io.v_first_out);
    } else if (io.logits_mode != LogitsMode::kNone) {
      std::copy(scratch_.logits().begin(), scratch_.logits().end(), io.logits);
    }
    return Status();
  }

  Status WriteSlot(int32_t slot, const float* state) override {
    if (slot < 0 || slot >= slots_) return Status::Error("WriteSlot: slot out of range");
    ForEachLayer(slot, [state](float* att, float* wkv, float* ffn, int64_t C, int64_t offset) {
      const float* p = state + offset;
      std::memcpy(att, p, C * sizeof(float));
      std::memcpy(wkv, p + C, C * kWkvHeadSize * sizeof(float));
      std::memcpy(ffn, p + C + C * kWkvHeadSize, C * sizeof(float));
    });
    return Status();
  }

  Status ReadSlot(int32_t slot, float* state) override {
    if (slot < 0 || slot >= slots_) return Status::Error("ReadSlot: slot out of range");
    ForEachLayer(slot, [state](float* att, float* wkv, float* ffn, int64_t C, int64_t offset) {
      float* p = state + offset;
      std::memcpy(p, att, C * sizeof(float));
      std::memcpy(p + C, wkv, C * kWkvHeadSize * sizeof(float));
      std::memcpy(p + C + C * kWkvHeadSize, ffn, C * sizeof(float));
    });
    return Status();
  }

 private:
  // Calls f(att, wkv, ffn, C, offset) for each stage layer of `slot`: the layer's resident
  // state and its offset in the host state of rwkv7_engine.h.
  template <typename F>
  void ForEachLayer(int32_t slot, F f) {
    const int64_t C = layout_.shape().embd, Ls = layout_.stage_layers();
    const int64_t per_layer = 2 * C + C * kWkvHeadSize;
    for (int64_t l = 0; l < Ls; ++l) {
      const int64_t shift = (slot * Ls + l) * C;
      f(att_shift_.data() + shift, wkv_state_.data() + shift * kWkvHeadSize,
        ffn_shift_.data() + shift, C, l * per_layer);
    }
  }

  Rwkv7WeightLayout layout_;
  std::vector<uint8_t> bytes_;
  int64_t slots_;
  bool round_activations_;
  // Slot-major as on the GPU: att/ffn shift [slots][Ls][C], wkv [slots][Ls][C·N].
  std::vector<float> att_shift_, ffn_shift_, wkv_state_;
  reference::HostStepScratch scratch_;
};

}  // namespace

Status CreateHostRwkv7Engine(const Rwkv7WeightLayout& layout, std::vector<uint8_t> bytes,
                             int64_t slots, std::unique_ptr<Rwkv7Engine>* out) {
  Rwkv7HostEngineOptions options;
  options.slots = slots;
  return CreateHostRwkv7Engine(layout, std::move(bytes), options, out);
}

Status CreateHostRwkv7Engine(const Rwkv7WeightLayout& layout, std::vector<uint8_t> bytes,
                             const Rwkv7HostEngineOptions& options,
                             std::unique_ptr<Rwkv7Engine>* out) {
  const int64_t slots = options.slots;
  const Rwkv7Shape& s = layout.shape();
  if (s.head_size != kWkvHeadSize || s.embd <= 0 || s.embd % kWkvHeadSize != 0 || s.vocab <= 0) {
    return Status::Error(
        "CreateHostRwkv7Engine: needs head size 64, C a positive multiple of "
        "64, V positive");
  }
  const DType dt = layout.dtype();
  if (dt != DType::kF32 && dt != DType::kBF16 && dt != DType::kF16) {
    return Status::Error("CreateHostRwkv7Engine: dtype must be fp32, bf16 or fp16");
  }
  if (bytes.size() != layout.total_bytes()) {
    return Status::Error("CreateHostRwkv7Engine: weight buffer of " + std::to_string(bytes.size()) +
                         " bytes, the layout has " + std::to_string(layout.total_bytes()));
  }
  if (slots < 1) return Status::Error("CreateHostRwkv7Engine: needs at least one slot");
  *out =
      std::make_unique<HostRwkv7Engine>(layout, std::move(bytes), slots, options.round_activations);
  return Status();
}

}  // namespace skein::cuda
