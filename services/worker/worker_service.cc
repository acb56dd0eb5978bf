#include "services/worker/worker_service.h"

#include <chrono>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "services/common/status.h"
#include "services/worker/link/activation_frames.h"
#include "services/worker/model/device/gpu_plugin.h"
#include "services/worker/model/state_blob.h"
#include "services/worker/store_spill.h"

namespace skein::worker {
namespace {

grpc::Status Loading() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stage is still loading its model");
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
}

}  // namespace

WorkerService::WorkerService(WorkerConfig config, prometheus::Registry& registry)
    : config_(std::move(config)) {
  const std::map<std::string, std::string> stage = {{"stage", absl::StrCat(config_.stage_index)}};
  step_seconds_ = &prometheus::BuildHistogram()
                       .Name("skein_worker_step_seconds")
                       .Help("Time this stage spends computing its layers for one step")
                       .Register(registry)
                       .Add(stage, LatencyBuckets());
  step_rows_ = &prometheus::BuildHistogram()
                    .Name("skein_worker_step_tokens")
                    .Help("Tokens (rows) one step computes on this stage")
                    .Register(registry)
                    .Add(stage, prometheus::Histogram::BucketBoundaries{
                                    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096});
  downstream_seconds_ = &prometheus::BuildHistogram()
                             .Name("skein_worker_link_seconds")
                             .Help(
                                 "From handing a step to the next stage until its result "
                                 "comes back (the stages below plus the link)")
                             .Register(registry)
                             .Add(stage, LatencyBuckets());
  auto& steps = prometheus::BuildCounter()
                    .Name("skein_worker_steps_total")
                    .Help("Steps this stage answered, by outcome")
                    .Register(registry);
  steps_ok_ = &steps.Add({{"stage", stage.at("stage")}, {"outcome", "ok"}});
  steps_failed_ = &steps.Add({{"stage", stage.at("stage")}, {"outcome", "error"}});
  tokens_ = &prometheus::BuildCounter()
                 .Name("skein_worker_tokens_total")
                 .Help("Tokens computed by this stage")
                 .Register(registry)
                 .Add(stage);
  link_bytes_ = &prometheus::BuildCounter()
                     .Name("skein_worker_link_bytes_total")
                     .Help("Activation bytes sent to the next stage")
                     .Register(registry)
                     .Add(stage);
  sessions_resident_ = &prometheus::BuildGauge()
                            .Name("skein_worker_sessions_resident")
                            .Help("Session states held in memory")
                            .Register(registry)
                            .Add(stage);
  steps_in_flight_ = &prometheus::BuildGauge()
                          .Name("skein_worker_steps_in_flight")
                          .Help("Steps computing here or waiting on the stages below")
                          .Register(registry)
                          .Add(stage);
  auto& moved = prometheus::BuildCounter()
                    .Name("skein_worker_sessions_moved_total")
                    .Help("Sessions evicted to the state store (spilled) or brought back")
                    .Register(registry);
  sessions_spilled_ = &moved.Add({{"stage", stage.at("stage")}, {"direction", "spilled"}});
  sessions_restored_ = &moved.Add({{"stage", stage.at("stage")}, {"direction", "restored"}});
  weight_bytes_per_step_ = &prometheus::BuildGauge()
                                .Name("skein_worker_weight_bytes_per_step")
                                .Help("Weight bytes one step reads (this stage's layers)")
                                .Register(registry)
                                .Add(stage);
  weight_bytes_read_ = &prometheus::BuildCounter()
                            .Name("skein_worker_weight_bytes_read_total")
                            .Help("Weight bytes read by this stage's steps")
                            .Register(registry)
                            .Add(stage);
  read_bandwidth_ = &prometheus::BuildGauge()
                         .Name("skein_worker_memory_read_bandwidth_bytes_per_second")
                         .Help(
                             "The machine's memory read bandwidth, measured at load (0: not "
                             "measured)")
                         .Register(registry)
                         .Add(stage);
  device_slots_ = &prometheus::BuildGauge()
                       .Name("skein_worker_device_state_slots")
                       .Help(
                           "State slots in the device's memory (--device-slots; 0 on the CPU "
                           "engine)")
                       .Register(registry)
                       .Add(stage);
  device_resident_ = &prometheus::BuildGauge()
                          .Name("skein_worker_device_resident_states")
                          .Help("Session states held in the device's slots now")
                          .Register(registry)
                          .Add(stage);
  auto& copies = prometheus::BuildCounter()
                     .Name("skein_worker_device_state_copies_total")
                     .Help(
                         "Session states copied into a device slot (to_device) or back to host "
                         "memory because they were read or evicted (to_host)")
                     .Register(registry);
  device_uploads_ = &copies.Add({{"stage", stage.at("stage")}, {"direction", "to_device"}});
  device_fetches_ = &copies.Add({{"stage", stage.at("stage")}, {"direction", "to_host"}});
  device_evictions_ = &prometheus::BuildCounter()
                           .Name("skein_worker_device_evictions_total")
                           .Help("States pushed out of a device slot to make room for another")
                           .Register(registry)
                           .Add(stage);
}

