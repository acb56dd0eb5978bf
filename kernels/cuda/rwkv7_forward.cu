// The RWKV-7 forward step of rwkv7_forward.h: one launch sequence per layer, spec §2.4, over
// the layers of one pipeline stage.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/context_internal.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rwkv7_forward.h"
#include "kernels/cuda/rwkv7_ops.h"
#include "kernels/cuda/rwkv7_step.h"

namespace skein::cuda {

// Per-step scratch, sized for up to `rows` rows, `sessions` sessions and `head_rows` rows
// through the head. "Product inputs" are in the activation type (rwkv7_step.h:
// ActivationType); everything else fp32.
struct Rwkv7Gpu::Scratch {
  int64_t rows = 0;
  int64_t sessions = 0;
  int64_t head_rows = 0;
  int64_t wkv_floats = 0;
  DeviceBuffer tokens, slots;      // device int32
  int32_t* host_tokens = nullptr;  // pinned staging
  int32_t* host_slots = nullptr;
  cudaEvent_t staged = nullptr;  // the last copy out of the staging buffers is done
  DeviceBuffer x;                // residual [rows][C]
  DeviceBuffer mix[6];           // product inputs xr xw xk xv xa xg [rows][C]
  DeviceBuffer r, k, v, decay, alpha, gate, v_gate, a, b, y, v_first;  // [rows][C]
  DeviceBuffer lora_w, lora_a, lora_v, lora_g;                         // fp32 [rows][D]
  DeviceBuffer lora_w16, lora_a16, lora_v16, lora_g16;                 // product inputs [rows][D]
  DeviceBuffer out16;                                                  // W_o input [rows][C]
  DeviceBuffer hidden, hidden16;                                       // [rows][F]
  DeviceBuffer saved;                                                  // [sessions][C]
  DeviceBuffer head_in;  // [head_rows][C] product input
  DeviceBuffer logits;   // [head_rows][V]
  DeviceBuffer wkv;      // chunked WKV scratch

  ~Scratch() {
    if (host_tokens != nullptr) cudaFreeHost(host_tokens);
    if (host_slots != nullptr) cudaFreeHost(host_slots);
    if (staged != nullptr) cudaEventDestroy(staged);
  }
};

namespace {

size_t F32(int64_t n) { return static_cast<size_t>(n) * sizeof(float); }

// Above this many (session, head) pairs the plain kernel already fills an H100-class GPU
// (132 SMs, many blocks each), and the chunked one's extra arithmetic stops paying.
constexpr int64_t kChunkedMaxPairs = 512;

}  // namespace

Rwkv7Gpu::Rwkv7Gpu(Context* ctx, const Rwkv7WeightLayout& layout, const Rwkv7GpuOptions& options)
    : ctx_(ctx), layout_(layout), options_(options) {
  options_.dtype = layout.dtype();
}

Rwkv7Gpu::~Rwkv7Gpu() {
  if (ctx_ != nullptr) ctx_->Synchronize();
  for (auto& [sessions, exec] : graphs_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

Status Rwkv7Gpu::CheckSupported(const Rwkv7WeightLayout& layout, const Rwkv7GpuOptions& options) {
  const Rwkv7Shape& shape = layout.shape();
  if (shape.head_size != kWkvHeadSize || shape.embd <= 0 || shape.embd % kWkvHeadSize != 0 ||
      shape.layers <= 0 || shape.vocab <= 0) {
    return Status::Error("Rwkv7Gpu: needs head size 64, C a multiple of 64, L and V positive");
  }
  const DType dt = layout.dtype();
  if (dt != DType::kF32 && dt != DType::kBF16 && dt != DType::kF16) {
    return Status::Error("Rwkv7Gpu: dtype must be fp32, bf16 or fp16");
  }
  if (options.slots <= 0) return Status::Error("Rwkv7Gpu: needs at least one slot");
  return Status();
}

Status Rwkv7Gpu::AllocateStates() {
  const int64_t shift = options_.slots * layout_.stage_layers() * layout_.shape().embd;
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(F32(shift), &att_shift_));
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(F32(shift), &ffn_shift_));
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(F32(shift * kWkvHeadSize), &wkv_state_));
  SKEIN_CUDA_RETURN_IF_ERROR(ZeroDevice(*ctx_, att_shift_.data(), att_shift_.bytes()));
  SKEIN_CUDA_RETURN_IF_ERROR(ZeroDevice(*ctx_, ffn_shift_.data(), ffn_shift_.bytes()));
  return ZeroDevice(*ctx_, wkv_state_.data(), wkv_state_.bytes());
}

