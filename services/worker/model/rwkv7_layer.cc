// The x070 layer (spec §2.4) over every row of a step: a chain of named operations
// (layer_ops.h), the same chain the CUDA forward step runs (kernels/cuda/rwkv7_step.h).
#include <vector>

#include "kernels/cpu/kernels.h"
#include "services/worker/model/layer_ops.h"
#include "services/worker/model/layer_step.h"

namespace skein::model {

void RunX070Layer(const LayerStep& step) {
  using kernels::MatMulJob;
  using layer_ops::Activation;
  const RwkvConfig& d = step.d;
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const int64_t T = sc.rows;
  const bool value_residual = step.layer > 0;

  // ---- time mix ----
  layer_ops::LayerNorm(step, sc.x, lw.ln1_w, lw.ln1_b, sc.xa);
  layer_ops::TokenShiftMix(step, sc.xa, /*ffn=*/false,
                           {{lw.x_r, &sc.xr},
                            {lw.x_w, &sc.xw},
                            {lw.x_k, &sc.xk},
                            {lw.x_v, &sc.xv},
                            {lw.x_a, &sc.xa_mix},
                            {lw.x_g, &sc.xg}});
  {
    std::vector<MatMulJob> jobs = {step.Big(sc.xr, lw.receptance, sc.r),
                                   step.Big(sc.xk, lw.key, sc.k),
                                   step.Big(sc.xv, lw.value, sc.v),
                                   Job(sc.xw, lw.w1, sc.lora_w, T, false),
                                   Job(sc.xa_mix, lw.a1, sc.lora_a, T, false),
                                   Job(sc.xg, lw.g1, sc.lora_g, T, false)};
    if (value_residual) jobs.push_back(Job(sc.xv, lw.v1, sc.lora_v, T, false));
    layer_ops::Products(step, jobs);
  }
  layer_ops::Activations(step, {{Activation::kTanh, &sc.lora_w, d.d_decay},
                                {Activation::kSigmoid, &sc.lora_g, d.d_gate}});
  {
    // The LoRAs keep fp32 activations even in bf16-activation runs: they are a few percent
    // of the work, and the decay (exp of exp) and gates they feed are where rounding hurts.
    std::vector<MatMulJob> jobs = {Job(sc.lora_w, lw.w2, sc.decay, T, false),
                                   Job(sc.lora_a, lw.a2, sc.alpha, T, false),
                                   Job(sc.lora_g, lw.g2, sc.gate, T, false)};
    if (value_residual) jobs.push_back(Job(sc.lora_v, lw.v2, sc.v_gate, T, false));
    layer_ops::Products(step, jobs);
  }
  layer_ops::PrepareX070(step, value_residual);
  layer_ops::Wkv7(step);
  layer_ops::GroupNormBonusGate(step);
  layer_ops::Products(step, {step.Big(sc.y, lw.output, sc.x, /*accumulate=*/true)});

  // ---- channel mix ----
  layer_ops::LayerNorm(step, sc.x, lw.ln2_w, lw.ln2_b, sc.xf);
  layer_ops::TokenShiftMix(step, sc.xf, /*ffn=*/true, {{lw.ffn_x_k, &sc.xk}});
  layer_ops::Products(step, {step.Big(sc.xk, lw.ffn_key, sc.ffn_hidden)});
  layer_ops::Activations(step, {{Activation::kSquaredRelu, &sc.ffn_hidden, d.ffn}});
  layer_ops::Products(step, {step.Big(sc.ffn_hidden, lw.ffn_value, sc.x, /*accumulate=*/true)});
}

}  // namespace skein::model
