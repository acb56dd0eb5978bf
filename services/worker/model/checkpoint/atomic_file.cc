#include "services/worker/model/checkpoint/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace skein::model {
namespace {

std::atomic<uint64_t> temp_counter{0};

}  // namespace

absl::StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  std::filesystem::path p(path);
  if (p.filename().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("output path '", path, "' names no file"));
  }
  std::string temp = (p.parent_path() / absl::StrCat(".", p.filename().string(), ".tmp-", getpid(),
                                                     "-", temp_counter++))
                         .string();
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    return absl::UnavailableError(
        absl::StrCat("cannot create ", path, " (temporary ", temp, "): ", std::strerror(err)));
  }
  return std::unique_ptr<AtomicFile>(new AtomicFile(path, temp, fd));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(temp_path_.c_str());
}

absl::Status AtomicFile::Fail(absl::string_view what, int err) {
  return absl::UnavailableError(
      absl::StrCat("cannot ", what, " ", path_, ": ", std::strerror(err)));
}

absl::Status AtomicFile::Append(std::string_view bytes) {
  if (absl::Status s = WriteAt(size_, bytes); !s.ok()) return s;
  size_ += bytes.size();
  return absl::OkStatus();
}

absl::Status AtomicFile::WriteAt(uint64_t offset, std::string_view bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, " is already closed"));
  while (!bytes.empty()) {
    ssize_t n = pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail("write", errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, " is already closed"));
  if (fsync(fd_) != 0) return Fail("flush", errno);
  int rc = close(fd_);
  fd_ = -1;
  if (rc != 0) return Fail("close", errno);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) return Fail("rename into", errno);
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace skein::model
