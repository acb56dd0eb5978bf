// OpenPth: PyTorch zip checkpoints (torch.save since 1.6): <prefix>/data.pkl describes the
// tensors, <prefix>/data/<key> holds each storage's raw little-endian bytes.
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_bridge.h"
#include "services/worker/model/checkpoint/archive_impl.h"
#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/checkpoint/pickle_reader.h"
#include "services/worker/model/checkpoint/zip_reader.h"

namespace skein::model {
namespace {

constexpr uint64_t kMaxPickleBytes = uint64_t{256} << 20;

bool StorageDType(std::string_view type_name, DType* dtype) {
  if (type_name == "BFloat16Storage") {
    *dtype = DType::kBF16;
  } else if (type_name == "HalfStorage") {
    *dtype = DType::kF16;
  } else if (type_name == "FloatStorage") {
    *dtype = DType::kF32;
  } else if (type_name == "CharStorage") {
    *dtype = DType::kI8;
  } else {
    return false;
  }
  return true;
}

// The one data.pkl of the archive; its folder is the record prefix.
absl::StatusOr<const ZipEntry*> FindPickle(const ZipReader& zip, const std::string& path) {
  std::vector<const ZipEntry*> found;
  for (const ZipEntry& e : zip.entries()) {
    std::string_view n = e.name;
    if (n == "data.pkl" || (n.size() > 9 && n.substr(n.size() - 9) == "/data.pkl")) {
      found.push_back(&e);
    }
  }
  if (found.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": zip archive has no data.pkl record (not a PyTorch checkpoint)"));
  }
  if (found.size() > 1) {
    std::vector<std::string> names;
    for (const ZipEntry* e : found) names.push_back(e->name);
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": zip archive has several data.pkl records (", absl::StrJoin(names, ", "), ")"));
  }
  return found[0];
}

bool MulOverflow(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
bool AddOverflow(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_add_overflow(a, b, out);
}

// Copies a strided view into a contiguous row-major buffer.
void CopyStrided(const char* storage, size_t esize, const PickledTensor& t, char* out) {
  const size_t dims = t.size.size();
  if (dims == 0) {
    std::memcpy(out, storage + t.offset * esize, esize);
    return;
  }
  std::vector<int64_t> index(dims, 0);
  const int64_t inner = t.size[dims - 1];
  const int64_t inner_stride = t.stride[dims - 1];
  while (true) {
    int64_t base = t.offset;
    for (size_t d = 0; d + 1 < dims; ++d) base += index[d] * t.stride[d];
    for (int64_t j = 0; j < inner; ++j) {
      std::memcpy(out, storage + (base + j * inner_stride) * esize, esize);
      out += esize;
    }
    // Advance the odometer over all but the innermost dimension.
    size_t d = dims - 1;
    while (d > 0) {
      --d;
      if (++index[d] < t.size[d]) break;
      index[d] = 0;
      if (d == 0) return;
    }
    if (dims == 1) return;
  }
}

class PthLoader {
 public:
  PthLoader(const std::string& path, std::shared_ptr<const ByteSource> source)
      : path_(path), source_(source), archive_(std::make_unique<ArchiveImpl>(path, source)) {}

  absl::StatusOr<std::unique_ptr<TensorArchive>> Load();

 private:
  absl::Status AddTensor(const std::string& name, const PickledTensor& t);
  std::string Hint() const;

  const std::string& path_;
  std::shared_ptr<const ByteSource> source_;
  std::unique_ptr<ArchiveImpl> archive_;
  const ZipReader* zip_ = nullptr;
  std::string prefix_;
};

std::string PthLoader::Hint() const {
  auto it = archive_->metadata().find("_strategy");
  if (it == archive_->metadata().end()) return "";
  return absl::StrCat(" (this file was pre-processed by ChatRWKV's converter, strategy '",
                      it->second, "'; use the original checkpoint)");
}

absl::Status PthLoader::AddTensor(const std::string& name, const PickledTensor& t) {
  DType dtype;
  if (!StorageDType(t.storage.type_name, &dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": tensor '", name, "' has unsupported dtype ", t.storage.type_name,
        " (supported: BFloat16Storage, HalfStorage, FloatStorage, CharStorage)", Hint()));
  }
  const uint64_t esize = DTypeSize(dtype);
  const std::string record = absl::StrCat(prefix_, "data/", t.storage.key);
  const ZipEntry* entry = zip_->Find(record);
  if (entry == nullptr) {
    return absl::DataLossError(
        absl::StrCat(path_, ": storage record '", record, "' of tensor '", name, "' is missing"));
  }
  if (entry->method != ZipReader::kStored) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": storage record '", record, "' of tensor '", name, "' is compressed (method ",
        entry->method, "); PyTorch stores tensor data uncompressed"));
  }
  uint64_t storage_bytes;
  if (MulOverflow(static_cast<uint64_t>(t.storage.numel), esize, &storage_bytes) ||
      storage_bytes > entry->uncompressed_size) {
    return absl::DataLossError(absl::StrCat(path_, ": storage record '", record, "' of tensor '",
                                            name, "' holds ", entry->uncompressed_size,
                                            " bytes, less than its ", t.storage.numel, " ",
                                            base::AsAbsl(DTypeName(dtype)), " elements need"));
  }

  TensorView view;
  view.name = name;
  view.dtype = dtype;
  view.shape = t.size;
  uint64_t numel = 1;
  uint64_t last = static_cast<uint64_t>(t.offset);  // highest element index the view touches
  bool contiguous = true;
  uint64_t expected_stride = 1;
  for (size_t d = t.size.size(); d-- > 0;) {
    const uint64_t size = static_cast<uint64_t>(t.size[d]);
    const uint64_t stride = static_cast<uint64_t>(t.stride[d]);
    if (MulOverflow(numel, size, &numel)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": tensor '", name, "' has an impossibly large shape"));
    }
    if (size > 0) {
      uint64_t reach;
      if (MulOverflow(size - 1, stride, &reach) || AddOverflow(last, reach, &last)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ": tensor '", name, "' has impossibly large strides"));
      }
    }
    if (size != 1 && stride != expected_stride) contiguous = false;
    if (MulOverflow(expected_stride, size, &expected_stride)) contiguous = false;
  }
  if (numel == 0) {
    view.nbytes = 0;
    view.data = nullptr;
    return archive_->AddInPlace(std::move(view));
  }
  if (last >= static_cast<uint64_t>(t.storage.numel)) {
    return absl::DataLossError(absl::StrCat(path_, ": tensor '", name, "' reaches element ", last,
                                            " of its storage '", record, "', which has only ",
                                            t.storage.numel, " elements"));
  }
  absl::StatusOr<std::string_view> data = zip_->StoredData(*entry);
  if (!data.ok()) return data.status();
  view.nbytes = numel * esize;  // <= storage_bytes when contiguous; checked below otherwise
  if (contiguous) {
    view.data = data->data() + t.offset * esize;
    return archive_->AddInPlace(std::move(view));
  }
  // A strided view: copy it, but never into more bytes than the storage itself holds, so a
  // hostile stride of 0 cannot turn a small file into a huge allocation.
  if (view.nbytes > storage_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": tensor '", name, "' is an overlapping view larger than its storage"));
  }
  auto buffer = std::make_unique<AlignedBuffer>(view.nbytes);
  CopyStrided(data->data(), esize, t, static_cast<char*>(buffer->data()));
  return archive_->AddOwned(std::move(view), std::move(buffer));
}

