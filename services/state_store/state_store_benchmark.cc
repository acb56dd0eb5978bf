// State store speed over loopback gRPC: put, get, and put+get of one session state, for the
// RWKV-7 0.1B state (12 layers, C=768: 2,433,024 bytes) and the 7B state (32 layers, C=4096:
// 34,603,008 bytes), on RocksDB (--fsync interval, as the binary runs by default) and on
// Redis (AOF with appendfsync always, as the fault tests run it), and on the in-memory
// backend (the cost of gRPC and the store itself). Backends: 0 RocksDB, 1 Redis, 2 memory,
// 3 RocksDB --fsync always (what flushing before every acknowledgement costs), 4 RocksDB
// --fsync never (what the background flushes of the default cost). Reports MB/s
// and p50/p99 latency
// per operation. Backend 5 is a Redis Cluster of three masters with the shared index.
// Also measures what zstd does to real RWKV-7 states (the reference's final
// states in the goldens), which is why compression is off by default.
//
//   bazel run -c opt //services/state_store:state_store_benchmark
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "services/state_store/allocator.h"
#include "services/state_store/client.h"
#include "services/state_store/compression.h"
#include "services/state_store/memory_backend.h"
#include "services/state_store/redis_backend.h"
#include "services/state_store/redis_store_index.h"
#include "services/state_store/rocksdb_backend.h"
#include "services/state_store/state_store_service.h"
#include "services/state_store/store.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_data.h"

