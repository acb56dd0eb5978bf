#include "services/worker/model/state.h"

#include <algorithm>

namespace skein::model {

RwkvState::RwkvState(const StateShape& shape)
    : shape_(shape), data_(static_cast<size_t>(std::max<int64_t>(0, shape.total_floats())), 0.0f) {
  Reset();
}

void RwkvState::Reset() {
  std::fill(data_.begin(), data_.end(), 0.0f);
  if (shape_.per_channel() && shape_.embd > 0) {
    for (int l = shape_.first_layer; l < shape_.last_layer; ++l) {
      absl::Span<float> pp = att_kv(l).subspan(2 * shape_.embd);
      std::fill(pp.begin(), pp.end(), kV4InitialExponent);
    }
  }
  position_ = 0;
}

}  // namespace skein::model
