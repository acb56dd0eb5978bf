// Files that carry a real model and its reference outputs to a GPU machine that has no Bazel,
// Abseil or checkpoint readers (tools/gpu-check.sh): a stage's weights already in the engine's
// layout (written by `skein device-pack` from a checkpoint), and a token sequence with the
// official logits after each token (from a golden JSON). Plain C++, little-endian.
//
// Packed weights: "SKNPACK1", then int64 layers, embd, head_size, vocab, ffn, d_decay,
// d_iclr, d_value, d_gate, dtype (base::DType), first_layer, last_layer, byte count; then the
// bytes of the Rwkv7WeightLayout of that shape, dtype and range.
// Golden run: "SKNGOLD1", then int64 tokens, vocab; the int32 token ids; the fp32 logits
// [tokens][vocab].
#ifndef SKEIN_KERNELS_CUDA_RWKV7_PACKED_FILE_H_
#define SKEIN_KERNELS_CUDA_RWKV7_PACKED_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda {

struct Rwkv7Packed {
  std::unique_ptr<Rwkv7WeightLayout> layout;
  std::vector<uint8_t> bytes;  // layout->total_bytes()
};

struct Rwkv7GoldenRun {
  std::vector<int32_t> tokens;
  int64_t vocab = 0;
  std::vector<float> logits;  // [tokens.size()][vocab]: after each token, from the zero state
};

// Both write atomically enough for a tool (a temporary file renamed into place) and fail with
// the path and the reason. The readers check the magic, that the sizes agree with each other
// and with the file's length, and that the shape is one the engine takes.
Status WriteRwkv7Packed(const std::string& path, const Rwkv7WeightLayout& layout,
                        const std::vector<uint8_t>& bytes);
Status ReadRwkv7Packed(const std::string& path, Rwkv7Packed* out);
Status WriteRwkv7Golden(const std::string& path, const Rwkv7GoldenRun& run);
Status ReadRwkv7Golden(const std::string& path, Rwkv7GoldenRun* out);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_PACKED_FILE_H_
