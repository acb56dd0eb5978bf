#include "services/worker/model/device/rwkv7_device_weights.h"

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/kernels.h"

namespace skein::model {
namespace {

using cuda::GlobalTensor;
using cuda::LayerTensor;
using cuda::TensorSpec;

// The LoRA factors, stored [in][out] in checkpoints and [out][in] by the engine.
bool IsLora(LayerTensor t) {
  switch (t) {
    case cuda::kW1:
    case cuda::kW2:
    case cuda::kA1:
    case cuda::kA2:
    case cuda::kV1:
    case cuda::kV2:
    case cuda::kG1:
    case cuda::kG2:
      return true;
    default:
      return false;
  }
}

// Layer 0's value-residual parameters: absent from checkpoints, never read by the engine.
bool IsLayer0ValueResidual(int64_t layer, LayerTensor t) {
  return layer == 0 && (t == cuda::kV0 || t == cuda::kV1 || t == cuda::kV2);
}

class Packer {
 public:
  Packer(const TensorArchive& archive, PackedRwkv7Weights& out) : archive_(archive), out_(out) {}

  // Writes tensor `spec` from the checkpoint tensor of the same name; `transpose` for a LoRA.
  absl::Status Fill(const TensorSpec& spec, bool transpose) {
    const TensorView* t = archive_.Find(spec.name);
    if (t == nullptr) return absl::InvalidArgumentError(absl::StrCat("no tensor ", spec.name));
    if (t->numel() != spec.count()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", spec.name, " has ", t->numel(),
                                                     " values; the engine expects ", spec.rows, "x",
                                                     spec.cols));
    }
    std::vector<float> values(static_cast<size_t>(spec.count()));
    if (t->dtype == DType::kI8) {
      const TensorView* scale = archive_.Find(Int8ScaleName(t->name));
      if (scale == nullptr || t->shape.size() != 2) {
        return absl::InvalidArgumentError(
            absl::StrCat("int8 tensor ", spec.name, " without its row scales"));
      }
      std::vector<float> scales(static_cast<size_t>(scale->numel()));
      base::ConvertElements(scale->dtype, scale->data, DType::kF32, scales.data(), scales.size());
      kernels::DequantizeRowsInt8(static_cast<const int8_t*>(t->data), scales.data(), t->shape[0],
                                  t->shape[1], DType::kF32, values.data());
    } else {
      base::ConvertElements(t->dtype, t->data, DType::kF32, values.data(), values.size());
    }
    if (transpose) {
      // Stored [in = cols][out = rows]; the engine wants [rows][cols].
      std::vector<float> stored = std::move(values);
      values.resize(stored.size());
      for (int64_t i = 0; i < spec.cols; ++i) {
        for (int64_t o = 0; o < spec.rows; ++o)
          values[o * spec.cols + i] = stored[i * spec.rows + o];
      }
    }
    Store(spec, values.data());
    return absl::OkStatus();
  }

  void Zero(const TensorSpec& spec) { std::memset(out_.bytes.data() + spec.offset, 0, spec.bytes); }

 private:
  void Store(const TensorSpec& spec, const float* values) {
    uint8_t* dst = out_.bytes.data() + spec.offset;
    if (spec.matrix) {
      base::ConvertElements(DType::kF32, values, out_.layout.dtype(), dst,
                            static_cast<size_t>(spec.count()));
    } else {
      std::memcpy(dst, values, static_cast<size_t>(spec.count()) * sizeof(float));
    }
  }

  const TensorArchive& archive_;
  PackedRwkv7Weights& out_;
};

}  // namespace

cuda::Rwkv7Shape DeviceShape(const RwkvConfig& c) {
  cuda::Rwkv7Shape s;
  s.layers = c.n_layer;
  s.embd = c.n_embd;
  s.head_size = c.head_size;
  s.vocab = c.vocab;
  s.ffn = c.ffn;
  s.d_decay = c.d_decay;
  s.d_iclr = c.d_iclr;
  s.d_value = c.d_value;
  s.d_gate = c.d_gate;
  return s;
}

absl::StatusOr<PackedRwkv7Weights> PackRwkv7Weights(const TensorArchive& archive,
                                                    const RwkvConfig& config, DType run_dtype,
                                                    int first_layer, int last_layer) {
  if (config.version != RwkvVersion::kV7) {
    return absl::UnimplementedError(
        "the device engine runs RWKV-7 (x070) models only; run this one on the CPU engine");
  }
  if (config.head_size != 64) {
    return absl::UnimplementedError(
        absl::StrCat("the device engine needs head size 64, not ", config.head_size));
  }
  if (run_dtype != DType::kF32 && run_dtype != DType::kBF16 && run_dtype != DType::kF16) {
    return absl::UnimplementedError(absl::StrCat("the device engine runs fp32, bf16 or fp16, not ",
                                                 std::string(base::DTypeName(run_dtype))));
  }
  if (first_layer < 0 || last_layer > config.n_layer || first_layer >= last_layer) {
    return absl::InvalidArgumentError(absl::StrCat("layer range [", first_layer, ", ", last_layer,
                                                   ") is not within the model's ", config.n_layer,
                                                   " layers"));
  }
  PackedRwkv7Weights out{
      cuda::Rwkv7WeightLayout(DeviceShape(config), run_dtype, first_layer, last_layer), {}};
  const cuda::Rwkv7WeightLayout& layout = out.layout;
  out.bytes.assign(layout.total_bytes(), 0);
  Packer packer(archive, out);
  std::vector<GlobalTensor> globals;
  if (layout.has_embedding()) globals.insert(globals.end(), {cuda::kEmb, cuda::kLn0W, cuda::kLn0B});
  if (layout.has_head()) globals.insert(globals.end(), {cuda::kLnOutW, cuda::kLnOutB, cuda::kHead});
  for (GlobalTensor g : globals) {
    if (absl::Status s = packer.Fill(layout.get(g), false); !s.ok()) return s;
  }
  for (int64_t l = first_layer; l < last_layer; ++l) {
    for (int t = 0; t < cuda::kLayerTensors; ++t) {
      const auto id = static_cast<LayerTensor>(t);
      const TensorSpec& spec = layout.get(l, id);
      if (IsLayer0ValueResidual(l, id) && archive.Find(spec.name) == nullptr) {
        packer.Zero(spec);
        continue;
      }
      if (absl::Status s = packer.Fill(spec, IsLora(id)); !s.ok()) return s;
    }
  }
  return out;
}

}  // namespace skein::model
