// Standard process metrics (the names the Prometheus client libraries use) for Linux, read
// from /proc/self at scrape time.
#ifndef SKEIN_SERVICES_COMMON_PROCESS_METRICS_H_
#define SKEIN_SERVICES_COMMON_PROCESS_METRICS_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace skein {

// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds, process_threads.
// Thread-safe (stateless apart from the start time).
class ProcessMetricsCollector : public prometheus::Collectable {
 public:
  ProcessMetricsCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double start_time_seconds_;
};

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_PROCESS_METRICS_H_
