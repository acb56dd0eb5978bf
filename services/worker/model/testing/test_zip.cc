#include "services/worker/model/testing/test_zip.h"

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "services/worker/model/checkpoint/byte_io.h"
#include "services/worker/model/checkpoint/zip_reader.h"

namespace skein::model::testing {
namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "test_zip: %s\n", why.c_str());
  std::abort();
}

std::string RawDeflate(const std::string& in) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    Die("deflateInit2");
  std::string out(deflateBound(&zs, in.size()) + 16, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) Die("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

std::string BuildZip(const std::vector<ZipRecord>& records, uint64_t align) {
  std::string out, cd;
  for (const ZipRecord& r : records) {
    const std::string payload = r.deflate ? RawDeflate(r.data) : r.data;
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(r.data.data()), static_cast<uInt>(r.data.size())));
    const uint64_t offset = out.size();
    std::string extra;
    if (!r.deflate && align > 1) {
      uint64_t start = offset + 30 + r.name.size() + 4;
      uint64_t pad = (align - start % align) % align;
      AppendLE<uint16_t>(extra, 0x4246);
      AppendLE<uint16_t>(extra, static_cast<uint16_t>(pad));
      extra.append(pad, 'Z');
    }
    const uint16_t method = r.deflate ? 8 : 0;
    AppendLE<uint32_t>(out, 0x04034b50);
    AppendLE<uint16_t>(out, 20);
    AppendLE<uint16_t>(out, 0);
    AppendLE<uint16_t>(out, method);
    AppendLE<uint32_t>(out, 0x00210000);  // time 0, date 1980-01-01
    AppendLE<uint32_t>(out, crc);
    AppendLE<uint32_t>(out, static_cast<uint32_t>(payload.size()));
    AppendLE<uint32_t>(out, static_cast<uint32_t>(r.data.size()));
    AppendLE<uint16_t>(out, static_cast<uint16_t>(r.name.size()));
    AppendLE<uint16_t>(out, static_cast<uint16_t>(extra.size()));
    out += r.name + extra + payload;

    AppendLE<uint32_t>(cd, 0x02014b50);
    AppendLE<uint16_t>(cd, 20);
    AppendLE<uint16_t>(cd, 20);
    AppendLE<uint16_t>(cd, 0);
    AppendLE<uint16_t>(cd, method);
    AppendLE<uint32_t>(cd, 0x00210000);
    AppendLE<uint32_t>(cd, crc);
    AppendLE<uint32_t>(cd, static_cast<uint32_t>(payload.size()));
    AppendLE<uint32_t>(cd, static_cast<uint32_t>(r.data.size()));
    AppendLE<uint16_t>(cd, static_cast<uint16_t>(r.name.size()));
    AppendLE<uint16_t>(cd, 0);
    AppendLE<uint16_t>(cd, 0);
    AppendLE<uint16_t>(cd, 0);
    AppendLE<uint16_t>(cd, 0);
    AppendLE<uint32_t>(cd, 0);
    AppendLE<uint32_t>(cd, static_cast<uint32_t>(offset));
    cd += r.name;
  }
  const uint64_t cd_offset = out.size();
  out += cd;
  AppendLE<uint32_t>(out, 0x06054b50);
  AppendLE<uint16_t>(out, 0);
  AppendLE<uint16_t>(out, 0);
  AppendLE<uint16_t>(out, static_cast<uint16_t>(records.size()));
  AppendLE<uint16_t>(out, static_cast<uint16_t>(records.size()));
  AppendLE<uint32_t>(out, static_cast<uint32_t>(cd.size()));
  AppendLE<uint32_t>(out, static_cast<uint32_t>(cd_offset));
  AppendLE<uint16_t>(out, 0);
  return out;
}

std::vector<ZipRecord> ReadZip(const std::string& bytes) {
  auto zip = ZipReader::Open(bytes, "test");
  if (!zip.ok()) Die(std::string(zip.status().message()));
  std::vector<ZipRecord> records;
  for (const ZipEntry& e : zip->entries()) {
    auto data = zip->ReadAll(e, uint64_t{1} << 32);
    if (!data.ok()) Die(std::string(data.status().message()));
    records.push_back({e.name, *data, false});
  }
  return records;
}

void SetRecord(std::vector<ZipRecord>& records, const std::string& name, std::string data) {
  for (ZipRecord& r : records) {
    if (r.name == name) {
      r.data = std::move(data);
      return;
    }
  }
  Die("no record " + name);
}

const std::string& GetRecord(const std::vector<ZipRecord>& records, const std::string& name) {
  for (const ZipRecord& r : records) {
    if (r.name == name) return r.data;
  }
  Die("no record " + name);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Die("cannot write " + path);
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  static int counter = 0;
  return std::string(dir ? dir : "/tmp") + "/" + std::to_string(counter++) + "-" + name;
}

}  // namespace skein::model::testing
