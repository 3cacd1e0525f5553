// Quantized weights as the compiler sees them: one logical tensor ("X.weight", with its
// unpacked shape) standing for the files' parts (the packed data and its scales). Rules name
// the logical tensor; every op carries the parts along consistently.
#pragma once

#include "base/DType.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap {

/// The formats a checkpoint can hold, as the compiler tells them apart.
enum class QuantKind : uint8_t {
  None,
  Nvfp4,     ///< packed e2m1 U8 [.., c/2], F8_E4M3 scale per 16, F32 global per matrix
  Fp8Tensor, ///< F8_E4M3 data, one F32 scale per matrix
  Fp8Block,  ///< F8_E4M3 data, F32 or BF16 scale per 128x128 block (weight_scale_inv)
  Mxfp8,     ///< F8_E4M3 data, E8M0 (U8) scale per 1x32 block (weight_scale_inv)
};

/// How the parts of an NVFP4 weight are named: ModelOpt (weight, weight_scale, weight_scale_2,
/// input_scale) or compressed-tensors (weight_packed, weight_scale, weight_global_scale =
/// 1 / weight_scale_2, input_global_scale = 1 / input_scale).
enum class QuantNaming : uint8_t { ModelOpt, CompressedTensors };

llvm::StringRef quantKindName(QuantKind k);
/// "nvfp4", "fp8", "fp8-block" (or "fp8_block"), "mxfp8", "none".
std::optional<QuantKind> parseQuantKind(llvm::StringRef name);
/// Whether `name` names a quantized format (any of them but "none").
inline bool isQuantFormat(llvm::StringRef name) { return parseQuantKind(name).value_or(QuantKind::None) != QuantKind::None; }

struct QuantType {
  QuantKind kind = QuantKind::None;
  QuantNaming naming = QuantNaming::ModelOpt;
  DType scaleDType = DType::F32; ///< Fp8Block: F32 or BF16
  bool inputScale = false;       ///< an activation scale travels with the weight
  /// Fp8Block only: the row counts of fused parts that each keep their own scale grid (parts
  /// whose rows are not a multiple of 128 cannot share one). Empty: one regular grid.
  std::vector<int64_t> rowGroups;

  bool quantized() const { return kind != QuantKind::None; }
  /// Every block of this many elements along the last dim shares a scale (1 for per tensor).
  int64_t groupCols() const;
  friend bool operator==(const QuantType &a, const QuantType &b) {
    return a.kind == b.kind && a.naming == b.naming && a.scaleDType == b.scaleDType &&
           a.inputScale == b.inputScale && a.rowGroups == b.rowGroups;
  }
  friend bool operator!=(const QuantType &a, const QuantType &b) { return !(a == b); }
};

std::string describe(const QuantType &q);

enum class QuantRole : uint8_t { Data, BlockScale, GlobalScale, InputScale };

/// One stored part of a quantized weight.
struct QuantPart {
  QuantRole role;
  std::string suffix; ///< replaces the logical name's last component ("weight_scale")
  DType dtype;
  llvm::SmallVector<int64_t, 4> shape;
};

/// The element type of the data part: U8 for NVFP4, F8_E4M3 otherwise.
DType quantDataType(QuantKind kind);

/// The stored parts of a logical weight of `shape` ([r, c], or [E, r, c] for stacked
/// experts, one global scale per expert); an error when the shape does not fit the format.
llvm::Expected<std::vector<QuantPart>> quantParts(const QuantType &q, llvm::ArrayRef<int64_t> shape);

/// A data tensor's name taken apart: "m.linear_fc1.weight3" is module "m.linear_fc1", index "3"
/// (TE grouped experts number the weight itself); "m.x.weight_packed" is compressed-tensors'.
struct WeightName {
  llvm::StringRef module;
  llvm::StringRef index;
  bool packed = false;
};
std::optional<WeightName> splitWeightName(llvm::StringRef name);

/// The module a tensor belongs to, as quantization configs name it: "m.x" for "m.x.weight" and
/// "m.linear_fc1.weight3"; a tensor not named weight ("experts.gate_up_proj") is its own module.
llvm::StringRef moduleOf(llvm::StringRef tensor);

/// "model.x.weight" + part "weight_scale" -> "model.x.weight_scale"; an expert index stays at
/// the end ("linear_fc1.weight3" -> "linear_fc1.weight_scale3"); a tensor not named weight keeps
/// its name for the data and has its scales beside it ("experts.down_proj_weight_scale").
std::string quantPartName(llvm::StringRef logicalName, const QuantPart &part);

/// Where a cut of a quantized tensor along logical `dim`, elements [start, start + count),
/// falls in one of its parts: the same cut on the part's own grid, or the whole part (a
/// per-matrix scale, which every piece of the matrix shares). The cut must respect the
/// format's blocks, as the plan's type rules ensure.
struct PartCut {
  bool whole = false;
  int64_t dim = 0, start = 0, count = 0;
};
PartCut partCut(const QuantType &q, llvm::ArrayRef<int64_t> shape, const QuantPart &part, int64_t dim, int64_t start,
                int64_t count);

/// Rows of the FP8 block scale grid for `rows` rows split into `groups` (empty: one group).
int64_t blockScaleRows(int64_t rows, llvm::ArrayRef<int64_t> groups);

} // namespace ckptmap
