#include "services/worker/model/checkpoint/archive_impl.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"

namespace skein::model {

AlignedBuffer::AlignedBuffer(size_t size) : size_(size) {
  constexpr size_t kAlign = 64;
  size_t rounded = (size + kAlign - 1) / kAlign * kAlign;
  if (rounded == 0) rounded = kAlign;
  data_ = std::aligned_alloc(kAlign, rounded);
  if (data_ == nullptr) throw std::bad_alloc();
  std::memset(data_, 0, rounded);
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

const TensorView* ArchiveImpl::Find(std::string_view name) const {
  auto it = index_.find(base::AsAbsl(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Status ArchiveImpl::AddName(const std::string& name) {
  if (!index_.emplace(name, tensors_.size()).second) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor '", name, "' appears more than once"));
  }
  return absl::OkStatus();
}

absl::Status ArchiveImpl::AddInPlace(TensorView view) {
  const size_t align = DTypeSize(view.dtype);
  if (view.nbytes > 0 && reinterpret_cast<uintptr_t>(view.data) % align != 0) {
    auto buffer = std::make_unique<AlignedBuffer>(view.nbytes);
    std::memcpy(buffer->data(), view.data, view.nbytes);
    view.data = buffer->data();
    return AddOwned(std::move(view), std::move(buffer));
  }
  if (absl::Status s = AddName(view.name); !s.ok()) return s;
  tensors_.push_back(std::move(view));
  return absl::OkStatus();
}

absl::Status ArchiveImpl::AddOwned(TensorView view, std::unique_ptr<AlignedBuffer> buffer) {
  if (absl::Status s = AddName(view.name); !s.ok()) return s;
  view.data = buffer->data();
  owned_.push_back(std::move(buffer));
  tensors_.push_back(std::move(view));
  return absl::OkStatus();
}

}  // namespace skein::model
