// `skein convert --in X --out Y [--dtype bf16|fp16|fp32]`: rewrites a checkpoint as .safetensors
// or .pth (by Y's extension), keeping tensor names, order and shapes, optionally changing the
// dtype (narrowing rounds to nearest even). Safetensors output records where it came from.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/dtype.h"
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
  if (!args.dtype.empty()) target = ParseDTypeFlag(args.dtype);

  std::vector<model::TensorSpec> specs;
  uint64_t total = 0;
  for (const model::TensorView& t : a.tensors()) {
    model::DType dtype = target.value_or(t.dtype);
    specs.push_back({t.name, dtype, t.shape});
    total += static_cast<uint64_t>(t.numel()) * model::DTypeSize(dtype);
  }
  std::map<std::string, std::string> metadata = a.metadata();
  metadata.emplace("format", "pt");
  metadata["source_format"] = *in_format == model::CheckpointFormat::kPth ? "pth" : "safetensors";
  metadata["source_file"] = std::filesystem::path(args.in).filename().string();
  model::RwkvVersion version = model::DetectRwkvVersion(a);
  if (version != model::RwkvVersion::kUnknown) {
    metadata["rwkv_version"] = std::string(model::RwkvVersionName(version));
  }

  auto writer = model::CreateCheckpointWriter(args.out, specs, metadata);
  if (!writer.ok()) throw CommandError(1, std::string(writer.status().message()));
  TerminalProgress progress("converting");
  constexpr size_t kChunk = size_t{1} << 20;  // elements per conversion step
  std::vector<char> buffer;
  uint64_t done = 0;
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const model::TensorView& t = a.tensors()[i];
    const model::DType to = specs[i].dtype;
    const size_t n = static_cast<size_t>(t.numel());
    const char* src = static_cast<const char*>(t.data);
    for (size_t first = 0; first < n; first += kChunk) {
      const size_t count = std::min(kChunk, n - first);
      buffer.resize(count * model::DTypeSize(to));
      base::ConvertElements(t.dtype, src + first * model::DTypeSize(t.dtype), to, buffer.data(),
                            count);
      absl::Status s = (*writer)->Append(std::string_view(buffer.data(), buffer.size()));
      if (!s.ok()) throw CommandError(1, std::string(s.message()));
      done += buffer.size();
      progress.Update(done, total);
    }
  }
  if (absl::Status s = (*writer)->Finish(); !s.ok())
    throw CommandError(1, std::string(s.message()));
  std::printf("wrote %s: %zu tensors, %llu bytes of tensor data\n", args.out.c_str(),
              a.tensors().size(), static_cast<unsigned long long>(total));
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(convert, [](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert", "Convert a checkpoint to .safetensors or .pth (by --out's extension)");
  auto args = std::make_shared<skein::cli::ConvertArgs>();
  cmd->add_option("--in", args->in, "Input checkpoint (.pth or .safetensors)")->required();
  cmd->add_option("--out", args->out, "Output file (.safetensors or .pth)")->required();
  cmd->add_option("--dtype", args->dtype, "Output dtype: bf16, fp16 or fp32 (default: keep)")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  cmd->callback([args] { skein::cli::Convert(*args); });
});
