// The router's serving metrics (docs/metrics.md): queue and batch shape, per-request latency
// (time to first token, inter-token, end to end), tokens in and out, rejections by reason,
// step time per replica, snapshots and restores, prefix-cache hits and misses, restarts.
#ifndef SKEIN_SERVICES_ROUTER_ROUTER_METRICS_H_
#define SKEIN_SERVICES_ROUTER_ROUTER_METRICS_H_

#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace skein::router {

struct RouterMetrics {
  explicit RouterMetrics(prometheus::Registry& registry);

  // Rejected or failed requests by reason: "queue_full", "no_pipeline", "invalid",
  // "cancelled", "deadline", "step_failed".
  void Reject(const std::string& reason);

  prometheus::Gauge* queue_depth;
  prometheus::Gauge* replicas_healthy;
  prometheus::Gauge* running;
  prometheus::Histogram* batch_size;
  prometheus::Histogram* step_tokens;
  prometheus::Histogram* ttft;
  prometheus::Histogram* inter_token;
  prometheus::Histogram* end_to_end;
  prometheus::Counter* prompt_tokens;
  prometheus::Counter* completion_tokens;
  prometheus::Family<prometheus::Counter>* rejections;
  prometheus::Family<prometheus::Histogram>* step_seconds;  // label: replica
  prometheus::Family<prometheus::Counter>* finished;        // label: reason
  // The same per model (a router may serve several): labels model, direction / reason.
  prometheus::Family<prometheus::Counter>* model_tokens;
  prometheus::Family<prometheus::Counter>* model_finished;
  prometheus::Family<prometheus::Gauge>* model_queue_depth;  // label: model
  prometheus::Family<prometheus::Gauge>* model_running;      // label: model
  prometheus::Family<prometheus::Histogram>* model_ttft;     // label: model
  // model_ttft's series for `model` (made on first use, with ttft's buckets).
  prometheus::Histogram& ModelTtft(const std::string& model);
  // Sessions and the prefix-state cache.
  prometheus::Counter* prefix_hits;
  prometheus::Counter* prefix_misses;
  prometheus::Counter* prefix_tokens_reused;
  prometheus::Family<prometheus::Counter>* snapshots;  // labels: kind (grid|turn), result
  prometheus::Histogram* snapshot_seconds;
  prometheus::Histogram* load_seconds;
  prometheus::Counter* restarts;    // generations restarted from their restart point
  prometheus::Counter* migrations;  // generations moved off a draining replica
  prometheus::Family<prometheus::Counter>* session_ops;  // label: op
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_ROUTER_METRICS_H_
