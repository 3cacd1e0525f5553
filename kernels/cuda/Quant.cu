// Quantizers and dequantizers on the device. The per-element arithmetic is QuantMath.h's, so
// results are bit-identical to kernels/cpu/Quant.cpp. Layout of the work:
//   amax          grid-stride, four 16-byte loads in flight, integer max of |x| bits, one
//                 atomicMax per block per expert (max is order-independent: the result is
//                 exact); skipped when the per-matrix scale is given
//   quotients     codes from one reciprocal or a few thresholds per block, not a division
//                 per element (QuantCodes.cuh); BF16 pairs are compared two per instruction
//   NVFP4         one thread per 16-element group: 32/64-byte loads, the next group's in
//                 flight meanwhile, 8-byte packed store; a block's table of each scale code's
//                 thresholds
//   FP8 tensor    grid-stride, two 16-byte packs per thread, the next two in flight meanwhile
//   FP8 block     one 256-thread block per 128x128 tile, copied to shared memory asynchronously
//   MXFP8         one thread per 32-element group
//   dequantize    grid-stride over 16-element packs; e4m3 and E2M1 values by conversion
//                 instructions and byte permutes, outputs converted two per instruction
// Each element moves a few bytes, so these keep up with memory only at a few instructions per
// element: the rare cases (an FP8 quotient near a rounding boundary, NaN codes, non-finite
// scales, an NVFP4 group whose divisor is 0) leave the fast path for element-by-element code,
// and loops whose bodies carry such code stay rolled where they can (an unrolled one spends
// its time on instruction fetch).
// A NaN/Inf in the input sets the call's error word (CallWords), from the amax pass or the
// quantizer; the launcher then finds the first offending element with one more kernel (error
// path only).
#include "kernels/Convert.h"
#include "kernels/Cuda.h"
#include "kernels/Errors.h"
#include "kernels/QuantMath.h"
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/QuantCodes.cuh"

#include <cuda_pipeline.h>

#include <type_traits>

