// `skein convert --in X --out Y [--dtype bf16|fp16|fp32|int8]`: rewrites a checkpoint as
// .safetensors or .pth (by Y's extension), keeping tensor names, order and shapes, optionally
// changing the dtype (narrowing rounds to nearest even). int8 quantises the large matrices per
// output row and writes each one's scales beside it (rwkv_config.h); an int8 file converted to
// another dtype is widened back (scale · q) and loses its scale tensors. Safetensors output
// records where it came from.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/dtype.h"
#include "kernels/cpu/kernels.h"
#include "services/worker/model/checkpoint/checkpoint_writer.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/dtype_flag.h"
#include "tools/cli/progress.h"

namespace skein::cli {
namespace {

struct ConvertArgs {
  std::string in;
  std::string out;
  std::string dtype;
};

// How one output tensor is made from a source tensor.
enum class Make {
  kConvert,     // element by element into the output dtype (a copy when it is the same)
  kQuantize,    // an fp32/bf16/fp16 matrix to int8 rows (kernels::QuantizeRowsInt8) ...
  kScales,      // ... whose row scales follow it as the next tensor, fp32
  kDequantize,  // an int8 matrix widened to scale · q in the output dtype
};

struct Output {
  model::TensorSpec spec;
  const model::TensorView* source;
  Make make;
};

// True for the scale tensor of an int8 matrix of `a`.
bool IsInt8Scale(const model::TensorArchive& a, const std::string& name) {
  constexpr std::string_view kSuffix = "_scale";
  if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix)) return false;
  const model::TensorView* m = a.Find(name.substr(0, name.size() - kSuffix.size()));
  return m != nullptr && m->dtype == model::DType::kI8;
}

// The output tensors, in the source's order (a quantised matrix's scales right after it).
std::vector<Output> PlanOutputs(const model::TensorArchive& a, std::optional<model::DType> target) {
  std::vector<Output> outputs;
  for (const model::TensorView& t : a.tensors()) {
    if (target && *target != model::DType::kI8 && IsInt8Scale(a, t.name)) {
      continue;  // int8 matrices are widened with their scales
    }
    if (!target || *target == t.dtype) {
      outputs.push_back({{t.name, t.dtype, t.shape}, &t, Make::kConvert});
    } else if (*target == model::DType::kI8) {
      if (model::IsQuantizableMatrix(t.name)) {
        outputs.push_back({{t.name, model::DType::kI8, t.shape}, &t, Make::kQuantize});
        outputs.push_back(
            {{model::Int8ScaleName(t.name), model::DType::kF32, {t.shape[0]}}, &t, Make::kScales});
      } else {
        // Only the large matrices are quantised; norms, vectors, LoRAs and the embedding
        // (one row read per token) keep their precision.
        outputs.push_back({{t.name, t.dtype, t.shape}, &t, Make::kConvert});
      }
    } else if (t.dtype == model::DType::kI8) {
      outputs.push_back({{t.name, *target, t.shape}, &t, Make::kDequantize});
    } else {
      outputs.push_back({{t.name, *target, t.shape}, &t, Make::kConvert});
    }
  }
  return outputs;
}

// Writes each output tensor, in chunks so that no whole converted copy is held, except a
// quantised matrix (its rows are scaled together).
class TensorMaker {
 public:
  TensorMaker(const model::TensorArchive& a, model::TensorWriter& writer, uint64_t total)
      : archive_(a), writer_(writer), total_(total), progress_("converting") {}

  void Write(const Output& o) {
    const model::TensorView& t = *o.source;
    switch (o.make) {
      case Make::kConvert:
        Convert(t, o.spec.dtype);
        return;
      case Make::kQuantize: {
        const int64_t rows = t.shape[0], cols = t.shape[1];
        quantized_.resize(static_cast<size_t>(rows * cols));
        scales_.resize(static_cast<size_t>(rows));
        kernels::QuantizeRowsInt8(kernels::WeightMatrix{t.data, t.dtype, rows, cols, cols},
                                  quantized_.data(), scales_.data());
        Append(quantized_.data(), quantized_.size());
        return;
      }
      case Make::kScales:
        Append(scales_.data(), scales_.size() * sizeof(float));
        return;
      case Make::kDequantize:
        Dequantize(t, o.spec.dtype);
        return;
    }
  }

 private:
  void Convert(const model::TensorView& t, model::DType to) {
    constexpr size_t kChunk = size_t{1} << 20;  // elements per conversion step
    const size_t n = static_cast<size_t>(t.numel());
    const char* src = static_cast<const char*>(t.data);
    for (size_t first = 0; first < n; first += kChunk) {
      const size_t count = std::min(kChunk, n - first);
      const char* from = src + first * model::DTypeSize(t.dtype);
      if (to == t.dtype) {
        Append(from, count * model::DTypeSize(to));
        continue;
      }
      buffer_.resize(count * model::DTypeSize(to));
      base::ConvertElements(t.dtype, from, to, buffer_.data(), count);
      Append(buffer_.data(), buffer_.size());
    }
  }

