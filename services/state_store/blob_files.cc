#include "services/state_store/blob_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"

namespace skein::state_store {
namespace {

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

absl::Status IoError(const char* what, const std::string& path, int error) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", ErrnoText(error)));
}

// Closes a descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

absl::StatusOr<BlobFiles> BlobFiles::Open(std::string dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create blob directory ", dir, ": ", ec.message()));
  }
  return BlobFiles(std::move(dir));
}

std::string BlobFiles::FileName(std::string_view group, std::string_view name) {
  std::string key;
  key.reserve(group.size() + 1 + name.size());
  key.append(group);
  key.push_back('\0');
  key.append(name);
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string(hex, 32);
}

absl::Status BlobFiles::Write(const std::string& file, std::string_view data, bool sync) const {
  return base::WriteFileAtomically(absl::StrCat(dir_, "/", file), data, sync);
}

absl::StatusOr<std::string> BlobFiles::Read(const std::string& file) const {
  const std::string path = absl::StrCat(dir_, "/", file);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no blob file ", path));
    return IoError("cannot open", path, errno);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError("cannot stat", path, errno);
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pread(fd.get(), data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot read", path, errno);
    }
    if (n == 0) return absl::DataLossError(absl::StrCat("blob file ", path, " is truncated"));
    done += static_cast<size_t>(n);
  }
  return data;
}

absl::Status BlobFiles::Remove(const std::string& file) const {
  const std::string path = absl::StrCat(dir_, "/", file);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoError("cannot remove", path, errno);
  return absl::OkStatus();
}

absl::Status BlobFiles::SyncFiles(const std::vector<std::string>& files) const {
  for (const std::string& file : files) {
    const std::string path = absl::StrCat(dir_, "/", file);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) continue;
      return IoError("cannot open", path, errno);
    }
    if (::fdatasync(fd.get()) != 0) return IoError("cannot sync", path, errno);
  }
  return SyncDirectory();
}

absl::Status BlobFiles::SyncDirectory() const { return base::SyncDirectory(dir_); }

absl::Status BlobFiles::RemoveUnlisted(
    const std::function<bool(const std::string& file)>& keep) const {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string file = entry.path().filename().string();
    if (base::IsTemporaryName(file) || !keep(file)) {
      if (absl::Status s = Remove(file); !s.ok()) return s;
    }
  }
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list ", dir_, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace skein::state_store
