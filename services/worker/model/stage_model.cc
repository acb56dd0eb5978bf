#include "services/worker/model/stage_model.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace skein::model {

absl::StatusOr<StepResult> StageModel::Step(absl::Span<const SequenceStep> sequences,
                                            const StageActivations* input) {
  StepResult result;
  if (absl::Status s = Step(sequences, input, &result); !s.ok()) return s;
  return result;
}

absl::Status ValidateStep(const RwkvConfig& d, const StateShape& shape,
                          absl::Span<const SequenceStep> sequences, const StageActivations* input,
                          int64_t* rows_out) {
  const bool first_stage = shape.first_layer == 0;
  if (first_stage && input != nullptr) {
    return absl::InvalidArgumentError("the first stage takes token ids, not activations");
  }
  if (!first_stage && input == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("a stage starting at layer ", shape.first_layer,
                                                   " needs the previous stage's activations"));
  }
  std::set<const RwkvState*> seen;
  int64_t rows = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const SequenceStep& seq = sequences[s];
    if (seq.state == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no state"));
    }
    if (seq.state->shape() != shape) {
      const StateShape& sh = seq.state->shape();
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s, ": state for layers [", sh.first_layer, ", ", sh.last_layer,
                       ") C=", sh.embd, " does not fit this stage (layers [", shape.first_layer,
                       ", ", shape.last_layer, ") C=", d.n_embd, ")"));
    }
    if (!seen.insert(seq.state).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s, " uses a state that another sequence of the step uses"));
    }
    if (first_stage) {
      if (seq.tokens.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no tokens"));
      }
      for (size_t i = 0; i < seq.tokens.size(); ++i) {
        if (seq.tokens[i] < 0 || seq.tokens[i] >= d.vocab) {
          return absl::InvalidArgumentError(
              absl::StrCat("sequence ", s, ": token ", i, " is ", seq.tokens[i],
                           ", outside the vocabulary [0, ", d.vocab, ")"));
        }
      }
      rows += static_cast<int64_t>(seq.tokens.size());
    } else {
      if (!seq.tokens.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", s, ": token ids given to a stage that does not start at layer 0"));
      }
      if (seq.num_tokens <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no tokens"));
      }
      rows += seq.num_tokens;
    }
  }
  if (input != nullptr) {
    const size_t want = static_cast<size_t>(rows * d.n_embd);
    // Only x070 passes layer 0's value along; the other versions send none.
    const size_t want_v_first = d.has_value_residual() ? want : 0;
    if (input->rows != rows || input->width != d.n_embd || input->hidden.size() != want ||
        input->v_first.size() != want_v_first) {
      return absl::InvalidArgumentError(
          absl::StrCat("activations hold ", input->rows, " rows of width ", input->width, " (",
                       input->hidden.size(), " hidden and ", input->v_first.size(),
                       " v_first values); the sequences need ", rows, " rows of width ", d.n_embd));
    }
  }
  *rows_out = rows;
  return absl::OkStatus();
}

}  // namespace skein::model
