// An x070 pipeline stage on a device engine (kernels/cuda/rwkv7_engine.h): the GPU, or the
// host engine that runs the same launch sequence with the scalar reference kernels.
//
// States. The engine keeps a pool of state slots in its own memory, used as a cache of the
// sessions' states: a step copies a state into a slot the first time it sees it, and then
// leaves it there, so that decode moves no state across the bus. While a state is in a slot
// it is "resident" (RwkvState's StateResidency): anyone who reads it on the host (a snapshot,
// a spill, a fork) fetches the newer floats back first, and anyone who changes it on the host
// ends the residency. When the slots run out, the least recently used state not in the step
// is copied back to its host floats and its slot reused.
//
// Steps. The engine runs uniform steps (S sessions × T tokens); a step of the worker mixes
// decode rows with prefill chunks of any length. Sequences are grouped by (token count, which
// logits they want) and each group runs as one uniform step, in the order the groups first
// appear; results are put back in the step's sequence order.
//
// Thread-safe: steps and state fetches are serialized by one mutex (the engine is driven by
// one thread at a time).
#ifndef SKEIN_SERVICES_WORKER_MODEL_DEVICE_DEVICE_RWKV_MODEL_H_
#define SKEIN_SERVICES_WORKER_MODEL_DEVICE_DEVICE_RWKV_MODEL_H_

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/stage_model.h"

namespace skein::model {

struct DeviceModelStats {
  int64_t slots = 0;
  int64_t resident = 0;    // states in slots now
  uint64_t uploads = 0;    // states copied into a slot, ever
  uint64_t fetches = 0;    // newer device floats copied back to a host state, ever
  uint64_t evictions = 0;  // states pushed out of a slot for another, ever
};

class DeviceRwkvModel final : public StageModel, public StateResidency {
 public:
  // Runs stage `shape` of `config` on `engine` (whose layout must be that stage's).
  DeviceRwkvModel(const RwkvConfig& config, const StateShape& shape,
                  std::unique_ptr<cuda::Rwkv7Engine> engine);
  // Fetches every resident state's newer floats back to the host and ends its residency, so
  // states may outlive the model.
  ~DeviceRwkvModel() override;

  StateShape state_shape() const override { return shape_; }
  // StageModel::Step. Beyond ValidateStep: RESOURCE_EXHAUSTED for more sequences than the
  // engine has slots; INTERNAL for an engine failure (states of groups already run have
  // advanced then).
  using StageModel::Step;
  absl::Status Step(absl::Span<const SequenceStep> sequences, const StageActivations* input,
                    StepResult* result) override;

  // StateResidency.
  void Fetch(RwkvState& state) override;
  void Release(RwkvState& state) override;

  // Lock-free (a metrics read must not wait for a running step).
  DeviceModelStats stats() const;

 private:
  struct Slot {
    RwkvState* state = nullptr;  // null: free
    std::list<int32_t>::iterator lru;
  };
  // The slot holding `state` for this step, uploading it (and evicting another) if needed;
  // `in_step` marks slots the step already uses, which are never evicted.
  absl::StatusOr<int32_t> Acquire(RwkvState* state, const std::vector<bool>& in_step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Copies a slot's newer floats back to its state (if newer) and frees the slot.
  absl::Status Evict(int32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Touch(int32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // A step's per-group buffers, kept from step to step (their capacity; the logits of a large
  // batch are tens of MB).
  struct GroupScratch {
    std::vector<int32_t> slots, tokens;
    std::vector<float> hidden, v_first, logits, hidden_out, v_first_out;
  };

  const RwkvConfig config_;
  const StateShape shape_;
  mutable absl::Mutex mutex_;
  std::unique_ptr<cuda::Rwkv7Engine> engine_ ABSL_GUARDED_BY(mutex_);
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mutex_);
  std::vector<int32_t> free_ ABSL_GUARDED_BY(mutex_);
  std::list<int32_t> lru_ ABSL_GUARDED_BY(mutex_);  // front = most recently used
  absl::flat_hash_map<const RwkvState*, int32_t> slot_of_ ABSL_GUARDED_BY(mutex_);
  GroupScratch scratch_ ABSL_GUARDED_BY(mutex_);
  // Counters for stats(), written under mutex_ and read without it.
  int64_t slot_count_ = 0;
  std::atomic<int64_t> resident_{0};
  std::atomic<uint64_t> uploads_{0}, fetches_{0}, evictions_{0};
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_DEVICE_DEVICE_RWKV_MODEL_H_
