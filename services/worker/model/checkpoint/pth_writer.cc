#include "services/worker/model/checkpoint/pth_writer.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"
#include "base/atomic_file.h"
#include "services/worker/model/checkpoint/byte_io.h"

namespace skein::model {
namespace {

constexpr uint64_t kAlignment = 64;  // torch aligns every record's data to 64 bytes
constexpr uint32_t k32 = 0xFFFFFFFF;

uint32_t Crc32(uint32_t crc, std::string_view bytes) {
  uLong c = crc;
  while (!bytes.empty()) {
    size_t n = std::min<size_t>(bytes.size(), 1u << 30);
    c = crc32(c, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(n));
    bytes.remove_prefix(n);
  }
  return static_cast<uint32_t>(c);
}

std::string_view StorageTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "FloatStorage";
    case DType::kBF16:
      return "BFloat16Storage";
    case DType::kF16:
      return "HalfStorage";
    case DType::kI8:
      return "CharStorage";
  }
  return "";
}

// Emits pickle protocol 2 the way CPython's pickler spells a state dict.
class PickleWriter {
 public:
  std::string Finish() {
    out_ += '.';  // STOP
    return std::move(out_);
  }

  void Proto() { out_ += "\x80\x02"; }
  void Mark() { out_ += '('; }
  void EmptyDict() { out_ += '}'; }
  void EmptyTuple() { out_ += ')'; }
  void Tuple() { out_ += 't'; }
  void Reduce() { out_ += 'R'; }
  void BinPersId() { out_ += 'Q'; }
  void NewFalse() { out_ += '\x89'; }
  void SetItem() { out_ += 's'; }
  void SetItems() { out_ += 'u'; }

  void Int(int64_t v) {
    if (v >= 0 && v <= 0xFF) {
      out_ += 'K';
      out_ += static_cast<char>(v);
    } else if (v >= 0 && v <= 0xFFFF) {
      out_ += 'M';
      AppendLE<uint16_t>(out_, static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += 'J';
      AppendLE<int32_t>(out_, static_cast<int32_t>(v));
    } else {
      // LONG1: the shortest two's complement little-endian form.
      std::string bytes;
      AppendLE<int64_t>(bytes, v);
      while (bytes.size() > 1) {
        char last = bytes[bytes.size() - 1], prev = bytes[bytes.size() - 2];
        bool redundant = (last == 0 && !(prev & 0x80)) || (last == '\xff' && (prev & 0x80));
        if (!redundant) break;
        bytes.pop_back();
      }
      out_ += '\x8a';
      out_ += static_cast<char>(bytes.size());
      out_ += bytes;
    }
  }

  void Tuple(const std::vector<int64_t>& items) {
    if (items.empty()) {
      EmptyTuple();
      return;
    }
    if (items.size() > 3) Mark();
    for (int64_t v : items) Int(v);
    if (items.size() <= 3) {
      out_ += static_cast<char>(0x85 + items.size() - 1);  // TUPLE1..3
    } else {
      Tuple();
    }
  }

  void String(std::string_view s) {
    out_ += 'X';
    AppendLE<uint32_t>(out_, static_cast<uint32_t>(s.size()));
    out_.append(s);
  }

  // A string or global written once and fetched from the memo afterwards.
  void MemoString(std::string_view s) {
    Memoized(absl::StrCat("s:", base::AsAbsl(s)), [&] { String(s); });
  }
  void Global(std::string_view module, std::string_view name) {
    std::string text = absl::StrCat(base::AsAbsl(module), "\n", base::AsAbsl(name), "\n");
    Memoized(absl::StrCat("g:", text), [&] { out_ += 'c' + text; });
  }

 private:
  template <typename EmitFn>
  void Memoized(const std::string& key, EmitFn emit) {
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      if (it->second <= 0xFF) {
        out_ += 'h';
        out_ += static_cast<char>(it->second);
      } else {
        out_ += 'j';
        AppendLE<uint32_t>(out_, it->second);
      }
      return;
    }
    emit();
    uint32_t index = static_cast<uint32_t>(memo_.size());
    if (index <= 0xFF) {
      out_ += 'q';
      out_ += static_cast<char>(index);
    } else {
      out_ += 'r';
      AppendLE<uint32_t>(out_, index);
    }
    memo_.emplace(key, index);
  }