namespace ckptmap::cuda {
namespace {

using namespace detail;

constexpr uint32_t kNonFiniteBits = 0x7F800000u;

// ---- amax and error location ----------------------------------------------------------------

/// Four packs in flight per thread: a read-only pass keeps up with memory only with many
/// loads outstanding.
template <int V, class T>
__global__ void __launch_bounds__(kThreads) amaxKernel(const T* __restrict__ in, size_t perExpert, CallFlags flags) {
  constexpr int kLoads = 4;
  const T* base = in + blockIdx.y * perExpert;
  uint32_t m = 0;
  const size_t packs = perExpert / V, stride = gridThreads();
  for (size_t i = globalThread(); i < packs; i += kLoads * stride) {
    Pack<T, V> a[kLoads];
#pragma unroll
    for (int k = 0; k < kLoads; ++k)
      if (i + k * stride < packs)
        a[k] = loadPack<T, V>(base + (i + k * stride) * V);
#pragma unroll
    for (int k = 0; k < kLoads; ++k)
      if (i + k * stride < packs)
        m = max(m, packMaxAbsBits(a[k]));
  }
  for (size_t i = packs * V + globalThread(); i < perExpert; i += stride)
    m = max(m, fp::absBits(toF32(base[i])));
  m = blockMax(m);
  if (threadIdx.x == 0 && m) {
    flags.raiseAmax(blockIdx.y, m);
    if (m >= kNonFiniteBits)
      flags.flagNonFinite();
  }
}

template <class T>
__global__ void firstNonFiniteKernel(const T* __restrict__ in, size_t n, unsigned long long* __restrict__ first) {
  for (size_t i = globalThread(); i < n; i += gridThreads())
    if (!fp::isFinite(toF32(in[i])))
      atomicMin(first, static_cast<unsigned long long>(i));
}

// ---- per-expert scalars -------------------------------------------------------------------

/// Each matrix's scale, from its amax (after the amax pass) or given: the quantizers compute it
/// where they use it, which saves a launch between the two passes.
struct MatrixScale {
  bool given;
  float value;
  /// NVFP4's weight_scale_2: given, or amax / 2688.
  __device__ float nvfp4(const CallFlags& f, size_t e) const {
    return given ? value : qmath::nvfp4GlobalScale(fp::floatOf(f.amaxBits(e)));
  }
  /// FP8's scale: given, or amax / 448 (0 -> 1).
  __device__ float fp8(const CallFlags& f, size_t e) const {
    return given ? value : qmath::fp8Scale(fp::floatOf(f.amaxBits(e)));
  }
};

// ---- NVFP4 ------------------------------------------------------------------------------------

/// Grid (blocks, experts): a block quantizes groups of one expert, whose global scale gives
/// every scale code its divisor, so the block first builds a table of each code's divisor and
/// thresholds (BF16 pairs for BF16 input, floats otherwise; all 256 codes, since a negative
/// given scale gives negative codes) and a group then looks its code's up. A group's scale
/// code comes from one product (nvfp4BlockScaleBy), not a division.
template <bool kVec, class T>
__global__ void __launch_bounds__(kThreads)
    nvfp4QuantKernel(const T* __restrict__ in, size_t groupsPerExpert, MatrixScale matrixScale,
                     float* __restrict__ globalOut, uint8_t* __restrict__ packed, uint8_t* __restrict__ scales,
                     CallFlags flags) {
  constexpr bool kPairs = kVec && std::is_same_v<T, bf16_t>;
  static_assert(sizeof(E2m1Bf16Thresholds) == kE2m1ThresholdWords * 4);
  __shared__ uint4 table[256][kE2m1ThresholdWords / 4];
  __shared__ float divisors[256];
  const size_t expert = blockIdx.y;
  const float ws2 = matrixScale.nvfp4(flags, expert), ws2Times6 = fp::mul(qmath::kE2m1Max, ws2);
  if (blockIdx.x == 0 && threadIdx.x == 0)
    globalOut[expert] = ws2;
  for (unsigned code = threadIdx.x; code < 256; code += blockDim.x) {
    const float d = qmath::nvfp4BlockDivisor(static_cast<uint8_t>(code), ws2);
    const E2m1Thresholds t = e2m1Thresholds(d);
    uint32_t w[kE2m1ThresholdWords];
    if constexpr (kPairs) {
      const E2m1Bf16Thresholds b = e2m1Bf16Thresholds(t);
      memcpy(w, &b, sizeof w);
    } else {
      e2m1ThresholdWords(t, w);
    }
    memcpy(table[code], w, sizeof w);
    divisors[code] = d;
  }
  __syncthreads();
  const Fp8Divisor scaleDivisor = fp8Divisor(ws2Times6);
  in += expert * groupsPerExpert * 16;
  packed += expert * groupsPerExpert * 8;
  scales += expert * groupsPerExpert;
  using Group = WordPack<T, 16>;
  auto load = [&](const T* p) {
    Group raw;
    if constexpr (kVec) {
      raw = *reinterpret_cast<const Group*>(p);
    } else {
      T v[16];
#pragma unroll
      for (int j = 0; j < 16; ++j)
        v[j] = p[j];
      memcpy(raw.v, v, sizeof v);
    }
    return raw;
  };
  // Software-pipelined: the next group's loads are issued before this one is quantized, so
  // each thread keeps two groups in flight.
  const size_t stride = gridThreads();
  size_t g = globalThread();
  const T* src = in + g * 16;
  Group a;
  if (g < groupsPerExpert)
    a = load(src);
  for (; g < groupsPerExpert; g += stride, src += stride * 16) {
    Group next;
    if (g + stride < groupsPerExpert)
      next = load(src + stride * 16);
    // The block scale from the group's amax (as |x| bits); a NaN/Inf is found by the amax pass
    // unless the global scale was given.
    auto start = [&](uint32_t bmax, uint32_t* w) {
      if (bmax >= kNonFiniteBits)
        flags.flagNonFinite();
      const uint8_t s = nvfp4BlockScaleBy(fp::floatOf(bmax), scaleDivisor);
      scales[g] = s;
      memcpy(w, table[s], kE2m1ThresholdWords * 4);
      return divisors[s];
    };
    uint32_t tw[kE2m1ThresholdWords];
    Pack<uint8_t, 8> o;
    if constexpr (kPairs) {
      // BF16 pairs as loaded: the amax and the codes two elements per instruction.
      const uint32_t* w = a.v;
      uint32_t m = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        m = maxU16x2(m, w[j] & 0x7FFF7FFFu);
      const float d = start(max(m & 0xFFFFu, m >> 16) << 16, tw);
      if (e2m1ThresholdsApply(d)) {
        E2m1Bf16Thresholds b;
        memcpy(&b, tw, sizeof b);
        uint32_t codes[8];
#pragma unroll
        for (int j = 0; j < 8; ++j)
          codes[j] = e2m1CodesBf16x2(w[j], b);
        packCodePairs(codes, o.v);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j)
          o.v[j] = static_cast<uint8_t>(qmath::nvfp4Code(fp::floatOf(w[j] << 16), d) |
                                        (qmath::nvfp4Code(fp::floatOf(w[j] & 0xFFFF0000u), d) << 4));
      }
    } else {
      float v[16];
      toF32s(elementsOf<T, 16>(a), v);
      const float d = start(maxAbsBits<16>(v), tw);
      const E2m1Thresholds t = e2m1ThresholdsOf(tw, d);
#pragma unroll
      for (int j = 0; j < 8; ++j)
        o.v[j] = static_cast<uint8_t>(e2m1CodeBy(v[2 * j], t) | (e2m1CodeBy(v[2 * j + 1], t) << 4));
    }
    storeN<kVec, 8>(packed + g * 8, o);
    a = next;
  }
}

template <bool kVec, class Out>
__global__ void __launch_bounds__(kThreads)
    nvfp4DequantKernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                       const float* __restrict__ global, size_t groupsPerExpert, size_t groups, Out* __restrict__ out) {
  for (size_t g = globalThread(); g < groups; g += gridThreads()) {
    const float d = qmath::nvfp4BlockDivisor(scales[g], global[expertOf(g, groupsPerExpert, groups)]);
    Pack<uint8_t, 8> p;
    if constexpr (kVec) {
      p = loadPack<uint8_t, 8>(packed + g * 8);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j)
        p.v[j] = packed[g * 8 + j];
    }
    storeN<kVec, 16>(out + g * 16, nvfp4DequantPack<Out>(p, d));
  }
}