namespace skein::state_store {
namespace {

constexpr int kRocksDb = 0;
constexpr int kRedis = 1;
// In-process memory: the cost of gRPC and the store's own work, without storage.
constexpr int kMemory = 2;
// RocksDB with --fsync always: what flushing every write before acknowledging it costs.
constexpr int kRocksDbFsyncAlways = 3;
// RocksDB with --fsync never: what the default's background flushes cost.
constexpr int kRocksDbFsyncNever = 4;
// A Redis Cluster of three masters (AOF always) with the shared index: what scaling the store
// out over Redis Cluster costs per operation.
constexpr int kRedisCluster = 5;
constexpr int64_t kState01B = 2'433'024;
constexpr int64_t kState7B = 34'603'008;

// A store behind a gRPC server on 127.0.0.1, and a client talking to it.
struct Harness {
  std::unique_ptr<skein::testing::RedisServer> redis;
  std::unique_ptr<skein::testing::RedisCluster> cluster;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<StateStoreServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<StateStoreClient> client;
  std::string error;
};

std::map<int, std::unique_ptr<Harness>>& Harnesses() {
  static auto* harnesses = new std::map<int, std::unique_ptr<Harness>>;
  return *harnesses;
}

// Stops servers and stores (and kills redis-server) before the process exits.
void StopHarnesses() {
  for (auto& [kind, h] : Harnesses()) {
    if (h->server) h->server->Shutdown(std::chrono::system_clock::now());
  }
  Harnesses().clear();
}

Harness* GetHarness(int backend_kind) {
  std::unique_ptr<Harness>& h = Harnesses()[backend_kind];
  if (h) return h.get();
  h = std::make_unique<Harness>();
  std::unique_ptr<StorageBackend> backend;
  std::unique_ptr<StoreIndex> index;
  if (backend_kind == kRocksDb || backend_kind == kRocksDbFsyncAlways ||
      backend_kind == kRocksDbFsyncNever) {
    RocksDbOptions options;
    options.path = skein::testing::MakeTempDir("bench-rocksdb");
    options.fsync = backend_kind == kRocksDbFsyncAlways  ? FsyncPolicy::kAlways
                    : backend_kind == kRocksDbFsyncNever ? FsyncPolicy::kNever
                                                         : FsyncPolicy::kInterval;
    auto opened = RocksDbBackend::Open(options);
    if (!opened.ok()) {
      h->error = std::string(opened.status().message());
      return h.get();
    }
    backend = *std::move(opened);
  } else if (backend_kind == kMemory) {
    backend = std::make_unique<MemoryBackend>();
  } else if (backend_kind == kRedisCluster) {
    h->cluster = skein::testing::RedisCluster::Start(3, &h->error);
    if (!h->cluster) return h.get();
    RedisOptions options;
    options.port = h->cluster->node(0).port();
    auto connected = RedisBackend::Connect(options);
    auto shared = RedisStoreIndex::Connect(options);
    if (!connected.ok() || !shared.ok()) {
      h->error = std::string((connected.ok() ? shared.status() : connected.status()).message());
      return h.get();
    }
    backend = *std::move(connected);
    index = *std::move(shared);
  } else {
    h->redis = skein::testing::RedisServer::Start(&h->error);
    if (!h->redis) return h.get();
    RedisOptions options;
    options.port = h->redis->port();
    auto connected = RedisBackend::Connect(options);
    if (!connected.ok()) {
      h->error = std::string(connected.status().message());
      return h.get();
    }
    backend = *std::move(connected);
  }
  StoreOptions store_options;
  store_options.capacity_bytes = 0;
  auto store =
      StateStore::Open(std::move(backend), store_options, nullptr, nullptr, std::move(index));
  if (!store.ok()) {
    h->error = std::string(store.status().message());
    return h.get();
  }
  h->store = *std::move(store);
  h->service = std::make_unique<StateStoreServiceImpl>(h->store.get(), ServiceOptions());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(h->service.get());
  h->server = builder.BuildAndStart();
  h->client = std::make_unique<StateStoreClient>(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  return h.get();
}

const std::string& StateBytes(int64_t size) {
  static std::map<int64_t, std::string> cache;
  std::string& data = cache[size];
  if (data.empty()) {
    // fp32 values from a normal distribution: about as compressible as a real state.
    std::mt19937 gen(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    data.resize(static_cast<size_t>(size));
    for (size_t i = 0; i + 4 <= data.size(); i += 4) {
      float v = normal(gen);
      std::memcpy(&data[i], &v, 4);
    }
  }
  return data;
}

void ReportLatencies(benchmark::State& state, std::vector<double> seconds) {
  if (seconds.empty()) return;
  std::sort(seconds.begin(), seconds.end());
  auto at = [&](double q) {
    return seconds[std::min(seconds.size() - 1, static_cast<size_t>(q * seconds.size()))];
  };
  state.counters["p50_ms"] = at(0.50) * 1e3;
  state.counters["p99_ms"] = at(0.99) * 1e3;
  state.counters["max_ms"] = seconds.back() * 1e3;
}

enum class Op { kPut, kGet, kPutGet };

void RunOp(benchmark::State& state, Op op) {
  Harness* h = GetHarness(static_cast<int>(state.range(0)));
  if (!h->error.empty()) {
    state.SkipWithError(h->error.c_str());
    return;
  }
  const std::string& data = StateBytes(state.range(1));
  const std::string read_key = "bench/read/" + std::to_string(state.range(1));
  if (op == Op::kGet && !h->client->Put(read_key, data).ok()) {
    state.SkipWithError("setup put failed");
    return;
  }
  // Writers cycle over 16 sessions, as a worker saving many sessions would.
  auto run_once = [&](int i) {
    std::string key = "bench/session-" + std::to_string(i % 16);
    bool ok = true;
    if (op != Op::kGet) ok = h->client->Put(key, data).ok();
    if (ok && op != Op::kPut) {
      absl::StatusOr<ClientBlob> blob = h->client->Get(op == Op::kGet ? read_key : key);
      ok = blob.ok() && blob->data.size() == data.size();
    }
    return ok;
  };
  // A fresh process is slower for its first hundred or so operations while its heap, the
  // page cache and gRPC's and TCP's buffers grow to their working size; what a serving store
  // sees is the steady state after that, so those operations are not timed (the first
  // state_store_benchmark run without warm-up is in docs/benchmarks.md).
  const int warmup = static_cast<int>(std::max<int64_t>(10, (360 << 20) / state.range(1)));
  for (int w = 0; w < warmup; ++w) {
    if (!run_once(w)) {
      state.SkipWithError("warm-up operation failed");
      return;
    }
  }
  std::vector<double> latencies;
  int i = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    const bool ok = run_once(i++);
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!ok) {
      state.SkipWithError("operation failed");
      break;
    }
    state.SetIterationTime(elapsed);
    latencies.push_back(elapsed);
  }
  int64_t per_op = state.range(1) * (op == Op::kPutGet ? 2 : 1);
  state.SetBytesProcessed(state.iterations() * per_op);
  ReportLatencies(state, std::move(latencies));
}

void BM_Put(benchmark::State& state) { RunOp(state, Op::kPut); }
void BM_Get(benchmark::State& state) { RunOp(state, Op::kGet); }
void BM_PutThenGet(benchmark::State& state) { RunOp(state, Op::kPutGet); }

void Sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"backend", "bytes"})->UseManualTime()->Unit(benchmark::kMillisecond);
}

