#include "kernels/cuda/rwkv7_packed_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace skein::cuda {
namespace {

constexpr char kPackMagic[8] = {'S', 'K', 'N', 'P', 'A', 'C', 'K', '1'};
constexpr char kGoldMagic[8] = {'S', 'K', 'N', 'G', 'O', 'L', 'D', '1'};
constexpr int kPackFields = 13;

Status Fail(const std::string& path, const std::string& why) {
  return Status::Error(path + ": " + why);
}

// Writes `parts` in order to path + ".tmp", then renames it to `path`.
Status WriteParts(const std::string& path,
                  const std::vector<std::pair<const void*, size_t>>& parts) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Fail(path, std::string("cannot create: ") + std::strerror(errno));
  bool ok = true;
  for (const auto& [data, size] : parts) {
    ok = ok && (size == 0 || std::fwrite(data, 1, size, f) == size);
  }
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Fail(path, "write failed");
  }
  return Status();
}

Status ReadAll(const std::string& path, std::vector<uint8_t>* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Fail(path, std::string("cannot open: ") + std::strerror(errno));
  out->clear();
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out->insert(out->end(), buf, buf + n);
  const bool error = std::ferror(f) != 0;
  std::fclose(f);
  return error ? Fail(path, "read failed") : Status();
}

}  // namespace

Status WriteRwkv7Packed(const std::string& path, const Rwkv7WeightLayout& layout,
                        const std::vector<uint8_t>& bytes) {
  if (bytes.size() != layout.total_bytes()) return Fail(path, "bytes do not match the layout");
  const Rwkv7Shape& s = layout.shape();
  const int64_t fields[kPackFields] = {s.layers,
                                       s.embd,
                                       s.head_size,
                                       s.vocab,
                                       s.ffn,
                                       s.d_decay,
                                       s.d_iclr,
                                       s.d_value,
                                       s.d_gate,
                                       static_cast<int64_t>(layout.dtype()),
                                       layout.first_layer(),
                                       layout.last_layer(),
                                       static_cast<int64_t>(bytes.size())};
  return WriteParts(
      path,
      {{kPackMagic, sizeof(kPackMagic)}, {fields, sizeof(fields)}, {bytes.data(), bytes.size()}});
}

Status ReadRwkv7Packed(const std::string& path, Rwkv7Packed* out) {
  std::vector<uint8_t> file;
  SKEIN_CUDA_RETURN_IF_ERROR(ReadAll(path, &file));
  const size_t header = sizeof(kPackMagic) + kPackFields * sizeof(int64_t);
  if (file.size() < header || std::memcmp(file.data(), kPackMagic, sizeof(kPackMagic)) != 0) {
    return Fail(path, "not a packed weights file (SKNPACK1)");
  }
  int64_t f[kPackFields];
  std::memcpy(f, file.data() + sizeof(kPackMagic), sizeof(f));
  Rwkv7Shape s;
  s.layers = f[0];
  s.embd = f[1];
  s.head_size = f[2];
  s.vocab = f[3];
  s.ffn = f[4];
  s.d_decay = f[5];
  s.d_iclr = f[6];
  s.d_value = f[7];
  s.d_gate = f[8];
  const int64_t dtype = f[9], first = f[10], last = f[11], count = f[12];
  const bool shape_ok = s.layers > 0 && s.head_size == 64 && s.embd > 0 && s.embd % 64 == 0 &&
                        s.vocab > 0 && s.ffn > 0 && s.d_decay > 0 && s.d_iclr > 0 &&
                        s.d_value > 0 && s.d_gate > 0 && 0 <= first && first < last &&
                        last <= s.layers;
  const bool dtype_ok = dtype == static_cast<int64_t>(DType::kF32) ||
                        dtype == static_cast<int64_t>(DType::kBF16) ||
                        dtype == static_cast<int64_t>(DType::kF16);
  if (!shape_ok || !dtype_ok) return Fail(path, "a shape or dtype the engine does not take");
  auto layout = std::make_unique<Rwkv7WeightLayout>(s, static_cast<DType>(dtype), first, last);
  if (count < 0 || static_cast<size_t>(count) != layout->total_bytes() ||
      file.size() != header + static_cast<size_t>(count)) {
    return Fail(path, "its size does not match its shape (truncated or not this layout)");
  }
  out->bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(header), file.end());
  out->layout = std::move(layout);
  return Status();
}

Status WriteRwkv7Golden(const std::string& path, const Rwkv7GoldenRun& run) {
  const int64_t n = static_cast<int64_t>(run.tokens.size());
  if (run.vocab <= 0 || run.logits.size() != static_cast<size_t>(n * run.vocab)) {
    return Fail(path, "logits do not match tokens × vocab");
  }
  const int64_t fields[2] = {n, run.vocab};
  return WriteParts(path, {{kGoldMagic, sizeof(kGoldMagic)},
                           {fields, sizeof(fields)},
                           {run.tokens.data(), run.tokens.size() * sizeof(int32_t)},
                           {run.logits.data(), run.logits.size() * sizeof(float)}});
}

Status ReadRwkv7Golden(const std::string& path, Rwkv7GoldenRun* out) {
  std::vector<uint8_t> file;
  SKEIN_CUDA_RETURN_IF_ERROR(ReadAll(path, &file));
  const size_t header = sizeof(kGoldMagic) + 2 * sizeof(int64_t);
  if (file.size() < header || std::memcmp(file.data(), kGoldMagic, sizeof(kGoldMagic)) != 0) {
    return Fail(path, "not a golden run file (SKNGOLD1)");
  }
  int64_t f[2];
  std::memcpy(f, file.data() + sizeof(kGoldMagic), sizeof(f));
  const int64_t n = f[0], vocab = f[1];
  if (n <= 0 || vocab <= 0 || n > (int64_t{1} << 24) || vocab > (int64_t{1} << 24) ||
      file.size() !=
          header + static_cast<size_t>(n) * (sizeof(int32_t) + static_cast<size_t>(vocab) * 4)) {
    return Fail(path, "its size does not match its token and vocabulary counts");
  }
  out->vocab = vocab;
  out->tokens.resize(static_cast<size_t>(n));
  std::memcpy(out->tokens.data(), file.data() + header, out->tokens.size() * sizeof(int32_t));
  out->logits.resize(static_cast<size_t>(n * vocab));
  std::memcpy(out->logits.data(), file.data() + header + out->tokens.size() * sizeof(int32_t),
              out->logits.size() * sizeof(float));
  for (int32_t t : out->tokens) {
    if (t < 0 || t >= vocab) return Fail(path, "a token id outside the vocabulary");
  }
  return Status();
}

}  // namespace skein::cuda