absl::StatusOr<std::unique_ptr<TensorArchive>> PthLoader::Load() {
  absl::StatusOr<ZipReader> zip = ZipReader::Open(source_->bytes(), path_);
  if (!zip.ok()) return zip.status();
  zip_ = &*zip;
  absl::StatusOr<const ZipEntry*> pickle_entry = FindPickle(*zip, path_);
  if (!pickle_entry.ok()) return pickle_entry.status();
  const std::string& pickle_name = (*pickle_entry)->name;
  prefix_ = pickle_name.substr(0, pickle_name.size() - 8);  // keeps the trailing '/'

  if (const ZipEntry* order = zip->Find(prefix_ + "byteorder")) {
    absl::StatusOr<std::string> text = zip->ReadAll(*order, 64);
    if (!text.ok()) return text.status();
    if (*text == "big") {
      return absl::UnimplementedError(
          absl::StrCat(path_, ": big-endian checkpoints are not supported"));
    }
    if (*text != "little") {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": unknown byteorder record '", *text, "'"));
    }
  }

  absl::StatusOr<std::string> pickle = zip->ReadAll(**pickle_entry, kMaxPickleBytes);
  if (!pickle.ok()) return pickle.status();
  absl::StatusOr<std::vector<PickledEntry>> entries =
      ParseStateDictPickle(*pickle, absl::StrCat(path_, ": ", pickle_name));
  if (!entries.ok()) return entries.status();

  // Non-tensor values first, so that errors about tensors can mention them.
  for (const PickledEntry& e : *entries) {
    if (e.kind == PickledEntry::Kind::kScalar) archive_->mutable_metadata()[e.key] = e.scalar_text;
  }
  for (const PickledEntry& e : *entries) {
    if (e.kind == PickledEntry::Kind::kOther) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": entry '", e.key, "' is a ", e.other_kind,
                       ", not a tensor (expected a flat state dict of tensors)"));
    }
    if (e.kind != PickledEntry::Kind::kTensor) continue;
    if (absl::Status s = AddTensor(e.key, e.tensor); !s.ok()) return s;
  }
  return std::unique_ptr<TensorArchive>(std::move(archive_));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TensorArchive>> OpenPthFromSource(
    const std::string& path, std::shared_ptr<const ByteSource> source) {
  PthLoader loader(path, std::move(source));
  return loader.Load();
}

}  // namespace skein::model
