#ifndef SKEIN_TOOLS_CLI_VERSION_H_
#define SKEIN_TOOLS_CLI_VERSION_H_

namespace skein::cli {

inline constexpr char kVersion[] = "0.1.0";
// The gRPC API package the binaries speak.
inline constexpr char kApiVersion[] = "skein.v1";

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_VERSION_H_
