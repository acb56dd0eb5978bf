// Debian's Abseil is built with its own absl::string_view (not an alias of std::string_view),
// so std::string_view values must be converted before they reach StrCat or a string-keyed
// absl container.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_STRING_COMPAT_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_STRING_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace skein::model {

inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_STRING_COMPAT_H_
