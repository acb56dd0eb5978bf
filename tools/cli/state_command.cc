// `skein state put|get|stat|ls|rm --store HOST:PORT ...`: an operator's view of a
// skein-state-store. Data travels through the whole-blob client, so checksums are checked end
// to end; `get` writes its file only once the data has arrived and verified (a missing key
// writes nothing and exits 1 with NOT_FOUND).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "services/common/status.h"
#include "services/state_store/client.h"
#include "tools/cli/command_registry.h"

namespace {

using skein::cli::CommandError;
using skein::state_store::StateStoreClient;

struct StateArgs {
  std::string store;
  std::string key;
  std::string file;
  double timeout_seconds = 60;
  // put
  uint64_t ttl_seconds = 0;
  std::optional<uint64_t> expected_version;
  std::string checksum = "xxh3_64";
  std::string model;
  std::string fingerprint;
  std::string layers;
  uint64_t position = 0;
  uint32_t format_version = 0;
  // get
  uint32_t part = 0;
  // ls
  std::string prefix;
  uint32_t limit = 0;
};

[[noreturn]] void Fail(const absl::Status& status, const std::string& what) {
  throw CommandError(
      1, absl::StrCat(what, ": ", absl::StatusCodeToString(status.code()), ": ", status.message()));
}

absl::Duration Timeout(const StateArgs& args) { return absl::Seconds(args.timeout_seconds); }

StateStoreClient Connect(const StateArgs& args) {
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(64 << 20);
  channel_args.SetMaxSendMessageSize(64 << 20);
  return StateStoreClient(
      grpc::CreateCustomChannel(args.store, grpc::InsecureChannelCredentials(), channel_args));
}

void SetDeadline(grpc::ClientContext* context, const StateArgs& args) {
  context->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(args.timeout_seconds * 1000)));
}

std::string ReadInput(const std::string& path) {
  std::ostringstream data;
  if (path == "-") {
    data << std::cin.rdbuf();
    return data.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CommandError(1, absl::StrCat("cannot read ", path));
  data << in.rdbuf();
  return data.str();
}

// Writes `data` to `path` through a temporary file in the same directory and a rename, so the
// file appears whole or not at all.
void WriteOutput(const std::string& path, const std::string& data) {
  if (path == "-") {
    std::fwrite(data.data(), 1, data.size(), stdout);
    std::fflush(stdout);
    return;
  }
  std::string tmp = absl::StrCat(path, ".tmp-", getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp);
      throw CommandError(1, absl::StrCat("cannot write ", path));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw CommandError(1, absl::StrCat("cannot write ", path, ": ", ec.message()));
  }
}

void RunPut(const StateArgs& args) {
  skein::state_store::ClientPutOptions options;
  std::optional<skein::state_store::ChecksumAlgorithm> algorithm =
      skein::state_store::ParseChecksumAlgorithm(args.checksum);
  if (!algorithm) throw CommandError(2, "--checksum must be xxh3_64 or crc32c");
  options.checksum = *algorithm;
  options.ttl_seconds = args.ttl_seconds;
  options.expected_version = args.expected_version;
  options.timeout = Timeout(args);
  options.metadata.mutable_model()->set_name(args.model);
  options.metadata.mutable_model()->set_fingerprint(args.fingerprint);
  options.metadata.set_token_position(args.position);
  options.metadata.set_format_version(args.format_version);
  if (!args.layers.empty()) {
    std::pair<std::string, std::string> range = absl::StrSplit(args.layers, ':');
    uint32_t first = 0, last = 0;
    if (!absl::SimpleAtoi(range.first, &first) || !absl::SimpleAtoi(range.second, &last)) {
      throw CommandError(2, "--layers must be FIRST:LAST, e.g. 0:12");
    }
    options.metadata.mutable_layers()->set_first(first);
    options.metadata.mutable_layers()->set_last(last);
  }
  std::string data = ReadInput(args.file);
  absl::StatusOr<skein::v1::PutResponse> response = Connect(args).Put(args.key, data, options);
  if (!response.ok()) Fail(response.status(), absl::StrCat("put \"", args.key, "\""));
  std::printf("stored %s version %llu (%zu bytes, %llu stored)\n", args.key.c_str(),
              static_cast<unsigned long long>(response->version()), data.size(),
              static_cast<unsigned long long>(response->stored_bytes()));
}

void RunGet(const StateArgs& args) {
  absl::StatusOr<skein::state_store::ClientBlob> blob =
      Connect(args).Get(args.key, args.part, 0, Timeout(args));
  if (!blob.ok()) Fail(blob.status(), absl::StrCat("get \"", args.key, "\""));
  WriteOutput(args.file, blob->data);
  if (args.file != "-") {
    std::printf("wrote %zu bytes of %s version %llu to %s\n", blob->data.size(), args.key.c_str(),
                static_cast<unsigned long long>(blob->header.entry().version()), args.file.c_str());
  }
}

