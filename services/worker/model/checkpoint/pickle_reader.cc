#include "services/worker/model/checkpoint/pickle_reader.h"

#include <cstring>
#include <deque>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"
#include "services/worker/model/checkpoint/byte_io.h"

namespace skein::model {
namespace {

// Objects are kept far below what hostile input could ask for; a real state dict needs about
// 20 per tensor.
constexpr size_t kMaxObjects = size_t{4} << 20;
constexpr size_t kMaxDims = 32;
// Storage names are short ("0", "cpu", "BFloat16Storage"); capping them keeps a hostile pickle
// from multiplying one huge string into every tensor.
constexpr size_t kMaxStorageField = 256;
// Non-tensor values are kept as metadata text up to this length.
constexpr size_t kMaxScalarText = 4096;

struct Obj {
  enum class Kind : uint8_t {
    kNone,
    kBool,
    kInt,
    kFloat,
    kStr,
    kBytes,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor,
  };
  explicit Obj(Kind k) : kind(k) {}
  Kind kind;
  int64_t i = 0;  // int, bool, storage numel, tensor offset
  double f = 0;
  std::string s;            // str, bytes, global "module.name"
  std::vector<Obj*> items;  // tuple, list; dict as key, value, key, value...
  // dict: key -> index in items. Views into the key objects' strings, which never change.
  std::unique_ptr<absl::flat_hash_map<absl::string_view, size_t>> str_keys;
  std::unique_ptr<PickledTensor> tensor;  // storage and tensor
};

absl::string_view KindName(Obj::Kind k) {
  switch (k) {
    case Obj::Kind::kNone:
      return "None";
    case Obj::Kind::kBool:
      return "bool";
    case Obj::Kind::kInt:
      return "int";
    case Obj::Kind::kFloat:
      return "float";
    case Obj::Kind::kStr:
      return "str";
    case Obj::Kind::kBytes:
      return "bytes";
    case Obj::Kind::kTuple:
      return "tuple";
    case Obj::Kind::kList:
      return "list";
    case Obj::Kind::kDict:
      return "dict";
    case Obj::Kind::kGlobal:
      return "class or function";
    case Obj::Kind::kStorage:
      return "storage";
    case Obj::Kind::kTensor:
      return "tensor";
  }
  return "object";
}

// Decodes UTF-8 into code points <= 0xFF (what _codecs.encode(s, 'latin1') accepts).
bool Latin1FromUtf8(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size();) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < in.size()) {
      unsigned cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(in[i + 1]) & 0x3Fu);
      if (cp > 0xFF) return false;
      out->push_back(static_cast<char>(cp));
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

class Machine {
 public:
  Machine(std::string_view data, const std::string& where) : data_(data), where_(where) {}

  absl::StatusOr<std::vector<PickledEntry>> Run();