Status Rwkv7Gpu::Create(Context* ctx, const Rwkv7Shape& shape, const Rwkv7GpuOptions& options,
                        std::unique_ptr<Rwkv7Gpu>* out) {
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16 &&
      options.dtype != DType::kF16) {
    return Status::Error("Rwkv7Gpu: dtype must be fp32, bf16 or fp16");
  }
  if (shape.layers <= 0) return Status::Error("Rwkv7Gpu: needs L positive");
  const Rwkv7WeightLayout whole(shape, options.dtype);
  SKEIN_CUDA_RETURN_IF_ERROR(CheckSupported(whole, options));
  std::unique_ptr<Rwkv7Gpu> m(new Rwkv7Gpu(ctx, whole, options));
  m->scratch_ = std::make_unique<Scratch>();
  const Rwkv7WeightLayout& layout = m->layout_;
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(layout.total_bytes(), &m->weights_));
  const auto& tensors = layout.tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec& t = tensors[i];
    if (!t.present) continue;
    SKEIN_CUDA_RETURN_IF_ERROR(FillUniform(*ctx, m->weights_.as<uint8_t>() + t.offset,
                                           t.matrix ? options.dtype : DType::kF32, t.count(),
                                           options.seed + i, t.init_offset, t.init_scale));
  }
  SKEIN_CUDA_RETURN_IF_ERROR(m->AllocateStates());
  SKEIN_CUDA_RETURN_IF_ERROR(ctx->Synchronize());
  *out = std::move(m);
  return Status();
}

Status Rwkv7Gpu::CreateFromHost(Context* ctx, const Rwkv7WeightLayout& layout,
                                const std::vector<uint8_t>& bytes, const Rwkv7GpuOptions& options,
                                std::unique_ptr<Rwkv7Gpu>* out) {
  SKEIN_CUDA_RETURN_IF_ERROR(CheckSupported(layout, options));
  if (bytes.size() != layout.total_bytes()) {
    return Status::Error("Rwkv7Gpu: weight buffer of " + std::to_string(bytes.size()) +
                         " bytes, the layout has " + std::to_string(layout.total_bytes()));
  }
  std::unique_ptr<Rwkv7Gpu> m(new Rwkv7Gpu(ctx, layout, options));
  m->scratch_ = std::make_unique<Scratch>();
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(layout.total_bytes(), &m->weights_));
  SKEIN_CUDA_RETURN_IF_ERROR(
      CopyToDevice(*ctx, m->weights_.data(), bytes.data(), layout.total_bytes()));
  SKEIN_CUDA_RETURN_IF_ERROR(m->AllocateStates());
  SKEIN_CUDA_RETURN_IF_ERROR(ctx->Synchronize());
  *out = std::move(m);
  return Status();
}

size_t Rwkv7Gpu::state_bytes_per_slot() const {
  const Rwkv7Shape& s = layout_.shape();
  return F32(layout_.stage_layers() * s.embd * (2 + kWkvHeadSize));
}

