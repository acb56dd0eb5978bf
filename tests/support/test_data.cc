#include "tests/support/test_data.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace skein::testing {
namespace fs = std::filesystem;

namespace {

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Upstream locations of data files that may be fetched on a machine with internet. The
// checksum is verified by the caller that needs it (e.g. the tokenizer checks the vocabulary).
struct Download {
  const char* relative;
  const char* url;
};
constexpr Download kDownloads[] = {
    {"data/rwkv_vocab_v20230424.txt",
     "https://raw.githubusercontent.com/BlinkDL/ChatRWKV/main/rwkv_pip_package/src/rwkv/"
     "rwkv_vocab_v20230424.txt"},
};

std::string TryDownload(const std::string& relative, const fs::path& cache_root) {
  for (const Download& d : kDownloads) {
    if (relative != d.relative) continue;
    fs::path target = cache_root / relative;
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    std::string cmd = "curl -fsSL --max-time 30 -o '" + target.string() + ".part' '" + d.url +
                      "' 2>/dev/null && mv '" + target.string() + ".part' '" + target.string() +
                      "'";
    if (std::system(cmd.c_str()) == 0 && IsFile(target)) return target.string();
  }
  return "";
}

}  // namespace

std::string SourceRoot() {
  // Runfiles are symlinks into the source tree; WORKSPACE is listed as data of this library.
  std::vector<fs::path> candidates;
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    const char* ws = std::getenv("TEST_WORKSPACE");
    candidates.push_back(fs::path(srcdir) / (ws ? ws : "skein") / "WORKSPACE");
  }
  if (const char* root = std::getenv("SKEIN_SOURCE_DIR")) {
    candidates.push_back(fs::path(root) / "WORKSPACE");
  }
  candidates.push_back(fs::current_path() / "WORKSPACE");
  for (const fs::path& c : candidates) {
    std::error_code ec;
    fs::path real = fs::canonical(c, ec);
    if (!ec && IsFile(real)) return real.parent_path().string();
  }
  return "";
}

std::string FindTestData(const std::string& relative, std::string* why) {
  std::vector<fs::path> roots;
  if (const char* shared = std::getenv("SKEIN_SHARED_DIR"); shared && *shared) {
    roots.emplace_back(shared);
  }
  const std::string source = SourceRoot();
  if (!source.empty()) {
    roots.push_back(fs::path(source).parent_path() / "shared");
    roots.push_back(fs::path(source) / "tests" / "data");
    roots.push_back(fs::path(source) / "tests" / "data" / "downloads");
  }
  std::string searched;
  for (const fs::path& root : roots) {
    fs::path p = root / relative;
    if (IsFile(p)) return p.string();
    searched += (searched.empty() ? "" : ", ") + p.string();
  }
  if (!source.empty()) {
    std::string got = TryDownload(relative, fs::path(source) / "tests" / "data" / "downloads");
    if (!got.empty()) return got;
  }
  if (why) {
    *why = relative + " (searched: " + (searched.empty() ? "no data roots" : searched) +
           "; no download possible)";
  }
  return "";
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace skein::testing
