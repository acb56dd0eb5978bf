#include "services/worker/model/device/device_rwkv_model.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace skein::model {
namespace {

absl::Status EngineError(const char* what, const cuda::Status& s) {
  return absl::InternalError(absl::StrCat("device engine: ", what, ": ", s.message()));
}

// A state whose newer floats cannot be brought back from the device cannot be read correctly
// any more; serving it stale would corrupt the session silently, so the process stops (the
// session's last snapshot in the state store survives it).
[[noreturn]] void DieOnLostState(const cuda::Status& s) {
  std::fprintf(stderr, "fatal: device engine: cannot copy a state back to the host: %s\n",
               s.message().c_str());
  std::abort();
}

}  // namespace

DeviceRwkvModel::DeviceRwkvModel(const RwkvConfig& config, const StateShape& shape,
                                 std::unique_ptr<cuda::Rwkv7Engine> engine)
    : config_(config), shape_(shape), engine_(std::move(engine)) {
  absl::MutexLock lock(&mutex_);
  const int64_t n = engine_->slots();
  slots_.resize(static_cast<size_t>(n));
  for (int64_t i = n - 1; i >= 0; --i) free_.push_back(static_cast<int32_t>(i));
  slot_count_ = n;
}

DeviceRwkvModel::~DeviceRwkvModel() {
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < slots_.size(); ++i) {
    RwkvState* state = slots_[i].state;
    if (state == nullptr) continue;
    if (state->device_newer()) {
      const cuda::Status s =
          engine_->ReadSlot(static_cast<int32_t>(i), state->host_floats().data());
      if (!s.ok()) DieOnLostState(s);
    }
    state->DetachResidency();
  }
}

DeviceModelStats DeviceRwkvModel::stats() const {
  DeviceModelStats s;
  s.slots = slot_count_;
  s.resident = resident_.load(std::memory_order_relaxed);
  s.uploads = uploads_.load(std::memory_order_relaxed);
  s.fetches = fetches_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  return s;
}

void DeviceRwkvModel::Touch(int32_t slot) { lru_.splice(lru_.begin(), lru_, slots_[slot].lru); }

absl::Status DeviceRwkvModel::Evict(int32_t slot) {
  RwkvState* state = slots_[slot].state;
  if (state->device_newer()) {
    const cuda::Status s = engine_->ReadSlot(slot, state->host_floats().data());
    if (!s.ok()) return EngineError("copying an evicted state back", s);
    fetches_.fetch_add(1, std::memory_order_relaxed);
  }
  state->DetachResidency();
  slot_of_.erase(state);
  resident_.store(static_cast<int64_t>(slot_of_.size()), std::memory_order_relaxed);
  lru_.erase(slots_[slot].lru);
  slots_[slot].state = nullptr;
  free_.push_back(slot);
  evictions_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<int32_t> DeviceRwkvModel::Acquire(RwkvState* state,
                                                 const std::vector<bool>& in_step) {
  if (auto it = slot_of_.find(state); it != slot_of_.end()) {
    Touch(it->second);
    return it->second;
  }
  // Resident with another engine (a state handed between models): bring it home first, which
  // ends that residency.
  if (StateResidency* other = state->residency(); other != nullptr && other != this) {
    (void)state->data();
  }
  if (free_.empty()) {
    int32_t victim = -1;
    for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
      if (!in_step[*it]) {
        victim = *it;
        break;
      }
    }
    if (victim < 0) {
      return absl::ResourceExhaustedError("every device state slot is in use by this step");
    }
    if (absl::Status s = Evict(victim); !s.ok()) return s;
  }
  const int32_t slot = free_.back();
  if (const cuda::Status s = engine_->WriteSlot(slot, state->host_floats().data()); !s.ok()) {
    return EngineError("copying a state to the device", s);
  }
  free_.pop_back();
  lru_.push_front(slot);
  slots_[slot].state = state;
  slots_[slot].lru = lru_.begin();
  slot_of_[state] = slot;
  state->AttachResidency(this, /*device_newer=*/false);
  resident_.store(static_cast<int64_t>(slot_of_.size()), std::memory_order_relaxed);
  uploads_.fetch_add(1, std::memory_order_relaxed);
  return slot;
}

