#include "services/tokenizer/vocab_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/tokenizer/sha256.h"

namespace skein::tokenizer {
namespace {

// strerror's text, thread-safely.
std::string ErrorText(int error) { return std::generic_category().message(error); }

absl::Status OpenError(const std::string& path, int error) {
  const std::string what =
      absl::StrCat("cannot open vocabulary file '", path, "': ", ErrorText(error));
  if (error == ENOENT || error == ENOTDIR) return absl::NotFoundError(what);
  if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(what);
  return absl::UnavailableError(what);
}

// Reads a whole regular file.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OpenError(path, errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st;
  if (::fstat(fd, &st) != 0) return OpenError(path, errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("vocabulary path '", path, "' is not a regular file"));
  }
  std::string contents(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (true) {
    if (done == contents.size()) contents.resize(contents.size() + 4096);  // file grew
    const ssize_t n = ::read(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DataLossError(
          absl::StrCat("error reading vocabulary file '", path, "': ", ErrorText(errno)));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  contents.resize(done);
  return contents;
}

}  // namespace

absl::StatusOr<VocabFile> ReadVocabFile(absl::string_view path, const VocabFileOptions& options) {
  if (path.empty()) {
    return absl::NotFoundError("no vocabulary file given (pass its path, e.g. --vocab PATH)");
  }
  VocabFile file;
  file.path.assign(path.data(), path.size());
  absl::StatusOr<std::string> contents = ReadWholeFile(file.path);
  if (!contents.ok()) return contents.status();
  file.contents = *std::move(contents);
  file.sha256 = Sha256Hex(file.contents);
  if (!options.expected_sha256.empty() && file.sha256 != options.expected_sha256) {
    return absl::DataLossError(
        absl::StrCat("vocabulary file '", file.path, "' has sha256 ", file.sha256, ", expected ",
                     options.expected_sha256,
                     " (a damaged or different file; for a custom vocabulary "
                     "turn the hash check off)"));
  }
  return file;
}

}  // namespace skein::tokenizer