// ---- FP8 per tensor -----------------------------------------------------------------------

/// V elements per pack; V divides perExpert, so a pack never straddles two experts. With
/// V > 1 a warp takes 64 consecutive packs per step, lanes l and 32 + l, and issues the next
/// step's loads before quantizing this step's, so each thread has four loads in flight and
/// every warp-wide load is coalesced.
template <int V, bool kFlagNonFinite, class T>
__global__ void __launch_bounds__(kThreads)
    fp8QuantKernel(const T* __restrict__ in, size_t experts, size_t perExpert, MatrixScale matrixScale,
                   float* __restrict__ scaleOut, uint8_t* __restrict__ q, CallFlags flags) {
  constexpr int kLoads = V > 1 ? 2 : 1;
  constexpr size_t kStep = 32 * kLoads; // packs per warp and step
  for (size_t e = globalThread(); e < experts; e += gridThreads())
    scaleOut[e] = matrixScale.fp8(flags, e);
  size_t expert = SIZE_MAX; // the scale and its reciprocal are taken once per expert a thread meets
  Fp8Divisor s{};
  const size_t total = experts * perExpert, packs = total / V, lane = threadIdx.x & 31, stride = (gridThreads() >> 5) * kStep;
  auto load = [&](size_t first, WordPack<T, V>* a) {
#pragma unroll
    for (int k = 0; k < kLoads; ++k)
      if (first + 32 * k < packs)
        a[k] = *reinterpret_cast<const WordPack<T, V>*>(in + (first + 32 * k) * V);
  };
  WordPack<T, V> a[kLoads];
  size_t first = (globalThread() >> 5) * kStep + lane;
  load(first, a);
  for (; first < packs; first += stride) {
    WordPack<T, V> next[kLoads];
    load(first + stride, next);
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const size_t i = (first + 32 * k) * V;
      if (i >= total)
        continue;
      if (const size_t e = expertOf(i, perExpert, total); e != expert) {
        s = fp8Divisor(matrixScale.fp8(flags, e));
        expert = e;
      }
      const Pack<T, V> x = elementsOf<T, V>(a[k]);
      if (kFlagNonFinite && packMaxAbsBits(x) >= kNonFiniteBits) // else the amax pass found them
        flags.flagNonFinite();
      storeN<(V > 1), V>(q + i, fp8QuantOf(x, s));
    }
#pragma unroll
    for (int k = 0; k < kLoads; ++k)
      a[k] = next[k];
  }
}

