// Writes valid state blobs into a directory, as seeds for state_blob_fuzz_test: states of a
// few shapes (one layer, a middle stage's layer range, no layers, a wide head), filled with
// varied values and positions, so the fuzzer starts from blobs that pass every check.
#include <cstdio>
#include <fstream>
#include <string>

#include "services/worker/model/state.h"
#include "services/worker/model/state_blob.h"

namespace skein::model {
namespace {

bool WriteBlob(const std::string& path, const StateShape& shape, int64_t position,
               uint64_t fingerprint) {
  RwkvState state(shape);
  absl::Span<float> data = state.data();
  for (size_t i = 0; i < data.size(); ++i) data[i] = 0.5f * static_cast<float>(i % 17) - 4.0f;
  state.set_position(position);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << EncodeStateBlob(state, fingerprint);
  return static_cast<bool>(out);
}

int Main(const std::string& dir) {
  struct Seed {
    const char* name;
    StateShape shape;
    int64_t position;
  };
  const Seed seeds[] = {
      {"one_layer", {0, 1, 4, 1, 4}, 0},
      {"middle_stage", {2, 5, 8, 2, 4}, 1234567},
      {"no_layers", {3, 3, 8, 2, 4}, 7},
      {"wide_head", {0, 2, 64, 1, 64}, 42},
  };
  uint64_t fingerprint = 0x5eed0000c0ffee00ull;
  for (const Seed& s : seeds) {
    if (!WriteBlob(dir + "/" + s.name + ".state", s.shape, s.position, fingerprint++)) {
      std::fprintf(stderr, "state_blob_fuzz_seeds: cannot write %s/%s.state\n", dir.c_str(),
                   s.name);
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace skein::model

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: state_blob_fuzz_seeds DIR\n");
    return 2;
  }
  return skein::model::Main(argv[1]);
}