void DeviceRwkvModel::Fetch(RwkvState& state) {
  absl::MutexLock lock(&mutex_);
  auto it = slot_of_.find(&state);
  if (it == slot_of_.end() || !state.device_newer()) return;
  const cuda::Status s = engine_->ReadSlot(it->second, state.host_floats().data());
  if (!s.ok()) DieOnLostState(s);
  fetches_.fetch_add(1, std::memory_order_relaxed);
  state.MarkHostCurrent();
}

void DeviceRwkvModel::Release(RwkvState& state) {
  absl::MutexLock lock(&mutex_);
  auto it = slot_of_.find(&state);
  if (it != slot_of_.end()) {
    const int32_t slot = it->second;
    slot_of_.erase(it);
    resident_.store(static_cast<int64_t>(slot_of_.size()), std::memory_order_relaxed);
    lru_.erase(slots_[slot].lru);
    slots_[slot].state = nullptr;
    free_.push_back(slot);
  }
  state.DetachResidency();
}

absl::Status DeviceRwkvModel::Step(absl::Span<const SequenceStep> sequences,
                                   const StageActivations* input, StepResult* result) {
  int64_t rows = 0;
  if (absl::Status s = ValidateStep(config_, shape_, sequences, input, &rows); !s.ok()) return s;
  const bool first = shape_.first_layer == 0;
  const bool last = shape_.last_layer == config_.n_layer;
  const int64_t C = config_.n_embd, V = config_.vocab;
  const size_t n = sequences.size();
  StepResult& r = *result;
  // Cleared, not freed: a caller that keeps its result reuses the memory step after step.
  r.logits.clear();
  r.logits_rows.clear();
  r.activations.rows = 0;
  r.activations.width = 0;
  r.activations.hidden.clear();
  r.activations.v_first.clear();
  if (rows == 0) return absl::OkStatus();

  absl::MutexLock lock(&mutex_);
  if (n > slots_.size()) {
    return absl::ResourceExhaustedError(absl::StrCat("the step has ", n,
                                                     " sequences; the device holds ", slots_.size(),
                                                     " state slots (--device-slots)"));
  }
  // Row offsets of each sequence in the step's input and activations.
  std::vector<int64_t> offsets(n + 1, 0);
  for (size_t s = 0; s < n; ++s) {
    const int64_t t =
        first ? static_cast<int64_t>(sequences[s].tokens.size()) : sequences[s].num_tokens;
    offsets[s + 1] = offsets[s] + t;
  }

  std::vector<int32_t> slot(n);
  std::vector<bool> in_step(slots_.size(), false);
  for (size_t s = 0; s < n; ++s) {
    absl::StatusOr<int32_t> got = Acquire(sequences[s].state, in_step);
    if (!got.ok()) return got.status();
    slot[s] = *got;
    in_step[*got] = true;
  }

  // Logits rows per sequence (last stage) and where each sequence's rows go in the result.
  auto mode_of = [&](const SequenceStep& seq) {
    if (!last || seq.no_logits) return cuda::LogitsMode::kNone;
    return seq.all_logits ? cuda::LogitsMode::kAll : cuda::LogitsMode::kLast;
  };
  std::vector<int64_t> logit_offset(n + 1, 0);
  if (last) {
    for (size_t s = 0; s < n; ++s) {
      const int64_t t = offsets[s + 1] - offsets[s];
      const cuda::LogitsMode m = mode_of(sequences[s]);
      const int64_t k = m == cuda::LogitsMode::kNone ? 0 : m == cuda::LogitsMode::kAll ? t : 1;
      r.logits_rows.push_back(k);
      logit_offset[s + 1] = logit_offset[s] + k;
    }
    r.logits.resize(static_cast<size_t>(logit_offset[n] * V));
  } else {
    r.activations.rows = rows;
    r.activations.width = C;
    r.activations.hidden.resize(static_cast<size_t>(rows * C));
    r.activations.v_first.resize(static_cast<size_t>(rows * C));
  }

  // Uniform groups: sequences of the same length wanting the same logits, in first-seen order.
  struct Group {
    int64_t tokens;
    cuda::LogitsMode mode;
    std::vector<size_t> members;
  };
  std::vector<Group> groups;
  for (size_t s = 0; s < n; ++s) {
    const int64_t t = offsets[s + 1] - offsets[s];
    const cuda::LogitsMode m = mode_of(sequences[s]);
    Group* g = nullptr;
    for (Group& candidate : groups) {
      if (candidate.tokens == t && candidate.mode == m) g = &candidate;
    }
    if (g == nullptr) g = &groups.emplace_back(Group{t, m, {}});
    g->members.push_back(s);
  }

  // One group (every decode step, and most others) holds every sequence in step order: the
  // engine then reads the input and writes the result in place, with no copies.
  const bool in_place = groups.size() == 1;
  GroupScratch& sc = scratch_;
  for (const Group& g : groups) {
    const int64_t S = static_cast<int64_t>(g.members.size()), T = g.tokens;
    const size_t rows_floats = static_cast<size_t>(S * T * C);
    sc.slots.clear();
    for (size_t s : g.members) sc.slots.push_back(slot[s]);
    cuda::Rwkv7StepIo io;
    io.sessions = S;
    io.tokens = T;
    io.slots = sc.slots.data();
    if (first) {
      sc.tokens.clear();
      for (size_t s : g.members) {
        sc.tokens.insert(sc.tokens.end(), sequences[s].tokens.begin(), sequences[s].tokens.end());
      }
      io.token_ids = sc.tokens.data();
    } else if (in_place) {
      io.hidden_in = input->hidden.data();
      io.v_first_in = input->v_first.data();
    } else {
      sc.hidden.resize(rows_floats);
      sc.v_first.resize(rows_floats);
      for (int64_t i = 0; i < S; ++i) {
        const int64_t from = offsets[g.members[i]] * C;
        std::copy_n(input->hidden.data() + from, T * C, sc.hidden.data() + i * T * C);
        std::copy_n(input->v_first.data() + from, T * C, sc.v_first.data() + i * T * C);
      }
      io.hidden_in = sc.hidden.data();
      io.v_first_in = sc.v_first.data();
    }
    if (last) {
      io.logits_mode = g.mode;
      if (g.mode != cuda::LogitsMode::kNone) {
        const int64_t out_rows = g.mode == cuda::LogitsMode::kAll ? S * T : S;
        if (!in_place) sc.logits.resize(static_cast<size_t>(out_rows * V));
        io.logits = in_place ? r.logits.data() : sc.logits.data();
      }
    } else if (in_place) {
      io.hidden_out = r.activations.hidden.data();
      io.v_first_out = r.activations.v_first.data();
    } else {
      sc.hidden_out.resize(rows_floats);
      sc.v_first_out.resize(rows_floats);
      io.hidden_out = sc.hidden_out.data();
      io.v_first_out = sc.v_first_out.data();
    }
    if (const cuda::Status s = engine_->Step(io); !s.ok()) return EngineError("step", s);

    for (int64_t i = 0; i < S; ++i) {
      const size_t s = g.members[i];
      RwkvState* state = sequences[s].state;
      state->AttachResidency(this, /*device_newer=*/true);
      state->set_position(state->position() + T);
      if (in_place) continue;
      if (last) {
        const int64_t k = logit_offset[s + 1] - logit_offset[s];
        std::copy_n(sc.logits.data() + i * k * V, k * V, r.logits.data() + logit_offset[s] * V);
      } else {
        std::copy_n(sc.hidden_out.data() + i * T * C, T * C,
                    r.activations.hidden.data() + offsets[s] * C);
        std::copy_n(sc.v_first_out.data() + i * T * C, T * C,
                    r.activations.v_first.data() + offsets[s] * C);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace skein::model
