// `skein cluster up|down`: a whole Skein cluster on this machine, on loopback.
//
//   skein cluster up --model PATH [--model PATH …] --vocab PATH --stages S --replicas R --dir DIR
//       [--layers 0:4,4:8,...] [--store rocksdb|redis|memory] [--redis HOST:PORT [--stores N]]
//       [--dtype bf16] [--threads N] [--bin-dir DIR] [--timeout S] [--initial-state
//       [MODEL:]NAME=PATH] [--router-arg FLAG …] [--worker-arg FLAG …]
// starts the state store, the tokenizer, S×R workers per model and the router, each on a port the
// kernel picks (read back from its ready file, so ports never race), waits until every one
// reports SERVING, writes DIR/cluster.json and prints the router's address as its last line.
// The processes outlive the command (their logs are DIR/<name>.log).
//
//   skein cluster down --dir DIR
// stops them (the router, then the rest) with SIGTERM, so each drains, and
// SIGKILLs what is left after the drain.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "tools/cli/command_registry.h"

namespace skein::cli {
namespace {

namespace fs = std::filesystem;

struct ClusterArgs {
  std::vector<std::string> models;  // one pipeline group each, served by its file name
  std::string vocab;
  int stages = 1;
  int replicas = 1;
  std::string dir;
  std::string layers;
  std::string store = "rocksdb";
  std::string redis;
  int stores = 1;
  std::string dtype = "bf16";
  int threads = 0;
  std::string bin_dir;
  double timeout_seconds = 120;
  std::vector<std::string> router_args;
  std::vector<std::string> worker_args;
  std::vector<std::string> initial_states;  // NAME=PATH, given to every worker
};

struct Process {
  std::string name, role, address;
  int stage = -1, replica = -1;
  pid_t pid = -1;
  std::vector<std::string> argv;  // as started, so an operator (or a test) can restart it
  std::string http_address;       // the router's OpenAI-compatible HTTP front
};

// Where the service binaries are: --bin-dir, $SKEIN_BIN_DIR, or beside this binary in a
// Bazel output tree (bazel-bin/tools/skein -> bazel-bin/services/...).
std::string BinDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("SKEIN_BIN_DIR")) return env;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) return self.parent_path().parent_path().string();
  return "bazel-bin";
}

// Starts `argv` in its own session (so it outlives us and a Ctrl-C of the terminal does
// not reach it), stdout and stderr appended to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid < 0) throw CommandError(1, "fork failed");
  if (pid == 0) {
    setsid();
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "cannot run %s\n", args[0]);
    _exit(127);
  }
  return pid;
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

std::string LogTail(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) {
    last += "\n  " + lines[i];
  }
  return last;
}

