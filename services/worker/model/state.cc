#include "services/worker/model/state.h"

#include <algorithm>

namespace skein::model {

RwkvState::RwkvState(const StateShape& shape)
    : shape_(shape), data_(static_cast<size_t>(std::max<int64_t>(0, shape.total_floats())), 0.0f) {
  Reset();
}

RwkvState::RwkvState(const RwkvState& other) : shape_(other.shape_), position_(other.position_) {
  other.FetchIfStale();
  data_ = other.data_;
}

RwkvState& RwkvState::operator=(const RwkvState& other) {
  if (this == &other) return *this;
  EndResidency();
  other.FetchIfStale();
  shape_ = other.shape_;
  position_ = other.position_;
  data_ = other.data_;
  return *this;
}

RwkvState::RwkvState(RwkvState&& other) noexcept
    : shape_(other.shape_), position_(other.position_) {
  other.EndResidency();
  data_ = std::move(other.data_);
}

RwkvState& RwkvState::operator=(RwkvState&& other) noexcept {
  if (this == &other) return *this;
  EndResidency();
  other.EndResidency();
  shape_ = other.shape_;
  position_ = other.position_;
  data_ = std::move(other.data_);
  return *this;
}

RwkvState::~RwkvState() {
  StateResidency* r = residency_.load(std::memory_order_acquire);
  if (r != nullptr) r->Release(*this);
}

void RwkvState::Reset() {
  EndResidency();
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