 private:
  // Opcodes (pickle protocols 0-4; the ones a state dict can contain).
  enum Op : uint8_t {
    kMark = '(',
    kStop = '.',
    kPop = '0',
    kPopMark = '1',
    kDup = '2',
    kBinFloat = 'G',
    kBinInt = 'J',
    kBinInt1 = 'K',
    kBinInt2 = 'M',
    kNone = 'N',
    kBinPersId = 'Q',
    kReduce = 'R',
    kBinString = 'T',
    kShortBinString = 'U',
    kBinUnicode = 'X',
    kAppend = 'a',
    kBuild = 'b',
    kGlobal = 'c',
    kDict = 'd',
    kEmptyDict = '}',
    kAppends = 'e',
    kBinGet = 'h',
    kLongBinGet = 'j',
    kList = 'l',
    kEmptyList = ']',
    kBinPut = 'q',
    kLongBinPut = 'r',
    kSetItem = 's',
    kTuple = 't',
    kEmptyTuple = ')',
    kSetItems = 'u',
    kBinBytes = 'B',
    kShortBinBytes = 'C',
    kProto = 0x80,
    kNewObj = 0x81,
    kTuple1 = 0x85,
    kTuple2 = 0x86,
    kTuple3 = 0x87,
    kNewTrue = 0x88,
    kNewFalse = 0x89,
    kLong1 = 0x8a,
    kLong4 = 0x8b,
    kShortBinUnicode = 0x8c,
    kBinUnicode8 = 0x8d,
    kBinBytes8 = 0x8e,
    kEmptySet = 0x8f,
    kStackGlobal = 0x93,
    kMemoize = 0x94,
    kFrame = 0x95,
  };

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(where_, " byte ", op_pos_, ": ", what));
  }
  absl::Status Truncated() const {
    return absl::DataLossError(
        absl::StrCat(where_, " byte ", op_pos_, ": pickle ends in the middle of an opcode"));
  }

  bool Has(uint64_t n) const { return n <= data_.size() - pos_; }
  absl::StatusOr<Obj*> New(Obj::Kind k) {
    if (arena_.size() >= kMaxObjects) {
      return Error(absl::StrCat("more than ", kMaxObjects, " objects; refusing to go on"));
    }
    arena_.emplace_back(k);
    return &arena_.back();
  }
  absl::Status Push(absl::StatusOr<Obj*> o) {
    if (!o.ok()) return o.status();
    stack_.push_back(*o);
    return absl::OkStatus();
  }
  absl::StatusOr<Obj*> Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return Error("stack underflow");
    }
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  // The top of the stack above the newest mark (Python keeps marked frames apart).
  absl::StatusOr<Obj*> Top() const {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return Error("the operation needs an object on the stack");
    }
    return stack_.back();
  }
  // Pops everything above the newest mark, and the mark.
  absl::StatusOr<std::vector<Obj*>> PopToMark() {
    if (marks_.empty()) return Error("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj*> items(stack_.begin() + static_cast<ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  absl::StatusOr<Obj*> MakeInt(int64_t v) {
    absl::StatusOr<Obj*> o = New(Obj::Kind::kInt);
    if (o.ok()) (*o)->i = v;
    return o;
  }
  absl::StatusOr<Obj*> MakeString(Obj::Kind k, std::string_view s) {
    absl::StatusOr<Obj*> o = New(k);
    if (o.ok()) (*o)->s.assign(s);
    return o;
  }
  absl::StatusOr<Obj*> MakeTuple(std::vector<Obj*> items) {
    absl::StatusOr<Obj*> o = New(Obj::Kind::kTuple);
    if (o.ok()) (*o)->items = std::move(items);
    return o;
  }

  absl::Status PushLengthPrefixed(Obj::Kind kind, uint64_t len);
  absl::Status PushLong(uint64_t nbytes);
  absl::StatusOr<std::string_view> ReadLine();
  absl::Status SetItems(Obj* dict, const std::vector<Obj*>& kv);
  absl::Status Memo(uint32_t index);
  absl::StatusOr<Obj*> Call(Obj* callable, Obj* args);
  absl::StatusOr<Obj*> PersistentLoad(Obj* pid);
  absl::StatusOr<Obj*> RebuildTensor(const std::vector<Obj*>& args);
  absl::StatusOr<std::vector<PickledEntry>> Entries(Obj* top);
  absl::Status Step(uint8_t op);

  std::string_view data_;
  const std::string& where_;
  uint64_t pos_ = 0;
  uint64_t op_pos_ = 0;
  bool stopped_ = false;
  std::deque<Obj> arena_;  // owns every object; pointers stay valid as it grows
  std::vector<Obj*> stack_;
  std::vector<size_t> marks_;
  absl::flat_hash_map<uint32_t, Obj*> memo_;
};

absl::Status Machine::PushLengthPrefixed(Obj::Kind kind, uint64_t len) {
  if (!Has(len)) return Truncated();
  absl::Status s = Push(MakeString(kind, data_.substr(pos_, len)));
  pos_ += len;
  return s;
}

absl::Status Machine::PushLong(uint64_t nbytes) {
  if (!Has(nbytes)) return Truncated();
  const char* p = data_.data() + pos_;
  pos_ += nbytes;
  if (nbytes == 0) return Push(MakeInt(0));
  // Two's complement little-endian; must fit in 64 bits (extra bytes only sign-extend).
  bool negative = static_cast<unsigned char>(p[nbytes - 1]) & 0x80;
  uint64_t v = 0;
  for (uint64_t i = 0; i < nbytes; ++i) {
    unsigned char b = static_cast<unsigned char>(p[i]);
    if (i < 8) {
      v |= uint64_t{b} << (8 * i);
    } else if (b != (negative ? 0xFF : 0x00)) {
      return Error("integer does not fit in 64 bits");
    }
  }
  if (nbytes < 8 && negative) v |= ~uint64_t{0} << (8 * nbytes);
  int64_t sv = static_cast<int64_t>(v);
  if (nbytes >= 8 && (sv < 0) != negative) return Error("integer does not fit in 64 bits");
  return Push(MakeInt(sv));
}

