// skein-worker: a pipeline stage running layers of an RWKV model
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "services/common/client_channel.h"
#include "services/common/logging.h"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "services/worker/engine/stage_engine.h"
#include "services/worker/link/grpc_relay_link.h"
#include "services/worker/link/nccl_stage_link.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/device/gpu_plugin.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/worker_service.h"

namespace {

struct WorkerFlags {
  std::string model;
  std::string model_name;
  std::string layers;
  int stage = 0;
  int stages = 1;
  std::string next;
  std::string store;
  std::string dtype = "bf16";
  std::string link_dtype = "fp32";
  std::string link = "grpc";
  int threads = 0;
  bool bf16_activations = false;
  bool int8_activations = false;
  std::string device = "cpu";
  int64_t device_slots = 0;  // 0: --max-sessions
  int64_t max_sessions = 256;
  int64_t max_step_tokens = 4096;
  std::vector<std::string> initial_states;  // NAME=PATH
};

// What --link asks of the build and the device, checked before the server starts so that a
// misconfigured pipeline fails at once. FAILED_PRECONDITION naming the problem.
absl::Status CheckLink(const WorkerFlags& f) {
  if (f.link != "nccl") return absl::OkStatus();
  if (absl::Status nccl = skein::model::NcclAvailable(); !nccl.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--link nccl: no NCCL here (", nccl.message(), "); use --link grpc"));
  }
  absl::StatusOr<skein::model::DeviceSpec> device = skein::model::ParseDevice(f.device);
  if (!device.ok()) return device.status();
  if (device->kind != skein::model::DeviceKind::kCuda) {
    return absl::FailedPreconditionError(
        absl::StrCat("--link nccl sends activations between GPUs: the stage must compute on a "
                     "CUDA device (--device cuda:N), not ",
                     device->ToString()));
  }
  return absl::OkStatus();
}

absl::Status LoadStage(const WorkerFlags& f, skein::worker::WorkerService* service) {
  absl::StatusOr<skein::model::DType> dtype = skein::engine::ParseRunDType(f.dtype);
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<std::unique_ptr<skein::model::TensorArchive>> archive =
      skein::model::OpenCheckpoint(f.model);
  if (!archive.ok()) return archive.status();
  std::shared_ptr<const skein::model::TensorArchive> shared(*std::move(archive));
  absl::StatusOr<skein::model::RwkvConfig> config = skein::model::LoadRwkvConfig(*shared);
  if (!config.ok()) return config.status();
  skein::engine::StageEngineOptions options;
  options.run_dtype = *dtype;
  options.threads = f.threads;
  options.bf16_activations = f.bf16_activations;
  options.int8_activations = f.int8_activations;
  absl::StatusOr<skein::model::DeviceSpec> device = skein::model::ParseDevice(f.device);
  if (!device.ok()) return device.status();
  options.device = *device;
  options.device_slots = f.device_slots > 0 ? f.device_slots : f.max_sessions;
  for (const std::string& spec : f.initial_states) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--initial-state wants NAME=PATH, not '", spec, "'"));
    }
    options.initial_states.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
  }
  if (absl::Status s = skein::engine::ResolveLayerRange(f.layers, f.stage, f.stages,
                                                        static_cast<int>(config->n_layer),
                                                        &options.first_layer, &options.last_layer);
      !s.ok()) {
    return s;
  }
  const bool last = options.last_layer == config->n_layer;
  if (!last && f.next.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layers ", options.first_layer, ":", options.last_layer, " do not end the model (",
        config->n_layer, " layers): name the next stage with --next"));
  }
  skein::log::Info("loading",
                   {{"model", f.model},
                    {"layers", absl::StrCat(options.first_layer, ":", options.last_layer)},
                    {"dtype", f.dtype},
                    {"device", options.device.ToString()}});
  absl::StatusOr<std::unique_ptr<skein::engine::StageEngine>> engine =
      skein::engine::StageEngine::FromArchive(shared, options);
  if (!engine.ok()) return engine.status();
  const skein::v1::ActivationDType link_dtype =
      f.link_dtype == "bf16" ? skein::v1::ACTIVATION_DTYPE_BF16 : skein::v1::ACTIVATION_DTYPE_FP32;
  std::unique_ptr<skein::link::StageLink> next;
  if (!last && f.link == "nccl") {
    // The rendezvous happens now, before this stage serves: it waits for the next stage to
    // load and join.
    skein::link::NcclStageLinkOptions link;
    link.target = f.next;
    link.cuda_device = options.device.index;
    link.dtype = link_dtype;
    link.width = static_cast<uint32_t>(config->n_embd);
    absl::StatusOr<std::unique_ptr<skein::link::StageLink>> opened =
        skein::link::OpenNcclStageLink(link);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("--link nccl: ", opened.status().message()));
    }
    next = *std::move(opened);
    skein::log::Info("nccl link open", {{"next", f.next}, {"device", options.device.ToString()}});
  } else if (!last) {
    next = std::make_unique<skein::link::GrpcRelayLink>(f.next, link_dtype);
  }
  std::unique_ptr<skein::state_store::StateStoreClient> store;
  if (!f.store.empty()) {
    store =
        std::make_unique<skein::state_store::StateStoreClient>(skein::CreateClientChannel(f.store));
  }
  service->SetEngine(*std::move(engine), std::move(next), std::move(store));
  skein::log::Info("loaded",
                   {{"layers", absl::StrCat(options.first_layer, ":", options.last_layer)}});
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  skein::ServerOptions options;
  options.service_name = "skein-worker";
  options.listen = "127.0.0.1:7730";
  options.metrics_port = 9730;

  WorkerFlags f;
  CLI::App app{"skein-worker: a pipeline stage running layers of an RWKV model", "skein-worker"};
  skein::AddServerFlags(app, &options);
  app.add_option("--model", f.model, "Checkpoint (.pth or .safetensors)")->required();
  app.add_option("--model-name", f.model_name,
                 "Name the model is served under (default: the file name without extension)");
  app.add_option("--layers", f.layers, "Layer range A:B this stage holds (overrides --stage)");
  app.add_option("--stage", f.stage, "This stage's index in the pipeline (default 0)");
  app.add_option("--stages", f.stages, "Stages in the pipeline (default 1)");
  app.add_option("--next", f.next, "Address of the next stage (all but the last stage)");
  app.add_option("--store", f.store,
                 "State store address: evicted sessions and Save/LoadState go there");
  app.add_option("--dtype", f.dtype,
                 "Weight dtype: bf16 (default), fp16, fp32, or int8 (quantised per row at load)");
  app.add_option("--link-dtype", f.link_dtype,
                 "Activations to the next stage: fp32 (exact, default) or bf16 (half the bytes)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--link", f.link,
                 "How activations reach the next stage: grpc (default; the Relay stream) or "
                 "nccl (NCCL between GPUs, opened at load; every stage on --device cuda:N)")
      ->check(CLI::IsMember({"grpc", "nccl"}));
  app.add_option("--threads", f.threads, "Compute threads (default: every core)");
  app.add_flag("--bf16-activations", f.bf16_activations,
               "Round activations to bf16 in large products (faster on AVX512_BF16; not exact). "
               "With --device: round product inputs to the weights' dtype (one GPU product "
               "instead of two in large steps; not exact)");
  app.add_flag("--int8-activations", f.int8_activations,
               "With --dtype int8: quantise activations to int8 in large products, which then "
               "run on integers (faster; not exact)");
  app.add_option("--device", f.device,
                 "Where the stage computes: cpu (default), cuda or cuda:N (a GPU; RWKV-7 "
                 "models), or reference (the GPU engine's steps on the CPU with scalar "
                 "reference kernels: slow, for checking)");
  app.add_option("--device-slots", f.device_slots,
                 "With a GPU device: sessions whose states stay in GPU memory (default: "
                 "--max-sessions); others wait in host memory")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-sessions", f.max_sessions,
                 "Session states kept in memory; past it the least recently used go to the store")
      ->check(CLI::PositiveNumber);
  bool measure_bandwidth = true;
  app.add_option("--measure-bandwidth", measure_bandwidth,
                 "Measure memory read bandwidth at load (about 0.1 s) for the "
                 "bandwidth-utilisation metric (default true)");
  app.add_option("--initial-state", f.initial_states,
                 "NAME=PATH of a state-tuning file (blocks.<l>.att.time_state); a request naming "
                 "NAME starts from it. Repeatable");
  app.add_option("--max-step-tokens", f.max_step_tokens, "Most tokens one step may carry")
      ->check(CLI::PositiveNumber);
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }
  if (f.model_name.empty()) f.model_name = std::filesystem::path(f.model).stem().string();
  if (absl::Status s = CheckLink(f); !s.ok()) {
    std::fprintf(stderr, "%s: error: %s\n", options.service_name.c_str(),
                 std::string(s.message()).c_str());
    return 1;
  }

  skein::ServiceHost host(options);
  skein::worker::WorkerConfig config;
  config.model_name = f.model_name;
  config.stage_index = static_cast<uint32_t>(f.stage);
  config.stage_count = static_cast<uint32_t>(f.stages);
  config.max_sessions = static_cast<size_t>(f.max_sessions);
  config.max_step_tokens = f.max_step_tokens;
  config.measure_bandwidth = measure_bandwidth;
  config.link_dtype =
      f.link_dtype == "bf16" ? skein::v1::ACTIVATION_DTYPE_BF16 : skein::v1::ACTIVATION_DTYPE_FP32;
  skein::worker::WorkerService service(config, host.metrics().registry());
  host.AddService(&service, "skein.v1.WorkerService");
  host.set_serving_at_start(false);  // NOT_SERVING until the model is loaded
  // On SIGTERM, let routers move this stage's generations away before it stops.
  host.set_drain_hook(
      [&service](absl::Time deadline) { service.Drain(absl::Milliseconds(500), deadline); });
  return host.Run([&]() -> absl::Status {
    if (absl::Status s = LoadStage(f, &service); !s.ok()) return s;
    host.SetServing(true);
    return absl::OkStatus();
  });
}
