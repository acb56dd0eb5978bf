#include <cmath>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "services/worker/model/tensor_archive.h"
#include "tests/support/test_data.h"

namespace skein::model {
namespace {

float Bf16ToFloat(uint16_t b) {
  uint32_t bits = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

TEST(PthReader, ReadsGoldenTinyV7) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/multiversion/tiny-v7.pth");
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorArchive& a = **archive;
  ASSERT_EQ(a.tensors().size(), 105u);
  EXPECT_EQ(a.tensors().front().name, "emb.weight");
  const TensorView* emb = a.Find("emb.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::kBF16);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{300, 128}));
  EXPECT_EQ(emb->nbytes, 300u * 128 * 2);
  const TensorView* ln = a.Find("blocks.0.ln1.weight");
  ASSERT_NE(ln, nullptr);
  const auto* v = static_cast<const uint16_t*>(ln->data);
  for (int i = 0; i < 128; ++i) EXPECT_TRUE(std::isfinite(Bf16ToFloat(v[i])));
  EXPECT_EQ(a.Find("blocks.0.att.x_r")->shape, (std::vector<int64_t>{1, 1, 128}));
  EXPECT_EQ(a.Find("blocks.0.att.r_k")->shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(a.Find("nope"), nullptr);
}

}  // namespace
}  // namespace skein::model
