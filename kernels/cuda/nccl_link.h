// Activations between pipeline stages on GPUs: NCCL point-to-point send/recv on a Context's
// stream, behind a plain C++ interface. The communicator's unique id is plain bytes, so the
// stages can agree on it through any rendezvous (the router's gRPC control path) before
// joining.
//
// A link is used by one host thread at a time (its Context's). Sends and receives are
// enqueued on the context's stream and complete in stream order; a Send must be matched by a
// Recv of the same size and type on the peer, posted in the same order.
#ifndef SKEIN_KERNELS_CUDA_NCCL_LINK_H_
#define SKEIN_KERNELS_CUDA_NCCL_LINK_H_

#include <cstddef>
#include <memory>
#include <string>

#include "kernels/cuda/context.h"

namespace skein::cuda {

// Size of a communicator's unique id (NCCL_UNIQUE_ID_BYTES).
inline constexpr size_t kNcclUniqueIdBytes = 128;

// A fresh unique id for a new communicator, as kNcclUniqueIdBytes bytes. Made once, by one
// rank (stage 0), and handed to every other rank out of band.
Status NewNcclUniqueId(std::string* id);

class NcclLink {
 public:
  // Joins the communicator `id` (from NewNcclUniqueId) as rank `rank` of `world`, on ctx's
  // device. Blocks until every rank has joined (call it from all ranks concurrently; ranks
  // must be on different devices). `ctx` must outlive the link.
  static Status Create(Context* ctx, const std::string& id, int world, int rank,
                       std::unique_ptr<NcclLink>* out);
  // Lets the transfers already queued finish, then destroys the communicator. With a peer
  // that is gone those transfers never finish: Abort first.
  ~NcclLink();
  NcclLink(const NcclLink&) = delete;
  NcclLink& operator=(const NcclLink&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // Enqueues sending `count` elements of `type` (fp32, bf16 or fp16) from device memory to
  // rank `peer`.
  Status Send(const void* data, size_t count, DType type, int peer);
  // Enqueues receiving `count` elements of `type` from rank `peer` into device memory.
  Status Recv(void* data, size_t count, DType type, int peer);
  // A send to `send_peer` and a receive from `recv_peer` as one group, so that a ring of
  // stages (or a rank and itself) cannot deadlock on the order of the two.
  Status SendRecv(const void* send, int send_peer, void* recv, int recv_peer, size_t count,
                  DType type);

  // Tears the communicator down at once (ncclCommAbort) without waiting for queued transfers:
  // for a peer that is gone, whose transfers would never complete. A transfer still queued
  // ends unfinished, so a thread waiting on the context's stream for it returns. Afterwards
  // every call fails and the destructor has nothing left to do. Idempotent. May be called from
  // another thread than the link's only while that thread is not inside a call of the link
  // (waiting on the stream is fine).
  void Abort();
  bool aborted() const { return comm_ == nullptr; }

 private:
  NcclLink(Context* ctx, int world, int rank) : ctx_(ctx), world_(world), rank_(rank) {}
  Context* ctx_;
  int world_;
  int rank_;
  void* comm_ = nullptr;  // ncclComm_t
};

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_NCCL_LINK_H_