WorkerService::~WorkerService() = default;

void WorkerService::SetEngine(std::unique_ptr<engine::StageEngine> engine,
                              std::unique_ptr<link::StageLink> next,
                              std::unique_ptr<state_store::StateStoreClient> store) {
  engine_ = std::move(engine);
  next_ = std::move(next);
  store_ = std::move(store);
  const model::RwkvWeights& w = engine_->weights();
  if (store_ != nullptr) {
    spill_ =
        std::make_unique<StoreSpill>(store_.get(),
                                     absl::StrFormat("worker-spill/%016x/%d-%d", w.fingerprint(),
                                                     w.first_layer(), w.last_layer()),
                                     Metadata(0, 0), config_.spill_ttl_seconds);
  }
  engine::SessionTableOptions t;
  t.capacity = config_.max_sessions;
  t.shape = w.state_shape();
  t.model_fingerprint = w.fingerprint();
  t.vocab = engine_->config().vocab;
  t.spill = spill_.get();
  sessions_ = std::make_unique<engine::SessionTable>(t);
  executor_ = std::make_unique<engine::StepExecutor>(engine_.get(), sessions_.get(),
                                                     config_.max_step_tokens);
  weight_bytes_per_step_->Set(static_cast<double>(w.bytes_read_per_token()));
  if (config_.measure_bandwidth) {
    // A short all-thread read pass (128 MiB, best of 2): the roofline decode is held to.
    read_bandwidth_->Set(kernels::MeasureReadBandwidth(engine_->pool(), size_t{128} << 20, 2));
  }
  ready_.store(true, std::memory_order_release);
}

v1::StateMetadata WorkerService::Metadata(int64_t position, size_t size) const {
  const model::RwkvWeights& w = engine_->weights();
  v1::StateMetadata m;
  m.mutable_model()->set_name(config_.model_name);
  m.mutable_model()->set_fingerprint(absl::StrFormat("%016x", w.fingerprint()));
  m.mutable_layers()->set_first(static_cast<uint32_t>(w.first_layer()));
  m.mutable_layers()->set_last(static_cast<uint32_t>(w.last_layer()));
  m.set_token_position(static_cast<uint64_t>(position));
  m.set_format_version(model::kStateBlobVersion);
  m.set_size_bytes(size);
  return m;
}

void WorkerService::UpdateGauges() {
  engine::SessionTableStats s = sessions_->stats();
  absl::MutexLock lock(&gauge_mutex_);
  sessions_resident_->Set(static_cast<double>(s.resident));
  if (s.spilled > last_spilled_) sessions_spilled_->Increment(s.spilled - last_spilled_);
  if (s.restored > last_restored_) sessions_restored_->Increment(s.restored - last_restored_);
  last_spilled_ = s.spilled;
  last_restored_ = s.restored;
  if (const model::DeviceRwkvModel* device = engine_->device_model(); device != nullptr) {
    const model::DeviceModelStats d = device->stats();
    device_slots_->Set(static_cast<double>(d.slots));
    device_resident_->Set(static_cast<double>(d.resident));
    auto grow = [](prometheus::Counter* c, uint64_t now, uint64_t& last) {
      if (now > last) c->Increment(static_cast<double>(now - last));
      last = now;
    };
    grow(device_uploads_, d.uploads, last_device_.uploads);
    grow(device_fetches_, d.fetches, last_device_.fetches);
    grow(device_evictions_, d.evictions, last_device_.evictions);
  }
  if (next_ != nullptr) {
    const uint64_t bytes = next_->stats().bytes_sent;
    if (bytes > last_link_bytes_)
      link_bytes_->Increment(static_cast<double>(bytes - last_link_bytes_));
    last_link_bytes_ = bytes;
  }
}

