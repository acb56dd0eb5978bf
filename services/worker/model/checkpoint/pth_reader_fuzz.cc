// libFuzzer target: arbitrary bytes as a .pth checkpoint. Every tensor the reader accepts is
// read in full (so ASan sees any pointer past the data) and run through model validation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/testing/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto archive = skein::model::OpenPthFromSource(
      "fuzz.pth",
      skein::model::ByteSourceFromString(std::string(reinterpret_cast<const char*>(data), size)));
  if (archive.ok()) skein::model::CheckArchive(**archive);
  return 0;
}
