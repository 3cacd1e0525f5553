// Helpers shared by the CUDA translation units: error handling, launch geometry, vector
// loads/stores and small RAII device buffers. Internal to kernels/cuda.
#pragma once

#include "kernels/Status.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace ckptmap::cuda::detail {

inline KernelStatus deviceError(cudaError_t e, const char* what) {
  return KernelStatus::error(KernelErrc::DeviceError, std::string(what) + ": " + cudaGetErrorString(e));
}

#define CKPTMAP_CUDA_TRY(expr)                                                                               \
  do {                                                                                                       \
    const cudaError_t err_ = (expr);                                                                         \
    if (err_ != cudaSuccess)                                                                                 \
      return ::ckptmap::cuda::detail::deviceError(err_, #expr);                                              \
  } while (0)

/// Checks the launch that just happened (bad configuration, missing kernel image).
#define CKPTMAP_CUDA_CHECK_LAUNCH() CKPTMAP_CUDA_TRY(cudaGetLastError())

inline constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over `work` items: enough to fill the GPU a few times over,
/// never more than the work needs.
size_t gridFor(size_t work, int threads = kThreads);

inline bool aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

/// N elements of T moved with 16-byte (or, for smaller packs, whole-pack) memory operations.
template <class T, int N> struct alignas(sizeof(T) * N >= 16 ? 16 : sizeof(T) * N) Pack {
  T v[N];
};

template <class T, int N> __device__ __forceinline__ Pack<T, N> loadPack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}
template <class T, int N> __device__ __forceinline__ void storePack(T* p, const Pack<T, N>& v) {
  *reinterpret_cast<Pack<T, N>*>(p) = v;
}

__device__ __forceinline__ size_t globalThread() {
  return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ size_t gridThreads() { return static_cast<size_t>(gridDim.x) * blockDim.x; }

/// i / d for the kernels' index arithmetic: a 32-bit division (a handful of instructions)
/// when both fit in 32 bits, else the 64-bit one, which the GPU emulates with dozens.
__device__ __forceinline__ size_t divIndex(size_t i, size_t d) {
  return ((i | d) >> 32) ? i / d : static_cast<size_t>(static_cast<uint32_t>(i) / static_cast<uint32_t>(d));
}

/// The expert (matrix) that flat index i of a stack of `per`-element matrices belongs to; no
/// division at all for a single matrix, the common call.
__device__ __forceinline__ size_t expertOf(size_t i, size_t per, size_t total) {
  return per >= total ? 0 : divIndex(i, per);
}

/// Max over the block, returned to every thread; every thread must call it.
__device__ __forceinline__ uint32_t blockMax(uint32_t v) {
  __shared__ uint32_t warpMax[32];
  v = __reduce_max_sync(0xFFFFFFFFu, v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0)
    warpMax[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? warpMax[lane] : 0u;
  v = __reduce_max_sync(0xFFFFFFFFu, v);
  __syncthreads(); // warpMax may be reused by a following call
  return v;
}

/// Device memory owned for the duration of one launcher call, stream-ordered (no device-wide
/// synchronisation on allocation or release).
class DeviceBuffer {
public:
  explicit DeviceBuffer(cudaStream_t stream) : stream_(stream) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_)
      cudaFreeAsync(ptr_, stream_);
  }
  KernelStatus allocate(size_t bytes) {
    CKPTMAP_CUDA_TRY(cudaMallocAsync(&ptr_, bytes ? bytes : 1, stream_));
    return {};
  }
  void* get() const { return ptr_; }
  template <class T> T* as() const { return static_cast<T*>(ptr_); }

private:
  cudaStream_t stream_;
  void* ptr_ = nullptr;
};

/// What a quantize call's kernels report, as they see it: each matrix's amax in device memory
/// and an error word in mapped host memory. Every word written carries the call's epoch, so
/// words left by earlier calls read as unwritten and nothing is cleared between calls.
struct CallFlags {
  unsigned long long* amax; ///< per matrix: epoch << 32 | the largest |x| bits (atomicMax)
  uint32_t* error;          ///< mapped host memory; the epoch once a NaN/Inf is seen
  uint32_t epoch;

  __device__ __forceinline__ void raiseAmax(size_t matrix, uint32_t bits) const {
    atomicMax(&amax[matrix], static_cast<unsigned long long>(epoch) << 32 | bits);
  }
  /// A word's bits if this call wrote it, else 0 (no block saw a nonzero element).
  __host__ __device__ static uint32_t bitsOf(unsigned long long word, uint32_t epoch) {
    return static_cast<uint32_t>(word >> 32) == epoch ? static_cast<uint32_t>(word) : 0u;
  }
  __device__ __forceinline__ uint32_t amaxBits(size_t matrix) const { return bitsOf(amax[matrix], epoch); }
  /// Error path only: a store across the bus.
  __device__ __forceinline__ void flagNonFinite() const { *static_cast<volatile uint32_t*>(error) = epoch; }
};

/// A quantize call's CallFlags, taken from a per-device pool for the length of the call: a call
/// then costs its launches and one synchronisation, with no allocation, clearing or copy back.
/// The destructor returns them. A call that returns early may leave kernels writing them; those
/// writes carry its epoch, which the next call's words do not.
class CallWords {
public:
  CallWords() = default;
  CallWords(const CallWords&) = delete;
  CallWords& operator=(const CallWords&) = delete;
  ~CallWords();
  /// Words for `matrices` amax values, under a new epoch.
  KernelStatus acquire(size_t matrices);
  const CallFlags& flags() const { return flags_; }
  /// After synchronisation: whether a kernel saw a NaN/Inf.
  bool sawNonFinite() const;
  /// Enqueues the copy of matrix 0's amax to the host, read by copiedAmaxBits after
  /// synchronisation.
  KernelStatus copyAmaxBack(cudaStream_t stream);
  uint32_t copiedAmaxBits() const;

  struct Slot;

private:
  Slot* slot_ = nullptr;
  CallFlags flags_{};
};

} // namespace ckptmap::cuda::detail
