#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/checkpoint/byte_io.h"
#include "services/worker/model/checkpoint/pth_writer.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/testing/test_zip.h"
#include "tests/support/test_data.h"

namespace skein::model {
namespace {

using ::testing::AnyOf;
using testing::BuildZip;
using ::testing::HasSubstr;
using testing::ZipRecord;

// Hand-written pickles (protocol 2) for cases torch.save would not produce.
class Pickle {
 public:
  Pickle() { s_ += "\x80\x02"; }
  Pickle& Op(char c) {
    s_ += c;
    return *this;
  }
  Pickle& Raw(const std::string& bytes) {
    s_ += bytes;
    return *this;
  }
  Pickle& Str(const std::string& v) {
    s_ += 'X';
    AppendLE<uint32_t>(s_, static_cast<uint32_t>(v.size()));
    s_ += v;
    return *this;
  }
  Pickle& Int(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      s_ += 'J';
      AppendLE<int32_t>(s_, static_cast<int32_t>(v));
    } else {
      s_ += "\x8a\x08";
      AppendLE<int64_t>(s_, v);
    }
    return *this;
  }
  Pickle& Global(const std::string& module, const std::string& name) {
    s_ += 'c' + module + "\n" + name + "\n";
    return *this;
  }
  Pickle& Tuple(const std::vector<int64_t>& v) {
    Op('(');
    for (int64_t x : v) Int(x);
    return Op('t');
  }
  // key: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
  Pickle& Tensor(const std::string& key, const std::string& storage_type,
                 const std::string& storage_key, int64_t numel, int64_t offset,
                 const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    Str(key);
    Global("torch._utils", "_rebuild_tensor_v2");
    Op('(');
    Op('(').Str("storage").Global("torch", storage_type).Str(storage_key).Str("cpu").Int(numel);
    Op('t').Op('Q');
    Int(offset).Tuple(size).Tuple(stride).Op('\x89');
    Global("collections", "OrderedDict").Op(')').Op('R');
    return Op('t').Op('R');
  }
  std::string Done() { return s_ + '.'; }

 private:
  std::string s_;
};

std::string Floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> FloatsOf(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  base::ConvertElements(t.dtype, t.data, DType::kF32, out.data(), out.size());
  return out;
}

absl::StatusOr<std::unique_ptr<TensorArchive>> OpenBytes(const std::string& bytes,
                                                         const std::string& name = "t.pth") {
  return OpenPthFromSource(name, ByteSourceFromString(bytes));
}

// One float storage 0..11 and a single contiguous tensor over it.
std::vector<ZipRecord> SimpleRecords(const std::string& pickle) {
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[i] = static_cast<float>(i);
  return {{"arch/data.pkl", pickle}, {"arch/data/0", Floats(v)}, {"arch/version", "3\n"}};
}

std::string SimplePickle(const std::string& storage_type = "FloatStorage", int64_t numel = 12) {
  return Pickle()
      .Op('}')
      .Op('(')
      .Tensor("w", storage_type, "0", numel, 0, {3, 4}, {4, 1})
      .Op('u')
      .Done();
}

// ----------------------------------------------------------------------------- goldens

class GoldenPth : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenPth, LoadsAsBf16WithSaneValues) {
  SKEIN_REQUIRE_TEST_DATA(path, GetParam());
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorArchive& a = **archive;
  EXPECT_EQ(a.path(), path);
  EXPECT_TRUE(a.metadata().empty());
  ASSERT_FALSE(a.tensors().empty());
  for (const TensorView& t : a.tensors()) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.dtype, DType::kBF16);
    EXPECT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * 2);
    ASSERT_NE(t.data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 2, 0u);
    EXPECT_EQ(a.Find(t.name), &t);
    for (float f : FloatsOf(t)) ASSERT_TRUE(std::isfinite(f));
  }
  // LayerNorm weights of a random-init model are O(1), not garbage from a misread offset.
  const TensorView* ln = a.Find("ln_out.weight");
  ASSERT_NE(ln, nullptr);
  for (float f : FloatsOf(*ln)) EXPECT_LT(std::fabs(f), 100.0f);
  const TensorView* emb = a.Find("emb.weight");
  ASSERT_NE(emb, nullptr);
  std::vector<float> e = FloatsOf(*emb);
  EXPECT_TRUE(std::any_of(e.begin(), e.end(), [](float f) { return f != 0; }));
}

