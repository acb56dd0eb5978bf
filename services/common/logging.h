// Structured logs: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-25T03:00:00.123Z","level":"info","service":"skein-router",
//    "msg":"serving","listen":"127.0.0.1:50051"}
// Thread-safe: lines from different threads never interleave.
#ifndef SKEIN_SERVICES_COMMON_LOGGING_H_
#define SKEIN_SERVICES_COMMON_LOGGING_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace skein::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Name written as "service" in every line (set once at start-up).
void SetServiceName(std::string_view name);
// Lines below this level are dropped. Default: info.
void SetMinLevel(Level level);
// Parses "debug", "info", "warning", "error"; false if unknown.
bool ParseLevel(std::string_view text, Level* level);

using Field = std::pair<std::string_view, std::string>;

void Write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kDebug, m, f);
}
inline void Info(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kInfo, m, f);
}
inline void Warning(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kWarning, m, f);
}
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kError, m, f);
}

}  // namespace skein::log

#endif  // SKEIN_SERVICES_COMMON_LOGGING_H_
