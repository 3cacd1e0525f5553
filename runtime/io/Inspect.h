// What `ckptmap inspect` and `ckptmap diff` compute, as library functions: a description of
// one checkpoint and the differences between two, each with a text and a JSON rendering.
#pragma once

#include "runtime/io/TensorSource.h"

#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace ckptmap {

/// {"root", "count", "total_bytes", "dtypes": {"BF16": {"count", "bytes"}, ...},
///  "tensors": [{"name", "dtype", "shape", "bytes", "file"}, ...]}; tensors sorted by name.
nlohmann::json describeCheckpoint(const TensorSource &source);

/// The same as an aligned table (name, dtype, shape, bytes, file), then one line per dtype
/// and a total line.
void printCheckpoint(llvm::raw_ostream &os, const TensorSource &source);

/// "1.50 MiB"; exact below 1 KiB ("512 B").
std::string formatBytes(uint64_t bytes);

struct TensorDiff {
  enum class Kind { DType, Shape, Bytes };
  Kind kind;
  std::string name;
  TensorMeta a, b;
  /// For Kind::Bytes: elements whose bytes differ, and the first of them.
  uint64_t differingElements = 0;
  uint64_t firstDifference = 0;
};

struct DiffResult {
  std::vector<std::string> onlyInA;   ///< sorted
  std::vector<std::string> onlyInB;   ///< sorted
  std::vector<TensorDiff> differences; ///< sorted by name, one per tensor
  size_t identical = 0; ///< in both with equal dtype, shape (and bytes, when compared)
  bool bytesCompared = true;

  bool same() const { return onlyInA.empty() && onlyInB.empty() && differences.empty(); }
};

struct DiffOptions {
  bool compareBytes = true; ///< false: headers only
};

/// Compares two checkpoints by name: names in one only, then for common names dtype, shape
/// and (optionally) bytes. Fails only if reading bytes fails.
llvm::Expected<DiffResult> diffCheckpoints(const TensorSource &a, const TensorSource &b,
                                           DiffOptions options = {});

/// One line per finding ("only in A: x", "dtype differs: x: BF16 [2] vs F32 [2]",
/// "bytes differ: x: 3 of 8 elements differ, first at element 1"), then a summary line.
void printDiff(llvm::raw_ostream &os, const DiffResult &diff);

/// {"same", "identical", "bytes_compared", "only_in_a": [...], "only_in_b": [...],
///  "differences": [{"name", "kind", "a": {"dtype", "shape"}, "b": {...},
///  "differing_elements", "first_difference"}]}; the last two only for kind "bytes".
nlohmann::json diffToJson(const DiffResult &diff);

} // namespace ckptmap
