// What the checkpoint fuzz targets assert about every archive a reader accepts.
#ifndef SKEIN_SERVICES_WORKER_MODEL_TESTING_FUZZ_CHECKS_H_
#define SKEIN_SERVICES_WORKER_MODEL_TESTING_FUZZ_CHECKS_H_

#include <cstdlib>
#include <cstring>

#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"

namespace skein::model {

// Aborts (a fuzzer finding) if an accepted archive is inconsistent; reads every tensor byte.
inline void CheckArchive(const TensorArchive& archive) {
  volatile unsigned char sink = 0;
  for (const TensorView& t : archive.tensors()) {
    if (t.nbytes != static_cast<size_t>(t.numel()) * DTypeSize(t.dtype)) std::abort();
    if (t.nbytes > 0 && t.data == nullptr) std::abort();
    if (t.nbytes > 0 && reinterpret_cast<uintptr_t>(t.data) % DTypeSize(t.dtype) != 0) std::abort();
    if (archive.Find(t.name) != &t) std::abort();
    const unsigned char* p = static_cast<const unsigned char*>(t.data);
    for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ p[i];
  }
  (void)DescribeRwkvBasics(archive);
  (void)LoadRwkvConfig(archive);
}

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_TESTING_FUZZ_CHECKS_H_
