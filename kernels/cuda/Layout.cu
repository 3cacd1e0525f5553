// transpose on the device. A batch of matrices with their last two dims swapped (every 2-D
// transpose) goes through tiles in shared memory, so reads and writes are both coalesced
// (1- and 2-byte elements a 32-bit word at a time where the shape allows); any other
// permutation takes one thread per output element, its source offset computed from the output
// index (reads strided, writes coalesced).
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

/// [batch, rows, cols] -> [batch, cols, rows]; grid (column tiles, row tiles, batch), 32x8
/// threads, each moving 4 elements of a tile in and 4 out. The tile's padding column keeps a
/// warp's column reads on distinct banks.
template <class T>
__global__ void __launch_bounds__(256)
    transposeTilesKernel(const T* __restrict__ in, T* __restrict__ out, size_t rows, size_t cols) {
  __shared__ T tile[32][33];
  const size_t base = static_cast<size_t>(blockIdx.z) * rows * cols;
  const size_t r0 = static_cast<size_t>(blockIdx.y) * 32, c0 = static_cast<size_t>(blockIdx.x) * 32;
  for (unsigned k = threadIdx.y; k < 32; k += 8)
    if (r0 + k < rows && c0 + threadIdx.x < cols)
      tile[k][threadIdx.x] = in[base + (r0 + k) * cols + c0 + threadIdx.x];
  __syncthreads();
  for (unsigned k = threadIdx.y; k < 32; k += 8)
    if (c0 + k < cols && r0 + threadIdx.x < rows)
      out[base + (c0 + k) * rows + r0 + threadIdx.x] = tile[threadIdx.x][k];
}

/// The same for 1- and 2-byte elements, moved K = 4 / sizeof(T) to a 32-bit word: tiles of
/// 32K x 32K, each thread loading K consecutive elements of a row and storing K consecutive
/// elements of an output row, so a warp moves 128 bytes per instruction. Needs rows and cols
/// multiples of K and 4-byte-aligned pointers. The row padding of one element puts lane x's
/// column reads (rows Kx..Kx+K-1) on bank x + a constant.
template <class T>
__global__ void __launch_bounds__(256)
    transposeWordTilesKernel(const T* __restrict__ in, T* __restrict__ out, size_t rows, size_t cols) {
  constexpr unsigned K = 4 / sizeof(T), kTile = 32 * K, kBits = 8 * sizeof(T);
  __shared__ T tile[kTile][kTile + 1];
  const size_t base = static_cast<size_t>(blockIdx.z) * rows * cols;
  const size_t r0 = static_cast<size_t>(blockIdx.y) * kTile, c0 = static_cast<size_t>(blockIdx.x) * kTile;
  const unsigned x = threadIdx.x;
#pragma unroll
  for (unsigned k = threadIdx.y; k < kTile; k += 8)
    if (r0 + k < rows && c0 + K * x < cols) {
      const uint32_t w = *reinterpret_cast<const uint32_t*>(in + base + (r0 + k) * cols + c0 + K * x);
#pragma unroll
      for (unsigned i = 0; i < K; ++i)
        tile[k][K * x + i] = static_cast<T>(w >> (kBits * i));
    }
  __syncthreads();
#pragma unroll
  for (unsigned k = threadIdx.y; k < kTile; k += 8)
    if (c0 + k < cols && r0 + K * x < rows) {
      uint32_t w = 0;
#pragma unroll
      for (unsigned i = 0; i < K; ++i)
        w |= static_cast<uint32_t>(tile[K * x + i][k]) << (kBits * i);
      *reinterpret_cast<uint32_t*>(out + base + (c0 + k) * rows + r0 + K * x) = w;
    }
}

template <class T>
void launchTranspose(const void* src, void* dst, size_t total, const Permutation& p, size_t batch, size_t rows,
                     size_t cols, bool tiled, cudaStream_t s) {
  const auto* in = static_cast<const T*>(src);
  auto* out = static_cast<T*>(dst);
  if constexpr (sizeof(T) < 4) {
    constexpr size_t K = 4 / sizeof(T), kTile = 32 * K;
    if (tiled && rows % K == 0 && cols % K == 0 && aligned(src, 4) && aligned(dst, 4)) {
      transposeWordTilesKernel<T><<<dim3(static_cast<unsigned>((cols + kTile - 1) / kTile),
                                         static_cast<unsigned>((rows + kTile - 1) / kTile), static_cast<unsigned>(batch)),
                                    dim3(32, 8), 0, s>>>(in, out, rows, cols);
      return;
    }
  }
  if (tiled)
    transposeTilesKernel<<<dim3(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>((rows + 31) / 32),
                                static_cast<unsigned>(batch)),
                           dim3(32, 8), 0, s>>>(in, out, rows, cols);
  else
    transposeKernel<<<gridFor(total), kThreads, 0, s>>>(in, out, total, p);
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
  // The last two dims swapped and the others in place: a batch of matrix transposes, tiled
  // when the grid can hold it.
  bool tiled = rank >= 2 && perm[rank - 2] == static_cast<int64_t>(rank - 1) && perm[rank - 1] == static_cast<int64_t>(rank - 2);
  for (size_t d = 0; tiled && d + 2 < rank; ++d)
    tiled = perm[d] == static_cast<int64_t>(d);
  const size_t rows = tiled ? static_cast<size_t>(shape[rank - 2]) : 0, cols = tiled ? static_cast<size_t>(shape[rank - 1]) : 0;
  const size_t batch = tiled ? total / (rows * cols) : 0;
  tiled = tiled && (rows + 31) / 32 <= 65535 && batch <= 65535 && (cols + 31) / 32 <= 0x7FFFFFFF;
  // Whole-element moves need aligned pointers; anything else goes byte by byte.
  const bool whole = aligned(src, elemBytes) && aligned(dst, elemBytes);
  switch (whole ? elemBytes : 0) {
  case 1: launchTranspose<uint8_t>(src, dst, total, p, batch, rows, cols, tiled, s); break;
  case 2: launchTranspose<uint16_t>(src, dst, total, p, batch, rows, cols, tiled, s); break;
  case 4: launchTranspose<uint32_t>(src, dst, total, p, batch, rows, cols, tiled, s); break;
  case 8: launchTranspose<uint64_t>(src, dst, total, p, batch, rows, cols, tiled, s); break;
  default:
    transposeBytesKernel<<<gridFor(total), kThreads, 0, s>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst),
                                                             total, elemBytes, p);
  }
  CKPTMAP_CUDA_CHECK_LAUNCH();
  return {};
}

} // namespace ckptmap::cuda
