#include "runtime/mcore/Zip.h"

#include "runtime/mcore/Errors.h"

#include <array>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <unordered_set>

namespace ckptmap::mcore {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kDescriptorSig = 0x08074b50;
constexpr uint64_t kU32Max = 0xFFFFFFFFu;
constexpr uint64_t kAlignment = 64; // PyTorch's kFieldAlignment
constexpr uint16_t kFlags = 0x0808; // data descriptor + UTF-8 names, as PyTorch's miniz sets

uint16_t rd16(const uint8_t *p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t *p) { return uint32_t(rd16(p)) | uint32_t(rd16(p + 2)) << 16; }
uint64_t rd64(const uint8_t *p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

void wr16(std::vector<uint8_t> &o, uint16_t v) {
  o.push_back(uint8_t(v));
  o.push_back(uint8_t(v >> 8));
}
void wr32(std::vector<uint8_t> &o, uint32_t v) {
  wr16(o, uint16_t(v));
  wr16(o, uint16_t(v >> 16));
}
void wr64(std::vector<uint8_t> &o, uint64_t v) {
  wr32(o, uint32_t(v));
  wr32(o, uint32_t(v >> 32));
}
void wrBytes(std::vector<uint8_t> &o, llvm::StringRef s) { o.insert(o.end(), s.bytes_begin(), s.bytes_end()); }

struct CrcTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s)
        t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};

// Mirrors c10::hash_combine, which PyTorch uses for its serialization id.
uint64_t hashCombine(uint64_t seed, uint64_t value) {
  return seed ^ (value + 0x9e3779b9 + (seed << 6) + (seed >> 2));
}

} // namespace

uint32_t crc32(llvm::ArrayRef<uint8_t> data, uint32_t crc) {
  static const CrcTables tables;
  const auto &t = tables.t;
  uint32_t c = ~crc;
  const uint8_t *p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint32_t lo = c ^ rd32(p);
    uint32_t hi = rd32(p + 4);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--)
    c = t[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
  return ~c;
}

// ---------------------------------------------------------------------------------------------
// Reading

