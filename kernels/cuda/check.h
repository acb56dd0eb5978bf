// A tiny check harness for the CUDA tests and tools, which must build where GoogleTest does
// not exist (the GPU machine has only CMake, nvcc and a compiler). Each check prints one line;
// the program's exit status says whether all passed. Not thread-safe.
#ifndef SKEIN_KERNELS_CUDA_CHECK_H_
#define SKEIN_KERNELS_CUDA_CHECK_H_

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace skein::cuda::testing {

class Checks {
 public:
  // Records and prints one result: "PASS name  detail" or "FAIL name  detail".
  void Expect(const std::string& name, bool ok, const std::string& detail = "") {
    (ok ? passed_ : failed_)++;
    std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : "  ",
                detail.c_str());
    std::fflush(stdout);
    if (!ok) failures_.push_back(name);
  }
  int passed() const { return passed_; }
  int failed() const { return failed_; }
  // Prints "N passed, M failed" (and the failed names); returns the exit status.
  int Finish() const {
    std::printf("%d passed, %d failed\n", passed_, failed_);
    for (const std::string& f : failures_) std::printf("  failed: %s\n", f.c_str());
    return failed_ == 0 ? 0 : 1;
  }

 private:
  int passed_ = 0;
  int failed_ = 0;
  std::vector<std::string> failures_;
};

// A whole test program that cannot run here (no GPU): prints "SKIP name: why" and, under
// Bazel (XML_OUTPUT_FILE set), writes a report of one skipped case, so that the suite lists
// the skip by name instead of counting a pass. Returns the exit status to use (0).
inline int SkipProgram(const std::string& name, const std::string& why) {
  std::printf("SKIP %s: %s\n", name.c_str(), why.c_str());
  const char* xml = std::getenv("XML_OUTPUT_FILE");
  if (xml == nullptr || *xml == '\0') return 0;
  std::string message;
  for (char c : why) {
    switch (c) {
      case '&':
        message += "&amp;";
        break;
      case '<':
        message += "&lt;";
        break;
      case '>':
        message += "&gt;";
        break;
      case '"':
        message += "&quot;";
        break;
      default:
        message += c;
    }
  }
  if (FILE* f = std::fopen(xml, "w")) {
    std::fprintf(f,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites><testsuite name=\"%s\" "
                 "tests=\"1\" skipped=\"1\"><testcase classname=\"%s\" name=\"all\"><skipped "
                 "message=\"%s\"/></testcase></testsuite></testsuites>\n",
                 name.c_str(), name.c_str(), message.c_str());
    std::fclose(f);
  }
  return 0;
}

// How far `got` is from `want`: the largest |got − want|, the standard deviation σ of `want`,
// and whether every element is within abs_sigma·σ + rel·|want| (NaN anywhere fails).
struct Diff {
  double max_abs = 0;
  double sigma = 0;
  bool within = true;
  size_t worst = 0;
  std::string Describe() const {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "max|diff| %.3g = %.3g sigma (sigma %.3g, worst at %zu)",
                  max_abs, sigma > 0 ? max_abs / sigma : 0.0, sigma, worst);
    return buf;
  }
};

inline double Sigma(const std::vector<float>& v) {
  if (v.empty()) return 0;
  double mean = 0;
  for (float x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double sq = 0;
  for (float x : v) sq += (x - mean) * (x - mean);
  return std::sqrt(sq / static_cast<double>(v.size()));
}

inline Diff Compare(const std::vector<float>& got, const std::vector<float>& want, double abs_sigma,
                    double rel) {
  Diff d;
  d.sigma = Sigma(want);
  if (got.size() != want.size()) {
    d.within = false;
    return d;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(diff <= abs_sigma * d.sigma + rel * std::fabs(want[i]))) d.within = false;
    if (!(diff <= d.max_abs)) {  // NaN lands here too
      d.max_abs = std::isnan(diff) ? INFINITY : diff;
      d.worst = i;
    }
  }
  return d;
}

}  // namespace skein::cuda::testing

#endif  // SKEIN_KERNELS_CUDA_CHECK_H_