void WorkerService::RunAndForward(const v1::StepRequest& request,
                                  const model::StageActivations* input, Done done) {
  steps_in_flight_->Set(++in_flight_);
  last_step_unix_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed);
  auto finish = [this, done = std::move(done)](absl::StatusOr<v1::StepResult> r) {
    (r.ok() ? steps_ok_ : steps_failed_)->Increment();
    UpdateGauges();
    steps_in_flight_->Set(--in_flight_);
    done(std::move(r));
  };
  const auto start = std::chrono::steady_clock::now();
  engine::StepOutcome out;
  absl::Status status = executor_->Run(request, input, &out);
  step_seconds_->Observe(SecondsSince(start));
  if (status.ok()) {
    step_rows_->Observe(static_cast<double>(out.rows));
    tokens_->Increment(static_cast<double>(out.rows));
    // A batched step reads every weight of the stage once, whatever its rows.
    if (out.rows > 0) weight_bytes_read_->Increment(weight_bytes_per_step_->Value());
  }
  if (!status.ok()) return finish(status);
  if (engine_->is_last()) return finish(std::move(out.result));
  if (next_ == nullptr) {
    return finish(absl::FailedPreconditionError(
        absl::StrCat("this stage ends at layer ", engine_->last_layer(), " of ",
                     engine_->config().n_layer, " but has no next stage to relay to")));
  }
  const auto sent = std::chrono::steady_clock::now();
  next_->Send(request, out.activations,
              [this, sent, finish = std::move(finish)](absl::StatusOr<v1::StepResult> r) {
                downstream_seconds_->Observe(SecondsSince(sent));
                finish(std::move(r));
              });
}

