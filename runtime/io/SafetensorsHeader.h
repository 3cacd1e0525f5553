// Parsing and validation of one safetensors file's header. Pure: works on the file's bytes,
// touches no file system, so it can be tested and fuzzed on buffers.
#pragma once

#include "compiler/TensorMeta.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap {

/// Headers beyond this are refused before parsing: a corrupt length must not make us try
/// to parse gigabytes. Real checkpoints stay far below (a few MB for thousands of tensors).
inline constexpr uint64_t kMaxSafetensorsHeaderSize = 100'000'000;

struct HeaderTensor {
  TensorMeta meta;
  uint64_t begin = 0; ///< data_offsets, relative to the start of the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t dataStart = 0;          ///< file offset of the data section: 8 + header length
  std::vector<HeaderTensor> tensors; ///< sorted by name
  std::map<std::string, std::string> metadata; ///< `__metadata__`, empty when absent
};

/// Parses and checks the header of `file` (the whole file's bytes): JSON shape, dtypes,
/// shapes against byte ranges, ranges inside the data section and not overlapping, no
/// duplicate names. `label` starts every error message (usually the file's path).
llvm::Expected<SafetensorsHeader> parseSafetensorsHeader(llvm::ArrayRef<uint8_t> file,
                                                         llvm::StringRef label);

// parseSafetensorsHeader's two paths, for tests that hold them to the same results.

/// The fast path: headers as writers emit them (no escapes or non-ASCII in strings, plain
/// integers, entries of exactly dtype, shape and data_offsets, string metadata), read
/// without a JSON tree. nullopt for any other header, and for any header that is not valid.
std::optional<SafetensorsHeader> scanPlainSafetensorsHeader(llvm::ArrayRef<uint8_t> file);
/// The general path through the JSON parser, which every error message comes from.
llvm::Expected<SafetensorsHeader> parseSafetensorsHeaderJson(llvm::ArrayRef<uint8_t> file,
                                                             llvm::StringRef label);

} // namespace ckptmap
