#include "services/worker/model/testing/random_rwkv7_archive.h"

#include <vector>

#include "base/dtype.h"
#include "services/worker/model/checkpoint/archive_impl.h"

namespace skein::model {

absl::StatusOr<std::unique_ptr<TensorArchive>> MakeRandomRwkv7Archive(const RandomModelShape& shape,
                                                                      uint64_t seed, DType dtype) {
  absl::StatusOr<RandomModelShape> resolved = ResolveRandomModelShape(shape);
  if (!resolved.ok()) return resolved.status();
  auto archive = std::make_unique<ArchiveImpl>("<random RWKV-7>", nullptr);
  constexpr int64_t kChunk = 1 << 16;
  std::vector<float> values(kChunk);
  for (const TensorSpec& spec : RandomModelTensorSpecs(*resolved, dtype)) {
    TensorView view;
    view.name = spec.name;
    view.dtype = spec.dtype;
    view.shape = spec.shape;
    const int64_t n = view.numel();
    view.nbytes = static_cast<size_t>(n) * DTypeSize(dtype);
    auto buffer = std::make_unique<AlignedBuffer>(view.nbytes);
    auto* out = static_cast<uint8_t*>(buffer->data());
    for (int64_t first = 0; first < n; first += kChunk) {
      const int64_t count = n - first < kChunk ? n - first : kChunk;
      FillRandomModelValues(spec, seed, first, count, values.data());
      base::ConvertElements(DType::kF32, values.data(), dtype, out + first * DTypeSize(dtype),
                            count);
    }
    if (absl::Status s = archive->AddOwned(std::move(view), std::move(buffer)); !s.ok()) return s;
  }
  return archive;
}

RandomModelShape Rwkv7Shape01B() {
  RandomModelShape s;
  s.n_layer = 12;
  s.n_embd = 768;
  s.vocab = 65536;
  s.head_size = 64;
  s.ffn = 4 * 768;
  s.lora = {64, 64, 32, 128};
  return s;
}

RandomModelShape Rwkv7Shape04B() {
  RandomModelShape s = Rwkv7Shape01B();
  s.n_layer = 24;
  s.n_embd = 1024;
  s.ffn = 4 * 1024;
  return s;
}

}  // namespace skein::model