double Rwkv7Gpu::DecodeStepBytes(int64_t sessions) const {
  double bytes = 0;
  for (size_t i = 0; i < layout_.tensors().size(); ++i) {
    const int index = static_cast<int>(i);
    // Not read by a decode step: the embedding table (one row per token, added below) and
    // layer 0's value-residual tensors (spec §2.2: unused in layer 0).
    // (Absent tensors have no bytes.)
    if (index == layout_.index(kEmb) || index == layout_.index(0, kV0) ||
        index == layout_.index(0, kV1) || index == layout_.index(0, kV2)) {
      continue;
    }
    bytes += layout_.tensors()[i].bytes;
  }
  const Rwkv7Shape& s = layout_.shape();
  if (layout_.has_embedding()) {
    bytes += static_cast<double>(sessions) * s.embd * base::DTypeSize(options_.dtype);
  }
  bytes += 2.0 * static_cast<double>(sessions) * state_bytes_per_slot();
  return bytes;
}

Status Rwkv7Gpu::ResetSlots(const std::vector<int32_t>& slots) {
  const int64_t shift = layout_.stage_layers() * layout_.shape().embd, wkv = shift * kWkvHeadSize;
  for (int32_t slot : slots) {
    if (slot < 0 || slot >= options_.slots) return Status::Error("ResetSlots: slot out of range");
    SKEIN_CUDA_RETURN_IF_ERROR(
        ZeroDevice(*ctx_, att_shift_.as<float>() + slot * shift, F32(shift)));
    SKEIN_CUDA_RETURN_IF_ERROR(
        ZeroDevice(*ctx_, ffn_shift_.as<float>() + slot * shift, F32(shift)));
    SKEIN_CUDA_RETURN_IF_ERROR(ZeroDevice(*ctx_, wkv_state_.as<float>() + slot * wkv, F32(wkv)));
  }
  return Status();
}

bool Rwkv7Gpu::UseChunkedWkv(int64_t sessions, int64_t tokens) const {
  return tokens >= options_.wkv_chunked_min_tokens &&
         sessions * layout_.shape().heads() <= kChunkedMaxPairs;
}

Status Rwkv7Gpu::EnsureScratch(int64_t sessions, int64_t rows, int64_t head_rows) {
  Scratch& sc = *scratch_;
  const int64_t tokens = rows / sessions;
  int64_t wkv_floats = 0;
  if (UseChunkedWkv(sessions, tokens)) {
    wkv_floats =
        Wkv7ChunkedScratchFloats(sessions, tokens, layout_.shape().embd, options_.wkv_chunk);
  }
  if (!layout_.has_head()) head_rows = 0;
  if (rows <= sc.rows && sessions <= sc.sessions && head_rows <= sc.head_rows &&
      wkv_floats <= sc.wkv_floats) {
    return Status();
  }
  // Buffers move: finish all work that may use them, and forget graphs that point at them.
  SKEIN_CUDA_RETURN_IF_ERROR(ctx_->Synchronize());
  for (auto& [n, exec] : graphs_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
  graphs_.clear();
  const int64_t R = std::max(rows, sc.rows), S = std::max(sessions, sc.sessions),
                H = std::max(head_rows, sc.head_rows);
  const Rwkv7Shape& s = layout_.shape();
  const int64_t C = s.embd;
  const size_t e = base::DTypeSize(ActivationType(options_.dtype, options_.round_activations));
  auto alloc = [](DeviceBuffer* b, size_t bytes) { return DeviceBuffer::Allocate(bytes, b); };
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.tokens, R * sizeof(int32_t)));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.slots, S * sizeof(int32_t)));
  if (sc.host_tokens != nullptr) cudaFreeHost(sc.host_tokens);
  if (sc.host_slots != nullptr) cudaFreeHost(sc.host_slots);
  sc.host_tokens = nullptr;
  sc.host_slots = nullptr;
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaMallocHost(reinterpret_cast<void**>(&sc.host_tokens), R * sizeof(int32_t)),
                 "cudaMallocHost"));
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaMallocHost(reinterpret_cast<void**>(&sc.host_slots), S * sizeof(int32_t)),
                 "cudaMallocHost"));
  if (sc.staged == nullptr) {
    SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(
        cudaEventCreateWithFlags(&sc.staged, cudaEventDisableTiming), "cudaEventCreate"));
  }
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.x, F32(R * C)));
  for (DeviceBuffer& b : sc.mix) SKEIN_CUDA_RETURN_IF_ERROR(alloc(&b, R * C * e));
  for (DeviceBuffer* b : {&sc.r, &sc.k, &sc.v, &sc.decay, &sc.alpha, &sc.gate, &sc.v_gate, &sc.a,
                          &sc.b, &sc.y, &sc.v_first}) {
    SKEIN_CUDA_RETURN_IF_ERROR(alloc(b, F32(R * C)));
  }
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_w, F32(R * s.d_decay)));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_a, F32(R * s.d_iclr)));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_v, F32(R * s.d_value)));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_g, F32(R * s.d_gate)));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_w16, R * s.d_decay * e));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_a16, R * s.d_iclr * e));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_v16, R * s.d_value * e));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.lora_g16, R * s.d_gate * e));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.out16, R * C * e));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.hidden, F32(R * s.ffn)));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.hidden16, R * s.ffn * e));
  SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.saved, F32(S * C)));
  if (H > 0) {
    SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.head_in, H * C * e));
    SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.logits, F32(H * s.vocab)));
  }
  const int64_t W = std::max(wkv_floats, sc.wkv_floats);
  if (W > 0) SKEIN_CUDA_RETURN_IF_ERROR(alloc(&sc.wkv, F32(W)));
  sc.rows = R;
  sc.sessions = S;
  sc.head_rows = H;
  sc.wkv_floats = W;
  return Status();
}

