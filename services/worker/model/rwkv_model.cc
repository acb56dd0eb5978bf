#include "services/worker/model/rwkv_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/kernels.h"
#include "services/worker/model/layer_step.h"

namespace skein::model {

RwkvModel::RwkvModel(std::shared_ptr<const RwkvWeights> weights, kernels::ThreadPool* pool,
                     RwkvModelOptions options)
    : weights_(std::move(weights)),
      pool_(pool),
      options_(options),
      scratch_(std::make_unique<Scratch>()) {
  const RwkvLayerWeights& first = weights_->layer(weights_->first_layer());
  const kernels::WeightMatrix& probe = first.ffn_key;
  // Where the CPU has AMX tiles, which batches run on them is timed once per process on the
  // first model's matrices (kernels/cpu/path_choice.h), before the rounding choice below so
  // that it compares the paths products will really take. int8 runs have bf16 panels only
  // in their LoRAs (exact activations): those are timed instead.
  const auto on_panels = [](const kernels::WeightMatrix& m) {
    return m.panels != nullptr && m.type == DType::kBF16 && m.rows > 0;
  };
  const kernels::WeightMatrix* tile_probe = on_panels(probe) ? &probe : nullptr;
  for (const kernels::WeightMatrix* m : {&first.g1, &first.w1, &first.maa_w1, &first.decay_w1}) {
    if (tile_probe == nullptr && on_panels(*m)) tile_probe = m;
  }
  if (tile_probe != nullptr && kernels::AmxTilesAvailable()) {
    tile_choice_ = kernels::ChooseTilePolicy(
        *tile_probe, tile_probe == &probe && options_.bf16_activations, pool_);
  } else {
    tile_choice_.policy = kernels::GetTilePolicy();
  }
  // Rounding activations to bf16 only changes anything for bf16 weights on CPUs with the bf16
  // instructions (elsewhere no product rounds: say so, rather than report it in use); there,
  // keep it only if it measures faster on this model's largest per-layer matrix.
  if (!kernels::Bf16PanelsAccelerated() || probe.type != DType::kBF16) {
    options_.bf16_activations = false;
  }
  if (options_.bf16_activations && options_.measure_bf16_activations && probe.rows > 0) {
    const int64_t batches[] = {16, 128};
    bf16_timings_ = kernels::TimeBf16Activations(probe, batches, pool_);
    options_.bf16_activations = kernels::Bf16ActivationsPayOff(bf16_timings_);
  }
}

RwkvModel::~RwkvModel() = default;

absl::Status RwkvModel::Step(absl::Span<const SequenceStep> sequences,
                             const StageActivations* input, StepResult* out) {
  int64_t validated_rows = 0;
  if (absl::Status s = ValidateStep(weights_->config(), weights_->state_shape(), sequences, input,
                                    &validated_rows);
      !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mutex_);
  const int64_t limit = options_.max_rows_per_pass;
  if (limit <= 0 || validated_rows <= limit) return RunPass(sequences, input, 0, out);
  return RunInPasses(sequences, input, out);
}

absl::Status RwkvModel::RunInPasses(absl::Span<const SequenceStep> sequences,
                                    const StageActivations* input, StepResult* out) {
  const bool first_stage = weights_->has_embedding();
  const int64_t limit = options_.max_rows_per_pass;
  out->logits.clear();
  out->logits_rows.clear();
  if (weights_->has_head()) out->logits_rows.assign(sequences.size(), 0);
  StageActivations& acts = out->activations;
  acts.rows = 0;
  acts.width = 0;
  acts.hidden.clear();
  acts.v_first.clear();
  std::vector<SequenceStep> pieces;
  std::vector<size_t> owners;  // the sequence each piece is part of
  StepResult& piece_out = pass_result_;
  size_t s = 0;
  int64_t done = 0;       // tokens of sequences[s] that earlier passes took
  int64_t input_row = 0;  // first row of the pass in `input`
  while (s < sequences.size()) {
    // The next pass: whole sequences while they fit, then the head of the next one; so a
    // sequence is never twice in one pass, and its pieces run in token order.
    pieces.clear();
    owners.clear();
    int64_t rows = 0;
    while (s < sequences.size() && rows < limit) {
      const SequenceStep& seq = sequences[s];
      const int64_t total = first_stage ? static_cast<int64_t>(seq.tokens.size()) : seq.num_tokens;
      const int64_t take = std::min(limit - rows, total - done);
      const bool last = done + take == total;
      SequenceStep piece = seq;
      if (first_stage) {
        piece.tokens = seq.tokens.subspan(done, take);
      } else {
        piece.num_tokens = take;
      }
      // Logits of a piece: all of its rows with all_logits; with neither flag, only the
      // sequence's last token.
      piece.no_logits = seq.no_logits || (!seq.all_logits && !last);
      pieces.push_back(piece);
      owners.push_back(s);
      rows += take;
      done = last ? 0 : done + take;
      if (last) ++s;
    }
    if (absl::Status status = RunPass(pieces, input, input_row, &piece_out); !status.ok()) {
      return status;
    }
    input_row += rows;
    out->logits.insert(out->logits.end(), piece_out.logits.begin(), piece_out.logits.end());
    for (size_t i = 0; i < piece_out.logits_rows.size(); ++i) {
      out->logits_rows[owners[i]] += piece_out.logits_rows[i];
    }
    const StageActivations& next = piece_out.activations;
    if (next.rows > 0) {
      acts.rows += next.rows;
      acts.width = next.width;
      acts.hidden.insert(acts.hidden.end(), next.hidden.begin(), next.hidden.end());
      acts.v_first.insert(acts.v_first.end(), next.v_first.begin(), next.v_first.end());
    }
  }
  return absl::OkStatus();
}

absl::Status RwkvModel::RunPass(absl::Span<const SequenceStep> sequences,
                                const StageActivations* input, int64_t input_row, StepResult* out) {
  const RwkvWeights& w = *weights_;
  const RwkvConfig& d = w.config();
  const int64_t C = d.n_embd;

  // Row offsets of each sequence in the step.
  std::vector<int64_t> offsets(sequences.size() + 1, 0);
  for (size_t s = 0; s < sequences.size(); ++s) {
    const int64_t n = w.has_embedding() ? static_cast<int64_t>(sequences[s].tokens.size())
                                        : sequences[s].num_tokens;
    offsets[s + 1] = offsets[s] + n;
  }
  const int64_t rows = offsets.back();
  StepResult& result = *out;
  result.logits_rows.clear();
  result.activations.rows = 0;
  result.activations.width = 0;
  if (rows == 0) {
    result.logits.clear();
    result.activations.hidden.clear();
    result.activations.v_first.clear();
    return absl::OkStatus();
  }

  Scratch& sc = *scratch_;
  sc.Resize(rows, d);
  // Whichever way the step ends, an oversized one hands its scratch memory back.
  absl::Cleanup shrink = [&sc, rows] {
    if (rows > kRetainedScratchRows) sc.Release();
  };
  sc.row_sequence.resize(rows);
  for (size_t s = 0; s < sequences.size(); ++s) {
    for (int64_t r = offsets[s]; r < offsets[s + 1]; ++r)
      sc.row_sequence[r] = static_cast<int32_t>(s);
  }

  if (w.has_embedding()) {
    std::vector<int32_t> tokens;
    tokens.reserve(rows);
    for (const SequenceStep& seq : sequences)
      tokens.insert(tokens.end(), seq.tokens.begin(), seq.tokens.end());
    auto embed = [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) w.Embed(tokens[r], sc.x.row(r));
    };
    if (pool_ != nullptr) {
      pool_->ParallelFor(rows, 4, embed);
    } else {
      embed(0, rows);
    }
  } else {
    std::memcpy(sc.x.ptr(), input->hidden.data() + input_row * C, rows * C * sizeof(float));
    if (d.has_value_residual()) {
      std::memcpy(sc.v_first.ptr(), input->v_first.data() + input_row * C,
                  rows * C * sizeof(float));
    }
  }