void RunStat(const StateArgs& args) {
  StateStoreClient client = Connect(args);
  grpc::ClientContext context;
  SetDeadline(&context, args);
  skein::v1::StatRequest request;
  request.set_key(args.key);
  skein::v1::EntryInfo info;
  grpc::Status status = client.stub().Stat(&context, request, &info);
  if (!status.ok()) Fail(skein::FromGrpcStatus(status), absl::StrCat("stat \"", args.key, "\""));
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(info, &json, print);
  std::printf("%s", json.c_str());
}

void RunList(const StateArgs& args) {
  StateStoreClient client = Connect(args);
  skein::v1::ListRequest request;
  request.set_prefix(args.prefix);
  uint32_t printed = 0;
  do {
    grpc::ClientContext context;
    SetDeadline(&context, args);
    skein::v1::ListResponse page;
    grpc::Status status = client.stub().List(&context, request, &page);
    if (!status.ok()) Fail(skein::FromGrpcStatus(status), "list");
    for (const skein::v1::EntryInfo& e : page.entries()) {
      if (args.limit != 0 && printed == args.limit) return;
      std::printf("%s\t%llu\t%llu\t%d\t%s\n", e.key().c_str(),
                  static_cast<unsigned long long>(e.version()),
                  static_cast<unsigned long long>(e.total_size()), e.parts_size(),
                  e.pinned() ? "pinned" : "-");
      ++printed;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
}

void RunRemove(const StateArgs& args) {
  StateStoreClient client = Connect(args);
  grpc::ClientContext context;
  SetDeadline(&context, args);
  skein::v1::DeleteRequest request;
  request.set_key(args.key);
  if (args.expected_version) request.set_expected_version(*args.expected_version);
  skein::v1::DeleteResponse response;
  grpc::Status status = client.stub().Delete(&context, request, &response);
  if (!status.ok()) Fail(skein::FromGrpcStatus(status), absl::StrCat("rm \"", args.key, "\""));
  std::printf(response.existed() ? "deleted %s\n" : "%s did not exist\n", args.key.c_str());
}

CLI::App* AddCommon(CLI::App* state, const std::string& name, const std::string& help,
                    StateArgs* args) {
  CLI::App* cmd = state->add_subcommand(name, help);
  cmd->add_option("--store", args->store, "State store address HOST:PORT")->required();
  cmd->add_option("--timeout", args->timeout_seconds, "Seconds before giving up")
      ->capture_default_str();
  return cmd;
}

}  // namespace

SKEIN_REGISTER_COMMAND(state, [](CLI::App& app) {
  auto args = std::make_shared<StateArgs>();
  CLI::App* state = app.add_subcommand("state", "Inspect and manage a skein-state-store");
  state->require_subcommand(1);

  CLI::App* put = AddCommon(state, "put", "Store a file under a key", args.get());
  put->add_option("--key", args->key, "Entry key")->required();
  put->add_option("--file", args->file, "File to store ('-': standard input)")->required();
  put->add_option("--ttl", args->ttl_seconds, "Time to live in seconds (0: server default)");
  put->add_option("--expected-version", args->expected_version,
                  "Store only if the key is at this version (0: only if absent)");
  put->add_option("--checksum", args->checksum, "xxh3_64 or crc32c")->capture_default_str();
  put->add_option("--model", args->model, "Model name recorded with the state");
  put->add_option("--fingerprint", args->fingerprint, "Model fingerprint recorded");
  put->add_option("--layers", args->layers, "Layer range FIRST:LAST recorded");
  put->add_option("--position", args->position, "Token position recorded");
  put->add_option("--format-version", args->format_version, "State format version recorded");
  put->callback([args] { RunPut(*args); });

  CLI::App* get = AddCommon(state, "get", "Fetch a key into a file", args.get());
  get->add_option("--key", args->key, "Entry key")->required();
  get->add_option("--file", args->file, "File to write ('-': standard output)")->required();
  get->add_option("--part", args->part, "Part of a multi-part snapshot");
  get->callback([args] { RunGet(*args); });

  CLI::App* stat = AddCommon(state, "stat", "Describe a key (JSON)", args.get());
  stat->add_option("--key", args->key, "Entry key")->required();
  stat->callback([args] { RunStat(*args); });

  CLI::App* ls = AddCommon(state, "ls", "List keys: KEY VERSION BYTES PARTS PINNED", args.get());
  ls->add_option("--prefix", args->prefix, "Only keys starting with this");
  ls->add_option("--limit", args->limit, "Stop after this many (0: all)");
  ls->callback([args] { RunList(*args); });

  CLI::App* rm = AddCommon(state, "rm", "Delete a key", args.get());
  rm->add_option("--key", args->key, "Entry key")->required();
  rm->add_option("--expected-version", args->expected_version,
                 "Delete only if the key is at this version");
  rm->callback([args] { RunRemove(*args); });
});