absl::StatusOr<std::string_view> Machine::ReadLine() {
  size_t nl = data_.find('\n', pos_);
  if (nl == std::string_view::npos) return Truncated();
  std::string_view line = data_.substr(pos_, nl - pos_);
  pos_ = nl + 1;
  return line;
}

absl::Status Machine::Memo(uint32_t index) {
  absl::StatusOr<Obj*> top = Top();
  if (!top.ok()) return top.status();
  memo_[index] = *top;
  return absl::OkStatus();
}

absl::Status Machine::SetItems(Obj* dict, const std::vector<Obj*>& kv) {
  if (dict->kind != Obj::Kind::kDict) {
    return Error(absl::StrCat("SETITEM(S) on a ", KindName(dict->kind), ", not a dict"));
  }
  if (kv.size() % 2 != 0) return Error("SETITEMS with an odd number of items");
  for (size_t i = 0; i < kv.size(); i += 2) {
    Obj* key = kv[i];
    Obj* value = kv[i + 1];
    if (key->kind == Obj::Kind::kStr) {
      if (!dict->str_keys) {
        dict->str_keys = std::make_unique<absl::flat_hash_map<absl::string_view, size_t>>();
      }
      auto [it, inserted] = dict->str_keys->emplace(absl::string_view(key->s), dict->items.size());
      if (!inserted) {  // Python keeps the first position and the last value.
        dict->items[it->second + 1] = value;
        continue;
      }
    }
    dict->items.push_back(key);
    dict->items.push_back(value);
  }
  return absl::OkStatus();
}

absl::StatusOr<Obj*> Machine::PersistentLoad(Obj* pid) {
  // ('storage', torch.<T>Storage, key, location, numel)
  if (pid->kind != Obj::Kind::kTuple || pid->items.size() != 5 ||
      pid->items[0]->kind != Obj::Kind::kStr || pid->items[0]->s != "storage") {
    return Error("persistent id is not a ('storage', type, key, location, numel) tuple");
  }
  Obj* type = pid->items[1];
  Obj* key = pid->items[2];
  Obj* location = pid->items[3];
  Obj* numel = pid->items[4];
  if (type->kind != Obj::Kind::kGlobal || key->kind != Obj::Kind::kStr ||
      location->kind != Obj::Kind::kStr || numel->kind != Obj::Kind::kInt || numel->i < 0) {
    return Error("malformed storage persistent id");
  }
  if (type->s.size() > kMaxStorageField || key->s.size() > kMaxStorageField ||
      location->s.size() > kMaxStorageField) {
    return Error("storage persistent id has an overlong field");
  }
  std::string_view type_name = type->s;
  if (type_name.substr(0, 6) != "torch.") {
    return Error(
        absl::StrCat("storage type '", base::AsAbsl(type_name), "' is not a torch storage"));
  }
  type_name.remove_prefix(6);
  if (type_name.substr(0, 8) == "storage.") type_name.remove_prefix(8);
  absl::StatusOr<Obj*> o = New(Obj::Kind::kStorage);
  if (!o.ok()) return o;
  (*o)->tensor = std::make_unique<PickledTensor>();
  PickledStorage& st = (*o)->tensor->storage;
  st.type_name.assign(type_name);
  st.key = key->s;
  st.location = location->s;
  st.numel = numel->i;
  return o;
}