INSTANTIATE_TEST_SUITE_P(All, GoldenPth,
                         ::testing::Values("golden/rwkv7/tiny-l2-c128-v256.pth",
                                           "golden/rwkv7/small-l4-c256-v1024.pth",
                                           "golden/multiversion/tiny-v7.pth",
                                           "golden/multiversion/tiny-v7-no-l0-v012.pth",
                                           "golden/multiversion/tiny-v6.pth",
                                           "golden/multiversion/tiny-v5.2.pth",
                                           "golden/multiversion/tiny-v4.pth"));

TEST(PthReader, GoldenTinyV7ShapesAndOrder) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/multiversion/tiny-v7.pth");
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorArchive& a = **archive;
  ASSERT_EQ(a.tensors().size(), 105u);
  EXPECT_EQ(a.tensors().front().name, "emb.weight");
  EXPECT_EQ(a.tensors().back().name, "head.weight");
  EXPECT_EQ(a.Find("emb.weight")->shape, (std::vector<int64_t>{300, 128}));
  EXPECT_EQ(a.Find("blocks.0.att.x_r")->shape, (std::vector<int64_t>{1, 1, 128}));
  EXPECT_EQ(a.Find("blocks.0.att.r_k")->shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(a.Find("blocks.2.att.w1")->shape, (std::vector<int64_t>{128, 16}));
  EXPECT_EQ(a.Find("blocks.1.ffn.key.weight")->shape, (std::vector<int64_t>{512, 128}));
  EXPECT_EQ(a.Find("nope"), nullptr);
  // Storages are used in place: the tensor points into the mapped file.
  EXPECT_EQ(a.Find("emb.weight")->nbytes, 300u * 128 * 2);
}

// ------------------------------------------------------------------ hand-made archives