  void Dequantize(const model::TensorView& t, model::DType to) {
    const model::TensorView* s = archive_.Find(model::Int8ScaleName(t.name));
    const int64_t rows = t.shape[0], cols = t.shape[1];
    std::vector<float> scales(static_cast<size_t>(rows));
    base::ConvertElements(s->dtype, s->data, model::DType::kF32, scales.data(), scales.size());
    buffer_.resize(static_cast<size_t>(cols) * model::DTypeSize(to));
    for (int64_t r = 0; r < rows; ++r) {  // a row at a time: no whole widened copy is held
      kernels::DequantizeRowsInt8(static_cast<const int8_t*>(t.data) + r * cols, &scales[r], 1,
                                  cols, to, buffer_.data());
      Append(buffer_.data(), buffer_.size());
    }
  }

  void Append(const void* data, size_t bytes) {
    absl::Status s = writer_.Append(std::string_view(static_cast<const char*>(data), bytes));
    if (!s.ok()) throw CommandError(1, std::string(s.message()));
    done_ += bytes;
    progress_.Update(done_, total_);
  }

  const model::TensorArchive& archive_;
  model::TensorWriter& writer_;
  const uint64_t total_;
  uint64_t done_ = 0;
  TerminalProgress progress_;
  std::vector<char> buffer_;
  std::vector<int8_t> quantized_;
  std::vector<float> scales_;
};

void Convert(const ConvertArgs& args) {
  std::error_code ec;
  if (std::filesystem::equivalent(args.in, args.out, ec)) {
    throw CommandError(2, "--out must be a different file from --in");
  }
  auto out_format = model::CheckpointFormatForPath(args.out);
  if (!out_format.ok()) throw CommandError(2, std::string(out_format.status().message()));
  auto in_format = model::DetectCheckpointFormat(args.in);
  if (!in_format.ok()) throw CommandError(1, std::string(in_format.status().message()));
  auto archive = model::OpenCheckpoint(args.in);
  if (!archive.ok()) throw CommandError(1, std::string(archive.status().message()));
  const model::TensorArchive& a = **archive;

  std::optional<model::DType> target;
  if (!args.dtype.empty()) target = ParseDTypeFlag(args.dtype, /*run_dtype=*/true);
  // Which tensors are quantisable matrices (and that an int8 input is well formed) is known
  // only for a valid RWKV checkpoint.
  const bool int8_involved =
      target == model::DType::kI8 ||
      std::any_of(a.tensors().begin(), a.tensors().end(),
                  [](const model::TensorView& t) { return t.dtype == model::DType::kI8; });
  if (target && int8_involved) {
    if (absl::StatusOr<model::RwkvConfig> c = model::LoadRwkvConfig(a); !c.ok()) {
      throw CommandError(
          1, absl::StrCat("int8 conversion needs a valid RWKV checkpoint: ", c.status().message()));
    }
  }

  const std::vector<Output> outputs = PlanOutputs(a, target);
  std::vector<model::TensorSpec> specs;
  uint64_t total = 0;
  for (const Output& o : outputs) {
    specs.push_back(o.spec);
    uint64_t bytes = model::DTypeSize(o.spec.dtype);
    for (int64_t d : o.spec.shape) bytes *= static_cast<uint64_t>(d);
    total += bytes;
  }
  std::map<std::string, std::string> metadata = a.metadata();
  metadata.emplace("format", "pt");
  metadata["source_format"] = *in_format == model::CheckpointFormat::kPth ? "pth" : "safetensors";
  metadata["source_file"] = std::filesystem::path(args.in).filename().string();
  model::RwkvVersion version = model::DetectRwkvVersion(a);
  if (version != model::RwkvVersion::kUnknown) {
    metadata["rwkv_version"] = std::string(model::RwkvVersionName(version));
  }
  if (target == model::DType::kI8) {
    metadata["quantization"] = "int8 per output row: w = <name>_scale[row] * q";
  } else if (target) {
    metadata.erase("quantization");
  }

  auto writer = model::CreateCheckpointWriter(args.out, specs, metadata);
  if (!writer.ok()) throw CommandError(1, std::string(writer.status().message()));
  TensorMaker maker(a, **writer, total);
  for (const Output& o : outputs) maker.Write(o);
  if (absl::Status s = (*writer)->Finish(); !s.ok())
    throw CommandError(1, std::string(s.message()));
  std::printf("wrote %s: %zu tensors, %llu bytes of tensor data\n", args.out.c_str(), specs.size(),
              static_cast<unsigned long long>(total));
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(convert, [](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert", "Convert a checkpoint to .safetensors or .pth (by --out's extension)");
  auto args = std::make_shared<skein::cli::ConvertArgs>();
  cmd->add_option("--in", args->in, "Input checkpoint (.pth or .safetensors)")->required();
  cmd->add_option("--out", args->out, "Output file (.safetensors or .pth)")->required();
  cmd->add_option("--dtype", args->dtype,
                  "Output dtype: bf16, fp16, fp32, or int8 (the large matrices quantised per "
                  "output row, each with a <name>_scale tensor; the rest kept) (default: keep)")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32", "int8"}));
  cmd->callback([args] { skein::cli::Convert(*args); });
});
