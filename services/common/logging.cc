#include "services/common/logging.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

namespace skein::log {
namespace {

// Orders the lines on stderr and guards the service name. Never destroyed, so that threads
// still logging while the process exits find it intact.
absl::Mutex& WriteMutex() {
  static auto* mu = new absl::Mutex();
  return *mu;
}

std::string& ServiceName() ABSL_EXCLUSIVE_LOCKS_REQUIRED(WriteMutex()) {
  static auto* name = new std::string("skein");
  return *name;
}

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

std::string Timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm utc;
  gmtime_r(&secs, &utc);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return buf;
}

}  // namespace

void SetServiceName(std::string_view name) {
  absl::MutexLock lock(&WriteMutex());
  ServiceName() = std::string(name);
}

void SetMinLevel(Level level) { min_level = static_cast<int>(level); }

bool ParseLevel(std::string_view text, Level* level) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarning, Level::kError}) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

void Write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  if (static_cast<int>(level) < min_level.load(std::memory_order_relaxed)) return;
  nlohmann::ordered_json line;
  line["ts"] = Timestamp();
  line["level"] = LevelName(level);
  absl::MutexLock lock(&WriteMutex());
  line["service"] = ServiceName();
  line["msg"] = std::string(message);
  for (const Field& f : fields) line[std::string(f.first)] = f.second;
  // Invalid UTF-8 in a field must not make logging throw.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

}  // namespace skein::log
