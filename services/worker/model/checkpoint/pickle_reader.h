// Decodes the `data.pkl` of a PyTorch checkpoint: a pickle (protocol 2, as torch.save writes
// it) of a dict or collections.OrderedDict from names to tensors.
//
// This is a small stack machine for the opcode subset that pickled state dicts use, not a
// general unpickler: it builds plain data (ints, strings, tuples, dicts, tensor descriptions)
// and calls only a fixed set of known constructors (OrderedDict, torch._utils._rebuild_*).
// Anything else is an error naming the opcode or callable and its byte offset. It never
// recurses, and caps the objects it creates, so hostile input cannot exhaust the stack.
// Stateless functions; safe to call from several threads.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_PICKLE_READER_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_PICKLE_READER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace skein::model {

// A storage named by a persistent id ('storage', torch.<Type>Storage, key, location, numel).
struct PickledStorage {
  std::string type_name;  // e.g. "BFloat16Storage" (without the "torch." module)
  std::string key;        // the record is <prefix>/data/<key>
  std::string location;   // e.g. "cpu"
  int64_t numel = 0;      // in elements of the storage's type
};

// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...).
struct PickledTensor {
  PickledStorage storage;
  int64_t offset = 0;  // in elements
  std::vector<int64_t> size;
  std::vector<int64_t> stride;  // in elements
};

struct PickledEntry {
  enum class Kind { kTensor, kScalar, kOther };
  std::string key;
  Kind kind = Kind::kOther;
  PickledTensor tensor;     // kTensor
  std::string scalar_text;  // kScalar: str/int/float/bool/None as text (first 4 KiB)
  std::string other_kind;   // kOther: "list", "dict", "tuple", ...
};

// Parses a pickled dict. `where` names the pickle in errors (e.g. "model.pth: data.pkl").
// INVALID_ARGUMENT for unsupported content (opcodes, callables, a non-dict top level or
// non-string keys), DATA_LOSS for a truncated or inconsistent stream.
absl::StatusOr<std::vector<PickledEntry>> ParseStateDictPickle(std::string_view pickle,
                                                               const std::string& where);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_PICKLE_READER_H_
