#include "kernels/cuda/reference/host_step.h"

namespace skein::cuda::reference {

void HostStepScratch::Prepare(const Rwkv7WeightLayout& layout, int64_t S, int64_t T,
                              LogitsMode logits, int64_t chunk, bool round_activations,
                              Rwkv7StepBuffers* b) {
  const Rwkv7Shape& s = layout.shape();
  const DType act = ActivationType(layout.dtype(), round_activations);
  const int64_t R = S * T, C = s.embd, e = static_cast<int64_t>(base::DTypeSize(act));
  const int64_t head_rows = layout.has_head() ? LogitRows(logits, S, T) : 0;
  for (auto* f :
       {&x_, &r_, &k_, &v_, &decay_, &alpha_, &gate_, &v_gate_, &a_, &b_, &y_, &v_first_}) {
    f->assign(R * C, 0.0f);
  }
  lora_w_.assign(R * s.d_decay, 0.0f);
  lora_a_.assign(R * s.d_iclr, 0.0f);
  lora_v_.assign(R * s.d_value, 0.0f);
  lora_g_.assign(R * s.d_gate, 0.0f);
  hidden_.assign(R * s.ffn, 0.0f);
  saved_.assign(S * C, 0.0f);
  logits_.assign(head_rows * s.vocab, 0.0f);
  for (auto& m : mix_) m.assign(R * C * e, 0);
  lora_w16_.assign(R * s.d_decay * e, 0);
  lora_a16_.assign(R * s.d_iclr * e, 0);
  lora_v16_.assign(R * s.d_value * e, 0);
  lora_g16_.assign(R * s.d_gate * e, 0);
  out16_.assign(R * C * e, 0);
  hidden16_.assign(R * s.ffn * e, 0);
  head_in_.assign(head_rows * C * e, 0);
  Rwkv7StepBuffers& p = *b;
  p.act_type = act;
  p.x = x_.data();
  for (int m = 0; m < 6; ++m) p.mix[m] = mix_[m].data();
  p.r = r_.data();
  p.k = k_.data();
  p.v = v_.data();
  p.decay = decay_.data();
  p.alpha = alpha_.data();
  p.gate = gate_.data();
  p.v_gate = v_gate_.data();
  p.a = a_.data();
  p.b = b_.data();
  p.y = y_.data();
  p.v_first = v_first_.data();
  p.lora_w = lora_w_.data();
  p.lora_a = lora_a_.data();
  p.lora_v = lora_v_.data();
  p.lora_g = lora_g_.data();
  p.lora_w16 = lora_w16_.data();
  p.lora_a16 = lora_a16_.data();
  p.lora_v16 = lora_v16_.data();
  p.lora_g16 = lora_g16_.data();
  p.out16 = out16_.data();
  p.hidden = hidden_.data();
  p.hidden16 = hidden16_.data();
  p.saved = saved_.data();
  p.head_in = head_in_.data();
  p.logits = logits_.data();
  p.wkv_scratch = nullptr;
  p.wkv_chunk = 0;
  if (chunk > 0) {
    wkv_scratch_.assign(Wkv7ChunkedScratchFloats(S, T, C, chunk), 0.0f);
    p.wkv_scratch = wkv_scratch_.data();
    p.wkv_chunk = chunk;
  }
}

}  // namespace skein::cuda::reference
