#include "services/tokenizer/stream_detokenizer.h"

#include "services/tokenizer/utf8.h"

namespace skein::tokenizer {

absl::Status StreamDetokenizer::Push(absl::Span<const uint32_t> ids, std::string* text) {
  scratch_ = pending_;
  if (absl::Status s = tokenizer_->DecodeAppend(ids, mode_, &scratch_); !s.ok()) return s;
  const size_t consumed = AppendUtf8Repaired(scratch_, /*at_end=*/false, text);
  pending_.assign(scratch_, consumed);
  return absl::OkStatus();
}

absl::StatusOr<std::string> StreamDetokenizer::Push(uint32_t id) {
  std::string text;
  if (absl::Status s = Push(absl::MakeConstSpan(&id, 1), &text); !s.ok()) return s;
  return text;
}

std::string StreamDetokenizer::Finish() {
  std::string text = RepairUtf8(pending_);
  pending_.clear();
  return text;
}

}  // namespace skein::tokenizer
