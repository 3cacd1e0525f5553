// transpose on the device: one thread per output element, its source offset computed from the
// output index (reads are strided, writes coalesced). Transposes in conversion plans are rare
// and small (conv and projection weights), so the simple form is the right one here.
#include "kernels/Cuda.h"
#include "kernels/Errors.h"
#include "kernels/Layout.h"
#include "kernels/cuda/Common.cuh"

namespace ckptmap::cuda {
namespace {

using namespace detail;

struct Permutation {
  int rank;
  int64_t outShape[kMaxTransposeRank];
  int64_t srcStride[kMaxTransposeRank]; // stride in the source of output dim d
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    transposeKernel(const T* __restrict__ in, T* __restrict__ out, size_t total, Permutation p) {
  for (size_t i = globalThread(); i < total; i += gridThreads()) {
    size_t rest = i, from = 0;
    for (int d = p.rank - 1; d >= 0; --d) {
      const size_t extent = static_cast<size_t>(p.outShape[d]);
      from += (rest % extent) * static_cast<size_t>(p.srcStride[d]);
      rest /= extent;
    }
    out[i] = in[from];
  }
}

/// Elements of a size with no machine type: moved byte by byte.
__global__ void __launch_bounds__(kThreads)
    transposeBytesKernel(const uint8_t* __restrict__ in, uint8_t* __restrict__ out, size_t total, size_t elem,
                         Permutation p) {
  for (size_t i = globalThread(); i < total; i += gridThreads()) {
    size_t rest = i, from = 0;
    for (int d = p.rank - 1; d >= 0; --d) {
      const size_t extent = static_cast<size_t>(p.outShape[d]);
      from += (rest % extent) * static_cast<size_t>(p.srcStride[d]);
      rest /= extent;
    }
    for (size_t b = 0; b < elem; ++b)
      out[i * elem + b] = in[from * elem + b];
  }
}

} // namespace

KernelStatus transpose(const void* src, void* dst, const int64_t* shape, const int64_t* perm, size_t rank,
                       size_t elemBytes, void* stream) {
  if (!cudaAvailable())
    return errors::noDevice();
  if (rank > kMaxTransposeRank)
    return errors::badShape("transpose takes at most " + std::to_string(kMaxTransposeRank) + " dims");
  Permutation p{static_cast<int>(rank), {}, {}};
  int64_t stride = 1, srcStride[kMaxTransposeRank] = {};
  for (size_t d = rank; d-- > 0;) {
    srcStride[d] = stride;
    stride *= shape[d];
  }
  size_t total = 1;
  for (size_t d = 0; d < rank; ++d) {
    p.outShape[d] = shape[perm[d]];
    p.srcStride[d] = srcStride[perm[d]];
    total *= static_cast<size_t>(p.outShape[d]);
  }
  if (total == 0)
    return {};
  const auto s = static_cast<cudaStream_t>(stream);
  const size_t grid = gridFor(total);
  // Whole-element moves need aligned pointers; anything else goes byte by byte.
  const bool whole = aligned(src, elemBytes) && aligned(dst, elemBytes);
  switch (whole ? elemBytes : 0) {
  case 1: transposeKernel<<<grid, kThreads, 0, s>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), total, p); break;
  case 2: transposeKernel<<<grid, kThreads, 0, s>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), total, p); break;
  case 4: transposeKernel<<<grid, kThreads, 0, s>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), total, p); break;
  case 8: transposeKernel<<<grid, kThreads, 0, s>>>(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), total, p); break;
  default:
    transposeBytesKernel<<<grid, kThreads, 0, s>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), total,
                                                   elemBytes, p);
  }
  CKPTMAP_CUDA_CHECK_LAUNCH();
  return {};
}

} // namespace ckptmap::cuda