template <int V, class Out>
__global__ void __launch_bounds__(kThreads)
    fp8DequantKernel(const uint8_t* __restrict__ q, size_t perExpert, size_t total, const float* __restrict__ scale,
                     Out* __restrict__ out) {
  for (size_t i = globalThread() * V; i < total; i += gridThreads() * V) {
    const float s = scale[expertOf(i, perExpert, total)];
    Pack<uint8_t, V> p;
    if constexpr (V > 1) {
      p = loadPack<uint8_t, V>(q + i);
    } else {
      p.v[0] = q[i];
    }
    storeN<(V > 1), V>(out + i, fp8DequantPack<V, Out>(p, s));
  }
}

// ---- FP8 128x128 blocks -------------------------------------------------------------------------

/// A pack of global memory copied to shared memory without passing through registers (the
/// copy instruction moves 4, 8 or 16 bytes; smaller packs are loaded and stored).
template <class P> __device__ __forceinline__ void copyToShared(P* dst, const P* src) {
  if constexpr (sizeof(P) == 4 || sizeof(P) == 8 || sizeof(P) == 16)
    __pipeline_memcpy_async(dst, src, sizeof(P));
  else
    *dst = *src;
}

/// One block of 256 threads per tile; grid (tile cols, tile rows, experts). Each thread takes
/// V consecutive columns of every (256 / (128 / V))-th row of the tile. The tile is copied to
/// shared memory asynchronously (16384 elements; the amax must be known before any element is
/// quantized), so four blocks share an SM and their copies overlap the others' work; the loops
/// over rows stay rolled, which keeps the code small.
template <int V, class T>
__global__ void __launch_bounds__(256)
    fp8BlockQuantKernel(const T* __restrict__ in, size_t rows, size_t cols, bool bf16Scale, void* __restrict__ scaleOut,
                        uint8_t* __restrict__ q, CallFlags flags) {
  constexpr int kTpr = 128 / V;      // threads per tile row
  constexpr int kRpp = 256 / kTpr;   // tile rows per pass
  constexpr int kPasses = 128 / kRpp;
  extern __shared__ uint4 tileWords[]; // [kPasses][256] packs
  auto* tile = reinterpret_cast<Pack<T, V>*>(tileWords) + threadIdx.x;
  const size_t base = blockIdx.z * rows * cols;
  const size_t r0 = static_cast<size_t>(blockIdx.y) * 128 + threadIdx.x / kTpr;
  const size_t c = static_cast<size_t>(blockIdx.x) * 128 + (threadIdx.x % kTpr) * V;
  const size_t first = base + r0 * cols + c, step = kRpp * cols; // element offsets of pass 0, and between passes
  const size_t below = c < cols && r0 < rows ? (rows - r0 + kRpp - 1) / kRpp : 0; // passes inside the matrix
  const int passes = below < kPasses ? static_cast<int>(below) : kPasses;
  for (int p = 0; p < passes; ++p)
    copyToShared(tile + p * 256, reinterpret_cast<const Pack<T, V>*>(in + first + p * step));
  __pipeline_commit();
  __pipeline_wait_prior(0); // a thread reads back only what it copied: no barrier needed
  uint32_t m = 0;
  for (int p = 0; p < passes; ++p)
    m = max(m, packMaxAbsBits(tile[p * 256]));
  m = blockMax(m);
  if (m >= kNonFiniteBits) {
    if (threadIdx.x == 0)
      flags.flagNonFinite();
    return;
  }
  const size_t si = (static_cast<size_t>(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  float s;
  if (bf16Scale) {
    const uint16_t sb = qmath::fp8ScaleBf16(fp::floatOf(m));
    s = fp::bf16ToF32(sb);
    if (threadIdx.x == 0)
      static_cast<uint16_t*>(scaleOut)[si] = sb;
  } else {
    s = qmath::fp8Scale(fp::floatOf(m));
    if (threadIdx.x == 0)
      static_cast<float*>(scaleOut)[si] = s;
  }
  const Fp8Divisor divisor = fp8Divisor(s);
  for (int p = 0; p < passes; ++p) {
    const Pack<T, V> a = tile[p * 256]; // one shared-memory load of the whole pack
    storeN<(V > 1), V>(q + first + p * step, fp8QuantOf(a, divisor));
  }
}

/// Launches fp8BlockQuantKernel; a tile of 4-byte elements needs more shared memory than a
/// kernel gets without asking.
template <int V, class T>
KernelStatus launchFp8BlockQuant(dim3 grid, const T* in, size_t rows, size_t cols, bool bf16Scale, void* scaleOut,
                                 uint8_t* q, const CallFlags& flags, cudaStream_t s) {
  constexpr size_t kTileBytes = 128 * 128 * sizeof(T);
  if constexpr (kTileBytes > 48 * 1024)
    CKPTMAP_CUDA_TRY(cudaFuncSetAttribute(fp8BlockQuantKernel<V, T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(kTileBytes)));
  fp8BlockQuantKernel<V><<<grid, 256, kTileBytes, s>>>(in, rows, cols, bf16Scale, scaleOut, q, flags);
  CKPTMAP_CUDA_CHECK_LAUNCH();
  return {};
}

/// V (1 or 16) consecutive elements of one row per step; 16 divides 128, so a step has one scale.
template <int V, class Out>
__global__ void __launch_bounds__(kThreads)
    fp8BlockDequantKernel(const uint8_t* __restrict__ q, bool bf16Scale, const void* __restrict__ scale, size_t rows,
                          size_t cols, size_t total, Out* __restrict__ out) {
  const size_t perExpert = rows * cols;
  const size_t gridRows = (rows + 127) / 128, gridCols = (cols + 127) / 128;
  for (size_t i = globalThread() * V; i < total; i += gridThreads() * V) {
    const size_t e = expertOf(i, perExpert, total), rem = i - e * perExpert, r = divIndex(rem, cols), c = rem - r * cols;
    const size_t si = (e * gridRows + r / 128) * gridCols + c / 128;
    const float s = bf16Scale ? fp::bf16ToF32(static_cast<const uint16_t*>(scale)[si])
                              : static_cast<const float*>(scale)[si];
    Pack<uint8_t, V> p;
    if constexpr (V > 1) {
      p = loadPack<uint8_t, V>(q + i);
    } else {
      p.v[0] = q[i];
    }
    storeN<(V > 1), V>(out + i, fp8DequantPack<V, Out>(p, s));
  }
}

// ---- MXFP8 ------------------------------------------------------------------------------------

template <bool kVec, class T>
__global__ void __launch_bounds__(kThreads)
    mxfp8QuantKernel(const T* __restrict__ in, size_t groups, uint8_t* __restrict__ q, uint8_t* __restrict__ scales,
                     CallFlags flags) {
  for (size_t g = globalThread(); g < groups; g += gridThreads()) {
    float v[32];
    loadF32<kVec, 32>(in + g * 32, v);
    const uint32_t bmax = maxAbsBits<32>(v);
    if (bmax >= kNonFiniteBits) {
      flags.flagNonFinite();
      continue;
    }
    const uint8_t ex = qmath::mxfp8Exponent(bmax);
    scales[g] = ex;
    const float inverse = e8m0Reciprocal(ex);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      Pack<uint8_t, 16> o; // the group is finite: no NaN, so the conversion takes pairs
#pragma unroll
      for (int j = 0; j < 16; j += 2)
        e4m3Pair(__fmul_rn(v[h * 16 + j], inverse), __fmul_rn(v[h * 16 + j + 1], inverse), o.v + j);
      storeN<kVec, 16>(q + g * 32 + h * 16, o);
    }
  }
}

/// 16 elements (half a group) per step.
template <bool kVec, class Out>
__global__ void __launch_bounds__(kThreads)
    mxfp8DequantKernel(const uint8_t* __restrict__ q, const uint8_t* __restrict__ scales, size_t halves,
                       Out* __restrict__ out) {
  for (size_t h = globalThread(); h < halves; h += gridThreads()) {
    const float x = fp::e8m0ToF32(scales[h / 2]);
    Pack<uint8_t, 16> p;
    if constexpr (kVec) {
      p = loadPack<uint8_t, 16>(q + h * 16);
    } else {
#pragma unroll
      for (int j = 0; j < 16; ++j)
        p.v[j] = q[h * 16 + j];
    }
    storeN<kVec, 16>(out + h * 16, fp8DequantPack<16, Out>(p, x));
  }
}

// ---- launchers ----------------------------------------------------------------------------

/// Finds the first NaN/Inf of a device tensor and builds the same status the CPU returns.
template <class T>
KernelStatus locateNonFinite(const T* in, size_t experts, size_t perExpert, size_t cols, bool expertPrefix,
                             cudaStream_t s) {
  DeviceBuffer idx(s);
  if (KernelStatus st = idx.allocate(sizeof(unsigned long long)); !st)
    return st;
  CKPTMAP_CUDA_TRY(cudaMemsetAsync(idx.get(), 0xFF, sizeof(unsigned long long), s));
  const size_t n = experts * perExpert;
  firstNonFiniteKernel<<<gridFor(n), kThreads, 0, s>>>(in, n, idx.as<unsigned long long>());
  CKPTMAP_CUDA_CHECK_LAUNCH();
  unsigned long long first = 0;
  CKPTMAP_CUDA_TRY(cudaMemcpyAsync(&first, idx.get(), sizeof first, cudaMemcpyDeviceToHost, s));
  T value{};
  CKPTMAP_CUDA_TRY(cudaStreamSynchronize(s));
  if (first >= n)
    return KernelStatus::error(KernelErrc::DeviceError, "non-finite input reported but not found");
  CKPTMAP_CUDA_TRY(cudaMemcpyAsync(&value, in + first, sizeof(T), cudaMemcpyDeviceToHost, s));
  CKPTMAP_CUDA_TRY(cudaStreamSynchronize(s));
  const size_t e = first / perExpert, local = first % perExpert;
  const KernelStatus st = errors::nonFinite(toF32(value), local, cols);
  return expertPrefix ? errors::inExpert(st, e) : st;
}

template <class T>
KernelStatus quantizeImpl(const T* in, size_t experts, size_t rows, size_t cols, const QuantOut& out,
                          const QuantOptions& opt, bool expertPrefix, cudaStream_t s) {
  QuantShapes sh;
  if (KernelStatus st = quantShapes(out.format, rows, cols, sh, out.scaleType); !st)
    return st;
  if (out.format == QuantFormat::Nvfp4 && !out.globalScale)
    return errors::badShape("NVFP4 quantization needs a global scale output");
  const size_t perExpert = rows * cols, n = experts * perExpert;
  const bool inVec = aligned(in, 16);

  CallWords words;
  if (KernelStatus st = words.acquire(experts); !st)
    return st;
  const CallFlags& flags = words.flags();

  // A per-matrix scale comes from the matrix's amax unless it is given; the quantizers flag a
  // NaN/Inf themselves, so a given scale takes one pass over the input.
  const bool perTensor = out.format == QuantFormat::Nvfp4 || out.format == QuantFormat::Fp8Tensor;
  if (perTensor && experts && !opt.globalScale) {
    constexpr int V = packOf<T>();
    const bool vec = inVec && (perExpert * sizeof(T)) % 16 == 0;
    const dim3 grid(static_cast<unsigned>(gridFor((vec ? perExpert / V : perExpert) + 1)), static_cast<unsigned>(experts));
    if (vec)
      amaxKernel<V><<<grid, kThreads, 0, s>>>(in, perExpert, flags);
    else
      amaxKernel<1><<<grid, kThreads, 0, s>>>(in, perExpert, flags);
    CKPTMAP_CUDA_CHECK_LAUNCH();
  }

  uint8_t* data = static_cast<uint8_t*>(out.data);
  const MatrixScale matrixScale{opt.globalScale.has_value(), opt.globalScale.value_or(0.0f)};
  switch (out.format) {
  case QuantFormat::Nvfp4: {
    // Launched even for empty matrices, which still get their global scale.
    const size_t groupsPerExpert = perExpert / 16;
    if (experts) {
      auto* scales = static_cast<uint8_t*>(out.scale);
      const dim3 grid(static_cast<unsigned>(gridFor(groupsPerExpert)), static_cast<unsigned>(experts));
      if (inVec && aligned(data, 8))
        nvfp4QuantKernel<true><<<grid, kThreads, 0, s>>>(in, groupsPerExpert, matrixScale, out.globalScale, data, scales, flags);
      else
        nvfp4QuantKernel<false><<<grid, kThreads, 0, s>>>(in, groupsPerExpert, matrixScale, out.globalScale, data, scales, flags);
      CKPTMAP_CUDA_CHECK_LAUNCH();
    }
    break;
  }
  case QuantFormat::Fp8Tensor: {
    // Launched even for empty matrices, which still get their scale.
    if (experts) {
      auto* scale = static_cast<float*>(out.scale);
      constexpr int V = packOf<T>();
      const bool vec = inVec && aligned(data, V) && perExpert % V == 0;
      // Without an amax pass (a given scale) the quantizer itself flags NaN/Inf inputs.
      auto launch = [&](auto flag) {
        constexpr bool kFlag = decltype(flag)::value;
        if (vec)
          fp8QuantKernel<V, kFlag><<<gridFor(n / V), kThreads, 0, s>>>(in, experts, perExpert, matrixScale, scale, data, flags);
        else
          fp8QuantKernel<1, kFlag><<<gridFor(n), kThreads, 0, s>>>(in, experts, perExpert, matrixScale, scale, data, flags);
      };
      if (opt.globalScale)
        launch(std::true_type{});
      else
        launch(std::false_type{});
      CKPTMAP_CUDA_CHECK_LAUNCH();
    }
    break;
  }
  case QuantFormat::Fp8Block: {
    if (n) {
      const dim3 grid(static_cast<unsigned>(sh.scaleCols), static_cast<unsigned>(sh.scaleRows), static_cast<unsigned>(experts));
      const bool bf16 = out.scaleType == DType::BF16;
      constexpr int V = packOf<T>();
      const KernelStatus st = inVec && aligned(data, V) && cols % V == 0
                                  ? launchFp8BlockQuant<V>(grid, in, rows, cols, bf16, out.scale, data, flags, s)
                                  : launchFp8BlockQuant<1>(grid, in, rows, cols, bf16, out.scale, data, flags, s);
      if (!st)
        return st;
    }
    break;
  }
  case QuantFormat::Mxfp8: {
    const size_t groups = n / 32;
    if (groups) {
      auto* scales = static_cast<uint8_t*>(out.scale);
      if (inVec && aligned(data, 16))
        mxfp8QuantKernel<true><<<gridFor(groups), kThreads, 0, s>>>(in, groups, data, scales, flags);
      else
        mxfp8QuantKernel<false><<<gridFor(groups), kThreads, 0, s>>>(in, groups, data, scales, flags);
      CKPTMAP_CUDA_CHECK_LAUNCH();
    }
    break;
  }
  }

  CKPTMAP_CUDA_TRY(cudaStreamSynchronize(s));
  if (words.sawNonFinite())
    return locateNonFinite(in, experts, perExpert, out.format == QuantFormat::Fp8Tensor ? 0 : cols, expertPrefix, s);
  return {};
}

template <class Out>
KernelStatus dequantizeImpl(const QuantRef& in, size_t experts, size_t rows, size_t cols, Out* out, cudaStream_t s) {
  const size_t perExpert = rows * cols, n = experts * perExpert;
  if (n == 0)
    return {};
  const auto* data = static_cast<const uint8_t*>(in.data);
  const bool outVec = aligned(out, 16);
  switch (in.format) {
  case QuantFormat::Nvfp4: {
    const size_t groups = n / 16;
    const auto* scales = static_cast<const uint8_t*>(in.scale);
    if (outVec && aligned(data, 8))
      nvfp4DequantKernel<true><<<gridFor(groups), kThreads, 0, s>>>(data, scales, in.globalScale, perExpert / 16, groups, out);
    else
      nvfp4DequantKernel<false><<<gridFor(groups), kThreads, 0, s>>>(data, scales, in.globalScale, perExpert / 16, groups, out);
    break;
  }
  case QuantFormat::Fp8Tensor: {
    const auto* scale = static_cast<const float*>(in.scale);
    if (outVec && aligned(data, 16) && perExpert % 16 == 0)
      fp8DequantKernel<16><<<gridFor(n / 16), kThreads, 0, s>>>(data, perExpert, n, scale, out);
    else
      fp8DequantKernel<1><<<gridFor(n), kThreads, 0, s>>>(data, perExpert, n, scale, out);
    break;
  }
  case QuantFormat::Fp8Block: {
    const bool bf16 = in.scaleType == DType::BF16;
    if (outVec && aligned(data, 16) && cols % 16 == 0)
      fp8BlockDequantKernel<16><<<gridFor(n / 16), kThreads, 0, s>>>(data, bf16, in.scale, rows, cols, n, out);
    else
      fp8BlockDequantKernel<1><<<gridFor(n), kThreads, 0, s>>>(data, bf16, in.scale, rows, cols, n, out);
    break;
  }
  case QuantFormat::Mxfp8: {
    const auto* scales = static_cast<const uint8_t*>(in.scale);
    if (outVec && aligned(data, 16))
      mxfp8DequantKernel<true><<<gridFor(n / 16), kThreads, 0, s>>>(data, scales, n / 16, out);
    else
      mxfp8DequantKernel<false><<<gridFor(n / 16), kThreads, 0, s>>>(data, scales, n / 16, out);
    break;
  }
  }
  CKPTMAP_CUDA_CHECK_LAUNCH();
  return {};
}

KernelStatus quantizeEntry(DType in, const void* src, size_t experts, size_t rows, size_t cols, const QuantOut& out,
                           const QuantOptions& opt, bool expertPrefix, void* stream) {
  if (!cudaAvailable())
    return errors::noDevice();
  KernelStatus status;
  const bool known = visitQuantDType(in, [&](auto tag) {
    using T = typename decltype(tag)::type;
    status = quantizeImpl(static_cast<const T*>(src), experts, rows, cols, out, opt, expertPrefix,
                          static_cast<cudaStream_t>(stream));
  });
  if (!known)
    return errors::unsupportedDType("quantization", in);
  return status;
}

} // namespace

