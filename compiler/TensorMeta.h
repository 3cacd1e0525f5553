// What the compiler knows of a tensor: its name, element type and shape. Never its bytes.
#pragma once

#include "base/DType.h"
#include "compiler/quant/QuantType.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <string>

namespace ckptmap {

using Shape = llvm::SmallVector<int64_t, 4>;

/// Number of elements of a shape; 1 for a scalar (rank 0).
inline int64_t numElements(llvm::ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// "[4, 64, 32]"
inline std::string formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

struct TensorMeta {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  /// A quantized weight is one logical tensor: `shape` is unpacked, `dtype` the data part's,
  /// and the scales travel with it (compiler/quant/QuantType.h).
  QuantType quant;

  int64_t numel() const { return numElements(shape); }
  /// Bytes of a plain tensor; for a quantized one, of its data part as the dtype counts it.
  uint64_t byteSize() const { return uint64_t(numel()) * dtypeSize(dtype); }
};

} // namespace ckptmap