namespace {

// The kernels of rwkv7_ops.h and gemm.h on one context, for RunRwkv7Step.
struct GpuOps {
  Context& ctx;
  Status GemmGroup(const GemmArgs* jobs, int count) { return cuda::GemmGroup(ctx, jobs, count); }
  Status EmbedLayerNorm(const EmbedArgs& a) { return cuda::EmbedLayerNorm(ctx, a); }
  Status ShiftMix(const ShiftMixArgs& a) { return cuda::ShiftMix(ctx, a); }
  Status CommitShift(const float* saved, float* state, int64_t stride, const int32_t* slots,
                     int64_t sessions, int64_t C) {
    return cuda::CommitShift(ctx, saved, state, stride, slots, sessions, C);
  }
  Status Rwkv7Prepare(const PrepareArgs& p) { return cuda::Rwkv7Prepare(ctx, p); }
  Status Rwkv7TimeMixCore(const TimeMixCoreArgs& a) { return cuda::Rwkv7TimeMixCore(ctx, a); }
  Status Wkv7Chunked(const Wkv7Args& p, int64_t chunk, float* scratch) {
    return cuda::Wkv7Chunked(ctx, p, chunk, scratch);
  }
  Status GroupNormBonusGate(const GroupNormBonusGateArgs& a) {
    return cuda::GroupNormBonusGate(ctx, a);
  }
  Status LayerNormLastRows(const float* x, const float* w, const float* b, int64_t sessions,
                           int64_t tokens, int64_t C, void* out, DType t) {
    return cuda::LayerNormLastRows(ctx, x, w, b, sessions, tokens, C, out, t);
  }
};

// Walks a step's launch sequence only to prepare the products' plans (PlanGemm), so that a
// CUDA graph capture that follows records launches and nothing else.
struct PlanOps {
  Context& ctx;
  Status GemmGroup(const GemmArgs* jobs, int count) {
    for (int j = 0; j < count; ++j) SKEIN_CUDA_RETURN_IF_ERROR(PlanGemm(ctx, jobs[j]));
    return Status();
  }
  Status EmbedLayerNorm(const EmbedArgs&) { return Status(); }
  Status ShiftMix(const ShiftMixArgs&) { return Status(); }
  Status CommitShift(const float*, float*, int64_t, const int32_t*, int64_t, int64_t) {
    return Status();
  }
  Status Rwkv7Prepare(const PrepareArgs&) { return Status(); }
  Status Rwkv7TimeMixCore(const TimeMixCoreArgs&) { return Status(); }
  Status Wkv7Chunked(const Wkv7Args&, int64_t, float*) { return Status(); }
  Status GroupNormBonusGate(const GroupNormBonusGateArgs&) { return Status(); }
  Status LayerNormLastRows(const float*, const float*, const float*, int64_t, int64_t, int64_t,
                           void*, DType) {
    return Status();
  }
};

}  // namespace

