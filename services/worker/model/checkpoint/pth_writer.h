// Writes tensors as a PyTorch zip checkpoint, the layout torch.save produces, so that both
// OpenPth and torch.load read it:
//   <stem>/data.pkl   pickle protocol 2 of a dict {name: _rebuild_tensor_v2(...)}, with
//                     persistent ids ('storage', torch.<Type>Storage, '<n>', 'cpu', numel)
//   <stem>/byteorder  "little"
//   <stem>/data/<n>   the n-th tensor's bytes, stored uncompressed and 64-byte aligned
//   <stem>/version    "3\n"
// Zip64 records are used where sizes or offsets need them. Keys keep the given order.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_PTH_WRITER_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_PTH_WRITER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/checkpoint/tensor_writer.h"

namespace skein::model {

struct PthWriteOptions {
  // The archive's top folder; empty means the output file name without its extension (what
  // torch.save uses).
  std::string archive_name;
  // Writes zip64 records even for a small file (to exercise readers).
  bool force_zip64 = false;
};

// A streaming writer (see tensor_writer.h). Each tensor becomes its own storage.
absl::StatusOr<std::unique_ptr<TensorWriter>> CreatePthWriter(const std::string& path,
                                                              const std::vector<TensorSpec>& specs,
                                                              const PthWriteOptions& options = {});

// Writes `tensors` in order, atomically.
absl::Status WritePth(const std::string& path, const std::vector<TensorView>& tensors,
                      const PthWriteOptions& options = {});

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_PTH_WRITER_H_