absl::StatusOr<Obj*> Machine::RebuildTensor(const std::vector<Obj*>& args) {
  // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
  if (args.size() < 4 || args[0]->kind != Obj::Kind::kStorage || args[1]->kind != Obj::Kind::kInt ||
      args[2]->kind != Obj::Kind::kTuple || args[3]->kind != Obj::Kind::kTuple) {
    return Error("_rebuild_tensor arguments are not (storage, offset, size, stride, ...)");
  }
  const std::vector<Obj*>& size = args[2]->items;
  const std::vector<Obj*>& stride = args[3]->items;
  if (size.size() != stride.size()) return Error("tensor size and stride differ in length");
  if (size.size() > kMaxDims)
    return Error(absl::StrCat("tensor has more than ", kMaxDims, " dims"));
  if (args[1]->i < 0) return Error("negative storage offset");
  absl::StatusOr<Obj*> o = New(Obj::Kind::kTensor);
  if (!o.ok()) return o;
  auto t = std::make_unique<PickledTensor>();
  t->storage = args[0]->tensor->storage;
  t->offset = args[1]->i;
  for (size_t d = 0; d < size.size(); ++d) {
    if (size[d]->kind != Obj::Kind::kInt || stride[d]->kind != Obj::Kind::kInt || size[d]->i < 0 ||
        stride[d]->i < 0) {
      return Error("tensor size and stride must be non-negative integers");
    }
    t->size.push_back(size[d]->i);
    t->stride.push_back(stride[d]->i);
  }
  (*o)->tensor = std::move(t);
  return o;
}

absl::StatusOr<Obj*> Machine::Call(Obj* callable, Obj* args) {
  if (callable->kind != Obj::Kind::kGlobal) {
    return Error(absl::StrCat("cannot call a ", KindName(callable->kind)));
  }
  if (args->kind != Obj::Kind::kTuple) return Error("call arguments are not a tuple");
  const std::string& fn = callable->s;
  const std::vector<Obj*>& a = args->items;
  if (fn == "collections.OrderedDict" || fn == "builtins.dict" || fn == "__builtin__.dict") {
    absl::StatusOr<Obj*> d = New(Obj::Kind::kDict);
    if (!d.ok() || a.empty()) return d;
    // OrderedDict([(k, v), ...])
    if (a.size() != 1 || (a[0]->kind != Obj::Kind::kList && a[0]->kind != Obj::Kind::kTuple)) {
      return Error(absl::StrCat(fn, " called with unsupported arguments"));
    }
    std::vector<Obj*> kv;
    for (Obj* pair : a[0]->items) {
      if (pair->kind != Obj::Kind::kTuple || pair->items.size() != 2) {
        return Error(absl::StrCat(fn, " item is not a (key, value) pair"));
      }
      kv.push_back(pair->items[0]);
      kv.push_back(pair->items[1]);
    }
    if (absl::Status s = SetItems(*d, kv); !s.ok()) return s;
    return d;
  }
  if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
    return RebuildTensor(a);
  }
  if (fn == "torch._utils._rebuild_parameter" ||
      fn == "torch._utils._rebuild_parameter_with_state") {
    if (a.empty() || a[0]->kind != Obj::Kind::kTensor) {
      return Error(absl::StrCat(fn, " does not wrap a tensor"));
    }
    return a[0];
  }
  if (fn == "torch._tensor._rebuild_from_type_v2") {
    // (func, new_type, args, state): a tensor subclass; keep the plain tensor.
    if (a.size() < 3 || a[0]->kind != Obj::Kind::kGlobal || a[2]->kind != Obj::Kind::kTuple) {
      return Error(absl::StrCat(fn, " called with unsupported arguments"));
    }
    if (a[0]->s == "torch._tensor._rebuild_from_type_v2") return Error("nested tensor rebuild");
    return Call(a[0], a[2]);
  }
  if (fn == "_codecs.encode") {
    // Protocol 2 spells bytes as _codecs.encode(str, 'latin1').
    std::string bytes;
    if (a.size() != 2 || a[0]->kind != Obj::Kind::kStr || a[1]->kind != Obj::Kind::kStr ||
        (a[1]->s != "latin1" && a[1]->s != "latin-1") || !Latin1FromUtf8(a[0]->s, &bytes)) {
      return Error("unsupported _codecs.encode call");
    }
    return MakeString(Obj::Kind::kBytes, bytes);
  }
  if (fn == "torch.device") {
    if (a.empty() || a[0]->kind != Obj::Kind::kStr) return Error("unsupported torch.device call");
    return MakeString(Obj::Kind::kStr, a[0]->s);
  }
  return Error(absl::StrCat("unsupported callable '", fn, "' (not part of a state dict)"));
}

