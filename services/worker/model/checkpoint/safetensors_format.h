// Constants and dtype names of the safetensors format shared by its reader and writer.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_SAFETENSORS_FORMAT_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_SAFETENSORS_FORMAT_H_

#include <cstdint>
#include <string_view>

#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model {

// The reference implementation refuses headers above 100 MB; so do we.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

inline std::string_view SafetensorsDTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
    case DType::kI8:
      return "I8";
  }
  return "";
}

inline bool SafetensorsDTypeFromName(std::string_view name, DType* out) {
  if (name == "F32") {
    *out = DType::kF32;
  } else if (name == "BF16") {
    *out = DType::kBF16;
  } else if (name == "F16") {
    *out = DType::kF16;
  } else if (name == "I8") {
    *out = DType::kI8;
  } else {
    return false;
  }
  return true;
}

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_SAFETENSORS_FORMAT_H_