grpc::Status WorkerService::GetStageInfo(grpc::ServerContext*, const v1::GetStageInfoRequest*,
                                         v1::StageInfo* response) {
  if (!ready()) return Loading();
  const model::RwkvWeights& w = engine_->weights();
  const model::RwkvConfig& c = engine_->config();
  v1::ModelInfo* m = response->mutable_model();
  m->mutable_model()->set_name(config_.model_name);
  m->mutable_model()->set_fingerprint(absl::StrFormat("%016x", w.fingerprint()));
  m->set_architecture(std::string(model::RwkvVersionName(c.version)));
  m->set_num_layers(static_cast<uint32_t>(c.n_layer));
  m->set_embedding_dim(static_cast<uint32_t>(c.n_embd));
  m->set_num_heads(static_cast<uint32_t>(c.n_head));
  m->set_head_size(static_cast<uint32_t>(c.head_size));
  m->set_vocab_size(static_cast<uint32_t>(c.vocab));
  m->set_parameter_count(static_cast<uint64_t>(c.parameters));
  m->set_state_bytes(static_cast<uint64_t>(c.state_bytes()));
  m->set_weight_dtype(std::string(model::DTypeName(w.run_dtype())));
  // Vocabulary 50277 or 50304 (RWKV-4 Pile/Raven, RWKV-7 Pile) is the 20B BPE (spec §6).
  m->set_tokenizer(c.vocab == 50277 || c.vocab == 50304 ? "gpt-neox-20b" : "rwkv-world");
  for (const engine::NamedState& s : engine_->initial_states()) {
    v1::InitialState* out = m->add_initial_states();
    out->set_name(s.name);
    out->set_digest(absl::StrFormat("%016x", s.digest));
  }
  response->mutable_layers()->set_first(static_cast<uint32_t>(w.first_layer()));
  response->mutable_layers()->set_last(static_cast<uint32_t>(w.last_layer()));
  response->set_stage_index(config_.stage_index);
  response->set_stage_count(config_.stage_count);
  if (next_ != nullptr) {
    response->set_next_stage(next_->peer());
    response->set_link_dtype(config_.link_dtype);
    response->set_link(next_->kind());
  }
  const engine::SessionTableStats s = sessions_->stats();
  response->set_sessions_resident(static_cast<uint32_t>(s.resident));
  response->set_sessions_capacity(static_cast<uint32_t>(sessions_->capacity()));
  response->set_max_step_tokens(static_cast<uint32_t>(config_.max_step_tokens));
  response->set_device(engine_->options().device.ToString());
  response->set_steps_in_flight(in_flight_.load());
  response->set_draining(draining_.load());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Step(grpc::ServerContext*, const v1::StepRequest* request,
                                 v1::StepResult* response) {
  if (!ready()) return Loading();
  if (!engine_->is_first()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("this stage starts at layer ", engine_->first_layer(),
                                     "; send steps to stage 0"));
  }
  std::promise<absl::StatusOr<v1::StepResult>> promise;
  std::future<absl::StatusOr<v1::StepResult>> future = promise.get_future();
  RunAndForward(*request, nullptr,
                [&promise](absl::StatusOr<v1::StepResult> r) { promise.set_value(std::move(r)); });
  absl::StatusOr<v1::StepResult> r = future.get();
  if (!r.ok()) return ToGrpcStatus(r.status());
  *response = *std::move(r);
  response->set_step_id(request->step_id());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Relay(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::StepResult, v1::ActivationFrame>* stream) {
  if (!ready()) return Loading();
  {
    absl::MutexLock lock(&relay_mutex_);
    if (draining_.load()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this stage is shutting down");
    }
    relays_.insert(context);
  }
  struct Unregister {
    WorkerService* self;
    grpc::ServerContext* context;
    ~Unregister() {
      absl::MutexLock lock(&self->relay_mutex_);
      self->relays_.erase(context);
    }
  } unregister{this, context};
  if (engine_->is_first()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "stage 0 takes token ids through Step, not activations");
  }
  // Results are written from this thread and from the link's; the count of outstanding
  // steps keeps the stream alive until every one has been answered. The mutex also orders the
  // writes (gRPC takes one at a time).
  struct Outstanding {
    absl::Mutex mu;
    absl::CondVar idle;
    int steps ABSL_GUARDED_BY(mu) = 0;
  } outstanding;
  auto answer = [&](uint64_t step_id, absl::StatusOr<v1::StepResult> r) {
    v1::StepResult out;
    if (r.ok()) {
      out = *std::move(r);
    } else {
      out.set_error_code(static_cast<int32_t>(r.status().code()));
      out.set_error_message(std::string(r.status().message()));
    }
    out.set_step_id(step_id);
    absl::MutexLock lock(&outstanding.mu);
    stream->Write(out);
    if (--outstanding.steps == 0) outstanding.idle.SignalAll();
  };
  link::FrameAssembler assembler;
  v1::ActivationFrame frame;
  grpc::Status end = grpc::Status::OK;
  while (stream->Read(&frame)) {
    absl::StatusOr<std::optional<link::FrameAssembler::Step>> step =
        assembler.Add(std::move(frame));
    frame.Clear();
    if (!step.ok()) {
      end = ToGrpcStatus(step.status());
      break;
    }
    if (!step->has_value()) continue;
    link::FrameAssembler::Step& s = **step;
    {
      absl::MutexLock lock(&outstanding.mu);
      ++outstanding.steps;
    }
    const uint64_t id = s.request.step_id();
    if (s.nccl.has_value()) {
      // The rows follow over NCCL. Received here, on the stream's thread, so the receives are
      // posted in frame order, which is the sender's order.
      if (absl::Status got = ReceiveNcclRows(s); !got.ok()) {
        answer(id, got);
        // The sender's transfer for this frame will never be received here: ending the stream
        // makes it abort its communicator (or the transfer would block it for good) and open
        // a new link.
        end = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           absl::StrCat("NCCL link broken: ", got.message()));
        break;
      }
    }
    RunAndForward(s.request, &s.activations,
                  [&answer, id](absl::StatusOr<v1::StepResult> r) { answer(id, std::move(r)); });
  }
  absl::MutexLock lock(&outstanding.mu);
  while (outstanding.steps != 0) outstanding.idle.Wait(&outstanding.mu);
  return end;
}

