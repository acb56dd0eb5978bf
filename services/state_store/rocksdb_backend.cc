#include "services/state_store/rocksdb_backend.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <unordered_set>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/write_batch.h"
#include "services/common/logging.h"

namespace skein::state_store {
namespace {

constexpr char kRecord = 'r';
constexpr char kManifest = 'm';

std::string DbKey(char kind, std::string_view group, std::string_view name) {
  std::string key;
  key.reserve(2 + group.size() + name.size());
  key.push_back(kind);
  key.append(group);
  key.push_back('\0');
  key.append(name);
  return key;
}

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat("rocksdb ", base::AsAbsl(what), ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

}  // namespace

absl::StatusOr<FsyncPolicy> ParseFsyncPolicy(std::string_view name) {
  if (name == "always") return FsyncPolicy::kAlways;
  if (name == "interval") return FsyncPolicy::kInterval;
  if (name == "never") return FsyncPolicy::kNever;
  return absl::InvalidArgumentError(absl::StrCat("fsync policy \"", base::AsAbsl(name),
                                                 "\": expected always, interval or never"));
}

absl::StatusOr<std::unique_ptr<RocksDbBackend>> RocksDbBackend::Open(
    const RocksDbOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("rocksdb: empty data directory");
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create data directory ", options.path, ": ", ec.message()));
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.paranoid_checks = true;
  // Only small records live in RocksDB (blob bytes have files of their own).
  db_options.max_background_jobs = 2;
  db_options.IncreaseParallelism(2);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, &raw);
  if (!s.ok()) {
    absl::Status status = FromRocks(s, absl::StrCat("open ", options.path));
    // A held LOCK file is an I/O error to RocksDB; to an operator it is "in use".
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kInternal) {
      return absl::UnavailableError(status.message());
    }
    return status;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  absl::StatusOr<BlobFiles> files = BlobFiles::Open(options.path + "/blobs");
  if (!files.ok()) return files.status();
  std::unique_ptr<RocksDbBackend> backend(
      new RocksDbBackend(std::move(db), *std::move(files), options));
  // Blob files whose manifest entry never committed (a crash between the file and the
  // entry) or was deleted (a crash before the unlink) are garbage.
  std::unordered_set<std::string> listed;
  absl::Status scanned = backend->ScanBlobs([&](std::string_view group, std::string_view name) {
    listed.insert(BlobFiles::FileName(group, name));
  });
  if (!scanned.ok()) return scanned;
  absl::Status cleaned = backend->blob_files_.RemoveUnlisted(
      [&](const std::string& file) { return listed.count(file) > 0; });
  if (!cleaned.ok()) return cleaned;
  if (options.fsync == FsyncPolicy::kInterval) {
    backend->syncer_ = std::thread([b = backend.get()] { b->SyncLoop(); });
  }
  return backend;
}

RocksDbBackend::RocksDbBackend(std::unique_ptr<rocksdb::DB> db, BlobFiles blob_files,
                               RocksDbOptions options)
    : db_(std::move(db)), blob_files_(std::move(blob_files)), options_(std::move(options)) {
  options_.fsync_interval = std::max(options_.fsync_interval, absl::Milliseconds(1));
}

RocksDbBackend::~RocksDbBackend() {
  if (syncer_.joinable()) {
    {
      absl::MutexLock lock(&unsynced_mu_);
      stopping_ = true;
    }
    syncer_.join();
  }
  if (db_) db_->Close().PermitUncheckedError();
}

void RocksDbBackend::NoteUnsynced(std::string file) {
  absl::MutexLock lock(&unsynced_mu_);
  unsynced_files_.push_back(std::move(file));
}

void RocksDbBackend::NoteUnsyncedWal() {
  absl::MutexLock lock(&unsynced_mu_);
  wal_unsynced_ = true;
}

size_t RocksDbBackend::unsynced_writes() const {
  absl::MutexLock lock(&unsynced_mu_);
  return unsynced_files_.size() + (wal_unsynced_ ? 1 : 0);
}

absl::Status RocksDbBackend::FlushUnsynced() {
  absl::MutexLock flush(&flush_mu_);
  std::vector<std::string> files;
  bool wal = false;
  {
    absl::MutexLock lock(&unsynced_mu_);
    files.swap(unsynced_files_);
    std::swap(wal, wal_unsynced_);
  }
  if (files.empty() && !wal) return absl::OkStatus();
  // Files before the WAL: once a manifest entry is on disk, so is its file (unless the
  // kernel wrote the WAL back on its own first, which the checksums then catch).
  absl::Status status = files.empty() ? absl::OkStatus() : blob_files_.SyncFiles(files);
  if (status.ok()) status = FromRocks(db_->SyncWAL(), "sync WAL");
  if (!status.ok()) {
    // Keep them for the next round.
    absl::MutexLock lock(&unsynced_mu_);
    unsynced_files_.insert(unsynced_files_.end(), files.begin(), files.end());
    wal_unsynced_ = true;
  }
  return status;
}

void RocksDbBackend::SyncLoop() {
  bool stopping = false;
  while (!stopping) {
    {
      absl::MutexLock lock(&unsynced_mu_);
      unsynced_mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.fsync_interval);
      stopping = stopping_;
    }
    // An error (a full or failing disk) is logged and retried next round: until a flush
    // succeeds, the writes since the last one are safe from a crash of the process only.
    if (absl::Status s = FlushUnsynced(); !s.ok()) {
      log::Error("background fsync failed; will retry",
                 {{"error", std::string(s.message())}, {"data_dir", options_.path}});
    }
  }
}

absl::Mutex& RocksDbBackend::GroupLock(std::string_view group) {
  return group_locks_[absl::Hash<std::string_view>()(group) % group_locks_.size()];
}

