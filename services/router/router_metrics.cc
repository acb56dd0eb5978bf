#include "services/router/router_metrics.h"

namespace skein::router {
namespace {

prometheus::Histogram::BucketBoundaries Seconds() {
  return {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120};
}
prometheus::Histogram::BucketBoundaries Powers() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
}

}  // namespace

RouterMetrics::RouterMetrics(prometheus::Registry& r) {
  queue_depth = &prometheus::BuildGauge()
                     .Name("skein_router_queue_depth")
                     .Help("Requests admitted but not yet running on a replica")
                     .Register(r)
                     .Add({});
  replicas_healthy = &prometheus::BuildGauge()
                          .Name("skein_router_replicas_healthy")
                          .Help("Pipeline replicas whose stage 0 answered the last health poll")
                          .Register(r)
                          .Add({});
  running = &prometheus::BuildGauge()
                 .Name("skein_router_running_sequences")
                 .Help("Sequences running on the replicas (holding a slot)")
                 .Register(r)
                 .Add({});
  batch_size = &prometheus::BuildHistogram()
                    .Name("skein_router_batch_size")
                    .Help("Sequences in one step")
                    .Register(r)
                    .Add({}, Powers());
  step_tokens = &prometheus::BuildHistogram()
                     .Name("skein_router_step_tokens")
                     .Help("Tokens (prompt chunks and decode tokens) in one step")
                     .Register(r)
                     .Add({}, Powers());
  ttft = &prometheus::BuildHistogram()
              .Name("skein_router_time_to_first_token_seconds")
              .Help("From admission to the first generated token")
              .Register(r)
              .Add({}, Seconds());
  inter_token = &prometheus::BuildHistogram()
                     .Name("skein_router_inter_token_seconds")
                     .Help("Between consecutive generated tokens of one request")
                     .Register(r)
                     .Add({}, Seconds());
  end_to_end = &prometheus::BuildHistogram()
                    .Name("skein_router_request_seconds")
                    .Help("From admission to the end of generation")
                    .Register(r)
                    .Add({}, Seconds());
  auto& tokens = prometheus::BuildCounter()
                     .Name("skein_router_tokens_total")
                     .Help("Tokens read from prompts (in) and generated (out)")
                     .Register(r);
  prompt_tokens = &tokens.Add({{"direction", "in"}});
  completion_tokens = &tokens.Add({{"direction", "out"}});
  model_tokens = &prometheus::BuildCounter()
                      .Name("skein_router_model_tokens_total")
                      .Help("Tokens read from prompts (in) and generated (out), by model")
                      .Register(r);
  model_finished = &prometheus::BuildCounter()
                        .Name("skein_router_model_requests_finished_total")
                        .Help("Generations that ended, by model and finish reason")
                        .Register(r);
  model_queue_depth = &prometheus::BuildGauge()
                           .Name("skein_router_model_queue_depth")
                           .Help("Requests admitted but not yet running, by model")
                           .Register(r);
  model_running = &prometheus::BuildGauge()
                       .Name("skein_router_model_running_sequences")
                       .Help("Sequences running on the replicas, by model")
                       .Register(r);
  model_ttft = &prometheus::BuildHistogram()
                    .Name("skein_router_model_time_to_first_token_seconds")
                    .Help("From admission to the first generated token, by model")
                    .Register(r);
  rejections = &prometheus::BuildCounter()
                    .Name("skein_router_rejections_total")
                    .Help("Requests refused or ended early, by reason")
                    .Register(r);
  for (const char* reason :
       {"queue_full", "no_pipeline", "invalid", "cancelled", "deadline", "step_failed"}) {
    rejections->Add({{"reason", reason}});
  }
  step_seconds = &prometheus::BuildHistogram()
                      .Name("skein_router_step_seconds")
                      .Help("Round trip of one step through a replica's whole pipeline")
                      .Register(r);
  finished = &prometheus::BuildCounter()
                  .Name("skein_router_requests_finished_total")
                  .Help("Generations that ended, by finish reason")
                  .Register(r);
  auto& prefix = prometheus::BuildCounter()
                     .Name("skein_router_prefix_cache_lookups_total")
                     .Help("Prompts looked up in the prefix-state cache, by result (hit, miss)")
                     .Register(r);
  prefix_hits = &prefix.Add({{"result", "hit"}});
  prefix_misses = &prefix.Add({{"result", "miss"}});
  prefix_tokens_reused = &prometheus::BuildCounter()
                              .Name("skein_router_prefix_cache_tokens_reused_total")
                              .Help("Prompt tokens not computed because a cached state held them")
                              .Register(r)
                              .Add({});
  snapshots = &prometheus::BuildCounter()
                   .Name("skein_router_snapshots_total")
                   .Help(
                       "State snapshots by kind (grid: within a prompt; turn: a session's "
                       "turn end) and result (ok, failed; a key already stored counts as ok)")
                   .Register(r);
  snapshot_seconds = &prometheus::BuildHistogram()
                          .Name("skein_router_snapshot_seconds")
                          .Help("Time to make one snapshot durable (every stage's slice)")
                          .Register(r)
                          .Add({}, Seconds());
  load_seconds = &prometheus::BuildHistogram()
                      .Name("skein_router_state_load_seconds")
                      .Help("Time to load a stored state onto every stage of a replica")
                      .Register(r)
                      .Add({}, Seconds());
  restarts = &prometheus::BuildCounter()
                  .Name("skein_router_generation_restarts_total")
                  .Help("Generations restarted from their last snapshot after a failed step")
                  .Register(r)
                  .Add({});
  migrations = &prometheus::BuildCounter()
                    .Name("skein_router_generation_migrations_total")
                    .Help("Generations moved off a draining replica (snapshotted, restarted)")
                    .Register(r)
                    .Add({});
  session_ops = &prometheus::BuildCounter()
                     .Name("skein_router_session_operations_total")
                     .Help("Session RPCs and turns, by operation")
                     .Register(r);
}

prometheus::Histogram& RouterMetrics::ModelTtft(const std::string& model) {
  return model_ttft->Add({{"model", model}}, Seconds());
}

void RouterMetrics::Reject(const std::string& reason) {
  rejections->Add({{"reason", reason}}).Increment();
}

}  // namespace skein::router
