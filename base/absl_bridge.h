// Debian's Abseil is built with its own absl::string_view rather than std::string_view, so
// code holding a std::string_view must convert it for Abseil's APIs (StrCat, StrSplit, the
// hash maps' heterogeneous lookup). One inline conversion, free at run time.
#ifndef SKEIN_BASE_ABSL_BRIDGE_H_
#define SKEIN_BASE_ABSL_BRIDGE_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace skein::base {

inline absl::string_view AsAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace skein::base

#endif  // SKEIN_BASE_ABSL_BRIDGE_H_