Status Rwkv7Gpu::Enqueue(int64_t S, int64_t T, LogitsMode mode, bool plan_only) {
  Scratch& sc = *scratch_;
  Rwkv7StepBuffers b;
  b.act_type = ActivationType(options_.dtype, options_.round_activations);
  b.tokens = sc.tokens.as<int32_t>();
  b.slots = sc.slots.as<int32_t>();
  b.att_shift = att_shift_.as<float>();
  b.ffn_shift = ffn_shift_.as<float>();
  b.wkv_state = wkv_state_.as<float>();
  b.x = sc.x.as<float>();
  for (int m = 0; m < 6; ++m) b.mix[m] = sc.mix[m].data();
  b.r = sc.r.as<float>();
  b.k = sc.k.as<float>();
  b.v = sc.v.as<float>();
  b.decay = sc.decay.as<float>();
  b.alpha = sc.alpha.as<float>();
  b.gate = sc.gate.as<float>();
  b.v_gate = sc.v_gate.as<float>();
  b.a = sc.a.as<float>();
  b.b = sc.b.as<float>();
  b.y = sc.y.as<float>();
  b.v_first = sc.v_first.as<float>();
  b.lora_w = sc.lora_w.as<float>();
  b.lora_a = sc.lora_a.as<float>();
  b.lora_v = sc.lora_v.as<float>();
  b.lora_g = sc.lora_g.as<float>();
  b.lora_w16 = sc.lora_w16.data();
  b.lora_a16 = sc.lora_a16.data();
  b.lora_v16 = sc.lora_v16.data();
  b.lora_g16 = sc.lora_g16.data();
  b.out16 = sc.out16.data();
  b.hidden = sc.hidden.as<float>();
  b.hidden16 = sc.hidden16.data();
  b.saved = sc.saved.as<float>();
  b.head_in = sc.head_in.data();
  b.logits = sc.logits.as<float>();
  if (UseChunkedWkv(S, T)) {
    b.wkv_scratch = sc.wkv.as<float>();
    b.wkv_chunk = options_.wkv_chunk;
  }
  if (plan_only) {
    PlanOps ops{*ctx_};
    return RunRwkv7Step(ops, layout_, weights_.as<uint8_t>(), b, S, T, mode);
  }
  GpuOps ops{*ctx_};
  return RunRwkv7Step(ops, layout_, weights_.as<uint8_t>(), b, S, T, mode);
}

Status Rwkv7Gpu::Step(const int32_t* tokens, const int32_t* slots, int64_t sessions,
                      int64_t tokens_per_session) {
  const int64_t S = sessions, T = tokens_per_session;
  if (!layout_.has_embedding()) return Status::Error("Step: a later stage takes RunStep");
  if (S <= 0 || T <= 0) return Status::Error("Step: empty step");
  if (S > options_.slots) return Status::Error("Step: more sessions than slots");
  const int64_t V = layout_.shape().vocab;
  for (int64_t i = 0; i < S * T; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V) return Status::Error("Step: token id out of range");
  }
  std::vector<bool> used(options_.slots, false);
  for (int64_t s = 0; s < S; ++s) {
    if (slots[s] < 0 || slots[s] >= options_.slots || used[slots[s]]) {
      return Status::Error("Step: slots must be distinct and below options.slots");
    }
    used[slots[s]] = true;
  }
  return Launch(tokens, slots, S, T, nullptr, nullptr, LogitsMode::kLast);
}

