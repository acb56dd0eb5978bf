// libFuzzer target: arbitrary bytes as a .safetensors checkpoint; see pth_reader_fuzz.cc.
#include <cstddef>
#include <cstdint>
#include <string>

#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/testing/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto archive = skein::model::OpenSafetensorsFromSource(
      "fuzz.safetensors",
      skein::model::ByteSourceFromString(std::string(reinterpret_cast<const char*>(data), size)));
  if (archive.ok()) skein::model::CheckArchive(**archive);
  return 0;
}