absl::Status Machine::Step(uint8_t op) {
  switch (op) {
    case kProto: {
      if (!Has(1)) return Truncated();
      uint8_t v = static_cast<uint8_t>(data_[pos_++]);
      if (v > 5) return Error(absl::StrCat("unsupported pickle protocol ", v));
      return absl::OkStatus();
    }
    case kFrame:
      if (!Has(8)) return Truncated();
      pos_ += 8;  // framing only groups opcodes; the content is read as usual
      return absl::OkStatus();
    case kStop:
      stopped_ = true;
      return absl::OkStatus();
    case kMark:
      marks_.push_back(stack_.size());
      return absl::OkStatus();
    case kPop:
      return Pop().status();
    case kPopMark:
      return PopToMark().status();
    case kDup: {
      absl::StatusOr<Obj*> top = Pop();
      if (!top.ok()) return top.status();
      stack_.push_back(*top);
      stack_.push_back(*top);
      return absl::OkStatus();
    }
    case kNone:
      return Push(New(Obj::Kind::kNone));
    case kNewTrue:
    case kNewFalse: {
      absl::StatusOr<Obj*> o = New(Obj::Kind::kBool);
      if (o.ok()) (*o)->i = op == kNewTrue ? 1 : 0;
      return Push(o);
    }
    case kBinInt:
      if (!Has(4)) return Truncated();
      pos_ += 4;
      return Push(MakeInt(LoadLE<int32_t>(data_.data() + pos_ - 4)));
    case kBinInt1:
      if (!Has(1)) return Truncated();
      return Push(MakeInt(static_cast<uint8_t>(data_[pos_++])));
    case kBinInt2:
      if (!Has(2)) return Truncated();
      pos_ += 2;
      return Push(MakeInt(LoadLE<uint16_t>(data_.data() + pos_ - 2)));
    case kLong1:
      if (!Has(1)) return Truncated();
      return PushLong(static_cast<uint8_t>(data_[pos_++]));
    case kLong4: {
      if (!Has(4)) return Truncated();
      int32_t n = LoadLE<int32_t>(data_.data() + pos_);
      pos_ += 4;
      if (n < 0) return Error("negative LONG4 length");
      return PushLong(static_cast<uint64_t>(n));
    }
    case kBinFloat: {
      if (!Has(8)) return Truncated();
      uint64_t bits = __builtin_bswap64(LoadLE<uint64_t>(data_.data() + pos_));  // big-endian
      pos_ += 8;
      absl::StatusOr<Obj*> o = New(Obj::Kind::kFloat);
      if (o.ok()) std::memcpy(&(*o)->f, &bits, sizeof(bits));
      return Push(o);
    }
    case kBinUnicode:
    case kBinBytes:
      if (!Has(4)) return Truncated();
      pos_ += 4;
      return PushLengthPrefixed(op == kBinUnicode ? Obj::Kind::kStr : Obj::Kind::kBytes,
                                LoadLE<uint32_t>(data_.data() + pos_ - 4));
    case kBinString: {
      if (!Has(4)) return Truncated();
      int32_t n = LoadLE<int32_t>(data_.data() + pos_);
      pos_ += 4;
      if (n < 0) return Error("negative BINSTRING length");
      return PushLengthPrefixed(Obj::Kind::kStr, static_cast<uint64_t>(n));
    }
    case kShortBinUnicode:
    case kShortBinString:
    case kShortBinBytes:
      if (!Has(1)) return Truncated();
      return PushLengthPrefixed(op == kShortBinBytes ? Obj::Kind::kBytes : Obj::Kind::kStr,
                                static_cast<uint8_t>(data_[pos_++]));
    case kBinUnicode8:
    case kBinBytes8:
      if (!Has(8)) return Truncated();
      pos_ += 8;
      return PushLengthPrefixed(op == kBinUnicode8 ? Obj::Kind::kStr : Obj::Kind::kBytes,
                                LoadLE<uint64_t>(data_.data() + pos_ - 8));
    case kEmptyTuple:
      return Push(MakeTuple({}));
    case kTuple1:
    case kTuple2:
    case kTuple3: {
      size_t n = op - kTuple1 + 1;
      std::vector<Obj*> items(n);
      for (size_t i = n; i-- > 0;) {
        absl::StatusOr<Obj*> o = Pop();
        if (!o.ok()) return o.status();
        items[i] = *o;
      }
      return Push(MakeTuple(std::move(items)));
    }
    case kTuple: {
      absl::StatusOr<std::vector<Obj*>> items = PopToMark();
      if (!items.ok()) return items.status();
      return Push(MakeTuple(*std::move(items)));
    }
    case kEmptyList:
      return Push(New(Obj::Kind::kList));
    case kEmptyDict:
      return Push(New(Obj::Kind::kDict));
    case kEmptySet:
      return Error("sets are not part of a state dict");
    case kList:
    case kDict: {
      absl::StatusOr<std::vector<Obj*>> items = PopToMark();
      if (!items.ok()) return items.status();
      absl::StatusOr<Obj*> o = New(op == kList ? Obj::Kind::kList : Obj::Kind::kDict);
      if (!o.ok()) return o.status();
      if (op == kList) {
        (*o)->items = *std::move(items);
      } else if (absl::Status s = SetItems(*o, *items); !s.ok()) {
        return s;
      }
      stack_.push_back(*o);
      return absl::OkStatus();
    }
    case kAppend: {
      absl::StatusOr<Obj*> item = Pop();
      if (!item.ok()) return item.status();
      absl::StatusOr<Obj*> list = Top();
      if (!list.ok()) return list.status();
      if ((*list)->kind != Obj::Kind::kList) return Error("APPEND to something that is not a list");
      (*list)->items.push_back(*item);
      return absl::OkStatus();
    }
    case kAppends: {
      absl::StatusOr<std::vector<Obj*>> items = PopToMark();
      if (!items.ok()) return items.status();
      absl::StatusOr<Obj*> target = Top();
      if (!target.ok()) return target.status();
      if ((*target)->kind != Obj::Kind::kList)
        return Error("APPENDS to something that is not a list");
      std::vector<Obj*>& list = (*target)->items;
      list.insert(list.end(), items->begin(), items->end());
      return absl::OkStatus();
    }
    case kSetItem: {
      absl::StatusOr<Obj*> value = Pop();
      if (!value.ok()) return value.status();
      absl::StatusOr<Obj*> key = Pop();
      if (!key.ok()) return key.status();
      absl::StatusOr<Obj*> dict = Top();
      if (!dict.ok()) return dict.status();
      return SetItems(*dict, {*key, *value});
    }
    case kSetItems: {
      absl::StatusOr<std::vector<Obj*>> items = PopToMark();
      if (!items.ok()) return items.status();
      absl::StatusOr<Obj*> dict = Top();
      if (!dict.ok()) return dict.status();
      return SetItems(*dict, *items);
    }
    case kBinPut:
      if (!Has(1)) return Truncated();
      return Memo(static_cast<uint8_t>(data_[pos_++]));
    case kLongBinPut:
      if (!Has(4)) return Truncated();
      pos_ += 4;
      return Memo(LoadLE<uint32_t>(data_.data() + pos_ - 4));
    case kMemoize:
      return Memo(static_cast<uint32_t>(memo_.size()));
    case kBinGet:
    case kLongBinGet: {
      uint32_t index;
      if (op == kBinGet) {
        if (!Has(1)) return Truncated();
        index = static_cast<uint8_t>(data_[pos_++]);
      } else {
        if (!Has(4)) return Truncated();
        index = LoadLE<uint32_t>(data_.data() + pos_);
        pos_ += 4;
      }
      auto it = memo_.find(index);
      if (it == memo_.end()) return Error(absl::StrCat("memo entry ", index, " is not set"));
      stack_.push_back(it->second);
      return absl::OkStatus();
    }
    case kGlobal: {
      absl::StatusOr<std::string_view> module = ReadLine();
      if (!module.ok()) return module.status();
      absl::StatusOr<std::string_view> name = ReadLine();
      if (!name.ok()) return name.status();
      return Push(MakeString(Obj::Kind::kGlobal,
                             absl::StrCat(base::AsAbsl(*module), ".", base::AsAbsl(*name))));
    }
    case kStackGlobal: {
      absl::StatusOr<Obj*> name = Pop();
      if (!name.ok()) return name.status();
      absl::StatusOr<Obj*> module = Pop();
      if (!module.ok()) return module.status();
      if ((*name)->kind != Obj::Kind::kStr || (*module)->kind != Obj::Kind::kStr) {
        return Error("STACK_GLOBAL operands are not strings");
      }
      return Push(MakeString(Obj::Kind::kGlobal, absl::StrCat((*module)->s, ".", (*name)->s)));
    }
    case kBinPersId: {
      absl::StatusOr<Obj*> pid = Pop();
      if (!pid.ok()) return pid.status();
      return Push(PersistentLoad(*pid));
    }
    case kReduce:
    case kNewObj: {
      absl::StatusOr<Obj*> args = Pop();
      if (!args.ok()) return args.status();
      absl::StatusOr<Obj*> callable = Pop();
      if (!callable.ok()) return callable.status();
      return Push(Call(*callable, *args));
    }
    case kBuild: {
      // Object state (e.g. a state dict's `_metadata` attribute); nothing we need.
      absl::StatusOr<Obj*> state = Pop();
      if (!state.ok()) return state.status();
      return Top().status();
    }
    default:
      if (op >= 0x20 && op < 0x7f) {
        return Error(absl::StrCat("unsupported pickle opcode '",
                                  std::string(1, static_cast<char>(op)), "' (0x", absl::Hex(op),
                                  ")"));
      }
      return Error(absl::StrCat("unsupported pickle opcode 0x", absl::Hex(op)));
  }
}

