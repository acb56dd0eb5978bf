// skein-router: the public Skein API
#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "services/common/client_channel.h"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "services/router/openai_http.h"
#include "services/router/router_metrics.h"
#include "services/router/router_service.h"
#include "services/router/scheduler.h"
#include "services/router/session_store.h"
#include "services/router/tokenizer_client.h"
#include "services/state_store/client.h"

int main(int argc, char** argv) {
  skein::ServerOptions options;
  options.service_name = "skein-router";
  options.listen = "127.0.0.1:7700";
  options.metrics_port = 9700;

  std::string tokenizer = "127.0.0.1:7710";
  std::string store;
  std::vector<std::string> pipelines;  // one per model: "ADDR,ADDR" or "NAME=ADDR,ADDR"
  skein::router::SchedulerOptions scheduler;
  skein::router::RouterLimits limits;
  int64_t max_running = static_cast<int64_t>(scheduler.max_running_per_replica);
  int64_t max_queue = static_cast<int64_t>(scheduler.max_queue);

  CLI::App app{"skein-router: the public Skein API", "skein-router"};
  skein::AddServerFlags(app, &options);
  app.add_option("--tokenizer", tokenizer, "Tokenizer service address (default 127.0.0.1:7710)");
  app.add_option("--store", store,
                 "State store address: sessions, snapshots, failover and the prefix cache "
                 "(none: stateless requests only)");
  app.add_option("--snapshot-grid", scheduler.snapshot_grid,
                 "Store a prompt's state every this many tokens (prefix cache; 0: never) (256)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--prefix-ttl-seconds", scheduler.prefix_ttl_seconds,
                 "TTL of cached prefix states (0: the store's default; LRU evicts them anyway)");
  double restart_wait_seconds = absl::ToDoubleSeconds(scheduler.no_replica_grace);
  app.add_option("--restart-wait-seconds", restart_wait_seconds,
                 "How long a generation restarted after a worker failure waits for a replica "
                 "when none is available (5)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--session-ttl-seconds", limits.default_session_ttl_seconds,
                 "Idle time before a session expires, when it asks for none (86400)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-session-ttl-seconds", limits.max_session_ttl_seconds,
                 "Longest TTL a session may ask for (30 days; the store's --max-lease-seconds "
                 "must allow it)")
      ->check(CLI::PositiveNumber);
  app.add_option("--pipeline", pipelines,
                 "Stage-0 address of every pipeline replica of a model, comma-separated; "
                 "repeat it, as NAME=ADDR,ADDR (NAME: the workers' --model-name), to serve "
                 "several models")
      ->required();
  app.add_option("--max-batch", max_running, "Sequences running at once per replica (128)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue", max_queue,
                 "Requests waiting for a slot before new ones get RESOURCE_EXHAUSTED (1024)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-step-tokens", scheduler.max_step_tokens,
                 "Tokens per step: decode tokens plus prompt chunks (512)")
      ->check(CLI::PositiveNumber);
  app.add_option("--prefill-chunk", scheduler.prefill_chunk,
                 "Most prompt tokens of one request per step (256)")
      ->check(CLI::PositiveNumber);
  app.add_option("--micro-batches", scheduler.micro_batches,
                 "Steps in flight per replica (default: its stage count)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-prompt-tokens", limits.max_prompt_tokens,
                 "Longer prompts get RESOURCE_EXHAUSTED (65536)");
  std::string http_listen;
  std::string token_file;
  app.add_option("--auth-token-file", token_file,
                 "Bearer tokens the public API accepts, one per line (gRPC `authorization` "
                 "metadata and the HTTP Authorization header); none: no token needed");
  skein::router::OpenAiHttpOptions http;
  app.add_option("--http-listen", http_listen,
                 "HOST:PORT of the OpenAI-compatible HTTP front (port 0: any free one; empty: "
                 "none)");
  app.add_option("--http-client-ca", http.client_ca_file,
                 "With TLS: HTTP clients must present a certificate this PEM CA signed");
  app.add_option("--http-max-streams", http.max_streams,
                 "HTTP requests served at once; each open stream holds one (64)")
      ->check(CLI::PositiveNumber);
  bool require_pipeline = true;
  app.add_option("--require-pipeline", require_pipeline,
                 "Report NOT_SERVING while no pipeline replica answers (default true)");
  app.add_option("--default-max-tokens", limits.default_max_tokens,
                 "max_tokens when a request leaves it 0 (256)")
      ->check(CLI::PositiveNumber);
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }
  scheduler.max_running_per_replica = static_cast<size_t>(max_running);
  scheduler.no_replica_grace = absl::Seconds(restart_wait_seconds);
  scheduler.max_queue = static_cast<size_t>(max_queue);
  // One scheduler per model, each over that model's replicas.
  std::vector<std::vector<std::string>> replica_groups;
  std::vector<std::string> group_names;
  for (const std::string& p : pipelines) {
    std::string addresses = p;
    std::string name;
    // "NAME=…" names the group; an address never holds '='.
    if (const size_t eq = p.find('='); eq != std::string::npos) {
      name = p.substr(0, eq);
      addresses = p.substr(eq + 1);
    }
    std::vector<std::string> group;
    for (absl::string_view a : absl::StrSplit(addresses, ',', absl::SkipWhitespace())) {
      group.emplace_back(a);
    }
    if (group.empty()) {
      std::fprintf(stderr, "skein-router: error: --pipeline '%s' names no address\n", p.c_str());
      return 2;
    }
    if (std::find(group_names.begin(), group_names.end(), name) != group_names.end()) {
      std::fprintf(stderr, "skein-router: error: --pipeline names model '%s' twice\n",
                   name.c_str());
      return 2;
    }
    group_names.push_back(name);
    replica_groups.push_back(std::move(group));
  }

  // Clients of the public API authenticate by token; certificates are optional for them.
  options.tls_client_certificate_optional = true;
  std::vector<std::string> tokens;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) {
      std::fprintf(stderr, "skein-router: error: --auth-token-file: cannot read %s\n",
                   token_file.c_str());
      return 2;
    }
    for (std::string line; std::getline(in, line);) {
      const size_t first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      tokens.push_back(line.substr(first, line.find_last_not_of(" \t\r") - first + 1));
    }
    if (tokens.empty()) {
      std::fprintf(stderr, "skein-router: error: --auth-token-file %s holds no token\n",
                   token_file.c_str());
      return 2;
    }
  }
  skein::ServiceHost host(options);
  // Health says SERVING while every model has at least one pipeline replica answering.
  absl::Mutex serving_mutex;
  std::vector<bool> model_serving(replica_groups.size(), false);
  if (require_pipeline) host.set_serving_at_start(false);
  skein::router::RouterMetrics metrics(host.metrics().registry());
  skein::router::TokenizerClient tokenizer_client(tokenizer);
  std::unique_ptr<skein::state_store::StateStoreClient> store_client;
  std::unique_ptr<skein::router::SessionStore> sessions;
  if (!store.empty()) {
    store_client =
        std::make_unique<skein::state_store::StateStoreClient>(skein::CreateClientChannel(store));
    sessions = std::make_unique<skein::router::SessionStore>(store_client.get(), absl::Seconds(30));
    scheduler.store = store_client.get();
  }
  limits.snapshot_grid = scheduler.snapshot_grid;
  std::vector<std::unique_ptr<skein::router::Scheduler>> schedulers;
  std::vector<skein::router::Scheduler*> scheduler_ptrs;
  for (size_t g = 0; g < replica_groups.size(); ++g) {
    skein::router::SchedulerOptions o = scheduler;
    o.replicas = replica_groups[g];
    if (require_pipeline) {
      o.on_serving_change = [&, g](bool serving) {
        absl::MutexLock lock(&serving_mutex);
        model_serving[g] = serving;
        host.SetServing(
            std::all_of(model_serving.begin(), model_serving.end(), [](bool s) { return s; }));
      };
    }
    schedulers.push_back(std::make_unique<skein::router::Scheduler>(o, &metrics));
    scheduler_ptrs.push_back(schedulers.back().get());
  }
  skein::router::RouterService service(scheduler_ptrs, &tokenizer_client, &metrics, limits,
                                       sessions.get());
  service.set_auth_tokens(tokens);
  host.AddService(&service, "skein.v1.RouterService");
  std::unique_ptr<skein::router::OpenAiHttpServer> front;
  if (!http_listen.empty()) {
    if (absl::Status s = skein::SplitHostPort(http_listen, &http.host, &http.port); !s.ok()) {
      std::fprintf(stderr, "skein-router: error: --http-listen: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
    http.tls_cert_file = options.tls_cert;
    http.tls_key_file = options.tls_key;
    front = std::make_unique<skein::router::OpenAiHttpServer>(
        http, [&service] { return service.Vocabulary(); });
    absl::StatusOr<int> port = front->Bind();
    if (!port.ok()) {
      std::fprintf(stderr, "skein-router: error: %s\n",
                   std::string(port.status().message()).c_str());
      return 1;
    }
    host.AddReadyField("http", absl::StrCat(http.host, ":", *port));
  }
  return host.Run([&]() -> absl::Status {
    if (front != nullptr) front->Start(host.InProcessChannel());
    return absl::OkStatus();
  });
}
