// Starts a service binary as a child process for cross-process tests, and talks to it the
// way an operator would: ready file, signals, exit status, captured stderr.
// Not thread-safe; one object per child.
#ifndef SKEIN_TESTS_SUPPORT_CHILD_PROCESS_H_
#define SKEIN_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace skein::testing {

// Path of a binary built by Bazel, from the test's runfiles, e.g.
// RunfilePath("services/tokenizer/skein-tokenizer"). Empty if absent.
std::string RunfilePath(const std::string& workspace_relative);

// A fresh directory under $TEST_TMPDIR (or /tmp), removed by nobody: Bazel cleans it.
std::string MakeTempDir(const std::string& prefix);

class ChildProcess {
 public:
  // Starts `argv[0]` with `argv`; stdout and stderr go to files in a temp directory.
  explicit ChildProcess(std::vector<std::string> argv);
  ~ChildProcess();  // SIGKILLs the child if it still runs

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }

  void Signal(int signal_number);
  // Waits for exit; returns the exit code (128+signal if killed), or nullopt on time-out.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool Running();

  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string dir_;
};

// Waits until `path` exists and holds a complete JSON object (ready files are renamed into
// place); returns its content, or empty after `timeout`.
std::string WaitForFile(const std::string& path, std::chrono::milliseconds timeout);

// Percent-encodes `s` for a URL query (everything but letters, digits and "_.-").
std::string UrlEncode(const std::string& s);

// Minimal HTTP/1.0 GET to 127.0.0.1:port; returns the body, or nullopt on failure.
std::optional<std::string> HttpGet(int port, const std::string& path);

// A TCP port that was free a moment ago (bound to port 0 and released).
int PickUnusedPort();

// The path of executable `name` on $PATH, or "" (ChildProcess runs a path, not a name).
std::string FindOnPath(const std::string& name);

}  // namespace skein::testing

#endif  // SKEIN_TESTS_SUPPORT_CHILD_PROCESS_H_
