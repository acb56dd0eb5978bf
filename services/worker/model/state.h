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
// Not thread-safe: one step at a time may use a state; distinct states are independent.
#ifndef SKEIN_SERVICES_WORKER_MODEL_STATE_H_
#define SKEIN_SERVICES_WORKER_MODEL_STATE_H_

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

class RwkvState {
 public:
  // A zero state of the given shape at position 0.
  explicit RwkvState(const StateShape& shape);

  const StateShape& shape() const { return shape_; }
  int64_t position() const { return position_; }
  void set_position(int64_t position) { position_ = position; }

  // Accessors take the absolute layer index (first_layer <= layer < last_layer).
  absl::Span<float> att_x_prev(int layer) { return {LayerData(layer), Cs()}; }
  absl::Span<float> att_kv(int layer) { return {LayerData(layer) + shape_.embd, Kvs()}; }
  absl::Span<float> ffn_x_prev(int layer) { return {LayerData(layer) + shape_.embd + Kvs(), Cs()}; }
  absl::Span<const float> att_x_prev(int layer) const { return {LayerData(layer), Cs()}; }
  absl::Span<const float> att_kv(int layer) const {
    return {LayerData(layer) + shape_.embd, Kvs()};
  }
  absl::Span<const float> ffn_x_prev(int layer) const {
    return {LayerData(layer) + shape_.embd + Kvs(), Cs()};
  }

  // Every float, layer by layer in the order above.
  absl::Span<float> data() { return absl::MakeSpan(data_); }
  absl::Span<const float> data() const { return data_; }

  // Back to the standard start and position 0.
  void Reset();

  // RWKV-4's starting exponent pp: e^pp scales aa and bb, so −1e30 makes them weigh nothing.
  static constexpr float kV4InitialExponent = -1e30f;

 private:
  size_t Cs() const { return static_cast<size_t>(shape_.embd); }
  size_t Kvs() const { return static_cast<size_t>(shape_.att_state_floats()); }
  float* LayerData(int layer) {
    return data_.data() + (layer - shape_.first_layer) * shape_.floats_per_layer();
  }
  const float* LayerData(int layer) const {
    return data_.data() + (layer - shape_.first_layer) * shape_.floats_per_layer();
  }

  StateShape shape_;
  int64_t position_ = 0;
  std::vector<float> data_;
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_STATE_H_