// Waits for the ready file a service writes once bound; returns its gRPC address.
std::string WaitReady(const std::string& path, pid_t pid, const std::string& name,
                      const std::string& log, double timeout) {
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000));
  while (std::chrono::steady_clock::now() < end) {
    std::ifstream in(path);
    if (in) {
      nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
      if (!j.is_discarded() && j.contains("grpc")) return j["grpc"].get<std::string>();
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      throw CommandError(
          1, absl::StrCat(name, " exited during start-up; its log ends with:", LogTail(log)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw CommandError(1, absl::StrCat(name, " did not start within ", timeout, " s; log: ", log));
}

void WaitServing(const Process& p, const std::string& log, double timeout) {
  auto channel = grpc::CreateChannel(p.address, grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000));
  while (std::chrono::steady_clock::now() < end) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    if (stub->Check(&ctx, req, &resp).ok() &&
        resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return;
    }
    int status = 0;
    if (waitpid(p.pid, &status, WNOHANG) == p.pid) {
      throw CommandError(
          1, absl::StrCat(p.name, " exited before serving; its log ends with:", LogTail(log)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw CommandError(1, absl::StrCat(p.name, " was not SERVING within ", timeout,
                                     " s; its log ends with:", LogTail(log)));
}

void StopAll(const std::vector<Process>& processes, double drain_seconds) {
  // The router first, so no new work arrives; then the rest together (a stage's drain ends
  // when the stage before it closes its link).
  for (bool router : {true, false}) {
    std::vector<pid_t> pids;
    for (const Process& p : processes) {
      if ((p.role == "router") == router && p.pid > 0 && Alive(p.pid)) {
        kill(p.pid, SIGTERM);
        pids.push_back(p.pid);
      }
    }
    const auto end = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000));
    for (pid_t pid : pids) {
      while (Alive(pid) && std::chrono::steady_clock::now() < end) {
        waitpid(pid, nullptr, WNOHANG);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (Alive(pid)) kill(pid, SIGKILL);
      waitpid(pid, nullptr, WNOHANG);
    }
  }
}

nlohmann::json ToJson(const std::vector<Process>& processes) {
  nlohmann::json list = nlohmann::json::array();
  for (const Process& p : processes) {
    nlohmann::json j = {{"name", p.name}, {"role", p.role}, {"address", p.address}, {"pid", p.pid}};
    j["stage"] = p.stage >= 0 ? nlohmann::json(p.stage) : nlohmann::json(nullptr);
    j["replica"] = p.replica >= 0 ? nlohmann::json(p.replica) : nlohmann::json(nullptr);
    j["argv"] = p.argv;
    if (!p.http_address.empty()) j["http_address"] = p.http_address;
    list.push_back(j);
  }
  return {{"processes", list}};
}

void ClusterUp(const ClusterArgs& a) {
  if (a.stages < 1) throw CommandError(2, "--stages must be >= 1");
  if (a.replicas < 1) throw CommandError(2, "--replicas must be >= 1");
  std::vector<std::string> layers;
  if (!a.layers.empty()) {
    layers = absl::StrSplit(a.layers, ',');
    if (static_cast<int>(layers.size()) != a.stages) {
      throw CommandError(
          2, absl::StrCat("--layers names ", layers.size(), " ranges for --stages ", a.stages));
    }
  }
  if (a.store == "redis" && a.redis.empty()) {
    throw CommandError(2, "--store redis needs --redis HOST:PORT (a running Redis)");
  }
  if (a.store != "rocksdb" && a.store != "redis" && a.store != "memory") {
    throw CommandError(2, "--store must be rocksdb, redis or memory");
  }
  std::vector<std::string> files = a.models;
  files.push_back(a.vocab);
  for (const std::string& f : files) {
    if (!fs::exists(f)) throw CommandError(1, "no such file: " + f);
  }
  // Each model is served under its file name without extension (the workers' default
  // --model-name), which must tell them apart.
  std::vector<std::string> names;
  for (const std::string& m : a.models) {
    const std::string name = fs::path(m).stem().string();
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      throw CommandError(2, "two --model files are both named '" + name + "'");
    }
    names.push_back(name);
  }
  if (!a.layers.empty() && a.models.size() > 1) {
    throw CommandError(2, "--layers fits one model; with several, each is split evenly");
  }
  // --initial-state [MODEL:]NAME=PATH: per model, the worker flags NAME=PATH. With several
  // models each state names its model (a state fits one model's shape).
  std::vector<std::vector<std::string>> states(a.models.size());
  for (const std::string& spec : a.initial_states) {
    const size_t eq = spec.find('=');
    const size_t colon = spec.substr(0, eq).find(':');
    const std::string model = colon == std::string::npos ? "" : spec.substr(0, colon);
    const std::string name = spec.substr(colon == std::string::npos ? 0 : colon + 1,
                                         eq - (colon == std::string::npos ? 0 : colon + 1));
    if (eq == std::string::npos || name.empty() || eq + 1 == spec.size()) {
      throw CommandError(2, "--initial-state wants [MODEL:]NAME=PATH, not '" + spec + "'");
    }
    const std::string flag = name + "=" + fs::absolute(spec.substr(eq + 1)).string();
    if (model.empty()) {
      if (a.models.size() > 1) {
        throw CommandError(
            2, "--initial-state '" + spec + "': with several models, say which: MODEL:NAME=PATH");
      }
      states[0].push_back(flag);
      continue;
    }
    auto it = std::find(names.begin(), names.end(), model);
    if (it == names.end()) {
      throw CommandError(2, "--initial-state '" + spec + "' names no --model called '" + model +
                                "' (models are named by their file's stem)");
    }
    states[it - names.begin()].push_back(flag);
  }
  const std::string dir = fs::absolute(a.dir).string();
  fs::create_directories(dir);
  if (fs::exists(dir + "/cluster.json")) {
    throw CommandError(
        1, dir + "/cluster.json exists: run `skein cluster down --dir " + a.dir + "` first");
  }
  const std::string bin = BinDir(a.bin_dir);
  const int workers = a.stages * a.replicas * static_cast<int>(a.models.size());
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // One machine, many processes: each worker gets its share of the cores.
  const int threads = a.threads > 0 ? a.threads : std::max(1, cores / workers);

  std::vector<Process> processes;
  auto start = [&](Process p, std::vector<std::string> argv) {
    const std::string ready = dir + "/" + p.name + ".ready";
    const std::string log = dir + "/" + p.name + ".log";
    fs::remove(ready);
    argv.insert(argv.end(),
                {"--listen", "127.0.0.1:0", "--metrics-port", "0", "--ready-file", ready});
    p.pid = Spawn(argv, log);
    p.argv = argv;
    processes.push_back(p);
    try {
      processes.back().address = WaitReady(ready, p.pid, p.name, log, a.timeout_seconds);
    } catch (...) {
      StopAll(processes, 2);
      throw;
    }
    return processes.back().address;
  };

  std::vector<std::string> store_argv = {bin + "/services/state_store/skein-state-store",
                                         "--backend", a.store};
  if (a.store == "rocksdb") store_argv.insert(store_argv.end(), {"--data-dir", dir + "/store"});
  if (a.store == "redis") store_argv.insert(store_argv.end(), {"--redis", a.redis});
  if (a.stores < 1 || (a.stores > 1 && a.store != "redis")) {
    throw CommandError(2, "--stores N > 1 needs --store redis (the stores share its data)");
  }
  // Several stores share one Redis: the others find the same data and index there.
  std::string store = start({"state-store", "state_store", "", -1, -1, -1, {}, ""}, store_argv);
  for (int i = 2; i <= a.stores; ++i) {
    store += "," + start({absl::StrCat("state-store-", i), "state_store", "", -1, -1, -1, {}, ""},
                         store_argv);
  }
  const std::string tokenizer = start({"tokenizer", "tokenizer", "", -1, -1, -1, {}, ""},
                                      {bin + "/services/tokenizer/skein-tokenizer", "--vocab",
                                       fs::absolute(a.vocab).string(), "--vocab-sha256", ""});
  // Per model, `replicas` pipelines of `stages` workers; the router gets one --pipeline each.
  std::vector<std::string> pipelines;
  for (size_t m = 0; m < a.models.size(); ++m) {
    std::vector<std::string> heads;
    // The first model's workers keep the plain names (worker-r0-s0); others say which model.
    const std::string prefix = m == 0 ? "worker-" : absl::StrCat("worker-m", m, "-");
    for (int r = 0; r < a.replicas; ++r) {
      std::string next;
      for (int s = a.stages - 1; s >= 0; --s) {
        std::vector<std::string> argv = {bin + "/services/worker/skein-worker",
                                         "--model",
                                         fs::absolute(a.models[m]).string(),
                                         "--stage",
                                         absl::StrCat(s),
                                         "--stages",
                                         absl::StrCat(a.stages),
                                         "--dtype",
                                         a.dtype,
                                         "--threads",
                                         absl::StrCat(threads),
                                         "--store",
                                         store};
        if (!layers.empty()) argv.insert(argv.end(), {"--layers", layers[s]});
        for (const std::string& flag : states[m]) {
          argv.insert(argv.end(), {"--initial-state", flag});
        }
        argv.insert(argv.end(), a.worker_args.begin(), a.worker_args.end());
        if (!next.empty()) argv.insert(argv.end(), {"--next", next});
        next = start({absl::StrCat(prefix, "r", r, "-s", s), "worker", "", s, r, -1, {}, ""}, argv);
      }
      heads.push_back(next);
    }
    // One model keeps the plain form; several are named, as the router tells them apart.
    pipelines.push_back(a.models.size() == 1
                            ? absl::StrJoin(heads, ",")
                            : absl::StrCat(names[m], "=", absl::StrJoin(heads, ",")));
  }
  std::vector<std::string> router_argv = {bin + "/services/router/skein-router", "--tokenizer",
                                          tokenizer, "--store", store};
  for (const std::string& p : pipelines) router_argv.insert(router_argv.end(), {"--pipeline", p});
  router_argv.insert(router_argv.end(), {"--http-listen", "127.0.0.1:0"});
  router_argv.insert(router_argv.end(), a.router_args.begin(), a.router_args.end());
  start({"router", "router", "", -1, -1, -1, {}, ""}, router_argv);
  {
    // The HTTP front's address is in the router's ready file.
    std::ifstream in(dir + "/router.ready");
    nlohmann::json ready = nlohmann::json::parse(in, nullptr, false);
    if (!ready.is_discarded() && ready.contains("http")) {
      processes.back().http_address = ready["http"].get<std::string>();
    }
  }

  try {
    for (const Process& p : processes) {
      WaitServing(p, dir + "/" + p.name + ".log", a.timeout_seconds);
    }
  } catch (...) {
    StopAll(processes, 2);
    throw;
  }
  std::ofstream(dir + "/cluster.json") << ToJson(processes).dump(2) << "\n";
  for (const Process& p : processes) {
    std::fprintf(stderr, "%-14s %-22s pid %d%s\n", p.name.c_str(), p.address.c_str(), p.pid,
                 p.http_address.empty() ? "" : (" http " + p.http_address).c_str());
  }
  std::printf("%s\n", processes.back().address.c_str());
}

void ClusterDown(const std::string& dir, double drain_seconds) {
  std::ifstream in(dir + "/cluster.json");
  if (!in) throw CommandError(1, "no cluster.json in " + dir);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("processes")) {
    throw CommandError(1, dir + "/cluster.json is not a cluster description");
  }
  std::vector<Process> processes;
  for (const auto& p : j["processes"]) {
    Process q;
    q.name = p.value("name", "");
    q.role = p.value("role", "");
    q.pid = p.value("pid", -1);
    processes.push_back(q);
  }
  StopAll(processes, drain_seconds);
  fs::remove(dir + "/cluster.json");
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(cluster, [](CLI::App& app) {
  auto* cluster = app.add_subcommand("cluster", "Run a whole Skein cluster on this machine");
  cluster->require_subcommand(1);
  auto* up = cluster->add_subcommand("up", "Start every service on loopback");
  auto a = std::make_shared<skein::cli::ClusterArgs>();
  up->add_option("--model", a->models,
                 "Checkpoint (.pth or .safetensors); repeat it to serve several models, each "
                 "under its file name without extension")
      ->required();
  up->add_option("--vocab", a->vocab, "RWKV World vocabulary file")->required();
  up->add_option("--stages", a->stages, "Pipeline stages per replica (default 1)");
  up->add_option("--replicas", a->replicas, "Pipeline replicas (default 1)");
  up->add_option("--dir", a->dir, "Directory for logs, data and cluster.json")->required();
  up->add_option("--layers", a->layers, "Layer range per stage, e.g. 0:4,4:8");
  up->add_option("--store", a->store, "State store backend: rocksdb (default), redis, memory");
  up->add_option("--redis", a->redis, "Redis address for --store redis (any node of a cluster)");
  up->add_option("--stores", a->stores,
                 "State store processes sharing the Redis (--store redis; default 1)");
  up->add_option("--dtype", a->dtype, "Worker weight dtype (default bf16)");
  up->add_option("--threads", a->threads, "Threads per worker (default: cores / workers)");
  up->add_option("--bin-dir", a->bin_dir, "Where services/*/skein-* are (default: beside skein)");
  up->add_option("--timeout", a->timeout_seconds, "Seconds to wait for each service (120)");
  up->add_option("--router-arg", a->router_args, "Extra flag for the router (repeatable)");
  up->add_option("--worker-arg", a->worker_args,
                 "Extra flag for every worker, e.g. --worker-arg=--device=cuda (repeatable)");
  up->add_option("--initial-state", a->initial_states,
                 "[MODEL:]NAME=PATH of a state-tuning file the model's workers load "
                 "(repeatable; MODEL, a --model file's stem, is needed with several models)");
  up->callback([a] { skein::cli::ClusterUp(*a); });
  auto* down = cluster->add_subcommand("down", "Stop a cluster that `up` started");
  auto dir = std::make_shared<std::string>();
  auto drain = std::make_shared<double>(15);
  down->add_option("--dir", *dir, "The directory given to `up`")->required();
  down->add_option("--drain-seconds", *drain, "Wait this long before SIGKILL (15)");
  down->callback([dir, drain] { skein::cli::ClusterDown(*dir, *drain); });
});
