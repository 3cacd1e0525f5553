#include "kernels/Layout.h"

#include "kernels/Errors.h"

#include <cstring>

namespace ckptmap::cpu {

KernelStatus transpose(const void* src, void* dst, const int64_t* shape, const int64_t* perm, size_t rank,
                       size_t elemBytes) {
  if (rank > kMaxTransposeRank)
    return errors::badShape("transpose takes at most " + std::to_string(kMaxTransposeRank) + " dims");
  int64_t srcStride[kMaxTransposeRank], outShape[kMaxTransposeRank], index[kMaxTransposeRank] = {};
  int64_t stride = 1, total = 1;
  for (size_t d = rank; d-- > 0;) {
    srcStride[d] = stride;
    stride *= shape[d];
  }
  for (size_t d = 0; d < rank; ++d) {
    outShape[d] = shape[perm[d]];
    total *= outShape[d];
  }
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  // Walk the output in order, carrying the source offset along (one add per step).
  int64_t from = 0;
  for (int64_t i = 0; i < total; ++i) {
    std::memcpy(out + size_t(i) * elemBytes, in + size_t(from) * elemBytes, elemBytes);
    for (size_t d = rank; d-- > 0;) {
      from += srcStride[perm[d]];
      if (++index[d] < outShape[d])
        break;
      from -= srcStride[perm[d]] * outShape[d];
      index[d] = 0;
    }
  }
  return {};
}

} // namespace ckptmap::cpu
