// The op set of the rule language. Each op is written in its "fuse" direction (parts ->
// whole); the compiler derives the inverse. The table here is the single source of truth
// for names, arguments and documentation (`ckptmap ops` prints it).
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ckptmap {

enum class OpKind { Concat, Gated, Qkv, Stack, Transpose, Reshape, Cast, Affine, Quantize, Dequantize };

/// QuantFormat: nvfp4, fp8, fp8_block or mxfp8, written as a bare word or a string.
enum class ParamType { Int, Float, Bool, DType, IntList, QuantFormat };

struct OpParam {
  const char *name;
  ParamType type;
  bool required;
  const char *doc;
};

struct OpInfo {
  OpKind kind;
  const char *name;
  const char *inverseName; ///< what the reverse plan shows
  unsigned minOperands;
  unsigned maxOperands;    ///< UINT32_MAX: variadic
  bool sizedOperands;      ///< operands may be written `part : size`
  bool takesBinding;       ///< first argument is `VAR in lo .. hi` (stack)
  bool lossless;           ///< false: the reverse may not restore every bit
  std::vector<OpParam> params;
  const char *summary;
};

llvm::ArrayRef<OpInfo> allOps();
const OpInfo *lookupOp(llvm::StringRef name);
/// Index of a parameter in op.params, or -1.
int paramIndex(const OpInfo &op, llvm::StringRef name);
std::vector<std::string> opNames();

} // namespace ckptmap