#define STATE_BENCHMARK(fn)                                                              \
  BENCHMARK(fn)->Apply(Sizes)->Args({kRocksDb, kState01B})->Iterations(1000);            \
  BENCHMARK(fn)->Apply(Sizes)->Args({kRocksDb, kState7B})->Iterations(30);               \
  BENCHMARK(fn)->Apply(Sizes)->Args({kRedis, kState01B})->Iterations(1000);              \
  BENCHMARK(fn)->Apply(Sizes)->Args({kRedis, kState7B})->Iterations(30);                 \
  BENCHMARK(fn)->Apply(Sizes)->Args({kMemory, kState01B})->Iterations(1000);             \
  BENCHMARK(fn)->Apply(Sizes)->Args({kMemory, kState7B})->Iterations(30);                \
  BENCHMARK(fn)->Apply(Sizes)->Args({kRocksDbFsyncAlways, kState01B})->Iterations(1000); \
  BENCHMARK(fn)->Apply(Sizes)->Args({kRocksDbFsyncNever, kState01B})->Iterations(1000);  \
  BENCHMARK(fn)->Apply(Sizes)->Args({kRedisCluster, kState01B})->Iterations(1000)

STATE_BENCHMARK(BM_Put);
STATE_BENCHMARK(BM_Get);
STATE_BENCHMARK(BM_PutThenGet);

// A golden final state (reference implementation, every layer) as the fp32 blob a worker
// would store.
std::string GoldenStateBlob(const std::string& relative) {
  std::string path = skein::testing::FindTestData(relative);
  if (path.empty()) return "";
  std::ifstream in(path);
  nlohmann::json golden = nlohmann::json::parse(in);
  std::string blob;
  for (const auto& layer : golden["final_state"]) {
    for (const char* name : {"att_x_prev", "att_kv", "ffn_x_prev"}) {
      for (float v : layer[name].get<std::vector<float>>()) {
        blob.append(reinterpret_cast<const char*>(&v), sizeof(v));
      }
    }
  }
  return blob;
}

void BM_ZstdOnGoldenState(benchmark::State& state) {
  static const std::string blob = GoldenStateBlob("golden/rwkv7/small-l4-c256-v1024.golden.json");
  if (blob.empty()) {
    state.SkipWithError("golden state not found (set SKEIN_SHARED_DIR)");
    return;
  }
  size_t compressed = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> frame = ZstdCompress(blob, static_cast<int>(state.range(0)));
    compressed = frame->size();
    benchmark::DoNotOptimize(frame);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(blob.size()));
  state.counters["state_bytes"] = static_cast<double>(blob.size());
  state.counters["ratio"] = static_cast<double>(blob.size()) / static_cast<double>(compressed);
}
BENCHMARK(BM_ZstdOnGoldenState)->ArgName("level")->Arg(1)->Arg(3)->Arg(9)->Arg(19);

void BM_ZstdOnSyntheticState(benchmark::State& state) {
  const std::string& blob = StateBytes(kState01B);
  size_t compressed = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> frame = ZstdCompress(blob, static_cast<int>(state.range(0)));
    compressed = frame->size();
    benchmark::DoNotOptimize(frame);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(blob.size()));
  state.counters["ratio"] = static_cast<double>(blob.size()) / static_cast<double>(compressed);
}
BENCHMARK(BM_ZstdOnSyntheticState)->ArgName("level")->Arg(1)->Arg(3);

}  // namespace
}  // namespace skein::state_store

int main(int argc, char** argv) {
  // As skein-state-store does (allocator.h); SKEIN_BENCH_DEFAULT_MALLOC=1 measures without.
  if (std::getenv("SKEIN_BENCH_DEFAULT_MALLOC") == nullptr) {
    skein::state_store::KeepLargeAllocationsInHeap();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  skein::state_store::StopHarnesses();
  return 0;
}
