// What an RWKV checkpoint is: its architecture version (spec §6) and, for the versions the
// engine runs (RWKV-7 x070, RWKV-6 x060, RWKV-5 x052, RWKV-4), every hyper-parameter read
// from the tensor shapes (spec §§2.1, 3-5), checked against the full list of tensors the
// forward pass of that version needs.
//
// Pure functions over an archive; safe to call from several threads.
#ifndef SKEIN_SERVICES_WORKER_MODEL_RWKV_CONFIG_H_
#define SKEIN_SERVICES_WORKER_MODEL_RWKV_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model {

enum class RwkvVersion {
  kUnknown,            // no RWKV block keys
  kV4,                 // RWKV-4
  kV5_0,               // RWKV-5 preview, ChatRWKV's "5.0" (ln_x, no gate)
  kV5_1,               // ChatRWKV's "5.1" (gate, per-head decay)
  kV5_2,               // x052, the released RWKV-5 World models
  kV6,                 // x060
  kV7,                 // x070 "Goose"
  kV7DeepEmbed,        // x070 with DeepEmbed FFN tensors (ffn.s_emb / s0 / s1 / s2)
  kV8,                 // RWKV-8 "rc00" (ffn.enn)
  kChatRwkvConverted,  // pre-processed by ChatRWKV's converter (_strategy / _version keys)
};

// "x070", "x060", "x052", "v5.1", "v5.0", "v4", "x070+DeepEmbed", "rwkv8", "chatrwkv-converted",
// "unknown".
std::string_view RwkvVersionName(RwkvVersion v);

// Detects the version from the tensor names (and shapes where §6 needs them). Never fails.
RwkvVersion DetectRwkvVersion(const TensorArchive& archive);

// Dimensions shared by every version, read where they exist (0 when not).
struct RwkvBasics {
  RwkvVersion version = RwkvVersion::kUnknown;
  int64_t n_layer = 0;     // 1 + largest block index
  int64_t n_embd = 0;      // C, from emb.weight
  int64_t vocab = 0;       // V, from emb.weight
  int64_t parameters = 0;  // elements of every tensor in the file
  std::string dtype;       // "bf16" / "fp16" / "fp32", or "mixed"
};
RwkvBasics DescribeRwkvBasics(const TensorArchive& archive);

// True for the versions the engine runs: kV7, kV6, kV5_2 and kV4.
bool IsSupportedRwkvVersion(RwkvVersion v);

// A validated model description of a supported version.
struct RwkvConfig {
  RwkvVersion version = RwkvVersion::kV7;
  int64_t vocab = 0;               // V
  int64_t n_embd = 0;              // C = n_head * head_size
  int64_t n_head = 0;              // H (0 for RWKV-4, which has no heads)
  int64_t head_size = 0;           // N (0 for RWKV-4)
  int64_t n_layer = 0;             // L
  int64_t ffn = 0;                 // F
  int64_t d_decay = 0;             // D_w: x070 att.w1, x060 att.time_decay_w1 (second dim)
  int64_t d_iclr = 0;              // D_a (x070 att.a1)
  int64_t d_value = 0;             // D_v (x070 att.v1 of a layer >= 1; layer 0's when L == 1)
  int64_t d_gate = 0;              // D_g (x070 att.g1)
  int64_t d_mix = 0;               // D_mix (x060 att.time_maa_w1 is [C, 5·D_mix])
  bool layer0_value_lora = false;  // x070: blocks.0.att.v0/v1/v2 are all present (never used)
  int64_t parameters = 0;          // elements of every tensor in the file (int8 scales too)
  // The common dtype name, or "mixed". An int8 file (every quantisable matrix stored int8,
  // see IsQuantizableMatrix) is "int8" whatever its other tensors are stored as.
  std::string dtype;

  // x070 only: every layer after the first mixes in layer 0's value (v_first), which passes
  // between pipeline stages beside the hidden state.
  bool has_value_residual() const { return version == RwkvVersion::kV7; }
  // Recurrent state per sequence: L·(2C + H·N·N) floats for v5-v7 (spec §2.6), L·5C for
  // RWKV-4 (spec §5).
  int64_t state_floats() const {
    return n_layer *
           (version == RwkvVersion::kV4 ? 5 * n_embd : 2 * n_embd + n_head * head_size * head_size);
  }
  int64_t state_bytes() const { return state_floats() * 4; }
};

// int8 checkpoints. The large matrices (IsQuantizableMatrix) may be stored as int8 q with
// one scale per output row beside them, in a tensor named by Int8ScaleName: [rows] values,
// finite and >= 0, stored fp32 (or bf16/fp16), and the matrix stands for
//   w[o][i] = scale[o] · q[o][i]
// (what kernels::QuantizeRowsInt8 makes; `skein convert --dtype int8` writes such files).
// Any other tensor stored int8 is refused.

// True for the matrices products read whole every step, which int8 quantises:
// head.weight and blocks.<l>.{att.receptance, att.key, att.value, att.output, att.gate,
// ffn.key, ffn.value, ffn.receptance}.weight.
bool IsQuantizableMatrix(std::string_view name);

// The name of an int8 matrix's scale tensor: `matrix` + "_scale".
std::string Int8ScaleName(std::string_view matrix);

// Validates the archive as a checkpoint of a supported version and returns its description.
//  - UNIMPLEMENTED for recognised but unsupported versions (the RWKV-5 previews, DeepEmbed,
//    RWKV-8), FAILED_PRECONDITION for ChatRWKV-converted files;
//  - INVALID_ARGUMENT for a missing tensor, a tensor of the wrong shape or rank, an unexpected
//    tensor, missing blocks, or a file that is not RWKV at all; for int8 tensors other than
//    the quantisable matrices, and for an int8 matrix whose scale tensor is missing, of the
//    wrong shape or dtype, or holds a negative or non-finite scale.
// Every error names the file and, where it applies, the tensor.
absl::StatusOr<RwkvConfig> LoadRwkvConfig(const TensorArchive& archive);

// The LoRA ranks RWKV-LM's x070 training code picks for width C (spec §2.1):
// max(32, round(k * C^p / 32) * 32), with (k, p) = (1.8, 0.5) for decay and ICLR, (1.3, 0.5)
// for value, (0.6, 0.8) for gate; ties round to even as Python's round() does.
struct Rwkv7LoraRanks {
  int64_t decay = 0, iclr = 0, value = 0, gate = 0;
};
Rwkv7LoraRanks DefaultRwkv7LoraRanks(int64_t n_embd);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_RWKV_CONFIG_H_