llvm::Expected<ZipArchive> ZipArchive::parse(llvm::ArrayRef<uint8_t> bytes, std::string label) {
  auto fail = [&](const llvm::Twine &what) { return makeError(label + ": not a valid zip archive: " + what); };
  const uint64_t n = bytes.size();
  const uint8_t *b = bytes.data();
  if (n < 22)
    return fail("only " + llvm::Twine(n) + " bytes, too short for an end record");

  // End of central directory: the last signature whose comment reaches the end exactly.
  uint64_t eocd = UINT64_MAX;
  uint64_t lowest = n >= 22 + 0xFFFF ? n - 22 - 0xFFFF : 0;
  for (uint64_t p = n - 22 + 1; p-- > lowest;) {
    if (rd32(b + p) == kEndSig && p + 22 + rd16(b + p + 20) == n) {
      eocd = p;
      break;
    }
  }
  if (eocd == UINT64_MAX)
    return fail("no end-of-central-directory record (truncated?)");
  if (rd16(b + eocd + 4) != 0 || rd16(b + eocd + 6) != 0)
    return fail("multi-disk archives are not supported");
  uint64_t count = rd16(b + eocd + 10);
  uint64_t cdSize = rd32(b + eocd + 12);
  uint64_t cdOffset = rd32(b + eocd + 16);
  uint64_t cdLimit = eocd; // the central directory must end before the end records

  if (eocd >= 20 && rd32(b + eocd - 20) == kZip64LocatorSig) {
    uint64_t z64 = rd64(b + eocd - 20 + 8);
    if (z64 > eocd - 20 || eocd - 20 - z64 < 56)
      return fail("ZIP64 end record offset " + llvm::Twine(z64) + " out of range");
    if (rd32(b + z64) != kZip64EndSig)
      return fail("ZIP64 locator does not point at a ZIP64 end record");
    count = rd64(b + z64 + 32);
    cdSize = rd64(b + z64 + 40);
    cdOffset = rd64(b + z64 + 48);
    cdLimit = z64;
  } else if (count == 0xFFFF || cdSize == kU32Max || cdOffset == kU32Max) {
    return fail("end record needs ZIP64 values but no ZIP64 locator is present");
  }
  if (cdOffset > cdLimit || cdSize > cdLimit - cdOffset)
    return fail("central directory [" + llvm::Twine(cdOffset) + ", +" + llvm::Twine(cdSize) +
                ") lies outside the archive");
  if (count > cdSize / 46)
    return fail(llvm::Twine(count) + " entries cannot fit a central directory of " +
                llvm::Twine(cdSize) + " bytes");

  ZipArchive zip;
  zip.bytes_ = bytes;
  zip.label_ = std::move(label);
  zip.entries_.reserve(count);
  uint64_t p = cdOffset;
  const uint64_t cdEnd = cdOffset + cdSize;
  for (uint64_t i = 0; i < count; ++i) {
    if (cdEnd - p < 46 || rd32(b + p) != kCentralSig)
      return fail("central directory entry " + llvm::Twine(i) + " is damaged");
    uint16_t flags = rd16(b + p + 8);
    uint16_t method = rd16(b + p + 10);
    uint32_t crc = rd32(b + p + 16);
    uint64_t csize = rd32(b + p + 20);
    uint64_t usize = rd32(b + p + 24);
    uint16_t nameLen = rd16(b + p + 28), extraLen = rd16(b + p + 30), commentLen = rd16(b + p + 32);
    uint64_t local = rd32(b + p + 42);
    if (cdEnd - p - 46 < uint64_t(nameLen) + extraLen + commentLen)
      return fail("central directory entry " + llvm::Twine(i) + " runs past the directory");
    std::string name(reinterpret_cast<const char *>(b + p + 46), nameLen);
    // ZIP64 extended information: the saturated fields, in the order usize, csize, offset.
    const uint8_t *x = b + p + 46 + nameLen;
    for (uint64_t q = 0; q + 4 <= extraLen;) {
      uint16_t id = rd16(x + q), len = rd16(x + q + 2);
      if (q + 4 + len > extraLen)
        return fail("entry '" + name + "' has a damaged extra field");
      if (id == 0x0001) {
        const uint8_t *f = x + q + 4;
        uint16_t left = len;
        auto take = [&](uint64_t &v) -> bool {
          if (v != kU32Max)
            return true;
          if (left < 8)
            return false;
          v = rd64(f);
          f += 8;
          left -= 8;
          return true;
        };
        if (!take(usize) || !take(csize) || !take(local))
          return fail("entry '" + name + "' has a short ZIP64 extra field");
      }
      q += 4 + len;
    }
    if (flags & 1)
      return fail("entry '" + name + "' is encrypted");
    if (method != 0)
      return makeError(zip.label_ + ": entry '" + name + "' is compressed (method " +
                       llvm::Twine(method) + "); torch.save archives store every entry uncompressed");
    if (csize != usize)
      return fail("stored entry '" + name + "' has compressed size " + llvm::Twine(csize) +
                  " != size " + llvm::Twine(usize));
    if (local > cdOffset || cdOffset - local < 30 || rd32(b + local) != kLocalSig)
      return fail("entry '" + name + "': no local header at offset " + llvm::Twine(local));
    uint16_t lNameLen = rd16(b + local + 26), lExtraLen = rd16(b + local + 28);
    uint64_t data = local + 30 + lNameLen + lExtraLen;
    if (data > cdOffset || usize > cdOffset - data)
      return fail("entry '" + name + "' data [" + llvm::Twine(data) + ", +" + llvm::Twine(usize) +
                  ") runs past the central directory at " + llvm::Twine(cdOffset) + " (truncated?)");
    if (llvm::StringRef(reinterpret_cast<const char *>(b + local + 30), lNameLen) != name)
      return fail("entry '" + name + "': local header names a different file");
    zip.entries_.push_back(ZipEntry{std::move(name), data, usize, crc});
    p += 46 + nameLen + extraLen + commentLen;
  }

  if (!zip.entries_.empty()) {
    llvm::StringRef first = zip.entries_.front().name;
    size_t slash = first.find('/');
    std::string top = slash == llvm::StringRef::npos ? "" : first.substr(0, slash).str();
    for (const ZipEntry &e : zip.entries_)
      if (top.empty() || !llvm::StringRef(e.name).startswith(top + "/"))
        top.clear();
    zip.topFolder_ = top;
  }
  return zip;
}

