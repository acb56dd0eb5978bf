#include "base/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"

namespace skein::base {
namespace {

constexpr std::string_view kTemporarySuffix = ".tmp";

std::atomic<uint64_t> temp_counter{0};

absl::Status IoError(std::string_view what, const std::string& path, int err) {
  return absl::UnavailableError(
      absl::StrCat("cannot ", AsAbsl(what), " ", path, ": ",
                   std::error_code(err, std::generic_category()).message()));
}

std::string DirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  const std::filesystem::path p(path);
  if (p.filename().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("output path '", path, "' names no file"));
  }
  const std::string temp =
      (p.parent_path() / absl::StrCat(".", p.filename().string(), ".", getpid(), ".",
                                      temp_counter.fetch_add(1), AsAbsl(kTemporarySuffix)))
          .string();
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("create a temporary file for", path, errno);
  return std::unique_ptr<AtomicFile>(new AtomicFile(path, temp, fd));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(temp_path_.c_str());
}

absl::Status AtomicFile::Fail(std::string_view what, int err) { return IoError(what, path_, err); }

absl::Status AtomicFile::Append(std::string_view bytes) {
  if (absl::Status s = WriteAt(size_, bytes); !s.ok()) return s;
  size_ += bytes.size();
  return absl::OkStatus();
}

absl::Status AtomicFile::WriteAt(uint64_t offset, std::string_view bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, " is already closed"));
  while (!bytes.empty()) {
    const ssize_t n = pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail("write", errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Commit(bool sync) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, " is already closed"));
  if (sync && fdatasync(fd_) != 0) return Fail("flush", errno);
  const int rc = close(fd_);
  fd_ = -1;
  if (rc != 0) return Fail("close", errno);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) return Fail("rename into", errno);
  committed_ = true;
  return sync ? SyncDirectory(DirectoryOf(path_)) : absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view data, bool sync) {
  absl::StatusOr<std::unique_ptr<AtomicFile>> file = AtomicFile::Create(path);
  if (!file.ok()) return file.status();
  if (absl::Status s = (*file)->Append(data); !s.ok()) return s;
  return (*file)->Commit(sync);
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("open directory", dir, errno);
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return IoError("sync directory", dir, err);
  return absl::OkStatus();
}

bool IsTemporaryName(std::string_view file_name) {
  return file_name.size() > kTemporarySuffix.size() + 1 && file_name.front() == '.' &&
         file_name.substr(file_name.size() - kTemporarySuffix.size()) == kTemporarySuffix;
}

}  // namespace skein::base