TEST(PthReader, StridedAndOffsetViews) {
  std::string pickle = Pickle()
                           .Op('}')
                           .Op('(')
                           .Tensor("transposed", "FloatStorage", "0", 12, 0, {4, 3}, {1, 4})
                           .Tensor("every_other", "FloatStorage", "0", 12, 2, {5}, {2})
                           .Tensor("offset", "FloatStorage", "0", 12, 4, {2, 2}, {2, 1})
                           .Tensor("broadcast", "FloatStorage", "0", 12, 7, {3}, {0})
                           .Tensor("scalar", "FloatStorage", "0", 12, 11, {}, {})
                           .Tensor("empty", "FloatStorage", "0", 12, 0, {0, 5}, {5, 1})
                           .Op('u')
                           .Done();
  auto archive = OpenBytes(BuildZip(SimpleRecords(pickle)));
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorArchive& a = **archive;
  ASSERT_EQ(a.tensors().size(), 6u);
  EXPECT_EQ(a.tensors()[0].name, "transposed");
  EXPECT_EQ(FloatsOf(*a.Find("transposed")),
            (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(FloatsOf(*a.Find("every_other")), (std::vector<float>{2, 4, 6, 8, 10}));
  EXPECT_EQ(FloatsOf(*a.Find("offset")), (std::vector<float>{4, 5, 6, 7}));
  EXPECT_EQ(FloatsOf(*a.Find("broadcast")), (std::vector<float>{7, 7, 7}));
  EXPECT_EQ(FloatsOf(*a.Find("scalar")), (std::vector<float>{11}));
  EXPECT_EQ(a.Find("scalar")->shape, std::vector<int64_t>{});
  EXPECT_EQ(a.Find("empty")->nbytes, 0u);
  EXPECT_EQ(a.Find("empty")->shape, (std::vector<int64_t>{0, 5}));
  // The contiguous view is not copied: it points into the source bytes.
  const TensorView* offset = a.Find("offset");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(offset->data) % 4, 0u);
}

TEST(PthReader, ContiguousViewsPointIntoTheMappedFile) {
  const std::string path = testing::TempPath("inplace.pth");
  testing::WriteFile(path, BuildZip(SimpleRecords(SimplePickle())));
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorView* w = (*archive)->Find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(FloatsOf(*w), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 64, 0u);  // the record is 64-byte aligned
}

TEST(PthReader, UnalignedStorageIsCopiedToAlignedMemory) {
  std::vector<ZipRecord> records = SimpleRecords(SimplePickle());
  records.insert(records.begin(), ZipRecord{"arch/odd", "x"});  // shift later records
  auto archive = OpenBytes(BuildZip(records, /*align=*/1));
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorView* w = (*archive)->Find("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 4, 0u);
  EXPECT_EQ(FloatsOf(*w), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
}

TEST(PthReader, AnyArchivePrefix) {
  for (const std::string prefix : {"archive/", "some/deep/folder/", ""}) {
    std::vector<ZipRecord> records = SimpleRecords(SimplePickle());
    for (ZipRecord& r : records) r.name = prefix + r.name.substr(5);
    auto archive = OpenBytes(BuildZip(records));
    ASSERT_TRUE(archive.ok()) << prefix << ": " << archive.status();
    EXPECT_NE((*archive)->Find("w"), nullptr);
  }
}

TEST(PthReader, OrderedDictWithMetadataAndParameters) {
  // What module.state_dict() pickles: an OrderedDict with a `_metadata` attribute set by
  // BUILD, here with a tensor wrapped as an nn.Parameter.
  Pickle p;
  p.Global("collections", "OrderedDict").Op(')').Op('R').Op('q').Raw(std::string(1, '\0'));
  p.Op('(');
  p.Str("a");
  p.Global("torch._utils", "_rebuild_parameter");
  p.Op('(');
  p.Global("torch._utils", "_rebuild_tensor_v2").Op('(');
  p.Op('(')
      .Str("storage")
      .Global("torch", "FloatStorage")
      .Str("0")
      .Str("cpu")
      .Int(12)
      .Op('t')
      .Op('Q');
  p.Int(0).Tuple({12}).Tuple({1}).Op('\x88').Global("collections", "OrderedDict").Op(')').Op('R');
  p.Op('t').Op('R');
  p.Op('\x88').Global("collections", "OrderedDict").Op(')').Op('R').Op('t').Op('R');
  p.Op('u');
  p.Op('}').Str("_metadata").Global("collections", "OrderedDict").Op(')').Op('R').Op('s').Op('b');
  auto archive = OpenBytes(BuildZip(SimpleRecords(p.Done())));
  ASSERT_TRUE(archive.ok()) << archive.status();
  ASSERT_EQ((*archive)->tensors().size(), 1u);
  EXPECT_EQ((*archive)->Find("a")->shape, std::vector<int64_t>{12});
}

TEST(PthReader, DeflatedPickleIsAccepted) {
  std::vector<ZipRecord> records = SimpleRecords(SimplePickle());
  records[0].deflate = true;
  auto archive = OpenBytes(BuildZip(records));
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_NE((*archive)->Find("w"), nullptr);
}

TEST(PthReader, DeflatedStorageIsRejected) {
  std::vector<ZipRecord> records = SimpleRecords(SimplePickle());
  records[1].deflate = true;
  auto archive = OpenBytes(BuildZip(records), "m.pth");
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(archive.status().message(), HasSubstr("m.pth"));
  EXPECT_THAT(archive.status().message(), HasSubstr("'w'"));
  EXPECT_THAT(archive.status().message(), HasSubstr("compressed"));
}

TEST(PthReader, UnknownStorageTypesNameTheTensorAndDtype) {
  for (const std::string type : {"DoubleStorage", "LongStorage", "UntypedStorage", "ByteStorage"}) {
    auto archive = OpenBytes(BuildZip(SimpleRecords(SimplePickle(type, 1))), "m.pth");
    EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument) << type;
    EXPECT_THAT(archive.status().message(), HasSubstr("m.pth"));
    EXPECT_THAT(archive.status().message(), HasSubstr("tensor 'w'"));
    EXPECT_THAT(archive.status().message(), HasSubstr(type));
  }
}

TEST(PthReader, ChatRwkvConvertedFilesGetAHint) {
  std::string pickle = Pickle()
                           .Op('}')
                           .Op('(')
                           .Str("_strategy")
                           .Str("cuda fp16i8")
                           .Tensor("w", "ByteStorage", "0", 12, 0, {12}, {1})
                           .Op('u')
                           .Done();
  auto archive = OpenBytes(BuildZip(SimpleRecords(pickle)));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(archive.status().message(), HasSubstr("ChatRWKV"));
}

TEST(PthReader, ScalarEntriesBecomeMetadata) {
  std::string pickle = Pickle()
                           .Op('}')
                           .Op('(')
                           .Str("_version")
                           .Str("0.7")
                           .Str("_rescale_layer")
                           .Int(6)
                           .Tensor("w", "FloatStorage", "0", 12, 0, {12}, {1})
                           .Op('u')
                           .Done();
  auto archive = OpenBytes(BuildZip(SimpleRecords(pickle)));
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_EQ((*archive)->metadata().at("_version"), "0.7");
  EXPECT_EQ((*archive)->metadata().at("_rescale_layer"), "6");
  EXPECT_EQ((*archive)->tensors().size(), 1u);
}

TEST(PthReader, StorageShorterThanDeclared) {
  std::vector<ZipRecord> records = SimpleRecords(SimplePickle());
  records[1].data.resize(40);
  auto archive = OpenBytes(BuildZip(records), "m.pth");
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(archive.status().message(), HasSubstr("tensor 'w'"));
  EXPECT_THAT(archive.status().message(), HasSubstr("m.pth"));
}

TEST(PthReader, ViewLargerThanItsStorage) {
  std::string pickle = Pickle()
                           .Op('}')
                           .Op('(')
                           .Tensor("w", "FloatStorage", "0", 12, 1, {3, 4}, {4, 1})
                           .Op('u')
                           .Done();
  auto archive = OpenBytes(BuildZip(SimpleRecords(pickle)));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(archive.status().message(), HasSubstr("tensor 'w'"));
}

TEST(PthReader, HugeOverlappingViewIsRefused) {
  std::string pickle = Pickle()
                           .Op('}')
                           .Op('(')
                           .Tensor("w", "FloatStorage", "0", 12, 0, {int64_t{1} << 40}, {0})
                           .Op('u')
                           .Done();
  auto archive = OpenBytes(BuildZip(SimpleRecords(pickle)));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(archive.status().message(), HasSubstr("tensor 'w'"));
}

TEST(PthReader, OverflowingShapeIsRefused) {
  std::string pickle =
      Pickle()
          .Op('}')
          .Op('(')
          .Tensor("w", "FloatStorage", "0", 12, 0, {int64_t{1} << 40, int64_t{1} << 40}, {0, 0})
          .Op('u')
          .Done();
  auto archive = OpenBytes(BuildZip(SimpleRecords(pickle)));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PthReader, MissingStorageRecord) {
  std::vector<ZipRecord> records = SimpleRecords(SimplePickle());
  records.erase(records.begin() + 1);
  auto archive = OpenBytes(BuildZip(records));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(archive.status().message(), HasSubstr("arch/data/0"));
}

TEST(PthReader, UnsupportedOpcode) {
  auto archive = OpenBytes(BuildZip(SimpleRecords(Pickle().Op('}').Op('\xff').Done())));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(archive.status().message(), HasSubstr("unsupported pickle opcode"));
  EXPECT_THAT(archive.status().message(), HasSubstr("data.pkl"));
}

TEST(PthReader, UnknownCallableIsNeverCalled) {
  std::string pickle = Pickle().Global("os", "system").Op('(').Str("true").Op('t').Op('R').Done();
  auto archive = OpenBytes(BuildZip(SimpleRecords(pickle)));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(archive.status().message(), HasSubstr("os.system"));
}

TEST(PthReader, TruncatedPickle) {
  std::string pickle = SimplePickle();
  for (size_t n = 0; n < pickle.size(); ++n) {
    auto archive = OpenBytes(BuildZip(SimpleRecords(pickle.substr(0, n))));
    ASSERT_FALSE(archive.ok()) << n;
    EXPECT_THAT(archive.status().code(),
                AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument));
  }
}

TEST(PthReader, MalformedPickles) {
  const std::vector<std::string> pickles = {
      Pickle().Op('l').Done(),                                      // LIST without MARK
      Pickle().Op(']').Done(),                                      // a list, not a dict
      Pickle().Op('}').Op('(').Str("x").Op('u').Done(),             // odd SETITEMS
      Pickle().Op('}').Op('h').Raw("\x05").Done(),                  // unset memo
      Pickle().Op('}').Op('(').Op('0').Done(),                      // POP below MARK
      Pickle().Op('}').Op('(').Int(1).Op(']').Op('u').Done(),       // non-string key
      Pickle().Op('}').Op('(').Str("x").Op('}').Op('u').Done(),     // nested dict value
      Pickle().Op('(').Str("storage").Op('t').Op('Q').Done(),       // short persistent id
      Pickle().Raw("\x8a\x09").Raw(std::string(9, '\x7f')).Done(),  // int beyond 64 bits
  };
  for (size_t i = 0; i < pickles.size(); ++i) {
    auto archive = OpenBytes(BuildZip(SimpleRecords(pickles[i])), "m.pth");
    ASSERT_FALSE(archive.ok()) << i;
    EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument) << i << archive.status();
    EXPECT_THAT(archive.status().message(), HasSubstr("m.pth")) << i;
  }
}