absl::Status WorkerService::ReceiveNcclRows(link::FrameAssembler::Step& step) {
  std::shared_ptr<link::NcclInboundLink> inbound;
  {
    absl::MutexLock lock(&nccl_mutex_);
    inbound = nccl_inbound_;
  }
  if (inbound == nullptr || inbound->link_id() != step.nccl->link_id()) {
    // Without the link the rows cannot be received; the sender's transfer, if any, is on a
    // communicator that was replaced or never opened here.
    return absl::FailedPreconditionError(
        absl::StrCat("the step's rows travel over NCCL link ", step.nccl->link_id(),
                     ", which is not open on this stage", inbound == nullptr ? "" : " (replaced)"));
  }
  const uint32_t rows = static_cast<uint32_t>(step.activations.rows);
  const uint32_t width = static_cast<uint32_t>(step.activations.width);
  return inbound->Receive(rows, width, step.nccl->v_first(), step.dtype, &step.activations);
}

grpc::Status WorkerService::OpenNcclLink(grpc::ServerContext*,
                                         const v1::OpenNcclLinkRequest* request,
                                         v1::OpenNcclLinkResponse* response) {
  if (!ready()) return Loading();
  const uint32_t width = static_cast<uint32_t>(engine_->config().n_embd);
  if (absl::Status s = link::CheckOpenNcclLinkRequest(*request, width); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (engine_->is_first()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "stage 0 takes token ids, not activations: open the link on stage 1");
  }
  const model::DeviceSpec& device = engine_->options().device;
  if (device.kind != model::DeviceKind::kCuda) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("this stage computes on ", device.ToString(),
                     ", not on a CUDA device: an NCCL link needs a stage started with --device "
                     "cuda:N"));
  }
  // A plugin without NCCL will not grow one: not worth the sender's retries.
  if (absl::Status nccl = model::NcclAvailable(); !nccl.ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("no NCCL on this worker: ", nccl.message()));
  }
  absl::StatusOr<std::unique_ptr<link::NcclInboundLink>> accepted =
      link::AcceptNcclLink(*request, device.index);
  if (!accepted.ok()) return ToGrpcStatus(accepted.status());
  std::shared_ptr<link::NcclInboundLink> old;
  {
    absl::MutexLock lock(&nccl_mutex_);
    old = std::move(nccl_inbound_);
    nccl_inbound_ = *std::move(accepted);
  }
  // The sender opens a new link only after giving up on the old one: a receive still waiting
  // on it would wait forever.
  if (old != nullptr) old->Abort();
  response->set_link_id(request->link_id());
  response->set_device(device.ToString());
  return grpc::Status::OK;
}

grpc::Status WorkerService::LoadState(grpc::ServerContext*, const v1::LoadStateRequest* request,
                                      v1::SessionStateInfo* response) {
  if (!ready()) return Loading();
  if (request->session_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "session_id is empty");
  }
  std::string blob;
  if (request->has_store()) {
    if (store_ == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "this worker was started without --store");
    }
    absl::StatusOr<state_store::ClientBlob> got =
        store_->Get(request->store().key(), request->store().part());
    if (!got.ok()) return ToGrpcStatus(got.status());
    if (request->store().version() != 0 &&
        got->header.entry().version() != request->store().version()) {
      return grpc::Status(
          grpc::StatusCode::ABORTED,
          absl::StrCat("store entry ", request->store().key(), " is at version ",
                       got->header.entry().version(), ", not ", request->store().version()));
    }
    blob = std::move(got->data);
  } else if (request->source_case() == v1::LoadStateRequest::kBlob) {
    blob = request->blob();
  } else {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name a store key or give a blob");
  }
  const model::RwkvWeights& w = engine_->weights();
  absl::StatusOr<model::RwkvState> state =
      model::DecodeStateBlob(blob, w.fingerprint(), w.state_shape());
  if (request->has_store() && state.status().code() == absl::StatusCode::kInvalidArgument) {
    // Stored bytes that are not a state blob at all: damaged in storage (inline bytes that
    // are not one are the caller's mistake: INVALID_ARGUMENT).
    return grpc::Status(grpc::StatusCode::DATA_LOSS,
                        absl::StrCat("the state blob is damaged: ", state.status().message()));
  }
  if (!state.ok()) return ToGrpcStatus(state.status());
  auto session = std::make_unique<engine::Session>(w.state_shape());
  const int64_t position = state->position();
  session->state = *std::move(state);
  if (!request->sampler_state().empty()) {
    absl::StatusOr<model::Sampler> sampler = model::Sampler::Create({}, engine_->config().vocab);
    if (!sampler.ok()) return ToGrpcStatus(sampler.status());
    if (absl::Status s = sampler->RestoreState(request->sampler_state()); !s.ok()) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("sampler_state does not decode: ", s.message()));
    }
    session->sampler = *std::move(sampler);
  }
  if (absl::Status s = sessions_->Put(request->session_id(), std::move(session)); !s.ok()) {
    return ToGrpcStatus(s);
  }
  UpdateGauges();
  response->set_session_id(request->session_id());
  *response->mutable_metadata() = Metadata(position, blob.size());
  return grpc::Status::OK;
}

