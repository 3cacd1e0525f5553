// The execution plan: plain data, every tensor name, shape and dtype concrete. The runtime
// executes it; `compile -o plan.json` writes it and `run --plan` reads it back. The JSON
// schema is documented in docs/plan.md.
#pragma once

#include "compiler/TensorMeta.h"
#include "compiler/bind/Binding.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace ckptmap {

enum class InstrOp {
  Quantize,  ///< in[0] (plain floats) -> the output value's quantized type
  Dequantize, ///< in[0] (quantized) -> the output value's float dtype
  Load,      ///< read `tensor` from the input (or the stash, or the --hf-base checkpoint)
  Store,     ///< write value in[0] as output `tensor`
  Concat,    ///< join in[...] along `dim`
  Split,     ///< cut in[0] along `dim` into `sizes`
  QkvFuse,   ///< in = q, k, v -> MCore grouped layout
  QkvSplit,  ///< inverse of QkvFuse
  Stack,     ///< join in[...] along a new leading dim
  Unstack,   ///< cut in[0] along its leading dim
  Transpose, ///< permute dims by `perm`
  Reshape,   ///< same bytes, the output value's shape
  Cast,      ///< convert to the output value's dtype
  Affine,    ///< x * scale + shift, in FP32, rounded once
  Fill,      ///< a tensor of the output value's type, every element `value`
  Stash,     ///< keep in[0] as `tensor` in the stash unless its bytes equal in[1]'s
};

llvm::StringRef instrOpName(InstrOp op);
std::optional<InstrOp> parseInstrOp(llvm::StringRef name);

enum class LoadSource { Input, Stash, Base };

/// A value's type. A quantized value (a weight with its scales) has its logical, unpacked
/// shape, its data part's dtype, and the parts described by `quant`.
struct ValueType {
  DType dtype = DType::F32;
  Shape shape;
  QuantType quant;
  /// Bytes the value occupies, every part counted.
  uint64_t byteSize() const;
};

inline ValueType typeOf(const TensorMeta &t) { return ValueType{t.dtype, t.shape, t.quant}; }
/// A weight of logical shape `shape` stored as `format`.
inline ValueType quantizedValue(const QuantType &format, const Shape &shape) {
  return ValueType{quantDataType(format.kind), shape, format};
}
inline TensorMeta metaOf(std::string name, const ValueType &t) { return TensorMeta{std::move(name), t.dtype, t.shape, t.quant}; }

struct Instr {
  explicit Instr(InstrOp op = InstrOp::Load) : op(op) {}

  InstrOp op;
  std::vector<uint32_t> in, out; ///< value numbers within the step
  std::string tensor;            ///< Load, Store, Stash
  LoadSource source = LoadSource::Input;
  int64_t dim = 0;               ///< Concat, Split
  std::vector<int64_t> sizes;    ///< Split
  int64_t heads = 0, groups = 0, headDim = 0; ///< QkvFuse, QkvSplit
  bool gate = false;             ///< QkvFuse, QkvSplit
  std::vector<int64_t> perm;     ///< Transpose
  double scale = 1, shift = 0;   ///< Affine
  double value = 0;              ///< Fill
  /// Concat, QkvFuse, Stack of quantized parts whose per-tensor scales differ: requantize
  /// (lossy, reported) instead of failing.
  bool requantize = false;
};

/// One rule instance's work: a small program in SSA form over values of known type.
struct Step {
  std::string rule;     ///< "rulebooks/deepseek_v3.rules:42:5"
  std::string summary;  ///< "qkv(q_proj, k_proj, v_proj)", for explain and progress
  std::string variants; ///< the choices that led to this rule
  std::vector<ValueType> values;
  std::vector<Instr> instrs;
  bool lossless = true;

  /// Bytes of every value the step holds at once, as the memory budget counts them.
  uint64_t peakBytes() const;

  /// Steps merged into one (parts quantized together) keep each summary, joined by this.
  static constexpr llvm::StringLiteral kSummarySeparator = "; ";
  /// The summaries of the rule instances the step does: one, or one per merged step.
  llvm::SmallVector<llvm::StringRef, 1> summaries() const;
};

struct PlanDrop {
  std::string tensor;
  std::string reason;
  std::string rule;
};

/// A pattern of target tensors the plan does not produce, and why.
struct PlanGap {
  std::string pattern;
  std::string reason;
  std::string rule;
  bool fromBase = false; ///< --hf-base would supply it
};

struct Plan {
  static constexpr int kVersion = 1;
  std::string rulebook;     ///< path of the rulebook
  std::string family;       ///< the rulebook's name
  std::string from, to;
  nlohmann::json params = nlohmann::json::object();
  std::vector<TensorMeta> inputs;  ///< source tensors the plan reads
  std::vector<TensorMeta> outputs; ///< in output order
  std::vector<Step> steps;
  std::vector<PlanDrop> drops;
  std::vector<ChoiceRecord> choices;
  std::vector<PlanGap> gaps;

  uint64_t outputBytes() const;
};

nlohmann::json planToJson(const Plan &plan);
nlohmann::json quantToJson(const QuantType &q);
llvm::Expected<QuantType> quantFromJson(const nlohmann::json &json);
llvm::Expected<Plan> planFromJson(const nlohmann::json &json);

/// "model.layers.10.x" sorts after "model.layers.9.x": digit runs compare as numbers.
bool naturalLess(llvm::StringRef a, llvm::StringRef b);
/// A key whose byte order is naturalLess's order of the names: sorting many names by keys
/// built once compares with memcmp rather than re-scanning digit runs at every comparison.
std::string naturalKey(llvm::StringRef name);

} // namespace ckptmap