Status Rwkv7Gpu::RunStep(const Rwkv7StepIo& io) {
  SKEIN_CUDA_RETURN_IF_ERROR(CheckRwkv7StepIo(layout_, options_.slots, io));
  const int64_t S = io.sessions, T = io.tokens, R = S * T, C = layout_.shape().embd;
  SKEIN_CUDA_RETURN_IF_ERROR(
      Launch(io.token_ids, io.slots, S, T, io.hidden_in, io.v_first_in, io.logits_mode));
  const Scratch& sc = *scratch_;
  if (!layout_.has_head()) {
    SKEIN_CUDA_RETURN_IF_ERROR(CopyToHost(*ctx_, io.hidden_out, sc.x.data(), F32(R * C)));
    return CopyToHost(*ctx_, io.v_first_out, sc.v_first.data(), F32(R * C));
  }
  if (last_logit_rows_ > 0) {
    return CopyToHost(*ctx_, io.logits, sc.logits.data(),
                      F32(last_logit_rows_ * layout_.shape().vocab));
  }
  return ctx_->Synchronize();
}

Status Rwkv7Gpu::Launch(const int32_t* tokens, const int32_t* slots, int64_t S, int64_t T,
                        const float* hidden_in, const float* v_first_in, LogitsMode mode) {
  const int64_t R = S * T, C = layout_.shape().embd;
  // Without the head every mode is the same launch sequence: one graph.
  if (!layout_.has_head()) mode = LogitsMode::kNone;
  const int64_t head_rows = LogitRows(mode, S, T);
  SKEIN_CUDA_RETURN_IF_ERROR(EnsureScratch(S, R, head_rows));
  Scratch& sc = *scratch_;
  cudaStream_t stream = StreamOf(*ctx_);
  // The staging buffers may still feed the previous step's copy.
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(sc.staged), "cudaEventSynchronize"));
  if (layout_.has_embedding()) {
    std::memcpy(sc.host_tokens, tokens, R * sizeof(int32_t));
    SKEIN_CUDA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(sc.tokens.data(), sc.host_tokens, R * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, stream),
                   "cudaMemcpyAsync(tokens)"));
  }
  std::memcpy(sc.host_slots, slots, S * sizeof(int32_t));
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(sc.slots.data(), sc.host_slots, S * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream),
                 "cudaMemcpyAsync(slots)"));
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(sc.staged, stream), "cudaEventRecord"));
  if (!layout_.has_embedding()) {
    // The previous stage's rows: the residual and v_first every layer here continues.
    SKEIN_CUDA_RETURN_IF_ERROR(CopyToDevice(*ctx_, sc.x.data(), hidden_in, F32(R * C)));
    SKEIN_CUDA_RETURN_IF_ERROR(CopyToDevice(*ctx_, sc.v_first.data(), v_first_in, F32(R * C)));
  }
  last_logit_rows_ = head_rows;

  if (T != 1 || !options_.use_graphs) return Enqueue(S, T, mode);
  const std::pair<int64_t, int> key(S, static_cast<int>(mode));
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    SKEIN_CUDA_RETURN_IF_ERROR(Enqueue(S, 1, mode, /*plan_only=*/true));
    SKEIN_CUDA_RETURN_IF_ERROR(
        CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal),
                   "cudaStreamBeginCapture"));
    const Status enqueued = Enqueue(S, 1, mode);
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    if (!enqueued.ok()) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      return enqueued;
    }
    SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(ended, "cudaStreamEndCapture"));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(made, "cudaGraphInstantiate"));
    it = graphs_.emplace(key, exec).first;
  }
  return CudaStatus(cudaGraphLaunch(static_cast<cudaGraphExec_t>(it->second), stream),
                    "cudaGraphLaunch");
}

