#include "services/state_store/memory_backend.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"

namespace skein::state_store {
namespace {}  // namespace

absl::StatusOr<std::optional<std::string>> MemoryBackend::ReadRecord(std::string_view group,
                                                                     std::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find({std::string(group), std::string(name)});
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

absl::Status MemoryBackend::Apply(const Batch& batch) {
  using Kind = Batch::Op::Kind;
  absl::MutexLock lock(&mu_);
  for (const Batch::Op& op : batch.ops()) {
    Name_ name{batch.group(), op.name};
    if (op.kind == Kind::kExpectRecord) {
      auto it = records_.find(name);
      bool holds =
          op.has_value ? (it != records_.end() && it->second == op.value) : it == records_.end();
      if (!holds) return absl::AbortedError(absl::StrCat("record ", op.name, " changed"));
    } else if (op.kind == Kind::kExpectBlob && !blobs_.contains(name)) {
      return absl::AbortedError(absl::StrCat("blob ", op.name, " is gone"));
    }
  }
  for (const Batch::Op& op : batch.ops()) {
    Name_ name{batch.group(), op.name};
    switch (op.kind) {
      case Kind::kPutRecord:
        records_[name] = op.value;
        break;
      case Kind::kDeleteRecord:
        records_.erase(name);
        break;
      case Kind::kDeleteBlob:
        blobs_.erase(name);
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status MemoryBackend::WriteBlob(std::string_view group, std::string_view name,
                                      std::string_view data, absl::Time /*expiry*/) {
  std::string copy(data);
  absl::MutexLock lock(&mu_);
  blobs_[{std::string(group), std::string(name)}] = std::move(copy);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryBackend::ReadBlob(std::string_view group, std::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = blobs_.find({std::string(group), std::string(name)});
  if (it == blobs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no blob ", base::AsAbsl(name), " in ", base::AsAbsl(group)));
  }
  return it->second;
}

absl::Status MemoryBackend::ScanRecords(const RecordVisitor& visit) {
  std::vector<std::pair<Name_, std::string>> copy;
  {
    absl::MutexLock lock(&mu_);
    copy.assign(records_.begin(), records_.end());
  }
  for (const auto& [name, value] : copy) visit(name.first, name.second, value);
  return absl::OkStatus();
}

absl::Status MemoryBackend::ScanBlobs(const BlobVisitor& visit) {
  std::vector<Name_> names;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, data] : blobs_) names.push_back(name);
  }
  for (const Name_& name : names) visit(name.first, name.second);
  return absl::OkStatus();
}

}  // namespace skein::state_store
