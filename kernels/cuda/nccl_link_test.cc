// NcclLink on the GPUs present: a rank exchanging with itself (one GPU), and two ranks on two
// GPUs in two threads passing activations both ways. SKIP without a GPU (exit 0).
#include "kernels/cuda/nccl_link.h"

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/hash_uniform.h"

namespace skein::cuda {
namespace {

std::vector<float> Pattern(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = HashUniform(seed, i, 0.0f, 1.0f);
  return v;
}

// Sends `pattern(rank)` to the next rank and receives the previous rank's, in a ring.
Status RingExchange(int device, const std::string& id, int world, int rank, size_t n, bool* ok) {
  std::unique_ptr<Context> ctx;
  SKEIN_CUDA_RETURN_IF_ERROR(Context::Create(device, &ctx));
  std::unique_ptr<NcclLink> link;
  SKEIN_CUDA_RETURN_IF_ERROR(NcclLink::Create(ctx.get(), id, world, rank, &link));
  DeviceBuffer send, recv;
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(n * sizeof(float), &send));
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(n * sizeof(float), &recv));
  const std::vector<float> mine = Pattern(n, rank);
  SKEIN_CUDA_RETURN_IF_ERROR(CopyToDevice(*ctx, send.data(), mine.data(), n * sizeof(float)));
  SKEIN_CUDA_RETURN_IF_ERROR(link->SendRecv(send.data(), (rank + 1) % world, recv.data(),
                                            (rank + world - 1) % world, n, DType::kF32));
  std::vector<float> got(n);
  SKEIN_CUDA_RETURN_IF_ERROR(CopyToHost(*ctx, got.data(), recv.data(), n * sizeof(float)));
  *ok = got == Pattern(n, (rank + world - 1) % world);
  return Status();
}

int Main() {
  std::string why;
  if (!DeviceAvailable(&why)) {
    return testing::SkipProgram("nccl_link_test", "no usable GPU (" + why + ")");
  }
  testing::Checks checks;
  std::string id;
  Status st = NewNcclUniqueId(&id);
  checks.Expect("NewNcclUniqueId", st.ok() && id.size() == kNcclUniqueIdBytes, st.message());
  if (!st.ok()) return checks.Finish();
  bool ok = false;
  st = RingExchange(0, id, 1, 0, 1 << 20, &ok);
  checks.Expect("one rank sends to and receives from itself", st.ok() && ok, st.message());

  const int devices = DeviceCount();
  if (devices < 2) {
    std::printf("SKIP two ranks on two GPUs: only one GPU\n");
  } else {
    std::string id2;
    st = NewNcclUniqueId(&id2);
    bool ok0 = false, ok1 = false;
    Status st0, st1;
    std::thread t0([&] { st0 = RingExchange(0, id2, 2, 0, 3 << 20, &ok0); });
    std::thread t1([&] { st1 = RingExchange(1, id2, 2, 1, 3 << 20, &ok1); });
    t0.join();
    t1.join();
    checks.Expect("two ranks on two GPUs exchange activations",
                  st.ok() && st0.ok() && st1.ok() && ok0 && ok1, st0.message() + st1.message());
  }
  return checks.Finish();
}

}  // namespace
}  // namespace skein::cuda

int main() { return skein::cuda::Main(); }