TEST(PthReader, BigEndianByteorderIsUnimplemented) {
  std::vector<ZipRecord> records = SimpleRecords(SimplePickle());
  records.push_back({"arch/byteorder", "big"});
  auto archive = OpenBytes(BuildZip(records));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kUnimplemented);
  records.back().data = "little";
  EXPECT_TRUE(OpenBytes(BuildZip(records)).ok());
}

TEST(PthReader, NotAPytorchArchive) {
  auto archive = OpenBytes(BuildZip({{"hello.txt", "hi"}}));
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(archive.status().message(), HasSubstr("data.pkl"));
  EXPECT_EQ(OpenBytes("").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenPth(testing::TempPath("missing.pth")).status().code(), absl::StatusCode::kNotFound);
}

TEST(PthReader, CrcMismatchInPickle) {
  std::string bytes = BuildZip(SimpleRecords(SimplePickle()));
  size_t pos = bytes.find("\x80\x02}");  // PROTO 2, EMPTY_DICT
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 1] = '\x03';  // protocol 3: still parses, but the CRC no longer matches
  auto archive = OpenBytes(bytes);
  EXPECT_EQ(archive.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(archive.status().message(), HasSubstr("CRC"));
}

// A small real checkpoint written by our own writer, for the damage sweeps below.
std::string SmallCheckpoint() {
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  uint16_t b[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
  std::vector<TensorView> tensors(2);
  tensors[0] = {"a", DType::kF32, {2, 3}, a.data(), 24};
  tensors[1] = {"b", DType::kBF16, {4}, b, 8};
  const std::string path = testing::TempPath("small.pth");
  EXPECT_TRUE(WritePth(path, tensors).ok());
  return testing::ReadFile(path);
}

TEST(PthReader, TruncatedAtEveryOffset) {
  const std::string bytes = SmallCheckpoint();
  ASSERT_TRUE(OpenBytes(bytes).ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto archive = OpenBytes(bytes.substr(0, n), "cut.pth");
    ASSERT_FALSE(archive.ok()) << "truncated to " << n;
    EXPECT_THAT(archive.status().code(),
                AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(archive.status().message(), HasSubstr("cut.pth"));
  }
}

TEST(PthReader, EveryFlippedByteGivesAnErrorOrAValidArchive) {
  const std::string bytes = SmallCheckpoint();
  int failures = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 0xA5);
    auto archive = OpenBytes(damaged, "flip.pth");
    if (archive.ok()) {
      // Flips in tensor data or unused header fields still give well-formed tensors.
      for (const TensorView& t : (*archive)->tensors()) {
        EXPECT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * DTypeSize(t.dtype));
      }
      continue;
    }
    ++failures;
    EXPECT_THAT(archive.status().code(),
                AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument,
                      absl::StatusCode::kUnimplemented))
        << i << ": " << archive.status();
    EXPECT_THAT(archive.status().message(), HasSubstr("flip.pth"));
  }
  EXPECT_GT(failures, static_cast<int>(bytes.size() / 4));
}

