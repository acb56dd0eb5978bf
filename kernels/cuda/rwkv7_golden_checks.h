// The official logits of a real model (a golden run, rwkv7_packed_file.h) against any engine
// (rwkv7_engine.h): the same checks for the host engine here and for the GPU engine on a GPU
// machine (rwkv7_golden_check.cc, run by tools/gpu-check.sh). Plain C++.
#ifndef SKEIN_KERNELS_CUDA_RWKV7_GOLDEN_CHECKS_H_
#define SKEIN_KERNELS_CUDA_RWKV7_GOLDEN_CHECKS_H_

#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "kernels/cuda/rwkv7_packed_file.h"

namespace skein::cuda {

// Runs `golden`'s tokens through `engine` (a whole model, at least 3 slots; slots 0-2 are
// reset by writing zero states) three ways, each checked against the golden logits within
// `bound`·σ of each step's logits:
//   - one token per step;
//   - the whole sequence as one step, with every token's logits;
//   - two sessions in one step per token, the second from a state written mid-sequence
//     (WriteSlot of the first's state read back after `split` tokens), which must land on
//     the golden's later steps.
// Each check is named `name` plus what it ran. Returns the largest deviation seen, in σ.
double CheckGoldenRun(const std::string& name, Rwkv7Engine& engine, const Rwkv7GoldenRun& golden,
                      double bound, testing::Checks& checks);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_GOLDEN_CHECKS_H_
