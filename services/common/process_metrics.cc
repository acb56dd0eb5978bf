#include "services/common/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace skein {
namespace {

prometheus::MetricFamily Single(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

int CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory handle itself
}

}  // namespace

ProcessMetricsCollector::ProcessMetricsCollector() {
  start_time_seconds_ =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<prometheus::MetricFamily> ProcessMetricsCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;

  rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    double cpu = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
                 usage.ru_stime.tv_usec / 1e6;
    out.push_back(Single("process_cpu_seconds_total", "User and system CPU time in seconds.",
                         MetricType::Counter, cpu));
  }

  // /proc/self/statm: size resident ... in pages.
  std::ifstream statm("/proc/self/statm");
  long pages_virtual = 0, pages_resident = 0;
  if (statm >> pages_virtual >> pages_resident) {
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    out.push_back(Single("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                         MetricType::Gauge, pages_virtual * page));
    out.push_back(Single("process_resident_memory_bytes", "Resident memory size in bytes.",
                         MetricType::Gauge, pages_resident * page));
  }

  int fds = CountOpenFds();
  if (fds >= 0) {
    out.push_back(
        Single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds));
  }
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.push_back(Single("process_max_fds", "Maximum number of open file descriptors.",
                         MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }

  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) {
      out.push_back(Single("process_threads", "Number of OS threads.", MetricType::Gauge,
                           std::stod(line.substr(8))));
      break;
    }
  }

  out.push_back(Single("process_start_time_seconds",
                       "Start time of the process since the Unix epoch in seconds.",
                       MetricType::Gauge, start_time_seconds_));
  return out;
}

}  // namespace skein