TEST(PthReader, DamagedCentralDirectory) {
  const std::string bytes = SmallCheckpoint();
  const size_t cd = bytes.find("PK\x01\x02");
  ASSERT_NE(cd, std::string::npos);
  std::string damaged = bytes;
  damaged[cd + 1] = 'X';  // signature
  EXPECT_EQ(OpenBytes(damaged).status().code(), absl::StatusCode::kDataLoss);
  damaged = bytes;
  damaged[cd + 42] = '\x7f';  // local header offset
  EXPECT_EQ(OpenBytes(damaged).status().code(), absl::StatusCode::kDataLoss);
  damaged = bytes;
  damaged[cd + 20] = '\x7f';  // compressed size past the end
  EXPECT_EQ(OpenBytes(damaged).status().code(), absl::StatusCode::kDataLoss);
}

TEST(OpenCheckpoint, PicksTheFormatByMagic) {
  const std::string pth = testing::TempPath("x.bin");
  testing::WriteFile(pth, SmallCheckpoint());
  auto archive = OpenCheckpoint(pth);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_EQ((*archive)->tensors().size(), 2u);
  EXPECT_EQ(*DetectCheckpointFormat(pth), CheckpointFormat::kPth);
  const std::string junk = testing::TempPath("junk.bin");
  testing::WriteFile(junk, "this is not a checkpoint");
  EXPECT_EQ(OpenCheckpoint(junk).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(OpenCheckpoint(junk).status().message(), HasSubstr("junk.bin"));
}

}  // namespace
}  // namespace skein::model
