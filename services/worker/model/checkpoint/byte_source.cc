#include "services/worker/model/checkpoint/byte_source.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace skein::model {
namespace {

// ---------------------------------------------------------------------------------------
// A file shrunk on disk while it is mapped (truncated, or rewritten in place) makes reads of
// the pages beyond its new end raise SIGBUS. The weights are gone then and the process cannot
// go on, but it must say why rather than die of an unexplained signal: the handler below
// recognises faults inside a mapped checkpoint, prints which file and where, and exits with
// kTruncatedMappingExitCode. Faults elsewhere go to the previous disposition.
//
// The registry is a fixed array of atomics: the handler may not lock or allocate.
struct MappedRange {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  char path[512] = {};
};
constexpr int kMaxMappedRanges = 128;
MappedRange g_ranges[kMaxMappedRanges];
struct sigaction g_previous_sigbus;

// Async-signal-safe output helpers.
void WriteString(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void WriteNumber(uint64_t v) {
  char buf[24];
  int i = sizeof(buf) - 1;
  buf[i] = '\0';
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && i > 0);
  WriteString(buf + i);
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (MappedRange& r : g_ranges) {
    const uintptr_t begin = r.begin.load(std::memory_order_acquire);
    if (begin == 0 || addr < begin || addr >= r.end.load(std::memory_order_relaxed)) continue;
    WriteString("fatal: the checkpoint ");
    WriteString(r.path);
    WriteString(" changed on disk while this process had it mapped (reading byte ");
    WriteNumber(addr - begin);
    WriteString(
        " failed: the file was truncated or rewritten in place). Its weights are gone; "
        "restore the file (replace it by renaming a new one over it, never in place) "
        "and restart.\n");
    _exit(kTruncatedMappingExitCode);
  }
  // Not ours: what would have happened without this handler.
  if (g_previous_sigbus.sa_flags & SA_SIGINFO) {
    if (g_previous_sigbus.sa_sigaction != nullptr) {
      g_previous_sigbus.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN &&
             g_previous_sigbus.sa_handler != nullptr) {
    g_previous_sigbus.sa_handler(sig);
    return;
  }
  // The default action: returning re-runs the faulting access, which now kills the process.
  signal(SIGBUS, SIG_DFL);
}

void InstallSigbusHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_sigaction = OnSigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &g_previous_sigbus);
  });
}

// The registry slot of [addr, addr + size), or -1 when all are taken (the mapping then works
// as before, without the explanation).
int RegisterMapping(void* addr, size_t size, const std::string& path) {
  InstallSigbusHandler();
  for (int i = 0; i < kMaxMappedRanges; ++i) {
    MappedRange& r = g_ranges[i];
    uintptr_t expected = 0;
    // Claim with a placeholder so the handler ignores the slot while it is filled in.
    if (!r.begin.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
    std::snprintf(r.path, sizeof(r.path), "%s", path.c_str());
    r.end.store(reinterpret_cast<uintptr_t>(addr) + size, std::memory_order_relaxed);
    r.begin.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    return i;
  }
  return -1;
}

void UnregisterMapping(int slot) {
  if (slot >= 0) g_ranges[slot].begin.store(0, std::memory_order_release);
}

class MappedFile : public ByteSource {
 public:
  MappedFile(void* addr, size_t size, const std::string& path)
      : addr_(addr), size_(size), slot_(addr != nullptr ? RegisterMapping(addr, size, path) : -1) {}
  ~MappedFile() override {
    UnregisterMapping(slot_);
    if (addr_ != nullptr) munmap(addr_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view bytes() const override {
    return addr_ == nullptr ? std::string_view()
                            : std::string_view(static_cast<const char*>(addr_), size_);
  }

 private:
  void* addr_;
  size_t size_;
  int slot_;
};

class OwnedBytes : public ByteSource {
 public:
  explicit OwnedBytes(std::string b) : bytes_(std::move(b)) {}
  std::string_view bytes() const override { return bytes_; }

 private:
  std::string bytes_;
};

absl::Status ErrnoStatus(int err, const std::string& what) {
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ByteSource>> MapFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", path));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(err, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* addr = nullptr;
  if (size > 0) {
    addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      close(fd);
      return ErrnoStatus(err, absl::StrCat("cannot map ", path));
    }
  }
  close(fd);  // the mapping keeps the file alive
  return std::shared_ptr<const ByteSource>(std::make_shared<MappedFile>(addr, size, path));
}

std::shared_ptr<const ByteSource> ByteSourceFromString(std::string bytes) {
  return std::make_shared<OwnedBytes>(std::move(bytes));
}

}  // namespace skein::model