grpc::Status WorkerService::SaveState(grpc::ServerContext*, const v1::SaveStateRequest* request,
                                      v1::SaveStateResponse* response) {
  if (!ready()) return Loading();
  std::shared_ptr<std::string> blob;
  int64_t position = 0;
  absl::Status s = sessions_->With(request->session_id(), [&](engine::Session& session) {
    if (!request->sampler_only()) {
      blob = std::make_shared<std::string>(
          model::EncodeStateBlob(session.state, engine_->weights().fingerprint()));
    }
    position = session.state.position();
    if (session.sampler.has_value()) response->set_sampler_state(session.sampler->SerializeState());
    return absl::OkStatus();
  });
  if (!s.ok()) return ToGrpcStatus(s);
  if (request->sampler_only()) {
    *response->mutable_metadata() = Metadata(position, 0);
    return grpc::Status::OK;
  }
  *response->mutable_metadata() = Metadata(position, blob->size());
  if (!request->has_store()) {
    response->set_blob(std::move(*blob));
    return grpc::Status::OK;
  }
  if (store_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this worker was started without --store");
  }
  state_store::ClientPutOptions options;
  options.metadata = response->metadata();
  options.ttl_seconds = request->store().ttl_seconds();
  options.snapshot_id = request->store().snapshot_id();
  options.part = request->store().part();
  absl::StatusOr<v1::PutResponse> put =
      store_->Put(request->store().key(), std::shared_ptr<const std::string>(blob), options);
  if (!put.ok()) return ToGrpcStatus(put.status());
  response->set_store_version(put->version());
  return grpc::Status::OK;
}

grpc::Status WorkerService::ForkState(grpc::ServerContext*, const v1::ForkStateRequest* request,
                                      v1::SessionStateInfo* response) {
  if (!ready()) return Loading();
  if (request->target_session_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "target_session_id is empty");
  }
  absl::Status s = sessions_->Fork(request->source_session_id(), request->target_session_id());
  if (!s.ok()) return ToGrpcStatus(s);
  int64_t position = 0;
  (void)sessions_->With(request->target_session_id(), [&](engine::Session& session) {
    position = session.state.position();
    return absl::OkStatus();
  });
  UpdateGauges();
  response->set_session_id(request->target_session_id());
  *response->mutable_metadata() =
      Metadata(position, static_cast<size_t>(engine_->weights().state_shape().total_floats() * 4));
  return grpc::Status::OK;
}

grpc::Status WorkerService::DropState(grpc::ServerContext*, const v1::DropStateRequest* request,
                                      v1::DropStateResponse* response) {
  if (!ready()) return Loading();
  absl::StatusOr<bool> existed = sessions_->Drop(request->session_id());
  if (!existed.ok()) return ToGrpcStatus(existed.status());
  UpdateGauges();
  response->set_existed(*existed);
  return grpc::Status::OK;
}

void WorkerService::Drain(absl::Duration quiet, absl::Time deadline) {
  draining_.store(true);
  // The router notices at its next health poll (every 0.5 s) and stops stepping here.
  while (absl::Now() < deadline) {
    const absl::Time last = absl::FromUnixNanos(last_step_unix_ns_.load());
    if (in_flight_.load() == 0 && absl::Now() - last >= quiet) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  // The previous stage's relay stream would keep the server's shutdown waiting for its whole
  // deadline: end it now that no work flows (the sender reopens to the restarted stage).
  absl::MutexLock lock(&relay_mutex_);
  for (grpc::ServerContext* c : relays_) c->TryCancel();
}

}  // namespace skein::worker
