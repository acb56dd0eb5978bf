// The recurrent state of one RWKV-7 sequence, for the layers one stage holds.
//
// Per layer l in [first_layer, last_layer), fp32 (spec §2.6):
//   att_x_prev [C]        LN1 output of the previous token
//   att_kv     [H][N][N]  WKV matrix per head, row i = value channel, column j = key channel
//   ffn_x_prev [C]        LN2 output of the previous token
// plus `position`, the number of tokens the sequence has consumed. A fresh state is all zeros
// (the standard start). Copying a state forks the sequence.
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
  int last_layer = 0;  // exclusive
  int64_t embd = 0;       // C
  int64_t heads = 0;      // H
  int64_t head_size = 0;  // N

  int layers() const { return last_layer - first_layer; }
  // Floats per layer: 2·C + H·N·N.
  int64_t floats_per_layer() const { return 2 * embd + heads * head_size * head_size; }
  int64_t total_floats() const { return floats_per_layer() * layers(); }
  bool operator==(const StateShape& o) const {
    return first_layer == o.first_layer && last_layer == o.last_layer && embd == o.embd &&
           heads == o.heads && head_size == o.head_size;
  }
  bool operator!=(const StateShape& o) const { return !(*this == o); }
};

class Rwkv7State {
 public:
  // A zero state of the given shape at position 0.
  explicit Rwkv7State(const StateShape& shape);

  const StateShape& shape() const { return shape_; }
  int64_t position() const { return position_; }
  void set_position(int64_t position) { position_ = position; }

  // Accessors take the absolute layer index (first_layer <= layer < last_layer).
  absl::Span<float> att_x_prev(int layer) { return {LayerData(layer), Cs()}; }
  absl::Span<float> att_kv(int layer) { return {LayerData(layer) + shape_.embd, Kvs()}; }
  absl::Span<float> ffn_x_prev(int layer) {
    return {LayerData(layer) + shape_.embd + Kvs(), Cs()};
  }
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

  // Back to zeros and position 0.
  void Reset();

 private:
  size_t Cs() const { return static_cast<size_t>(shape_.embd); }
  size_t Kvs() const {
    return static_cast<size_t>(shape_.heads * shape_.head_size * shape_.head_size);
  }
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
