#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/checkpoint/byte_io.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/testing/test_zip.h"

namespace skein::model {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

std::string WithHeader(const std::string& json, const std::string& data) {
  std::string out;
  AppendLE<uint64_t>(out, json.size());
  return out + json + data;
}

absl::StatusOr<std::unique_ptr<TensorArchive>> Open(const std::string& bytes) {
  return OpenSafetensorsFromSource("m.safetensors", ByteSourceFromString(bytes));
}

TEST(Safetensors, RoundTripKeepsOrderDataAndMetadata) {
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3f80, 0xbf80, 0x7f80};
  std::vector<uint16_t> c = {0x3c00};
  std::vector<TensorView> tensors = {
      {"z.first", DType::kF32, {2, 3}, a.data(), 24},
      {"a.second", DType::kBF16, {3}, b.data(), 6},
      {"empty", DType::kF32, {0}, nullptr, 0},
      {"m.third", DType::kF16, {1, 1, 1}, c.data(), 2},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"source", "test"}};
  const std::string path = testing::TempPath("rt.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, meta).ok());
  auto archive = OpenSafetensors(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorArchive& got = **archive;
  EXPECT_EQ(got.metadata(), meta);
  ASSERT_EQ(got.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    const TensorView& t = got.tensors()[i];
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.dtype, tensors[i].dtype);
    EXPECT_EQ(t.shape, tensors[i].shape);
    ASSERT_EQ(t.nbytes, tensors[i].nbytes);
    if (t.nbytes > 0) {
      EXPECT_EQ(std::memcmp(t.data, tensors[i].data, t.nbytes), 0);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % DTypeSize(t.dtype), 0u);
    }
  }
  // The header is padded so that data starts 8-byte aligned.
  const std::string bytes = testing::ReadFile(path);
  EXPECT_EQ(LoadLE<uint64_t>(bytes.data()) % 8, 0u);
  EXPECT_EQ(*DetectCheckpointFormat(path), CheckpointFormat::kSafetensors);
  auto via_magic = OpenCheckpoint(path);
  ASSERT_TRUE(via_magic.ok());
  EXPECT_EQ((*via_magic)->tensors().size(), 4u);
}

TEST(Safetensors, MisalignedDataIsCopied) {
  // A 2-byte bf16 tensor first puts the f32 tensor at an odd 2 (mod 4) offset.
  std::string json = R"({"h":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},)"
                     R"("f":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  std::string data(10, '\0');
  float f[2] = {1.25f, -3.5f};
  std::memcpy(&data[2], f, 8);
  auto archive = Open(WithHeader(json, data));
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorView* t = (*archive)->Find("f");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 4, 0u);
  float got[2];
  std::memcpy(got, t->data, 8);
  EXPECT_EQ(got[0], 1.25f);
  EXPECT_EQ(got[1], -3.5f);
}

TEST(Safetensors, RejectsMalformedHeaders) {
  struct Case {
    std::string json;
    std::string data;
    absl::StatusCode code;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"not json", "", absl::StatusCode::kInvalidArgument, "JSON"},
      {"[1,2]", "", absl::StatusCode::kInvalidArgument, "JSON"},
      {R"({"t":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, 0),
       absl::StatusCode::kInvalidArgument, "'t'"},
      {R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 0),
       absl::StatusCode::kInvalidArgument, "'t'"},
      {R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, 0),
       absl::StatusCode::kInvalidArgument, "'t'"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, 0),
       absl::StatusCode::kDataLoss, "'t'"},
      {R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, 0),
       absl::StatusCode::kInvalidArgument, "'t'"},  // gap before
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       std::string(8, 0), absl::StatusCode::kInvalidArgument, "'b'"},  // overlap
      {R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(6, 0),
       absl::StatusCode::kInvalidArgument, "after the last tensor"},
      {R"({"t":{"dtype":"F32","shape":[1]}})", "", absl::StatusCode::kInvalidArgument, "'t'"},
      {R"({"__metadata__":{"k":1}})", "", absl::StatusCode::kInvalidArgument, "__metadata__"},
      {std::string(20, '[') + std::string(20, ']'), "", absl::StatusCode::kInvalidArgument,
       "deeper"},
  };
  for (const Case& c : cases) {
    auto archive = Open(WithHeader(c.json, c.data));
    EXPECT_EQ(archive.status().code(), c.code) << c.json << " " << archive.status();
    EXPECT_THAT(archive.status().message(), HasSubstr("m.safetensors")) << c.json;
    EXPECT_THAT(archive.status().message(), HasSubstr(c.mentions)) << c.json;
  }
}

TEST(Safetensors, TruncatedAtEveryOffset) {
  std::vector<float> a = {1, 2, 3};
  const std::string path = testing::TempPath("cut.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"a", DType::kF32, {3}, a.data(), 12}}, {{"k", "v"}}).ok());
  const std::string bytes = testing::ReadFile(path);
  ASSERT_TRUE(Open(bytes).ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto archive = Open(bytes.substr(0, n));
    ASSERT_FALSE(archive.ok()) << n;
    EXPECT_THAT(archive.status().code(),
                AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument));
  }
  // A header length far beyond the file.
  std::string huge = bytes;
  huge[7] = '\x10';
  EXPECT_EQ(Open(huge).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Safetensors, WriterRejectsBadInput) {
  std::vector<float> a = {1};
  EXPECT_EQ(WriteSafetensors(testing::TempPath("x.safetensors"),
                             {{"__metadata__", DType::kF32, {1}, a.data(), 4}}, {})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSafetensors(testing::TempPath("x.safetensors"),
                             {{"a", DType::kF32, {2}, a.data(), 4}}, {})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(
      WriteSafetensors("/nonexistent-dir/x.safetensors", {{"a", DType::kF32, {1}, a.data(), 4}}, {})
          .ok());
}

}  // namespace
}  // namespace skein::model