KernelStatus amax(DType in, const void* src, size_t n, float& result, void* stream) {
  if (!cudaAvailable())
    return errors::noDevice();
  const auto s = static_cast<cudaStream_t>(stream);
  KernelStatus status;
  const bool known = visitQuantDType(in, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = static_cast<const T*>(src);
    status = [&]() -> KernelStatus {
      CallWords words;
      if (KernelStatus st = words.acquire(1); !st)
        return st;
      constexpr int V = packOf<T>();
      if (n) {
        if (aligned(p, 16))
          amaxKernel<V><<<dim3(static_cast<unsigned>(gridFor(n / V + 1)), 1), kThreads, 0, s>>>(p, n, words.flags());
        else
          amaxKernel<1><<<dim3(static_cast<unsigned>(gridFor(n)), 1), kThreads, 0, s>>>(p, n, words.flags());
        CKPTMAP_CUDA_CHECK_LAUNCH();
      }
      if (KernelStatus st = words.copyAmaxBack(s); !st)
        return st;
      CKPTMAP_CUDA_TRY(cudaStreamSynchronize(s));
      if (words.sawNonFinite())
        return locateNonFinite(p, 1, n, 0, false, s);
      result = fp::floatOf(words.copiedAmaxBits());
      return {};
    }();
  });
  if (!known)
    return errors::unsupportedDType("amax", in);
  return status;
}

