#include "services/worker/link/activation_frames.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/float16.h"

namespace skein::link {

size_t ActivationValueBytes(v1::ActivationDType dtype) {
  return dtype == v1::ACTIVATION_DTYPE_BF16 ? 2 : 4;
}

namespace {

size_t BytesPerValue(v1::ActivationDType dtype) { return ActivationValueBytes(dtype); }

void EncodeRows(const float* src, size_t count, v1::ActivationDType dtype, std::string* out) {
  if (dtype == v1::ACTIVATION_DTYPE_BF16) {
    out->resize(count * 2);
    auto* dst = reinterpret_cast<uint16_t*>(out->data());
    for (size_t i = 0; i < count; ++i) dst[i] = base::F32ToBf16(src[i]);
  } else {
    out->assign(reinterpret_cast<const char*>(src), count * sizeof(float));
  }
}

// Appends the values of `size` bytes at `data` to *out.
void DecodeRows(const char* data, size_t size, v1::ActivationDType dtype, std::vector<float>* out) {
  const size_t count = size / BytesPerValue(dtype);
  const size_t at = out->size();
  out->resize(at + count);
  if (dtype == v1::ACTIVATION_DTYPE_BF16) {
    // Byte by byte: NCCL staging memory and protobuf strings promise no 2-byte alignment.
    for (size_t i = 0; i < count; ++i) {
      uint16_t bits;
      std::memcpy(&bits, data + 2 * i, 2);
      (*out)[at + i] = base::Bf16ToF32(bits);
    }
  } else {
    std::memcpy(out->data() + at, data, count * sizeof(float));
  }
}

void DecodeRows(const std::string& bytes, v1::ActivationDType dtype, std::vector<float>* out) {
  DecodeRows(bytes.data(), bytes.size(), dtype, out);
}

v1::ActivationDType Normalized(v1::ActivationDType dtype) {
  return dtype == v1::ACTIVATION_DTYPE_UNSPECIFIED ? v1::ACTIVATION_DTYPE_FP32 : dtype;
}

}  // namespace

std::vector<v1::ActivationFrame> EncodeFrames(const v1::StepRequest& step,
                                              const model::StageActivations& acts,
                                              v1::ActivationDType dtype, size_t max_frame_bytes) {
  if (dtype == v1::ACTIVATION_DTYPE_UNSPECIFIED) dtype = v1::ACTIVATION_DTYPE_FP32;
  const size_t width = static_cast<size_t>(acts.width);
  const size_t rows = static_cast<size_t>(acts.rows);
  const bool has_v = !acts.v_first.empty();
  const size_t row_bytes = std::max<size_t>(1, width * BytesPerValue(dtype) * (has_v ? 2 : 1));
  const size_t rows_per_frame = std::max<size_t>(1, max_frame_bytes / row_bytes);
  const size_t parts = rows == 0 ? 1 : (rows + rows_per_frame - 1) / rows_per_frame;
  std::vector<v1::ActivationFrame> frames(parts);
  for (size_t p = 0; p < parts; ++p) {
    v1::ActivationFrame& f = frames[p];
    if (p == 0) *f.mutable_step() = step;
    const size_t begin = p * rows_per_frame, n = std::min(rows_per_frame, rows - begin);
    f.set_rows(static_cast<uint32_t>(rows == 0 ? 0 : n));
    f.set_width(static_cast<uint32_t>(width));
    f.set_dtype(dtype);
    f.set_part(static_cast<uint32_t>(p));
    f.set_part_count(static_cast<uint32_t>(parts));
    if (rows == 0) continue;
    EncodeRows(acts.hidden.data() + begin * width, n * width, dtype, f.mutable_hidden());
    if (has_v)
      EncodeRows(acts.v_first.data() + begin * width, n * width, dtype, f.mutable_v_first());
  }
  return frames;
}

v1::ActivationFrame EncodeNcclFrame(const v1::StepRequest& step,
                                    const model::StageActivations& acts, v1::ActivationDType dtype,
                                    uint64_t link_id) {
  v1::ActivationFrame f;
  *f.mutable_step() = step;
  f.set_rows(static_cast<uint32_t>(acts.rows));
  f.set_width(static_cast<uint32_t>(acts.width));
  f.set_dtype(Normalized(dtype));
  f.set_part_count(1);
  f.mutable_nccl()->set_link_id(link_id);
  f.mutable_nccl()->set_v_first(!acts.v_first.empty());
  return f;
}

void EncodeNcclPayload(const model::StageActivations& acts, v1::ActivationDType dtype,
                       std::string* out) {
  dtype = Normalized(dtype);
  const size_t count = static_cast<size_t>(acts.rows) * static_cast<size_t>(acts.width);
  std::string v_first;
  EncodeRows(acts.hidden.data(), count, dtype, out);
  if (acts.v_first.empty()) return;
  EncodeRows(acts.v_first.data(), count, dtype, &v_first);
  out->append(v_first);
}

size_t NcclPayloadBytes(uint32_t rows, uint32_t width, bool v_first, v1::ActivationDType dtype) {
  return size_t{rows} * width * BytesPerValue(Normalized(dtype)) * (v_first ? 2 : 1);
}

absl::Status DecodeNcclPayload(const void* data, size_t size, uint32_t rows, uint32_t width,
                               bool v_first, v1::ActivationDType dtype,
                               model::StageActivations* acts) {
  dtype = Normalized(dtype);
  const size_t want = NcclPayloadBytes(rows, width, v_first, dtype);
  if (size != want) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL payload of ", rows, " rows of width ",
                                                   width, " needs ", want, " bytes; got ", size));
  }
  acts->rows = rows;
  acts->width = width;
  acts->hidden.clear();
  acts->v_first.clear();
  const size_t half = v_first ? size / 2 : size;
  const char* bytes = static_cast<const char*>(data);
  DecodeRows(bytes, half, dtype, &acts->hidden);
  if (v_first) DecodeRows(bytes + half, half, dtype, &acts->v_first);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<FrameAssembler::Step>> FrameAssembler::Add(
    v1::ActivationFrame&& frame) {
  auto fail = [&](const std::string& why) {
    pending_.reset();
    next_part_ = 0;
    return absl::InvalidArgumentError(absl::StrCat("activation frame: ", why));
  };
  const uint32_t count = std::max<uint32_t>(1, frame.part_count());
  if (frame.part() != next_part_) {
    return fail(
        absl::StrCat("part ", frame.part(), " arrived where part ", next_part_, " was expected"));
  }
  if (frame.has_nccl()) {
    // The rows follow over the link: nothing to collect, the frame is the whole step.
    if (count != 1 || !frame.hidden().empty() || !frame.v_first().empty()) {
      return fail("a frame whose rows travel over NCCL must be its step's only one, without rows");
    }
    if (frame.nccl().link_id() == 0) return fail("a frame names NCCL link 0");
    const v1::ActivationDType dtype = Normalized(frame.dtype());
    if (dtype != v1::ACTIVATION_DTYPE_FP32 && dtype != v1::ACTIVATION_DTYPE_BF16) {
      return fail(absl::StrCat("unknown dtype ", frame.dtype()));
    }
    Step step;
    step.request = std::move(*frame.mutable_step());
    step.activations.rows = frame.rows();
    step.activations.width = frame.width();
    step.nccl = frame.nccl();
    step.dtype = dtype;
    return std::optional<Step>(std::move(step));
  }
  if (next_part_ == 0) {
    pending_.emplace();
    part_count_ = count;
    pending_->request = std::move(*frame.mutable_step());
    pending_->activations.width = frame.width();
  } else if (count != part_count_ || frame.width() != pending_->activations.width) {
    return fail("parts of one step disagree on their count or width");
  }
  const v1::ActivationDType dtype =
      frame.dtype() == v1::ACTIVATION_DTYPE_UNSPECIFIED ? v1::ACTIVATION_DTYPE_FP32 : frame.dtype();
  if (dtype != v1::ACTIVATION_DTYPE_FP32 && dtype != v1::ACTIVATION_DTYPE_BF16) {
    return fail(absl::StrCat("unknown dtype ", frame.dtype()));
  }
  const size_t want = static_cast<size_t>(frame.rows()) * frame.width() * BytesPerValue(dtype);
  if (frame.hidden().size() != want ||
      (!frame.v_first().empty() && frame.v_first().size() != want)) {
    return fail(absl::StrCat(frame.rows(), " rows of width ", frame.width(), " need ", want,
                             " bytes each for hidden and v_first; got ", frame.hidden().size(),
                             " and ", frame.v_first().size()));
  }
  pending_->dtype = dtype;
  model::StageActivations& acts = pending_->activations;
  DecodeRows(frame.hidden(), dtype, &acts.hidden);
  DecodeRows(frame.v_first(), dtype, &acts.v_first);
  acts.rows += frame.rows();
  if (++next_part_ < part_count_) return std::optional<Step>();
  next_part_ = 0;
  std::optional<Step> done = std::move(pending_);
  pending_.reset();
  return done;
}

}  // namespace skein::link