absl::StatusOr<std::vector<PickledEntry>> Machine::Entries(Obj* top) {
  if (top->kind != Obj::Kind::kDict) {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": the pickled object is a ",
                                                   KindName(top->kind), ", not a dict of tensors"));
  }
  std::vector<PickledEntry> entries;
  entries.reserve(top->items.size() / 2);
  for (size_t i = 0; i < top->items.size(); i += 2) {
    Obj* key = top->items[i];
    Obj* value = top->items[i + 1];
    if (key->kind != Obj::Kind::kStr) {
      return absl::InvalidArgumentError(absl::StrCat(where_, ": dict key ", i / 2, " is a ",
                                                     KindName(key->kind), ", not a string"));
    }
    PickledEntry e;
    e.key = key->s;
    switch (value->kind) {
      case Obj::Kind::kTensor:
        e.kind = PickledEntry::Kind::kTensor;
        e.tensor = *value->tensor;
        break;
      case Obj::Kind::kStr:
        e.kind = PickledEntry::Kind::kScalar;
        e.scalar_text = value->s.substr(0, kMaxScalarText);
        break;
      case Obj::Kind::kInt:
        e.kind = PickledEntry::Kind::kScalar;
        e.scalar_text = absl::StrCat(value->i);
        break;
      case Obj::Kind::kFloat:
        e.kind = PickledEntry::Kind::kScalar;
        e.scalar_text = absl::StrCat(value->f);
        break;
      case Obj::Kind::kBool:
        e.kind = PickledEntry::Kind::kScalar;
        e.scalar_text = value->i ? "True" : "False";
        break;
      case Obj::Kind::kNone:
        e.kind = PickledEntry::Kind::kScalar;
        e.scalar_text = "None";
        break;
      default:
        e.kind = PickledEntry::Kind::kOther;
        e.other_kind = std::string(KindName(value->kind));
        break;
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

absl::StatusOr<std::vector<PickledEntry>> Machine::Run() {
  while (!stopped_) {
    if (pos_ >= data_.size()) {
      op_pos_ = pos_;
      return absl::DataLossError(absl::StrCat(where_, ": pickle ends without STOP"));
    }
    op_pos_ = pos_;
    uint8_t op = static_cast<uint8_t>(data_[pos_++]);
    if (absl::Status s = Step(op); !s.ok()) return s;
  }
  absl::StatusOr<Obj*> top = Top();
  if (!top.ok()) return top.status();
  return Entries(*top);
}

}  // namespace

absl::StatusOr<std::vector<PickledEntry>> ParseStateDictPickle(std::string_view pickle,
                                                               const std::string& where) {
  Machine machine(pickle, where);
  return machine.Run();
}

}  // namespace skein::model
