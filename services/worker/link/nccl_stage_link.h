// The GPU stage link (`--link nccl`): each pair of consecutive stages k -> k+1 shares a 2-rank
// NCCL communicator, set up through the OpenNcclLink RPC (worker.proto). Steps and their
// results still travel on a Relay stream, as on the gRPC link, but the frames carry no rows:
// each frame is followed by one NCCL transfer of its rows (ActivationFrame.nccl), received in
// frame order because the stream is ordered.
//
// Both sides stage the rows in device memory of their own CUDA context on the stage's device,
// copied from and to host StageActivations, since the device model takes and returns host
// activations today. Handing the device model's own buffers to the link, with no host copies,
// is the next step.
//
// The CUDA and NCCL calls go through the GPU plugin (model/device/gpu_plugin.h), loaded at run
// time: where it is missing (a build without CUDA) or was built without NCCL, the functions
// here answer UNAVAILABLE saying so; NcclLinkBuilt() tells.
#ifndef SKEIN_SERVICES_WORKER_LINK_NCCL_STAGE_LINK_H_
#define SKEIN_SERVICES_WORKER_LINK_NCCL_STAGE_LINK_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/worker/link/stage_link.h"
#include "services/worker/model/stage_model.h"
#include "skein/v1/worker.pb.h"

namespace skein::link {

// Size of an NCCL communicator's unique id (NCCL_UNIQUE_ID_BYTES; the NCCL build checks it).
inline constexpr size_t kNcclIdBytes = 128;

// Whether the GPU plugin is here and carries NCCL.
bool NcclLinkBuilt();

// CUDA devices this process may use for NCCL links: 0, with the reason in *why, where the build
// has no NCCL or the machine no usable GPU.
int NcclUsableDevices(std::string* why);

// Checks an OpenNcclLink request for a stage of row width `width` (n_embd): INVALID_ARGUMENT
// naming the first problem (the checks of worker.proto). Pure; the same in every build.
absl::Status CheckOpenNcclLinkRequest(const v1::OpenNcclLinkRequest& request, uint32_t width);

struct NcclStageLinkOptions {
  // The next stage's address.
  std::string target;
  // This stage's CUDA device.
  int cuda_device = 0;
  // Element type of the rows on the link (fp32: exact; bf16: half the bytes).
  v1::ActivationDType dtype = v1::ACTIVATION_DTYPE_FP32;
  // Row width (n_embd).
  uint32_t width = 0;
  // How long opening waits for the next stage to answer OpenNcclLink (it may still be loading
  // its model: UNAVAILABLE is retried until then).
  absl::Duration open_timeout = absl::Minutes(10);
};

// Opens the sending side of the link to the next stage: makes the communicator's id, has the
// next stage join through OpenNcclLink, joins as rank 0, and opens the Relay stream. Blocks
// until all that is done.
//
// The link then behaves as StageLink says, and:
//  - a broken Relay stream fails the steps in flight with UNAVAILABLE and aborts the
//    communicator (the peer may be gone, so its transfers may never finish); the next Send
//    opens a new communicator and stream (a new OpenNcclLink, which replaces the next stage's
//    old link), and fails with UNAVAILABLE if that does not succeed;
//  - a CUDA or NCCL failure while sending fails the step with INTERNAL (NCCL's message) and
//    breaks the link the same way; nothing aborts the process;
//  - stats() count the bytes sent over NCCL and the control frames;
//  - destroying it lets the transfers already queued finish, ends the stream, and destroys the
//    communicator (ncclCommDestroy).
// Errors: UNAVAILABLE (no GPU plugin with NCCL, no such device, or the next stage did not
// answer within open_timeout); INVALID_ARGUMENT (width 0, unknown dtype); INTERNAL (the CUDA
// device or NCCL failed); those of OpenNcclLink.
absl::StatusOr<std::unique_ptr<StageLink>> OpenNcclStageLink(const NcclStageLinkOptions& options);

// The receiving side of one link, on stage k+1: made by OpenNcclLink, used by the Relay stream
// whose frames name it.
class NcclInboundLink {
 public:
  virtual ~NcclInboundLink() = default;

  virtual uint64_t link_id() const = 0;

  // Receives the rows of one NCCL frame (`rows` × `width` in `dtype`, then as many v_first rows
  // when `v_first`) into *acts, replacing its contents: waits for the join to complete, posts
  // the receive and waits for it. Call in frame order; calls are serialized. Errors:
  // UNAVAILABLE (the link was aborted, or the join failed); INTERNAL (a CUDA or NCCL failure;
  // the link is aborted, as the two sides no longer agree on what comes next).
  virtual absl::Status Receive(uint32_t rows, uint32_t width, bool v_first,
                               v1::ActivationDType dtype, model::StageActivations* acts) = 0;

  // Tears the communicator down at once (a newer link replaces this one, or the sender is
  // gone): a Receive waiting on a transfer returns UNAVAILABLE, later ones fail at once.
  // Thread-safe; idempotent.
  virtual void Abort() = 0;
};

// Starts the receiving side of a link on CUDA device `cuda_device` from a request that passed
// CheckOpenNcclLinkRequest: joins the communicator as rank 1 (a CUDA context of its own on the
// device, then the join) on a thread of its own and returns without waiting (the sender joins
// once this answers); a failure there fails the first Receive with UNAVAILABLE. Errors:
// UNAVAILABLE (no GPU plugin with NCCL, or no such device).
absl::StatusOr<std::unique_ptr<NcclInboundLink>> AcceptNcclLink(
    const v1::OpenNcclLinkRequest& request, int cuda_device);

}  // namespace skein::link

#endif  // SKEIN_SERVICES_WORKER_LINK_NCCL_STAGE_LINK_H_