const float* Rwkv7Gpu::logits() const { return scratch_->logits.as<float>(); }

Status Rwkv7Gpu::CopyLogits(int64_t rows, std::vector<float>* out) {
  if (rows > last_logit_rows_) return Status::Error("CopyLogits: more rows than the step made");
  out->resize(rows * layout_.shape().vocab);
  return CopyToHost(*ctx_, out->data(), logits(), out->size() * sizeof(float));
}

Status Rwkv7Gpu::DownloadWeights(std::vector<uint8_t>* bytes) {
  bytes->resize(layout_.total_bytes());
  return CopyToHost(*ctx_, bytes->data(), weights_.data(), bytes->size());
}

Status Rwkv7Gpu::DownloadState(int32_t slot, std::vector<float>* att_x_prev,
                               std::vector<float>* wkv, std::vector<float>* ffn_x_prev) {
  if (slot < 0 || slot >= options_.slots) return Status::Error("DownloadState: bad slot");
  const int64_t shift = layout_.stage_layers() * layout_.shape().embd, w = shift * kWkvHeadSize;
  att_x_prev->resize(shift);
  ffn_x_prev->resize(shift);
  wkv->resize(w);
  SKEIN_CUDA_RETURN_IF_ERROR(
      CopyToHost(*ctx_, att_x_prev->data(), att_shift_.as<float>() + slot * shift, F32(shift)));
  SKEIN_CUDA_RETURN_IF_ERROR(
      CopyToHost(*ctx_, ffn_x_prev->data(), ffn_shift_.as<float>() + slot * shift, F32(shift)));
  return CopyToHost(*ctx_, wkv->data(), wkv_state_.as<float>() + slot * w, F32(w));
}

Status Rwkv7Gpu::WriteSlot(int32_t slot, const float* state) {
  if (slot < 0 || slot >= options_.slots) return Status::Error("WriteSlot: slot out of range");
  return CopySlot(slot, state, nullptr);
}

Status Rwkv7Gpu::ReadSlot(int32_t slot, float* state) {
  if (slot < 0 || slot >= options_.slots) return Status::Error("ReadSlot: slot out of range");
  return CopySlot(slot, nullptr, state);
}

Status Rwkv7Gpu::CopySlot(int32_t slot, const float* from_host, float* to_host) {
  // The host state interleaves the three arrays per layer (att C, wkv C·N, ffn C); on the
  // device each is [slots][Ls][…]. One strided copy per array: Ls rows of its layer's part.
  const int64_t C = layout_.shape().embd, Ls = layout_.stage_layers(), CN = C * kWkvHeadSize;
  const size_t host_pitch = F32(2 * C + CN);
  struct Part {
    float* device;
    int64_t width;        // floats per layer
    int64_t host_offset;  // floats into each host layer
  };
  const Part parts[3] = {{att_shift_.as<float>() + slot * Ls * C, C, 0},
                         {wkv_state_.as<float>() + slot * Ls * CN, CN, C},
                         {ffn_shift_.as<float>() + slot * Ls * C, C, C + CN}};
  cudaStream_t stream = StreamOf(*ctx_);
  for (const Part& p : parts) {
    const cudaError_t e =
        from_host != nullptr
            ? cudaMemcpy2DAsync(p.device, F32(p.width), from_host + p.host_offset, host_pitch,
                                F32(p.width), Ls, cudaMemcpyHostToDevice, stream)
            : cudaMemcpy2DAsync(to_host + p.host_offset, host_pitch, p.device, F32(p.width),
                                F32(p.width), Ls, cudaMemcpyDeviceToHost, stream);
    SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(e, "cudaMemcpy2DAsync(slot)"));
  }
  // Host memory is pageable and the caller's once this returns: wait for the copies.
  return CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

}  // namespace skein::cuda
