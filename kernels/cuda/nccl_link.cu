#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "kernels/cuda/context_internal.h"
#include "kernels/cuda/nccl_link.h"

namespace skein::cuda {
namespace {

static_assert(kNcclUniqueIdBytes == NCCL_UNIQUE_ID_BYTES, "NCCL unique id size changed");

Status NcclStatus(ncclResult_t rc, const char* what) {
  if (rc == ncclSuccess) return Status();
  return Status::Error(std::string(what) + ": " + ncclGetErrorString(rc));
}

Status NcclType(DType t, ncclDataType_t* out) {
  switch (t) {
    case DType::kF32:
      *out = ncclFloat32;
      return Status();
    case DType::kBF16:
      *out = ncclBfloat16;
      return Status();
    case DType::kF16:
      *out = ncclFloat16;
      return Status();
    default:
      return Status::Error("NcclLink: type must be fp32, bf16 or fp16");
  }
}

}  // namespace

Status NewNcclUniqueId(std::string* id) {
  ncclUniqueId unique;
  SKEIN_CUDA_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&unique), "ncclGetUniqueId"));
  id->assign(unique.internal, sizeof(unique.internal));
  return Status();
}

Status NcclLink::Create(Context* ctx, const std::string& id, int world, int rank,
                        std::unique_ptr<NcclLink>* out) {
  if (id.size() != kNcclUniqueIdBytes) return Status::Error("NcclLink: bad unique id size");
  if (world < 1 || rank < 0 || rank >= world) return Status::Error("NcclLink: bad rank");
  ncclUniqueId unique;
  std::memcpy(unique.internal, id.data(), sizeof(unique.internal));
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(ctx->device()), "cudaSetDevice"));
  std::unique_ptr<NcclLink> link(new NcclLink(ctx, world, rank));
  ncclComm_t comm = nullptr;
  SKEIN_CUDA_RETURN_IF_ERROR(
      NcclStatus(ncclCommInitRank(&comm, world, unique, rank), "ncclCommInitRank"));
  link->comm_ = comm;
  *out = std::move(link);
  return Status();
}

NcclLink::~NcclLink() {
  if (comm_ == nullptr) return;
  // Let queued transfers finish before the communicator goes away.
  cudaStreamSynchronize(StreamOf(*ctx_));
  ncclCommDestroy(static_cast<ncclComm_t>(comm_));
}

void NcclLink::Abort() {
  if (comm_ == nullptr) return;
  ncclCommAbort(static_cast<ncclComm_t>(comm_));
  comm_ = nullptr;
}

Status NcclLink::Send(const void* data, size_t count, DType type, int peer) {
  ncclDataType_t t = ncclFloat32;
  SKEIN_CUDA_RETURN_IF_ERROR(NcclType(type, &t));
  if (peer < 0 || peer >= world_) return Status::Error("NcclLink::Send: bad peer");
  if (comm_ == nullptr) return Status::Error("NcclLink::Send: the link was aborted");
  return NcclStatus(ncclSend(data, count, t, peer, static_cast<ncclComm_t>(comm_), StreamOf(*ctx_)),
                    "ncclSend");
}

Status NcclLink::Recv(void* data, size_t count, DType type, int peer) {
  ncclDataType_t t = ncclFloat32;
  SKEIN_CUDA_RETURN_IF_ERROR(NcclType(type, &t));
  if (peer < 0 || peer >= world_) return Status::Error("NcclLink::Recv: bad peer");
  if (comm_ == nullptr) return Status::Error("NcclLink::Recv: the link was aborted");
  return NcclStatus(ncclRecv(data, count, t, peer, static_cast<ncclComm_t>(comm_), StreamOf(*ctx_)),
                    "ncclRecv");
}

Status NcclLink::SendRecv(const void* send, int send_peer, void* recv, int recv_peer, size_t count,
                          DType type) {
  SKEIN_CUDA_RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), "ncclGroupStart"));
  Status sent = Send(send, count, type, send_peer);
  Status received = sent.ok() ? Recv(recv, count, type, recv_peer) : Status();
  // The group must be closed whatever happened inside it.
  const Status ended = NcclStatus(ncclGroupEnd(), "ncclGroupEnd");
  if (!sent.ok()) return sent;
  if (!received.ok()) return received;
  return ended;
}

}  // namespace skein::cuda
