#include "tools/cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace skein::cli {

TerminalProgress::TerminalProgress(std::string label)
    : label_(std::move(label)), enabled_(isatty(STDERR_FILENO) == 1) {}

TerminalProgress::~TerminalProgress() {
  if (drawn_) std::fprintf(stderr, "\r\033[K");
}

void TerminalProgress::Update(uint64_t done, uint64_t total) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  double pct = total == 0 ? 100.0 : 100.0 * static_cast<double>(done) / static_cast<double>(total);
  std::fprintf(stderr, "\r\033[K%s %5.1f%% (%.1f / %.1f MiB)", label_.c_str(), pct,
               static_cast<double>(done) / (1 << 20), static_cast<double>(total) / (1 << 20));
  std::fflush(stderr);
}

}  // namespace skein::cli
