// The recurrent state of one RWKV sequence, for the layers one stage holds.
//
// Per layer l in [first_layer, last_layer), fp32 (spec §§2.6, 3, 5):
//   att_x_prev [C]        LN1 output of the previous token
//   att_kv     RWKV-5/6/7: [H][N][N], the WKV matrix per head, row i = value channel,
//              column j = key channel;
//              RWKV-4 (heads = 0): [3][C], the running sums aa, bb and the exponent pp
//   ffn_x_prev [C]        LN2 output of the previous token
// plus `position`, the number of tokens the sequence has consumed. A fresh state is the
// standard start: all zeros, except RWKV-4's pp, which starts at −1e30 (spec §5). Copying a
// state forks the sequence.
//
// A device engine (device/device_rwkv_model.h) may hold a state's newest floats in its own
// memory: the state is then "resident" there (see StateResidency). Every accessor first
// brings the floats back (a read from the device), and a mutable one also ends the residency,
// so code that only sees RwkvState never reads stale floats, whatever engine ran the step.
//
// Not thread-safe: one step at a time may use a state; distinct states are independent.
#ifndef SKEIN_SERVICES_WORKER_MODEL_STATE_H_
#define SKEIN_SERVICES_WORKER_MODEL_STATE_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace skein::model {

// The dimensions a state depends on.
struct StateShape {
  int first_layer = 0;
  int last_layer = 0;     // exclusive
  int64_t embd = 0;       // C
  int64_t heads = 0;      // H; 0 for RWKV-4's per-channel state
  int64_t head_size = 0;  // N; 0 for RWKV-4

  int layers() const { return last_layer - first_layer; }
  // RWKV-4: the att state is aa, bb, pp per channel rather than a matrix per head.
  bool per_channel() const { return heads == 0; }
  // Floats of the att state of one layer: H·N·N, or 3·C for RWKV-4.
  int64_t att_state_floats() const {
    return per_channel() ? 3 * embd : heads * head_size * head_size;
  }
  // Floats per layer: 2·C + the att state.
  int64_t floats_per_layer() const { return 2 * embd + att_state_floats(); }
  int64_t total_floats() const { return floats_per_layer() * layers(); }
  bool operator==(const StateShape& o) const {
    return first_layer == o.first_layer && last_layer == o.last_layer && embd == o.embd &&
           heads == o.heads && head_size == o.head_size;
  }
  bool operator!=(const StateShape& o) const { return !(*this == o); }
};

class RwkvState;

// The owner of device copies of states (a device engine's slot pool). Implementations must be
// thread-safe: they are called from whatever thread touches a state.
class StateResidency {
 public:
  virtual ~StateResidency() = default;
  // Copies the device's newer floats of `state` into its host floats (RwkvState::host_floats)
  // and marks them current (RwkvState::MarkHostCurrent). Called when the state is read on the
  // host while resident with newer floats on the device; a state that is no longer resident
  // by the time the owner looks is left alone.
  virtual void Fetch(RwkvState& state) = 0;
  // `state` gives up its device copy (it is destroyed, overwritten or changed on the host):
  // the owner frees the slot without copying anything back. Afterwards the state is not
  // resident.
  virtual void Release(RwkvState& state) = 0;
};

class RwkvState {
 public:
  // A zero state of the given shape at position 0.
  explicit RwkvState(const StateShape& shape);
  // Copies hold the source's current floats (fetched from a device if need be) and are never
  // resident themselves; a moved-from state gives up its residency (fetching first) and keeps
  // its shape with no floats.
  RwkvState(const RwkvState& other);
  RwkvState& operator=(const RwkvState& other);
  RwkvState(RwkvState&& other) noexcept;
  RwkvState& operator=(RwkvState&& other) noexcept;
  ~RwkvState();

  const StateShape& shape() const { return shape_; }
  int64_t position() const { return position_; }
  void set_position(int64_t position) { position_ = position; }

  // Accessors take the absolute layer index (first_layer <= layer < last_layer). The mutable
  // ones end a device residency (see the file comment).
  absl::Span<float> att_x_prev(int layer) { return {MutableLayerData(layer), Cs()}; }
  absl::Span<float> att_kv(int layer) { return {MutableLayerData(layer) + shape_.embd, Kvs()}; }
  absl::Span<float> ffn_x_prev(int layer) {
    return {MutableLayerData(layer) + shape_.embd + Kvs(), Cs()};
  }
  absl::Span<const float> att_x_prev(int layer) const { return {LayerData(layer), Cs()}; }
  absl::Span<const float> att_kv(int layer) const {
    return {LayerData(layer) + shape_.embd, Kvs()};
  }
  absl::Span<const float> ffn_x_prev(int layer) const {
    return {LayerData(layer) + shape_.embd + Kvs(), Cs()};
  }

  // Every float, layer by layer in the order above.
  absl::Span<float> data() {
    EndResidency();
    return absl::MakeSpan(data_);
  }
  absl::Span<const float> data() const {
    FetchIfStale();
    return data_;
  }

  // For a StateResidency owner only. `residency` now holds this state's floats: with
  // `device_newer`, newer than the host's (a step ran there). Replaces an earlier residency
  // with the same owner; the owner must not attach a state another owner holds.
  void AttachResidency(StateResidency* residency, bool device_newer) {
    residency_.store(residency, std::memory_order_release);
    device_newer_.store(device_newer, std::memory_order_release);
  }
  // The owner dropped its copy (after fetching it, if it was newer).
  void DetachResidency() {
    device_newer_.store(false, std::memory_order_release);
    residency_.store(nullptr, std::memory_order_release);
  }
  StateResidency* residency() const { return residency_.load(std::memory_order_acquire); }
  bool device_newer() const { return device_newer_.load(std::memory_order_acquire); }
  // The host floats as they are, without fetching (for the owner's copies in and out).
  absl::Span<float> host_floats() { return absl::MakeSpan(data_); }
  void MarkHostCurrent() { device_newer_.store(false, std::memory_order_release); }

  // Back to the standard start and position 0.
  void Reset();

  // RWKV-4's starting exponent pp: e^pp scales aa and bb, so −1e30 makes them weigh nothing.
  static constexpr float kV4InitialExponent = -1e30f;

 private:
  size_t Cs() const { return static_cast<size_t>(shape_.embd); }
  size_t Kvs() const { return static_cast<size_t>(shape_.att_state_floats()); }
  float* MutableLayerData(int layer) {
    EndResidency();
    return data_.data() + (layer - shape_.first_layer) * shape_.floats_per_layer();
  }
  const float* LayerData(int layer) const {
    FetchIfStale();
    return data_.data() + (layer - shape_.first_layer) * shape_.floats_per_layer();
  }
  // Brings newer device floats back. Logically const: the state's value does not change.
  void FetchIfStale() const {
    if (device_newer_.load(std::memory_order_acquire)) {
      StateResidency* r = residency_.load(std::memory_order_acquire);
      if (r != nullptr) r->Fetch(const_cast<RwkvState&>(*this));
    }
  }
  // Fetches, then gives the device copy up: the host floats are about to change.
  void EndResidency() {
    if (residency_.load(std::memory_order_acquire) == nullptr) return;
    FetchIfStale();
    StateResidency* r = residency_.load(std::memory_order_acquire);
    if (r != nullptr) r->Release(*this);
  }

  StateShape shape_;
  int64_t position_ = 0;
  std::vector<float> data_;
  std::atomic<StateResidency*> residency_{nullptr};
  std::atomic<bool> device_newer_{false};
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_STATE_H_