KernelStatus quantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                      const QuantOptions& opt, void* stream) {
  return quantizeEntry(in, src, 1, rows, cols, out, opt, false, stream);
}

KernelStatus quantizeExperts(DType in, const void* src, size_t experts, size_t rows, size_t cols,
                             const QuantOut& out, const QuantOptions& opt, void* stream) {
  return quantizeEntry(in, src, experts, rows, cols, out, opt, true, stream);
}

KernelStatus dequantizeExperts(const QuantRef& in, size_t experts, size_t rows, size_t cols, DType out, void* dst,
                               void* stream) {
  if (!cudaAvailable())
    return errors::noDevice();
  QuantShapes sh;
  if (KernelStatus st = quantShapes(in.format, rows, cols, sh, in.scaleType); !st)
    return st;
  if (in.format == QuantFormat::Nvfp4 && !in.globalScale)
    return errors::badShape("NVFP4 dequantization needs the global scale");
  KernelStatus status;
  const bool known = visitQuantDType(out, [&](auto tag) {
    using Out = typename decltype(tag)::type;
    status = dequantizeImpl(in, experts, rows, cols, static_cast<Out*>(dst), static_cast<cudaStream_t>(stream));
  });
  if (!known)
    return errors::unsupportedDType("dequantization output", out);
  return status;
}

KernelStatus dequantize(const QuantRef& in, size_t rows, size_t cols, DType out, void* dst, void* stream) {
  return dequantizeExperts(in, 1, rows, cols, out, dst, stream);
}

KernelStatus requantize(const QuantRef& in, size_t rows, size_t cols, const QuantOut& out, const QuantOptions& opt,
                        DType via, void* scratch, void* stream) {
  if (!cudaAvailable())
    return errors::noDevice();
  if (via != DType::F32 && via != DType::BF16 && via != DType::F16)
    return errors::unsupportedDType("requantization intermediate", via);
  const auto s = static_cast<cudaStream_t>(stream);
  DeviceBuffer owned(s);
  if (!scratch) {
    if (KernelStatus st = owned.allocate(rows * cols * dtypeSize(via)); !st)
      return st;
    scratch = owned.get();
  }
  if (KernelStatus st = dequantize(in, rows, cols, via, scratch, stream); !st)
    return st;
  return quantize(via, scratch, rows, cols, out, opt, stream);
}

} // namespace ckptmap::cuda
