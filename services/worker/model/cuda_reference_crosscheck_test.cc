// The CPU reference that the CUDA kernels are checked against (kernels/cuda/reference: the
// per-token forward in the GPU's weight layout) agrees with this package's independent float64
// transcription of spec §2.4 (rwkv7_reference.h, itself held to the official goldens), on a
// random x070 checkpoint in the official layout. So the GPU tests, which compare the GPU to
// that CPU reference, compare it to the spec.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/reference/rwkv7_reference_forward.h"
#include "kernels/cuda/rwkv7_weights.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv7_reference.h"
#include "services/worker/model/testing/random_rwkv7_archive.h"

namespace skein::model {
namespace {

using cuda::GlobalTensor;
using cuda::LayerTensor;
using cuda::Rwkv7WeightLayout;

double Sigma(const std::vector<double>& v) {
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double sq = 0;
  for (double x : v) sq += (x - mean) * (x - mean);
  return std::sqrt(sq / static_cast<double>(v.size()));
}

// Copies the fp32 checkpoint tensor `name` into the layout's tensor, transposing the LoRA
// factors, which the GPU layout stores [out][in] (rwkv7_weights.h). Absent tensors (layer 0's
// unused value residual) stay zero.
void Put(const TensorArchive& archive, const std::string& name, const cuda::TensorSpec& spec,
         bool transpose, std::vector<uint8_t>* bytes) {
  const TensorView* t = archive.Find(name);
  if (t == nullptr) return;
  ASSERT_EQ(t->dtype, DType::kF32) << name;
  ASSERT_EQ(t->numel(), spec.count()) << name;
  float* dst = reinterpret_cast<float*>(bytes->data() + spec.offset);
  const float* src = static_cast<const float*>(t->data);
  if (!transpose) {
    std::memcpy(dst, src, spec.count() * sizeof(float));
    return;
  }
  // src is [in][out] = [spec.cols][spec.rows]; dst is [out][in].
  for (int64_t o = 0; o < spec.rows; ++o) {
    for (int64_t i = 0; i < spec.cols; ++i) dst[o * spec.cols + i] = src[i * spec.rows + o];
  }
}

TEST(CudaReferenceCrosscheckTest, PerTokenForwardMatchesTheFloat64Reference) {
  RandomModelShape shape;
  shape.n_layer = 3;
  shape.n_embd = 128;
  shape.vocab = 300;
  auto archive = MakeRandomRwkv7Archive(shape, 11, DType::kF32);
  ASSERT_TRUE(archive.ok()) << archive.status();
  const TensorArchive& a = **archive;

  cuda::Rwkv7Shape s;
  s.layers = shape.n_layer;
  s.embd = shape.n_embd;
  s.vocab = shape.vocab;
  s.head_size = 64;
  s.ffn = a.Find("blocks.0.ffn.key.weight")->shape[0];
  s.d_decay = a.Find("blocks.0.att.w1")->shape[1];
  s.d_iclr = a.Find("blocks.0.att.a1")->shape[1];
  s.d_value = a.Find("blocks.1.att.v1")->shape[1];
  s.d_gate = a.Find("blocks.0.att.g1")->shape[1];
  const Rwkv7WeightLayout layout(s, DType::kF32);
  std::vector<uint8_t> bytes(layout.total_bytes(), 0);
  Put(a, "emb.weight", layout.get(cuda::kEmb), false, &bytes);
  Put(a, "blocks.0.ln0.weight", layout.get(cuda::kLn0W), false, &bytes);
  Put(a, "blocks.0.ln0.bias", layout.get(cuda::kLn0B), false, &bytes);
  Put(a, "ln_out.weight", layout.get(cuda::kLnOutW), false, &bytes);
  Put(a, "ln_out.bias", layout.get(cuda::kLnOutB), false, &bytes);
  Put(a, "head.weight", layout.get(cuda::kHead), false, &bytes);
  const struct {
    LayerTensor id;
    const char* name;
    bool transpose;
  } kLayer[] = {
      {cuda::kLn1W, "ln1.weight", false},
      {cuda::kLn1B, "ln1.bias", false},
      {cuda::kLn2W, "ln2.weight", false},
      {cuda::kLn2B, "ln2.bias", false},
      {cuda::kXr, "att.x_r", false},
      {cuda::kXw, "att.x_w", false},
      {cuda::kXk, "att.x_k", false},
      {cuda::kXv, "att.x_v", false},
      {cuda::kXa, "att.x_a", false},
      {cuda::kXg, "att.x_g", false},
      {cuda::kW0, "att.w0", false},
      {cuda::kW1, "att.w1", true},
      {cuda::kW2, "att.w2", true},
      {cuda::kA0, "att.a0", false},
      {cuda::kA1, "att.a1", true},
      {cuda::kA2, "att.a2", true},
      {cuda::kV0, "att.v0", false},
      {cuda::kV1, "att.v1", true},
      {cuda::kV2, "att.v2", true},
      {cuda::kG1, "att.g1", true},
      {cuda::kG2, "att.g2", true},
      {cuda::kKk, "att.k_k", false},
      {cuda::kKa, "att.k_a", false},
      {cuda::kRk, "att.r_k", false},
      {cuda::kWr, "att.receptance.weight", false},
      {cuda::kWk, "att.key.weight", false},
      {cuda::kWv, "att.value.weight", false},
      {cuda::kWo, "att.output.weight", false},
      {cuda::kLnxW, "att.ln_x.weight", false},
      {cuda::kLnxB, "att.ln_x.bias", false},
      {cuda::kFfnXk, "ffn.x_k", false},
      {cuda::kFfnKey, "ffn.key.weight", false},
      {cuda::kFfnValue, "ffn.value.weight", false},
  };
  for (int64_t l = 0; l < s.layers; ++l) {
    for (const auto& t : kLayer) {
      Put(a, "blocks." + std::to_string(l) + "." + t.name, layout.get(l, t.id), t.transpose,
          &bytes);
    }
  }
  ASSERT_FALSE(HasFatalFailure());

  const cuda::reference::Rwkv7ReferenceModel ours(layout, bytes);
  testing::Rwkv7Reference theirs(a);
  cuda::reference::Rwkv7HostState state = ours.NewState();
  const int32_t tokens[] = {0, 17, 299, 5, 5, 123, 64, 1};
  std::vector<float> logits;
  for (int32_t token : tokens) {
    ours.Token(token, &state, &logits);
    const std::vector<double> want = theirs.Forward(token);
    ASSERT_EQ(logits.size(), want.size());
    const double sigma = Sigma(want);
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::fabs(logits[i] - want[i]));
    std::printf("token %d: max|diff| %.3g sigma\n", token, worst / sigma);
    // fp32 with double sums against float64: the bound the GPU test holds fp32 runs to.
    EXPECT_LE(worst, 1e-4 * sigma) << "token " << token << ", sigma " << sigma;
  }
  for (int l = 0; l < s.layers; ++l) {
    const std::vector<double>& kv = theirs.att_kv(l);
    const float* got = state.wkv.data() + l * s.embd * s.head_size;
    double worst = 0;
    for (size_t i = 0; i < kv.size(); ++i) worst = std::max(worst, std::fabs(got[i] - kv[i]));
    EXPECT_LE(worst, 1e-4 * std::max(Sigma(kv), 1e-6)) << "layer " << l;
  }
}

}  // namespace
}  // namespace skein::model
