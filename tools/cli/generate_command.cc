// `skein generate --model PATH --prompt-tokens 1,2,3 --max-tokens N`: feeds the prompt (one
// forward step), then samples N tokens one step at a time, and prints {"tokens": [...]} (the
// generated tokens only). Temperature 0 (the default) is greedy; see sampler.h for the rest.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "services/worker/model/sampler.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/engine_cli.h"

namespace skein::cli {
namespace {

struct GenerateArgs {
  EngineFlags engine;
  std::string initial_state;  // a state-tuning file to start from
  std::string prompt;
  int64_t max_tokens = 0;
  model::SamplerOptions sampler;
  std::string ban;
};

void RunGenerate(const GenerateArgs& args) {
  if (args.max_tokens < 0) throw CommandError(2, "--max-tokens must be >= 0");
  EngineFlags flags = args.engine;
  if (!args.initial_state.empty()) flags.initial_states.emplace_back("start", args.initial_state);
  Engine e = LoadEngine(flags);
  const int64_t vocab = e->weights().config().vocab;
  const std::vector<int32_t> prompt = ParseTokenList(args.prompt, "--prompt-tokens", vocab);
  model::SamplerOptions options = args.sampler;
  if (!args.ban.empty()) options.banned_tokens = ParseTokenList(args.ban, "--ban", vocab);
  absl::StatusOr<model::Sampler> sampler = model::Sampler::Create(options, vocab);
  if (!sampler.ok()) throw CommandError(2, std::string(sampler.status().message()));

  model::RwkvState state =
      args.initial_state.empty() ? e->model().NewState() : e->FindInitialState("start")->state;
  std::vector<int32_t> generated;
  model::SequenceStep seq{&state, prompt};
  model::StepResult result;
  absl::Status status = e->model().Step({&seq, 1}, nullptr, &result);
  while (static_cast<int64_t>(generated.size()) < args.max_tokens) {
    if (!status.ok()) throw CommandError(1, std::string(status.message()));
    absl::StatusOr<int32_t> next = sampler->Sample(result.logits);
    if (!next.ok()) throw CommandError(1, std::string(next.status().message()));
    generated.push_back(*next);
    if (static_cast<int64_t>(generated.size()) == args.max_tokens) break;
    model::SequenceStep step{&state, {&generated.back(), 1}};
    status = e->model().Step({&step, 1}, nullptr, &result);
  }
  FloatJson out;
  out["tokens"] = generated;
  std::printf("%s\n", out.dump().c_str());
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(generate, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Continue a prompt of token ids; print JSON");
  auto a = std::make_shared<skein::cli::GenerateArgs>();
  skein::cli::AddEngineFlags(cmd, &a->engine, "fp32");
  cmd->add_option("--prompt-tokens", a->prompt, "Prompt token ids, e.g. 1,2,3")->required();
  cmd->add_option("--initial-state", a->initial_state,
                  "Start from this state-tuning file (blocks.<l>.att.time_state) instead of zeros");
  cmd->add_option("--max-tokens", a->max_tokens, "How many tokens to generate")->required();
  cmd->add_option("--temperature", a->sampler.temperature, "0 (default) = greedy");
  cmd->add_option("--top-p", a->sampler.top_p, "Nucleus mass in (0, 1] (default 1: off)");
  cmd->add_option("--top-k", a->sampler.top_k, "Keep the k most likely (default 0: off)");
  cmd->add_option("--presence-penalty", a->sampler.presence_penalty, "Default 0");
  cmd->add_option("--frequency-penalty", a->sampler.frequency_penalty, "Default 0");
  cmd->add_option("--penalty-decay", a->sampler.penalty_decay, "Default 0.996");
  cmd->add_option("--ban", a->ban, "Token ids never to generate, e.g. 0");
  cmd->add_option("--seed", a->sampler.seed, "Sampling seed (default 0)");
  cmd->callback([a] { skein::cli::RunGenerate(*a); });
});
