// A one-line progress display on stderr for long CLI operations. It draws only when stderr is
// a terminal, so scripts and logs see nothing, and redraws at most ten times a second.
//
// Not thread-safe: one operation updates it.
#ifndef SKEIN_TOOLS_CLI_PROGRESS_H_
#define SKEIN_TOOLS_CLI_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace skein::cli {

class TerminalProgress {
 public:
  explicit TerminalProgress(std::string label);
  // Clears the line if anything was drawn.
  ~TerminalProgress();
  TerminalProgress(const TerminalProgress&) = delete;
  TerminalProgress& operator=(const TerminalProgress&) = delete;

  void Update(uint64_t done, uint64_t total);

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_PROGRESS_H_
