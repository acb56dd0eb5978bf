#include "services/worker/model/state.h"

#include <algorithm>

namespace skein::model {

Rwkv7State::Rwkv7State(const StateShape& shape)
    : shape_(shape), data_(static_cast<size_t>(std::max<int64_t>(0, shape.total_floats())), 0.0f) {}

void Rwkv7State::Reset() {
  std::fill(data_.begin(), data_.end(), 0.0f);
  position_ = 0;
}

}  // namespace skein::model