  std::string out_;
  absl::flat_hash_map<std::string, uint32_t> memo_;
};

std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return strides;
}

std::string StateDictPickle(const std::vector<TensorSpec>& specs) {
  PickleWriter p;
  p.Proto();
  p.EmptyDict();
  constexpr size_t kBatch = 1000;  // CPython's SETITEMS batch size
  for (size_t start = 0; start < specs.size(); start += kBatch) {
    size_t end = std::min(specs.size(), start + kBatch);
    if (end - start > 1) p.Mark();
    for (size_t i = start; i < end; ++i) {
      const TensorSpec& s = specs[i];
      int64_t numel = 1;
      for (int64_t d : s.shape) numel *= d;
      p.String(s.name);
      p.Global("torch._utils", "_rebuild_tensor_v2");
      p.Mark();
      p.Mark();
      p.MemoString("storage");
      p.Global("torch", StorageTypeName(s.dtype));
      p.String(std::to_string(i));
      p.MemoString("cpu");
      p.Int(numel);
      p.Tuple();
      p.BinPersId();
      p.Int(0);  // storage offset
      p.Tuple(s.shape);
      p.Tuple(ContiguousStrides(s.shape));
      p.NewFalse();                            // requires_grad
      p.Global("collections", "OrderedDict");  // backward hooks: OrderedDict()
      p.EmptyTuple();
      p.Reduce();
      p.Tuple();
      p.Reduce();
    }
    if (end - start > 1) {
      p.SetItems();
    } else {
      p.SetItem();
    }
  }
  return p.Finish();
}

struct Record {
  std::string name;
  uint64_t size = 0;
  uint64_t header_offset = 0;
  uint32_t crc = 0;
  bool zip64 = false;
};

class PthWriter : public TensorWriter {
 public:
  PthWriter(std::unique_ptr<base::AtomicFile> file, std::string prefix, bool force_zip64)
      : file_(std::move(file)), prefix_(std::move(prefix)), force_zip64_(force_zip64) {}

  // Writes a whole record.
  absl::Status AddRecord(const std::string& name, std::string_view bytes) {
    if (absl::Status s = BeginRecord(name, bytes.size()); !s.ok()) return s;
    records_.back().crc = Crc32(0, bytes);
    if (absl::Status s = file_->Append(bytes); !s.ok()) return s;
    return EndRecord();
  }

  void SetTensorSizes(std::vector<uint64_t> sizes) { tensor_sizes_ = std::move(sizes); }

