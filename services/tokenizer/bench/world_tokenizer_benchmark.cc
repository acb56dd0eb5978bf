// Speed of the World tokenizer: encode and decode throughput on a large text, per-call cost on
// short messages, streaming detokenization, and vocabulary load time.
//
//   python3 services/tokenizer/bench/make_corpus.py --out /tmp/corpus.txt
//   bazel build //services/tokenizer/bench:world_tokenizer_benchmark
//   bazel-bin/services/tokenizer/bench/world_tokenizer_benchmark
//       --vocab=../shared/data/rwkv_vocab_v20230424.txt --corpus=/tmp/corpus.txt
//
// Besides Google Benchmark's own flags it takes --vocab=PATH (required) and --corpus=PATH
// (a text file; without it the corpus benchmarks are skipped).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "services/tokenizer/stream_detokenizer.h"
#include "services/tokenizer/vocab_file.h"
#include "services/tokenizer/vocab_parser.h"
#include "services/tokenizer/world_tokenizer.h"

namespace skein::tokenizer {
namespace {

std::string g_vocab_path;
std::string g_corpus;

const WorldTokenizer& Tokenizer() {
  static const WorldTokenizer* tokenizer = [] {
    absl::StatusOr<WorldTokenizer> t = WorldTokenizer::LoadFile(g_vocab_path);
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.status().ToString().c_str());
      std::exit(1);
    }
    return new WorldTokenizer(*std::move(t));
  }();
  return *tokenizer;
}

const std::vector<uint32_t>& CorpusIds() {
  static const std::vector<uint32_t>* ids = new std::vector<uint32_t>(Tokenizer().Encode(g_corpus));
  return *ids;
}

bool NeedCorpus(benchmark::State& state) {
  if (!g_corpus.empty()) return true;
  state.SkipWithError("no --corpus given");
  return false;
}

void BM_Encode(benchmark::State& state) {
  if (!NeedCorpus(state)) return;
  const WorldTokenizer& t = Tokenizer();
  std::vector<uint32_t> ids;
  for (auto _ : state) {
    ids.clear();
    t.EncodeAppend(g_corpus, &ids);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(state.iterations() * g_corpus.size());
  state.counters["tokens"] = static_cast<double>(ids.size());
}
BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_CountTokens(benchmark::State& state) {
  if (!NeedCorpus(state)) return;
  const WorldTokenizer& t = Tokenizer();
  for (auto _ : state) benchmark::DoNotOptimize(t.CountTokens(g_corpus));
  state.SetBytesProcessed(state.iterations() * g_corpus.size());
}
BENCHMARK(BM_CountTokens)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_Decode(benchmark::State& state) {
  if (!NeedCorpus(state)) return;
  const WorldTokenizer& t = Tokenizer();
  const std::vector<uint32_t>& ids = CorpusIds();
  std::string out;
  for (auto _ : state) {
    out.clear();
    if (!t.DecodeAppend(ids, DecodeMode::kStrict, &out).ok()) state.SkipWithError("decode");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * g_corpus.size());
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// One id per call, as a server streams generated tokens.
void BM_StreamDetokenize(benchmark::State& state) {
  if (!NeedCorpus(state)) return;
  const WorldTokenizer& t = Tokenizer();
  const std::vector<uint32_t>& ids = CorpusIds();
  std::string out;
  for (auto _ : state) {
    StreamDetokenizer stream(&t);
    out.clear();
    for (uint32_t id : ids) {
      if (!stream.Push(absl::MakeConstSpan(&id, 1), &out).ok()) state.SkipWithError("push");
    }
    out += stream.Finish();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * g_corpus.size());
}
BENCHMARK(BM_StreamDetokenize)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// A chat-sized message per call: the per-request cost a service sees.
void BM_EncodeMessage(benchmark::State& state) {
  if (!NeedCorpus(state)) return;
  const WorldTokenizer& t = Tokenizer();
  const size_t length = state.range(0);
  std::vector<uint32_t> ids;
  size_t offset = 0;
  for (auto _ : state) {
    if (offset + length > g_corpus.size()) offset = 0;
    ids = t.Encode(absl::string_view(g_corpus).substr(offset, length));
    benchmark::DoNotOptimize(ids.data());
    offset += length;
  }
  state.SetBytesProcessed(state.iterations() * length);
}
BENCHMARK(BM_EncodeMessage)->Arg(64)->Arg(1024);

// Read + SHA-256 check + parse + build, as a server start does.
void BM_LoadVocabulary(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<WorldTokenizer> t = WorldTokenizer::LoadFile(g_vocab_path);
    if (!t.ok()) state.SkipWithError(t.status().ToString().c_str());
    benchmark::DoNotOptimize(t);
  }
  state.counters["trie_bytes"] = static_cast<double>(Tokenizer().trie_memory_bytes());
}
BENCHMARK(BM_LoadVocabulary)->Unit(benchmark::kMillisecond);

// The parts of loading.
void BM_LoadParts(benchmark::State& state) {
  const absl::StatusOr<VocabFile> file = ReadVocabFile(g_vocab_path);
  if (!file.ok()) {
    state.SkipWithError(file.status().ToString().c_str());
    return;
  }
  const absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary(file->contents);
  for (auto _ : state) {
    switch (state.range(0)) {
      case 0:
        benchmark::DoNotOptimize(ReadVocabFile(g_vocab_path));
        break;
      case 1:
        benchmark::DoNotOptimize(ParseVocabulary(file->contents));
        break;
      default:
        benchmark::DoNotOptimize(WorldTokenizer::FromEntries(*entries));
        break;
    }
  }
  state.SetLabel(state.range(0) == 0   ? "read+sha256"
                 : state.range(0) == 1 ? "parse"
                                       : "build tables");
}
BENCHMARK(BM_LoadParts)->DenseRange(0, 2)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace skein::tokenizer

int main(int argc, char** argv) {
  std::vector<char*> rest;
  std::string corpus_path;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--vocab=", 8) == 0) {
      skein::tokenizer::g_vocab_path = argv[i] + 8;
    } else if (std::strncmp(argv[i], "--corpus=", 9) == 0) {
      corpus_path = argv[i] + 9;
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (skein::tokenizer::g_vocab_path.empty()) {
    std::fprintf(stderr, "usage: %s --vocab=PATH [--corpus=PATH] [benchmark flags]\n", argv[0]);
    return 2;
  }
  if (!corpus_path.empty()) {
    std::ifstream in(corpus_path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read corpus %s\n", corpus_path.c_str());
      return 2;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    skein::tokenizer::g_corpus = buffer.str();
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
