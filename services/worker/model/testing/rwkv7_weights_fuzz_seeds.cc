// Writes tiny but complete RWKV-7 checkpoints into a directory, as seeds for
// rwkv7_weights_fuzz_test: every tensor RwkvWeights::Load needs, in both formats and all
// three dtypes, with one and with two layers (and one with the optional layer-0 value LoRA).
// The models are as small as the format allows (C = 8, two heads of 4), so each seed is a
// few kilobytes and the fuzzer spends its time on headers and shapes, not on copying weights.
#include <cstdio>
#include <string>

#include "services/worker/model/testing/random_rwkv7.h"

namespace skein::model {
namespace {

int Main(const std::string& dir) {
  struct Seed {
    const char* name;
    int64_t layers;
    DType dtype;
    bool layer0_value_lora;
  };
  const Seed seeds[] = {
      {"two_layers_bf16.safetensors", 2, DType::kBF16, false},
      {"two_layers_f32.pth", 2, DType::kF32, false},
      {"one_layer_f16.safetensors", 1, DType::kF16, false},
      {"one_layer_bf16.pth", 1, DType::kBF16, false},
      {"two_layers_v0_f32.safetensors", 2, DType::kF32, true},
  };
  for (const Seed& s : seeds) {
    RandomModelShape shape;
    shape.n_layer = s.layers;
    shape.n_embd = 8;
    shape.head_size = 4;
    shape.vocab = 5;
    shape.ffn = 16;
    shape.lora = {2, 2, 2, 2};
    shape.layer0_value_lora = s.layer0_value_lora;
    const std::string path = dir + "/" + s.name;
    if (absl::Status st = WriteRandomModel(path, shape, s.dtype, 7); !st.ok()) {
      std::fprintf(stderr, "rwkv7_weights_fuzz_seeds: %s: %s\n", path.c_str(),
                   std::string(st.message()).c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace skein::model

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: rwkv7_weights_fuzz_seeds DIR\n");
    return 2;
  }
  return skein::model::Main(argv[1]);
}
