#include "services/worker/model/testing/rwkv7_test_util.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model::testing {
namespace {

absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": bad JSON"));
  return j;
}

absl::StatusOr<Golden> FromJson(const nlohmann::json& tokens, const nlohmann::json& logits,
                                const nlohmann::json& state, const char* kv_key) {
  Golden g;
  try {
    g.tokens = tokens.get<std::vector<int32_t>>();
    g.logits = logits.get<std::vector<std::vector<float>>>();
    for (const nlohmann::json& layer : state) {
      std::vector<float> att;
      if (layer.contains(kv_key)) {
        att = layer.at(kv_key).get<std::vector<float>>();
      } else {
        // RWKV-4: aa, bb and pp per channel, in the order our state keeps them.
        for (const char* part : {"aa", "bb", "pp"}) {
          std::vector<float> v = layer.at(part).get<std::vector<float>>();
          att.insert(att.end(), v.begin(), v.end());
        }
      }
      g.final_state.push_back({layer.at("att_x_prev").get<std::vector<float>>(), std::move(att),
                               layer.at("ffn_x_prev").get<std::vector<float>>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("golden: ", e.what()));
  }
  return g;
}

}  // namespace

absl::StatusOr<Golden> ReadRwkv7Golden(const std::string& json_path) {
  absl::StatusOr<nlohmann::json> j = ReadJson(json_path);
  if (!j.ok()) return j.status();
  absl::StatusOr<Golden> g =
      FromJson((*j)["tokens"], (*j)["logits_per_step"], (*j)["final_state"], "att_kv");
  if (g.ok()) g->split = j->value("split", -1);
  return g;
}

absl::StatusOr<Golden> ReadMultiversionGolden(const std::string& json_path,
                                              const std::string& model) {
  absl::StatusOr<nlohmann::json> j = ReadJson(json_path);
  if (!j.ok()) return j.status();
  const nlohmann::json& m = (*j)["models"][model];
  return FromJson((*j)["tokens"], m["logits_after_each_token"], m["final_state"], "wkv");
}

absl::Status ReadGreedyGolden(const std::string& json_path, std::vector<int32_t>* prompt,
                              std::vector<int32_t>* greedy) {
  absl::StatusOr<nlohmann::json> j = ReadJson(json_path);
  if (!j.ok()) return j.status();
  try {
    *prompt = j->at("prompt").get<std::vector<int32_t>>();
    *greedy = j->at("greedy").get<std::vector<int32_t>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const RwkvWeights>> LoadWeights(const std::string& path, DType dtype,
                                                               int first_layer, int last_layer,
                                                               bool int8_panels, bool bf16_panels) {
  absl::StatusOr<std::unique_ptr<TensorArchive>> archive = OpenCheckpoint(path);
  if (!archive.ok()) return archive.status();
  RwkvLoadOptions options;
  options.run_dtype = dtype;
  options.first_layer = first_layer;
  options.last_layer = last_layer;
  options.int8_panels = int8_panels;
  options.bf16_panels = bf16_panels;
  absl::StatusOr<std::unique_ptr<RwkvWeights>> w =
      RwkvWeights::Load(std::shared_ptr<const TensorArchive>(*std::move(archive)), options);
  if (!w.ok()) return w.status();
  return std::shared_ptr<const RwkvWeights>(*std::move(w));
}

float StdDev(absl::Span<const float> v) {
  double sum = 0, squares = 0;
  for (float x : v) sum += x;
  const double mean = sum / v.size();
  for (float x : v) squares += (x - mean) * (x - mean);
  return static_cast<float>(std::sqrt(squares / v.size()));
}

float MaxAbsDiff(absl::Span<const float> a, absl::Span<const float> b) {
  if (a.size() != b.size()) return INFINITY;
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

float MaxStateDiff(const RwkvState& state, const Golden& golden) {
  float m = 0;
  for (int l = state.shape().first_layer; l < state.shape().last_layer; ++l) {
    if (l >= static_cast<int>(golden.final_state.size())) return INFINITY;
    const Golden::Layer& g = golden.final_state[l];
    m = std::max(m, MaxAbsDiff(state.att_x_prev(l), g.att_x_prev));
    m = std::max(m, MaxAbsDiff(state.att_kv(l), g.att_kv));
    m = std::max(m, MaxAbsDiff(state.ffn_x_prev(l), g.ffn_x_prev));
  }
  return m;
}

}  // namespace skein::model::testing
