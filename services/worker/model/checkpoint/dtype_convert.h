// Conversions between the checkpoint dtypes (fp32, bf16, fp16). Narrowing rounds to nearest,
// ties to even; NaN stays NaN and overflow becomes infinity. Pure functions, thread-safe.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_DTYPE_CONVERT_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_DTYPE_CONVERT_H_

#include <cstddef>
#include <cstdint>

#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model {

float BF16ToFloat(uint16_t bits);
uint16_t FloatToBF16(float f);
float F16ToFloat(uint16_t bits);
uint16_t FloatToF16(float f);

// Converts `count` elements from `src` (of dtype `from`) into `dst` (of dtype `to`). The
// buffers must not overlap; neither needs any alignment.
void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_DTYPE_CONVERT_H_
