// `skein logits --model PATH --tokens 1,2,3`: the logits after each token, from the zero
// state, as one JSON object {"tokens": [...], "logits": [[...], ...]} (one row per token),
// plus "final_state" (per layer {att_x_prev, att_kv, ffn_x_prev}, the goldens' layout) with
// --final-state. --mode step feeds one token per forward step; seq feeds them all in one.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tools/cli/command_registry.h"
#include "tools/cli/engine_cli.h"

namespace skein::cli {
namespace {

struct LogitsArgs {
  EngineFlags engine;
  std::string tokens;
  std::string mode = "seq";
  bool final_state = false;
};

void RunLogits(const LogitsArgs& args) {
  Engine e = LoadEngine(args.engine);
  const int64_t vocab = e->weights().config().vocab;
  const std::vector<int32_t> tokens = ParseTokenList(args.tokens, "--tokens", vocab);
  model::RwkvState state = e->model().NewState();
  std::vector<float> logits;
  if (args.mode == "seq") {
    model::SequenceStep seq{&state, tokens, 0, /*all_logits=*/true};
    absl::StatusOr<model::StepResult> r = e->model().Step({&seq, 1});
    if (!r.ok()) throw CommandError(1, std::string(r.status().message()));
    logits = std::move(r->logits);
  } else {
    for (const int32_t& token : tokens) {
      model::SequenceStep seq{&state, {&token, 1}};
      absl::StatusOr<model::StepResult> r = e->model().Step({&seq, 1});
      if (!r.ok()) throw CommandError(1, std::string(r.status().message()));
      logits.insert(logits.end(), r->logits.begin(), r->logits.end());
    }
  }
  FloatJson out;
  out["tokens"] = tokens;
  FloatJson rows = FloatJson::array();
  for (size_t t = 0; t < tokens.size(); ++t) {
    rows.push_back(
        std::vector<float>(logits.begin() + t * vocab, logits.begin() + (t + 1) * vocab));
  }
  out["logits"] = std::move(rows);
  if (args.final_state) {
    FloatJson layers = FloatJson::array();
    for (int l = 0; l < state.shape().last_layer; ++l) {
      FloatJson layer;
      auto vec = [](absl::Span<const float> s) { return std::vector<float>(s.begin(), s.end()); };
      layer["att_x_prev"] = vec(state.att_x_prev(l));
      layer["att_kv"] = vec(state.att_kv(l));
      layer["ffn_x_prev"] = vec(state.ffn_x_prev(l));
      layers.push_back(std::move(layer));
    }
    out["final_state"] = std::move(layers);
  }
  std::string text = out.dump();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(logits, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Print the logits after each token as JSON");
  auto a = std::make_shared<skein::cli::LogitsArgs>();
  skein::cli::AddEngineFlags(cmd, &a->engine, "fp32");
  cmd->add_option("--tokens", a->tokens, "Token ids, e.g. 1,2,3")->required();
  cmd->add_option("--mode", a->mode, "step (one token per forward step) or seq (default)")
      ->check(CLI::IsMember({"step", "seq"}));
  cmd->add_flag("--final-state", a->final_state, "Also print the state after the last token");
  cmd->callback([a] { skein::cli::RunLogits(*a); });
});
