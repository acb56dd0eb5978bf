// Writes small checkpoints into a directory, as seeds for the reader fuzz tests: tiny random
// RWKV-7 models in both formats, a zip64 .pth, a .pth with a deflated pickle, and a
// safetensors file with metadata.
#include <cstdio>
#include <string>
#include <vector>

#include "services/worker/model/checkpoint/pth_writer.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/testing/random_rwkv7.h"
#include "services/worker/model/testing/test_zip.h"

namespace skein::model {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "fuzz_seeds: %s\n", std::string(s.message()).c_str());
  return 1;
}

int Main(const std::string& dir) {
  RandomModelShape shape;
  shape.n_layer = 2;
  shape.n_embd = 32;
  shape.head_size = 16;
  shape.vocab = 8;
  shape.ffn = 64;
  shape.lora = {4, 4, 4, 4};
  for (const char* name : {"/rwkv7.pth", "/rwkv7.safetensors"}) {
    if (absl::Status s = WriteRandomModel(dir + name, shape, DType::kBF16, 1); !s.ok()) {
      return Fail(s);
    }
  }
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  uint16_t b[3] = {0x3f80, 0x4000, 0x7f80};
  std::vector<TensorView> small = {{"a", DType::kF32, {2, 3}, a.data(), 24},
                                   {"b", DType::kF16, {3}, b, 6},
                                   {"s", DType::kF32, {}, a.data(), 4}};
  PthWriteOptions zip64;
  zip64.force_zip64 = true;
  if (absl::Status s = WritePth(dir + "/zip64.pth", small, zip64); !s.ok()) return Fail(s);
  if (absl::Status s = WritePth(dir + "/small.pth", small); !s.ok()) return Fail(s);
  if (absl::Status s = WriteSafetensors(dir + "/small.safetensors", small, {{"format", "pt"}});
      !s.ok()) {
    return Fail(s);
  }
  std::vector<testing::ZipRecord> records = testing::ReadZip(testing::ReadFile(dir + "/small.pth"));
  records[0].deflate = true;
  testing::WriteFile(dir + "/deflated.pth", testing::BuildZip(records));
  return 0;
}

}  // namespace
}  // namespace skein::model

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  return skein::model::Main(argv[1]);
}
