// WriteSafetensors and the streaming safetensors writer.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "nlohmann/json.hpp"
#include "services/worker/model/checkpoint/byte_io.h"
#include "services/worker/model/checkpoint/safetensors_format.h"
#include "services/worker/model/checkpoint/tensor_writer.h"

namespace skein::model {
namespace {

class SafetensorsWriter : public TensorWriter {
 public:
  SafetensorsWriter(std::unique_ptr<base::AtomicFile> file, uint64_t data_start, uint64_t total)
      : file_(std::move(file)), data_end_(data_start + total) {}

  absl::Status Append(std::string_view bytes) override {
    if (bytes.size() > data_end_ - file_->size()) {
      return absl::FailedPreconditionError(
          absl::StrCat(file_->path(), ": more tensor bytes than the declared tensors hold"));
    }
    return file_->Append(bytes);
  }

  absl::Status Finish() override {
    if (file_->size() != data_end_) {
      return absl::FailedPreconditionError(absl::StrCat(file_->path(), ": ",
                                                        data_end_ - file_->size(),
                                                        " declared tensor bytes were not written"));
    }
    return file_->Commit();
  }

 private:
  std::unique_ptr<base::AtomicFile> file_;
  uint64_t data_end_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TensorWriter>> CreateSafetensorsWriter(
    const std::string& path, const std::vector<TensorSpec>& specs,
    const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<std::vector<uint64_t>> sizes = ValidateSpecs(path, specs);
  if (!sizes.ok()) return sizes.status();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    if (s.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": '__metadata__' cannot name a tensor"));
    }
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = SafetensorsDTypeName(s.dtype);
    entry["shape"] = s.shape;
    entry["data_offsets"] = {offset, offset + (*sizes)[i]};
    header[s.name] = std::move(entry);
    offset += (*sizes)[i];
  }
  // Invalid UTF-8 in names or metadata would make dump() throw; replace it instead.
  std::string text = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  // Pad with spaces so the data area starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kSafetensorsMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": safetensors header would be ",
                                                   text.size(), " bytes, over the limit"));
  }
  absl::StatusOr<std::unique_ptr<base::AtomicFile>> file = base::AtomicFile::Create(path);
  if (!file.ok()) return file.status();
  std::string prefix;
  AppendLE<uint64_t>(prefix, text.size());
  prefix += text;
  if (absl::Status s = (*file)->Append(prefix); !s.ok()) return s;
  return std::unique_ptr<TensorWriter>(
      std::make_unique<SafetensorsWriter>(*std::move(file), prefix.size(), offset));
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorView>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<std::unique_ptr<TensorWriter>> writer =
      CreateSafetensorsWriter(path, SpecsOf(tensors), metadata);
  if (!writer.ok()) return writer.status();
  if (absl::Status s = AppendTensors(**writer, tensors); !s.ok()) return s;
  return (*writer)->Finish();
}

}  // namespace skein::model
