#include "services/worker/model/checkpoint/pth_writer.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/testing/test_zip.h"
#include "services/worker/model/checkpoint/zip_reader.h"

namespace skein::model {
namespace {

using ::testing::HasSubstr;

struct Owned {
  std::vector<std::vector<char>> buffers;
  std::vector<TensorView> views;
  void Add(const std::string& name, DType dtype, std::vector<int64_t> shape) {
    TensorView v{name, dtype, std::move(shape), nullptr, 0};
    v.nbytes = static_cast<size_t>(v.numel()) * DTypeSize(dtype);
    std::vector<char> b(v.nbytes);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(i * 7 + name.size());
    buffers.push_back(std::move(b));
    v.data = buffers.back().data();
    views.push_back(std::move(v));
  }
};

Owned Sample() {
  Owned o;
  o.buffers.reserve(8);
  o.Add("emb.weight", DType::kBF16, {5, 3});
  o.Add("blocks.0.att.x_r", DType::kF32, {1, 1, 3});
  o.Add("zero.sized", DType::kF16, {0, 4});
  o.Add("scalar", DType::kF32, {});
  o.Add("head.weight", DType::kF16, {7, 3});
  return o;
}

void ExpectSameTensors(const TensorArchive& a, const std::vector<TensorView>& want) {
  ASSERT_EQ(a.tensors().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const TensorView& got = a.tensors()[i];
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(got.name, want[i].name);
    EXPECT_EQ(got.dtype, want[i].dtype);
    EXPECT_EQ(got.shape, want[i].shape);
    ASSERT_EQ(got.nbytes, want[i].nbytes);
    if (got.nbytes > 0) {
      EXPECT_EQ(std::memcmp(got.data, want[i].data, got.nbytes), 0);
    }
  }
}

TEST(PthWriter, RoundTripsThroughTheReader) {
  Owned o = Sample();
  const std::string path = testing::TempPath("model.pth");
  ASSERT_TRUE(WritePth(path, o.views).ok());
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  ExpectSameTensors(**archive, o.views);
}

TEST(PthWriter, UsesTorchLayout) {
  Owned o = Sample();
  const std::string path = testing::TempPath("stem-name.pth");
  ASSERT_TRUE(WritePth(path, o.views).ok());
  const std::string bytes = testing::ReadFile(path);
  auto zip = ZipReader::Open(bytes, path);
  ASSERT_TRUE(zip.ok()) << zip.status();
  const std::string stem = std::filesystem::path(path).stem().string();
  std::vector<std::string> names;
  for (const ZipEntry& e : zip->entries()) {
    names.push_back(e.name);
    EXPECT_EQ(e.method, ZipReader::kStored);
    EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
    EXPECT_TRUE(zip->ReadAll(e, 1 << 20).ok()) << e.name;  // CRCs are right
  }
  std::vector<std::string> want = {stem + "/data.pkl", stem + "/byteorder"};
  for (int i = 0; i < 5; ++i) want.push_back(stem + "/data/" + std::to_string(i));
  want.push_back(stem + "/version");
  EXPECT_EQ(names, want);
  EXPECT_EQ(*zip->ReadAll(*zip->Find(stem + "/version"), 16), "3\n");
  EXPECT_EQ(*zip->ReadAll(*zip->Find(stem + "/byteorder"), 16), "little");
  const std::string pickle = *zip->ReadAll(*zip->Find(stem + "/data.pkl"), 1 << 20);
  EXPECT_EQ(pickle.substr(0, 2), "\x80\x02");
  EXPECT_THAT(pickle, HasSubstr("ctorch._utils\n_rebuild_tensor_v2\n"));
  EXPECT_THAT(pickle, HasSubstr("ctorch\nBFloat16Storage\n"));
  EXPECT_THAT(pickle, HasSubstr("ctorch\nHalfStorage\n"));
  EXPECT_THAT(pickle, HasSubstr("ccollections\nOrderedDict\n"));
}

TEST(PthWriter, Zip64RoundTrip) {
  Owned o = Sample();
  const std::string path = testing::TempPath("z64.pth");
  PthWriteOptions options;
  options.force_zip64 = true;
  options.archive_name = "archive";
  ASSERT_TRUE(WritePth(path, o.views, options).ok());
  const std::string bytes = testing::ReadFile(path);
  EXPECT_NE(bytes.find("PK\x06\x06"), std::string::npos);  // zip64 end record
  EXPECT_NE(bytes.find("archive/data.pkl"), std::string::npos);
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  ExpectSameTensors(**archive, o.views);
}

TEST(PthWriter, ManyTensorsUseLongMemoAndSeveralSetItemsBatches) {
  std::vector<float> value = {1.5f};
  std::vector<TensorView> views;
  for (int i = 0; i < 2500; ++i) {
    views.push_back({"t" + std::to_string(i), DType::kF32, {1}, value.data(), 4});
  }
  const std::string path = testing::TempPath("many.pth");
  ASSERT_TRUE(WritePth(path, views).ok());
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  ExpectSameTensors(**archive, views);
}

TEST(PthWriter, StreamingInOddChunksMatchesWholeWrites) {
  Owned o = Sample();
  const std::string whole = testing::TempPath("whole.pth");
  ASSERT_TRUE(WritePth(whole, o.views, {"same", false}).ok());
  const std::string chunked = testing::TempPath("chunked.pth");
  auto writer = CreatePthWriter(chunked, SpecsOf(o.views), {"same", false});
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::string all;
  for (const TensorView& t : o.views) all.append(static_cast<const char*>(t.data), t.nbytes);
  for (size_t i = 0; i < all.size(); i += 7) {
    ASSERT_TRUE((*writer)->Append(std::string_view(all).substr(i, 7)).ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_TRUE(testing::ReadFile(whole) == testing::ReadFile(chunked));
}

TEST(PthWriter, IncompleteOrExcessDataFailsAndLeavesNoFile) {
  Owned o = Sample();
  const std::string path = testing::TempPath("incomplete.pth");
  {
    auto writer = CreatePthWriter(path, SpecsOf(o.views));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("abc").ok());
    EXPECT_EQ((*writer)->Finish().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  {
    auto writer = CreatePthWriter(path, SpecsOf(o.views));
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->Append(std::string(10000, 'x')).code(),
              absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  // Nothing but the (absent) output in the directory: the temporary file is gone too.
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    EXPECT_EQ(entry.path().filename().string().find(".incomplete"), std::string::npos)
        << entry.path();
  }
}

TEST(PthWriter, RejectsBadSpecs) {
  std::vector<float> v = {1};
  std::vector<TensorView> dup = {{"a", DType::kF32, {1}, v.data(), 4},
                                 {"a", DType::kF32, {1}, v.data(), 4}};
  EXPECT_EQ(WritePth(testing::TempPath("dup.pth"), dup).code(), absl::StatusCode::kInvalidArgument);
  std::vector<TensorView> negative = {{"a", DType::kF32, {-1}, v.data(), 4}};
  EXPECT_EQ(WritePth(testing::TempPath("neg.pth"), negative).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<TensorView> ok = {{"a", DType::kF32, {1}, v.data(), 4}};
  EXPECT_FALSE(WritePth("/nonexistent-dir/x.pth", ok).ok());
}

}  // namespace
}  // namespace skein::model
