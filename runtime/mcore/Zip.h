// Zip archives as torch.save writes them: every entry stored (never compressed), local
// headers followed by data descriptors (so sizes come from the central directory), data
// aligned to 64 bytes by an "FB" padding extra field, and a ZIP64 end record always present.
//
// ZipArchive reads one archive occupying a byte range (a whole .pt file, or one piece of a
// .distcp file, which holds several archives back to back). TorchArchiveWriter writes one
// archive exactly as PyTorch's writer lays it out, byte for byte.
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ckptmap::mcore {

struct ZipEntry {
  std::string name;
  uint64_t dataOffset = 0; ///< relative to the archive's first byte
  uint64_t size = 0;
  uint32_t crc32 = 0;
};

class ZipArchive {
public:
  /// Parses the archive held by `bytes`; `label` names it in every error (a path, or a path
  /// and byte range for a piece of a .distcp file). Every offset is checked against the range.
  static llvm::Expected<ZipArchive> parse(llvm::ArrayRef<uint8_t> bytes, std::string label);

  const std::string &label() const { return label_; }
  llvm::ArrayRef<ZipEntry> entries() const { return entries_; }
  /// nullptr when absent.
  const ZipEntry *find(llvm::StringRef name) const;
  /// The entry's bytes (a view into the archive's range).
  llvm::ArrayRef<uint8_t> data(const ZipEntry &entry) const {
    return bytes_.slice(entry.dataOffset, entry.size);
  }
  /// data(), after checking the stored CRC-32.
  llvm::Expected<llvm::ArrayRef<uint8_t>> checkedData(const ZipEntry &entry) const;

  /// The folder every entry lives in ("archive", "model_optim_rng"): torch.save puts all
  /// records under one top folder. Empty when the entries disagree.
  llvm::StringRef topFolder() const { return topFolder_; }

private:
  llvm::ArrayRef<uint8_t> bytes_;
  std::string label_;
  std::vector<ZipEntry> entries_;
  std::string topFolder_;
};

/// Where a writer's bytes go. Errors are sticky: after the first failure every later write
/// is skipped and the error is reported once by the owner.
using ByteSink = std::function<llvm::Error(llvm::ArrayRef<uint8_t>)>;

/// Writes one archive the way PyTorch's PyTorchStreamWriter does (including its
/// serialization id), so an archive written here is byte-identical to torch.save's.
class TorchArchiveWriter {
public:
  /// An empty `sink` measures: the archive's size comes out exactly, but no byte of data is
  /// read (it depends only on the records' names and sizes).
  TorchArchiveWriter(ByteSink sink, std::string archiveName = "archive");

  /// Appends record `archiveName/name`. Records are written in call order.
  llvm::Error addRecord(llvm::StringRef name, llvm::ArrayRef<uint8_t> data);
  /// Adds `version` and `.data/serialization_id` as torch.save's end of file does, then the
  /// central directory and end records.
  llvm::Error finish();
  /// Bytes written so far.
  uint64_t size() const { return pos_; }
  /// Entries whose size or offset reaches this get ZIP64 fields (PyTorch: 4 GiB - 1); lower
  /// it to exercise the ZIP64 layout on small data.
  void setZip64Threshold(uint64_t threshold) { zip64Threshold_ = threshold; }

private:
  struct Written {
    std::string fullName;
    uint64_t localOffset;
    uint64_t size;
    uint32_t crc;
  };
  llvm::Error put(llvm::ArrayRef<uint8_t> bytes);

  ByteSink sink_;
  std::string archiveName_;
  uint64_t pos_ = 0;
  std::vector<Written> written_;
  std::vector<std::string> recordNames_;
  uint64_t combinedCrc_ = 0;
  uint64_t zip64Threshold_ = 0xFFFFFFFFu;
  bool finished_ = false;
};

/// CRC-32 (zip polynomial) of `data`, continuing from `crc`.
uint32_t crc32(llvm::ArrayRef<uint8_t> data, uint32_t crc = 0);

} // namespace ckptmap::mcore