  for (int l = w.first_layer(); l < w.last_layer(); ++l) RunLayer(l, sequences, offsets);
  for (const SequenceStep& seq : sequences) {
    seq.state->set_position(seq.state->position() + (w.has_embedding()
                                                         ? static_cast<int64_t>(seq.tokens.size())
                                                         : seq.num_tokens));
  }

  if (!w.has_head()) {
    result.activations.rows = rows;
    result.activations.width = C;
    result.activations.hidden.assign(sc.x.ptr(), sc.x.ptr() + rows * C);
    if (d.has_value_residual()) {
      result.activations.v_first.assign(sc.v_first.ptr(), sc.v_first.ptr() + rows * C);
    } else {
      result.activations.v_first.clear();
    }
    result.logits.clear();
    return absl::OkStatus();
  }

  // ln_out and the head on the rows that need logits.
  std::vector<int64_t> out_rows;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const int64_t begin = sequences[s].no_logits    ? offsets[s + 1]
                          : sequences[s].all_logits ? offsets[s]
                                                    : offsets[s + 1] - 1;
    for (int64_t r = begin; r < offsets[s + 1]; ++r) out_rows.push_back(r);
    result.logits_rows.push_back(offsets[s + 1] - begin);
  }
  const int64_t n_out = static_cast<int64_t>(out_rows.size());
  result.logits.resize(n_out * d.vocab);
  result.activations.hidden.clear();
  result.activations.v_first.clear();
  if (n_out == 0) return absl::OkStatus();
  sc.head_in.Resize(n_out, C);
  for (int64_t i = 0; i < n_out; ++i) {
    kernels::LayerNorm(sc.x.row(out_rows[i]), w.ln_out_w(), w.ln_out_b(), C, kLayerNormEps,
                       sc.head_in.row(i));
  }
  kernels::MatMulJob head{sc.head_in.ptr(), C,     w.head(), result.logits.data(),
                          d.vocab,          n_out, false,    options_.bf16_activations};
  head.int8_activations = options_.int8_activations;
  kernels::MatMul(head, pool_);
  return absl::OkStatus();
}

size_t RwkvModel::scratch_bytes() const {
  absl::MutexLock lock(&mutex_);
  return scratch_->bytes();
}

void RwkvModel::RunLayer(int layer, absl::Span<const SequenceStep> sequences,
                         absl::Span<const int64_t> offsets) {
  const LayerStep step{weights_->config(),
                       weights_->layer(layer),
                       layer,
                       *scratch_,
                       sequences,
                       offsets,
                       pool_,
                       options_.bf16_activations,
                       options_.int8_activations};
  if (weights_->version() == RwkvVersion::kV7) {
    RunX070Layer(step);
  } else {
    RunClassicLayer(step);
  }
}

}  // namespace skein::model