const ZipEntry *ZipArchive::find(llvm::StringRef name) const {
  for (const ZipEntry &e : entries_)
    if (e.name == name)
      return &e;
  return nullptr;
}

llvm::Expected<llvm::ArrayRef<uint8_t>> ZipArchive::checkedData(const ZipEntry &entry) const {
  llvm::ArrayRef<uint8_t> d = data(entry);
  uint32_t got = crc32(d);
  if (got != entry.crc32) {
    std::ostringstream msg;
    msg << label_ << ": entry '" << entry.name << "' is corrupt: CRC-32 " << std::hex
        << std::setw(8) << std::setfill('0') << got << " != stored " << std::setw(8) << entry.crc32;
    return makeError(msg.str());
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// Writing

TorchArchiveWriter::TorchArchiveWriter(ByteSink sink, std::string archiveName)
    : sink_(std::move(sink)), archiveName_(std::move(archiveName)) {}

llvm::Error TorchArchiveWriter::put(llvm::ArrayRef<uint8_t> bytes) {
  pos_ += bytes.size();
  return sink_ ? sink_(bytes) : llvm::Error::success();
}

llvm::Error TorchArchiveWriter::addRecord(llvm::StringRef name, llvm::ArrayRef<uint8_t> data) {
  std::string fullName = archiveName_ + "/" + name.str();
  const uint64_t local = pos_;
  const uint64_t size = data.size();
  const bool bigSize = size >= zip64Threshold_, bigOffset = local >= zip64Threshold_;

  // ZIP64 local extra (only past 4 GiB), then PyTorch's "FB" padding up to 64-byte alignment.
  std::vector<uint8_t> extra;
  if (bigSize || bigOffset) {
    wr16(extra, 0x0001);
    wr16(extra, uint16_t((bigSize ? 16 : 0) + (bigOffset ? 8 : 0)));
    if (bigSize) {
      wr64(extra, size);
      wr64(extra, size);
    }
    if (bigOffset)
      wr64(extra, local);
  }
  uint64_t start = local + 30 + fullName.size() + extra.size() + 4;
  uint64_t pad = (kAlignment - start % kAlignment) % kAlignment;
  extra.push_back('F');
  extra.push_back('B');
  wr16(extra, uint16_t(pad));
  extra.insert(extra.end(), pad, 'Z');

  uint32_t crc = sink_ ? crc32(data) : 0; // measuring reads no data
  std::vector<uint8_t> header;
  wr32(header, kLocalSig);
  wr16(header, 0);      // version needed
  wr16(header, kFlags); // data descriptor follows
  wr16(header, 0);      // stored
  wr16(header, 0);      // time
  wr16(header, 0);      // date
  wr32(header, 0);      // crc, sizes: in the descriptor
  wr32(header, 0);
  wr32(header, 0);
  wr16(header, uint16_t(fullName.size()));
  wr16(header, uint16_t(extra.size()));
  wrBytes(header, fullName);
  header.insert(header.end(), extra.begin(), extra.end());
  if (auto err = put(header))
    return err;
  if (auto err = put(data))
    return err;
  std::vector<uint8_t> descriptor;
  wr32(descriptor, kDescriptorSig);
  wr32(descriptor, crc);
  if (bigSize || bigOffset) {
    wr64(descriptor, size);
    wr64(descriptor, size);
  } else {
    wr32(descriptor, uint32_t(size));
    wr32(descriptor, uint32_t(size));
  }
  if (auto err = put(descriptor))
    return err;
  combinedCrc_ = hashCombine(combinedCrc_, crc);
  written_.push_back(Written{std::move(fullName), local, size, crc});
  recordNames_.push_back(name.str());
  return llvm::Error::success();
}

llvm::Error TorchArchiveWriter::finish() {
  if (finished_)
    return llvm::Error::success();
  finished_ = true;
  static const uint8_t version[] = {'3', '\n'};
  if (auto err = addRecord("version", version))
    return err;
  // PyTorch's serialization id: the record names' hashes combined in the iteration order of
  // its std::unordered_set, then the records' CRCs combined in write order (libstdc++'s
  // std::hash, as PyTorch's Linux builds use).
  std::unordered_set<std::string> names;
  for (const std::string &n : recordNames_)
    names.insert(n);
  uint64_t nameHash = 0;
  for (const std::string &n : names)
    nameHash = hashCombine(nameHash, std::hash<std::string>{}(n));
  std::ostringstream id;
  id << std::setfill('0') << std::setw(20) << nameHash << std::setfill('0') << std::setw(20)
     << combinedCrc_;
  std::string idText = id.str();
  if (auto err = addRecord(".data/serialization_id",
                           llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(idText.data()),
                                                   idText.size())))
    return err;

  std::vector<uint8_t> cd;
  const uint64_t cdOffset = pos_;
  for (const Written &w : written_) {
    const bool bigSize = w.size >= zip64Threshold_, bigOffset = w.localOffset >= zip64Threshold_;
    std::vector<uint8_t> extra;
    if (bigSize || bigOffset) {
      wr16(extra, 0x0001);
      wr16(extra, uint16_t((bigSize ? 16 : 0) + (bigOffset ? 8 : 0)));
      if (bigSize) {
        wr64(extra, w.size);
        wr64(extra, w.size);
      }
      if (bigOffset)
        wr64(extra, w.localOffset);
    }
    wr32(cd, kCentralSig);
    wr16(cd, 0); // made by
    wr16(cd, 0); // needed
    wr16(cd, kFlags);
    wr16(cd, 0);
    wr16(cd, 0);
    wr16(cd, 0);
    wr32(cd, w.crc);
    wr32(cd, bigSize ? uint32_t(kU32Max) : uint32_t(w.size));
    wr32(cd, bigSize ? uint32_t(kU32Max) : uint32_t(w.size));
    wr16(cd, uint16_t(w.fullName.size()));
    wr16(cd, uint16_t(extra.size()));
    wr16(cd, 0); // comment
    wr16(cd, 0); // disk
    wr16(cd, 0); // internal attributes
    wr32(cd, 0); // external attributes
    wr32(cd, bigOffset ? uint32_t(kU32Max) : uint32_t(w.localOffset));
    wrBytes(cd, w.fullName);
    cd.insert(cd.end(), extra.begin(), extra.end());
  }
  const uint64_t cdSize = cd.size();
  const uint64_t z64 = cdOffset + cdSize;
  const uint64_t count = written_.size();
  wr32(cd, kZip64EndSig);
  wr64(cd, 44);
  wr16(cd, 0x031E); // made by: unix, 3.0
  wr16(cd, 0x002D); // needed: 4.5 (ZIP64)
  wr32(cd, 0);
  wr32(cd, 0);
  wr64(cd, count);
  wr64(cd, count);
  wr64(cd, cdSize);
  wr64(cd, cdOffset);
  wr32(cd, kZip64LocatorSig);
  wr32(cd, 0);
  wr64(cd, z64);
  wr32(cd, 1);
  wr32(cd, kEndSig);
  wr16(cd, 0);
  wr16(cd, 0);
  wr16(cd, uint16_t(std::min<uint64_t>(count, 0xFFFF)));
  wr16(cd, uint16_t(std::min<uint64_t>(count, 0xFFFF)));
  wr32(cd, uint32_t(std::min<uint64_t>(cdSize, kU32Max)));
  wr32(cd, uint32_t(std::min<uint64_t>(cdOffset, kU32Max)));
  wr16(cd, 0);
  return put(cd);
}

} // namespace ckptmap::mcore