absl::StatusOr<std::optional<std::string>> RocksDbBackend::ReadRecord(std::string_view group,
                                                                      std::string_view name) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), DbKey(kRecord, group, name), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "read");
  return value;
}

absl::Status RocksDbBackend::Apply(const Batch& batch) {
  using Kind = Batch::Op::Kind;
  absl::MutexLock lock(&GroupLock(batch.group()));
  rocksdb::WriteBatch write;
  std::vector<std::string> removed_files;  // unlinked once the batch is committed
  for (const Batch::Op& op : batch.ops()) {
    switch (op.kind) {
      case Kind::kExpectRecord: {
        std::string current;
        rocksdb::Status s =
            db_->Get(rocksdb::ReadOptions(), DbKey(kRecord, batch.group(), op.name), &current);
        if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "read");
        bool holds = op.has_value ? (s.ok() && current == op.value) : s.IsNotFound();
        if (!holds) return absl::AbortedError(absl::StrCat("record ", op.name, " changed"));
        break;
      }
      case Kind::kExpectBlob: {
        std::string ignored;
        rocksdb::Status s =
            db_->Get(rocksdb::ReadOptions(), DbKey(kManifest, batch.group(), op.name), &ignored);
        if (s.IsNotFound()) return absl::AbortedError(absl::StrCat("blob ", op.name, " is gone"));
        if (!s.ok()) return FromRocks(s, "read");
        break;
      }
      case Kind::kPutRecord:
        write.Put(DbKey(kRecord, batch.group(), op.name), op.value);
        break;
      case Kind::kDeleteRecord:
        write.Delete(DbKey(kRecord, batch.group(), op.name));
        break;
      case Kind::kDeleteBlob:
        write.Delete(DbKey(kManifest, batch.group(), op.name));
        removed_files.push_back(BlobFiles::FileName(batch.group(), op.name));
        break;
      case Kind::kExpireBlob:
      case Kind::kExpireRecord:
        break;
    }
  }
  if (write.Count() == 0) return absl::OkStatus();
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.fsync == FsyncPolicy::kAlways;
  if (absl::Status s = FromRocks(db_->Write(write_options, &write), "write"); !s.ok()) return s;
  if (options_.fsync == FsyncPolicy::kInterval) NoteUnsyncedWal();
  for (const std::string& file : removed_files) {
    // A failure leaves an unlisted file, removed at the next start; the batch stands.
    blob_files_.Remove(file).IgnoreError();
  }
  return absl::OkStatus();
}

absl::Status RocksDbBackend::WriteBlob(std::string_view group, std::string_view name,
                                       std::string_view data, absl::Time /*expiry*/) {
  // The file first, then its manifest entry: a listed blob always has its whole file.
  std::string file = BlobFiles::FileName(group, name);
  if (absl::Status s =
          blob_files_.Write(file, data, /*sync=*/options_.fsync == FsyncPolicy::kAlways);
      !s.ok()) {
    return s;
  }
  if (options_.fsync == FsyncPolicy::kInterval) NoteUnsynced(std::move(file));
  // Not synced even under kAlways: the commit that publishes the blob syncs the WAL, and
  // with it this earlier entry.
  absl::Status s = FromRocks(db_->Put(rocksdb::WriteOptions(), DbKey(kManifest, group, name), ""),
                             "write blob manifest");
  if (s.ok() && options_.fsync == FsyncPolicy::kInterval) NoteUnsyncedWal();
  return s;
}

absl::StatusOr<std::string> RocksDbBackend::ReadBlob(std::string_view group,
                                                     std::string_view name) {
  std::string ignored;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), DbKey(kManifest, group, name), &ignored);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("no blob ", base::AsAbsl(name), " in ", base::AsAbsl(group)));
  }
  if (!s.ok()) return FromRocks(s, "read blob manifest");
  absl::StatusOr<std::string> data = blob_files_.Read(BlobFiles::FileName(group, name));
  if (data.status().code() == absl::StatusCode::kNotFound) {
    // Deleted since the manifest was read (Apply drops the entry, then unlinks the file)?
    // Then the blob is simply gone, which the caller handles like any other absent blob.
    s = db_->Get(rocksdb::ReadOptions(), DbKey(kManifest, group, name), &ignored);
    if (s.IsNotFound()) {
      return absl::NotFoundError(
          absl::StrCat("no blob ", base::AsAbsl(name), " in ", base::AsAbsl(group)));
    }
    if (!s.ok()) return FromRocks(s, "read blob manifest");
    // Listed but gone: lost underneath the store (a machine crash before the file was
    // flushed, or a file removed by hand).
    return absl::DataLossError(
        absl::StrCat("blob ", base::AsAbsl(name), " in ", base::AsAbsl(group),
                     " is listed but its file is missing: ", data.status().message()));
  }
  return data;
}

absl::Status RocksDbBackend::Scan(
    char kind,
    const std::function<void(std::string_view, std::string_view, std::string_view)>& visit) {
  std::string lower(1, kind);
  std::string upper(1, static_cast<char>(kind + 1));
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    size_t zero = key.find('\0');
    if (zero == std::string_view::npos) continue;
    visit(key.substr(1, zero - 1), key.substr(zero + 1),
          std::string_view(it->value().data(), it->value().size()));
  }
  return FromRocks(it->status(), "scan");
}

absl::Status RocksDbBackend::ScanRecords(const RecordVisitor& visit) {
  return Scan(kRecord, visit);
}

absl::Status RocksDbBackend::ScanBlobs(const BlobVisitor& visit) {
  return Scan(kManifest, [&](std::string_view group, std::string_view name, std::string_view) {
    visit(group, name);
  });
}

}  // namespace skein::state_store