  absl::Status Append(std::string_view bytes) override {
    while (!bytes.empty()) {
      if (!in_tensor_) {
        if (absl::Status s = StartNextTensor(); !s.ok()) return s;
        continue;
      }
      uint64_t room = tensor_sizes_[tensor_] - tensor_written_;
      size_t n = static_cast<size_t>(std::min<uint64_t>(room, bytes.size()));
      records_.back().crc = Crc32(records_.back().crc, bytes.substr(0, n));
      if (absl::Status s = file_->Append(bytes.substr(0, n)); !s.ok()) return s;
      tensor_written_ += n;
      bytes.remove_prefix(n);
      if (tensor_written_ == tensor_sizes_[tensor_]) {
        if (absl::Status s = FinishTensor(); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    // Zero-byte tensors still get their (empty) records.
    while (tensor_ < tensor_sizes_.size() || in_tensor_) {
      if (!in_tensor_) {
        if (tensor_sizes_[tensor_] != 0) {
          return absl::FailedPreconditionError(absl::StrCat(file_->path(), ": tensor ", tensor_,
                                                            " and later ones were not written"));
        }
        if (absl::Status s = StartNextTensor(); !s.ok()) return s;
      } else if (tensor_written_ != tensor_sizes_[tensor_]) {
        return absl::FailedPreconditionError(
            absl::StrCat(file_->path(), ": tensor ", tensor_, " was not completely written"));
      } else if (absl::Status s = FinishTensor(); !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = AddRecord(prefix_ + "version", "3\n"); !s.ok()) return s;
    if (absl::Status s = WriteCentralDirectory(); !s.ok()) return s;
    return file_->Commit();
  }

 private:
  absl::Status StartNextTensor() {
    if (tensor_ >= tensor_sizes_.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat(file_->path(), ": more tensor bytes than the declared tensors hold"));
    }
    in_tensor_ = true;
    tensor_written_ = 0;
    if (absl::Status s =
            BeginRecord(absl::StrCat(prefix_, "data/", tensor_), tensor_sizes_[tensor_]);
        !s.ok()) {
      return s;
    }
    if (tensor_sizes_[tensor_] == 0) return FinishTensor();
    return absl::OkStatus();
  }

  absl::Status FinishTensor() {
    in_tensor_ = false;
    ++tensor_;
    return EndRecord();
  }

  // Local header, with a zip64 field when needed and a padding field that puts the data on
  // a 64-byte boundary.
  absl::Status BeginRecord(const std::string& name, uint64_t size) {
    Record r;
    r.name = name;
    r.size = size;
    r.header_offset = file_->size();
    r.zip64 = force_zip64_ || size >= k32 || r.header_offset >= k32;
    std::string extra;
    if (r.zip64) {
      AppendLE<uint16_t>(extra, 0x0001);
      AppendLE<uint16_t>(extra, 16);
      AppendLE<uint64_t>(extra, size);
      AppendLE<uint64_t>(extra, size);
    }
    uint64_t data_start = r.header_offset + 30 + name.size() + extra.size() + 4;
    uint64_t pad = (kAlignment - data_start % kAlignment) % kAlignment;
    AppendLE<uint16_t>(extra, 0x4246);  // "FB", the id torch uses for its padding field
    AppendLE<uint16_t>(extra, static_cast<uint16_t>(pad));
    extra.append(pad, 'Z');

    std::string h;
    AppendLE<uint32_t>(h, 0x04034b50);
    AppendLE<uint16_t>(h, r.zip64 ? 45 : 20);  // version needed
    AppendLE<uint16_t>(h, 0);                  // flags
    AppendLE<uint16_t>(h, 0);                  // stored
    AppendLE<uint16_t>(h, 0);                  // time
    AppendLE<uint16_t>(h, 0x21);               // date: 1980-01-01
    AppendLE<uint32_t>(h, 0);                  // CRC-32, patched by EndRecord
    AppendLE<uint32_t>(h, r.zip64 ? k32 : static_cast<uint32_t>(size));
    AppendLE<uint32_t>(h, r.zip64 ? k32 : static_cast<uint32_t>(size));
    AppendLE<uint16_t>(h, static_cast<uint16_t>(name.size()));
    AppendLE<uint16_t>(h, static_cast<uint16_t>(extra.size()));
    h += name;
    h += extra;
    records_.push_back(std::move(r));
    return file_->Append(h);
  }

  absl::Status EndRecord() {
    std::string crc;
    AppendLE<uint32_t>(crc, records_.back().crc);
    return file_->WriteAt(records_.back().header_offset + 14, crc);
  }

  absl::Status WriteCentralDirectory() {
    const uint64_t cd_offset = file_->size();
    std::string cd;
    for (const Record& r : records_) {
      const bool zip64 = r.zip64 || r.header_offset >= k32;
      std::string extra;
      if (zip64) {
        AppendLE<uint16_t>(extra, 0x0001);
        AppendLE<uint16_t>(extra, 24);
        AppendLE<uint64_t>(extra, r.size);
        AppendLE<uint64_t>(extra, r.size);
        AppendLE<uint64_t>(extra, r.header_offset);
      }
      AppendLE<uint32_t>(cd, 0x02014b50);
      AppendLE<uint16_t>(cd, zip64 ? 45 : 20);  // version made by
      AppendLE<uint16_t>(cd, zip64 ? 45 : 20);  // version needed
      AppendLE<uint16_t>(cd, 0);
      AppendLE<uint16_t>(cd, 0);
      AppendLE<uint16_t>(cd, 0);
      AppendLE<uint16_t>(cd, 0x21);
      AppendLE<uint32_t>(cd, r.crc);
      AppendLE<uint32_t>(cd, zip64 ? k32 : static_cast<uint32_t>(r.size));
      AppendLE<uint32_t>(cd, zip64 ? k32 : static_cast<uint32_t>(r.size));
      AppendLE<uint16_t>(cd, static_cast<uint16_t>(r.name.size()));
      AppendLE<uint16_t>(cd, static_cast<uint16_t>(extra.size()));
      AppendLE<uint16_t>(cd, 0);  // comment
      AppendLE<uint16_t>(cd, 0);  // disk
      AppendLE<uint16_t>(cd, 0);  // internal attributes
      AppendLE<uint32_t>(cd, 0);  // external attributes
      AppendLE<uint32_t>(cd, zip64 ? k32 : static_cast<uint32_t>(r.header_offset));
      cd += r.name;
      cd += extra;
    }
    const uint64_t count = records_.size();
    const bool zip64_end = force_zip64_ || count >= 0xFFFF || cd_offset >= k32 || cd.size() >= k32;
    std::string end;
    if (zip64_end) {
      const uint64_t z64_offset = cd_offset + cd.size();
      AppendLE<uint32_t>(end, 0x06064b50);
      AppendLE<uint64_t>(end, 44);  // size of the rest of this record
      AppendLE<uint16_t>(end, 45);
      AppendLE<uint16_t>(end, 45);
      AppendLE<uint32_t>(end, 0);
      AppendLE<uint32_t>(end, 0);
      AppendLE<uint64_t>(end, count);
      AppendLE<uint64_t>(end, count);
      AppendLE<uint64_t>(end, cd.size());
      AppendLE<uint64_t>(end, cd_offset);
      AppendLE<uint32_t>(end, 0x07064b50);  // locator
      AppendLE<uint32_t>(end, 0);
      AppendLE<uint64_t>(end, z64_offset);
      AppendLE<uint32_t>(end, 1);
    }
    AppendLE<uint32_t>(end, 0x06054b50);
    AppendLE<uint16_t>(end, 0);
    AppendLE<uint16_t>(end, 0);
    AppendLE<uint16_t>(end, zip64_end ? 0xFFFF : static_cast<uint16_t>(count));
    AppendLE<uint16_t>(end, zip64_end ? 0xFFFF : static_cast<uint16_t>(count));
    AppendLE<uint32_t>(end, zip64_end ? k32 : static_cast<uint32_t>(cd.size()));
    AppendLE<uint32_t>(end, zip64_end ? k32 : static_cast<uint32_t>(cd_offset));
    AppendLE<uint16_t>(end, 0);  // comment
    if (absl::Status s = file_->Append(cd); !s.ok()) return s;
    return file_->Append(end);
  }

  std::unique_ptr<base::AtomicFile> file_;
  std::string prefix_;
  bool force_zip64_;
  std::vector<Record> records_;
  std::vector<uint64_t> tensor_sizes_;
  size_t tensor_ = 0;
  bool in_tensor_ = false;
  uint64_t tensor_written_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TensorWriter>> CreatePthWriter(const std::string& path,
                                                              const std::vector<TensorSpec>& specs,
                                                              const PthWriteOptions& options) {
  absl::StatusOr<std::vector<uint64_t>> sizes = ValidateSpecs(path, specs);
  if (!sizes.ok()) return sizes.status();
  std::string stem = options.archive_name;
  if (stem.empty()) stem = std::filesystem::path(path).stem().string();
  if (stem.empty() || stem.find('/') != std::string::npos) stem = "archive";
  absl::StatusOr<std::unique_ptr<base::AtomicFile>> file = base::AtomicFile::Create(path);
  if (!file.ok()) return file.status();
  auto writer = std::make_unique<PthWriter>(*std::move(file), stem + "/", options.force_zip64);
  if (absl::Status s = writer->AddRecord(stem + "/data.pkl", StateDictPickle(specs)); !s.ok()) {
    return s;
  }
  if (absl::Status s = writer->AddRecord(stem + "/byteorder", "little"); !s.ok()) return s;
  writer->SetTensorSizes(*std::move(sizes));
  return std::unique_ptr<TensorWriter>(std::move(writer));
}

absl::Status WritePth(const std::string& path, const std::vector<TensorView>& tensors,
                      const PthWriteOptions& options) {
  absl::StatusOr<std::unique_ptr<TensorWriter>> writer =
      CreatePthWriter(path, SpecsOf(tensors), options);
  if (!writer.ok()) return writer.status();
  if (absl::Status s = AppendTensors(**writer, tensors); !s.ok()) return s;
  return (*writer)->Finish();
}

}  // namespace skein::model
