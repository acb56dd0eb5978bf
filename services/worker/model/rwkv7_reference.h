// A direct float64 transcription of the RWKV-7 single-token forward pass (spec §2.4, §2.5),
// reading the checkpoint's tensors by name. Slow and simple on purpose: tests use it as an
// independent check of the engine beyond the fixed goldens (any shape, any seed).
#ifndef SKEIN_SERVICES_WORKER_MODEL_RWKV7_REFERENCE_H_
#define SKEIN_SERVICES_WORKER_MODEL_RWKV7_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"

namespace skein::model::testing {

class Rwkv7Reference {
 public:
  // `archive` must be a valid x070 checkpoint (see LoadRwkvConfig) and outlive this object.
  explicit Rwkv7Reference(const TensorArchive& archive);

  // Feeds one token and returns the V logits.
  std::vector<double> Forward(int64_t token);

  // State in the spec's layout, per layer.
  const std::vector<double>& att_x_prev(int layer) const { return att_x_prev_[layer]; }
  const std::vector<double>& att_kv(int layer) const { return att_kv_[layer]; }
  const std::vector<double>& ffn_x_prev(int layer) const { return ffn_x_prev_[layer]; }

 private:
  std::vector<double> Get(const std::string& name) const;

  const TensorArchive& archive_;
  RwkvConfig config_;
  std::vector<std::vector<double>> att_x_prev_, att_kv_, ffn_x_prev_;
};

}  // namespace skein::model::testing

#endif  // SKEIN_SERVICES_WORKER_MODEL_RWKV7_REFERENCE_H_
