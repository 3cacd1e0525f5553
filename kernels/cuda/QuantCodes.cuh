// Element-level quantization arithmetic on the device: the codes and values QuantMath.h
// defines, computed without a division per element and, where the bits allow, for several
// elements per instruction. Every function here returns exactly what its QuantMath.h
// counterpart returns; the rare inputs a fast form cannot prove go to that counterpart.
// Internal to kernels/cuda (Quant.cu).
#pragma once

#include "kernels/Convert.h"
#include "kernels/QuantMath.h"
#include "kernels/cuda/Common.cuh"

#include <cstring>
#include <type_traits>

namespace ckptmap::cuda::detail {

// ---- loads, stores and conversions of packs -------------------------------------------------

template <class T> constexpr int packOf() { return static_cast<int>(16 / sizeof(T)); }

/// V elements of T held as 32-bit words where they fill whole words, so that copying a pack
/// (the next one, loaded while this one is quantized) is plain register moves rather than
/// 16-bit extractions.
template <class T, int V>
using WordPack = std::conditional_t<(V * sizeof(T)) % 4 == 0, Pack<uint32_t, static_cast<int>(V * sizeof(T) / 4)>, Pack<T, V>>;
template <class T, int V> __device__ __forceinline__ Pack<T, V> elementsOf(const WordPack<T, V>& w) {
  Pack<T, V> p;
  memcpy(p.v, w.v, sizeof p.v);
  return p;
}

/// A pack's elements as F32.
template <class T, int N> __device__ __forceinline__ void toF32s(const Pack<T, N>& p, float* v) {
#pragma unroll
  for (int j = 0; j < N; ++j)
    v[j] = toF32(p.v[j]);
}

/// Loads N consecutive elements as F32, with 16-byte loads when kVec.
template <bool kVec, int N, class T> __device__ __forceinline__ void loadF32(const T* p, float* v) {
  if constexpr (kVec) {
    constexpr int V = packOf<T>() < N ? packOf<T>() : N;
#pragma unroll
    for (int k = 0; k < N / V; ++k)
      toF32s(loadPack<T, V>(p + k * V), v + k * V);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j)
      v[j] = toF32(p[j]);
  }
}

template <bool kVec, int N, class T> __device__ __forceinline__ void storeN(T* p, const Pack<T, N>& v) {
  if constexpr (kVec) {
    storePack<T, N>(p, v);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j)
      p[j] = v.v[j];
  }
}

/// Bits of a BF16 pair (low half first) as the intrinsics' type, and back.
__device__ __forceinline__ __nv_bfloat162 bf16x2Of(uint32_t bits) {
  __nv_bfloat162 v;
  memcpy(&v, &bits, 4);
  return v;
}
__device__ __forceinline__ uint32_t bitsOf(__nv_bfloat162 v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  return bits;
}

/// max |v[j]| as F32 bits (integer order is float order for |x|; NaN above Inf).
template <int N> __device__ __forceinline__ uint32_t maxAbsBits(const float* v) {
  uint32_t m = 0;
#pragma unroll
  for (int j = 0; j < N; ++j)
    m = max(m, fp::absBits(v[j]));
  return m;
}

/// Unsigned max of each 16-bit half.
__device__ __forceinline__ uint32_t maxU16x2(uint32_t a, uint32_t b) {
  uint32_t r;
  asm("max.u16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

/// max |x| of a pack as F32 bits; BF16 packs two elements per instruction.
template <class T, int V> __device__ __forceinline__ uint32_t packMaxAbsBits(const Pack<T, V>& a) {
  if constexpr (std::is_same_v<T, bf16_t> && V % 2 == 0) {
    uint32_t w[V / 2];
    memcpy(w, a.v, sizeof w);
    uint32_t m = 0;
#pragma unroll
    for (int k = 0; k < V / 2; ++k)
      m = maxU16x2(m, w[k] & 0x7FFF7FFFu);
    return max(m & 0xFFFFu, m >> 16) << 16;
  } else {
    uint32_t m = 0;
#pragma unroll
    for (int j = 0; j < V; ++j)
      m = max(m, fp::absBits(toF32(a.v[j])));
    return m;
  }
}

/// e4m3 (saturating) of two floats by one instruction: fp::f32ToE4m3Sat for all but NaN.
__device__ __forceinline__ void e4m3Pair(float a, float b, uint8_t* o) {
  const __nv_fp8x2_storage_t pair = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  o[0] = static_cast<uint8_t>(pair & 0xFFu);
  o[1] = static_cast<uint8_t>(pair >> 8);
}

/// N floats, none NaN, as Out: two per conversion instruction. fromF32's NaN case (payloads
/// kept) is all that differs from the instructions, and callers rule NaN out.
template <class Out, int N> __device__ __forceinline__ Pack<Out, N> fromF32NoNaN(const float* f) {
  Pack<Out, N> o;
  if constexpr (std::is_same_v<Out, bf16_t>) {
#pragma unroll
    for (int j = 0; j < N; j += 2) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(f[j], f[j + 1]);
      o.v[j].bits = __bfloat16_as_ushort(h.x);
      o.v[j + 1].bits = __bfloat16_as_ushort(h.y);
    }
  } else if constexpr (std::is_same_v<Out, f16_t>) {
#pragma unroll
    for (int j = 0; j < N; j += 2) {
      const __half2 h = __floats2half2_rn(f[j], f[j + 1]);
      o.v[j].bits = __half_as_ushort(h.x);
      o.v[j + 1].bits = __half_as_ushort(h.y);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j)
      o.v[j] = fromF32<Out>(f[j]);
  }
  return o;
}

// ---- quotients without a division per element ----------------------------------------------
// The reference divides every element by its block's scale (one IEEE division, QuantMath.h).
// A division costs the GPU about as much as the rest of a quantizer together, and the result
// only decides a code; these compute the same codes from one reciprocal or a few thresholds
// per block, falling back to the division wherever they could not prove the code.

/// e4m3(RN(w / s)) as fp8Quant computes it, from r = RN(1/s). When r is a positive normal
/// float, q = RN(w * r) lies within 2.01 units in the last place of w / s (two roundings of
/// relative error 2^-24), so within 6 float steps of RN(w / s) (steps halve below a power of
/// two), and q has the quotient's code unless a rounding boundary of e4m3 lies that close.
struct Fp8Divisor {
  float s, r;
  bool fast;
};
/// How many float steps from a boundary count as close (the 6 above, with a margin).
constexpr uint32_t kFp8Steps = 8;
__device__ __forceinline__ Fp8Divisor fp8Divisor(float s) {
  const float r = __frcp_rn(s);
  return {s, r, s > 0.0f && fp::absBits(r) >= 0x00800000u && fp::absBits(r) < 0x7F800000u};
}

/// How far q's 20 bits below e4m3's mantissa are from 0x80000 - kFp8Steps (a rounding boundary
/// of e4m3's normal range, kFp8Steps float steps down), moved to the top 20 bits: the shift and
/// the add are one instruction, and the high bits the mask would clear fall off.
__device__ __forceinline__ uint32_t e4m3BoundaryGap(float q) {
  return (fp::bitsOf(q) << 12) + ((0x80000u + kFp8Steps) << 12);
}
constexpr uint32_t kE4m3NearGap = (2 * kFp8Steps) << 12;

/// |q| ordered as an integer, except that +-0 comes last: 2|q|'s bits less one (the sign bit
/// shifts out, and 0 wraps to the largest key). A zero product needs no representative: it
/// comes from a zero w, or from |w / s| <= 2^-150, and either way the code is a zero of w's
/// sign. Quotients of values quantized before (zero codes) are zero often.
__device__ __forceinline__ uint32_t e4m3SmallKey(float q) { return (fp::bitsOf(q) << 1) - 1u; }
constexpr uint32_t kE4m3SmallKey = (0x3C800000u << 1) - 1u; // key < this: 0 < |q| < 2^-6

/// Whether q = RN(w * r) may not have the quotient's code: within kFp8Steps float steps of a
/// rounding boundary of e4m3's normal range, or nonzero below 2^-6, where e4m3's subnormal
/// boundaries lie elsewhere.
__device__ __forceinline__ bool nearE4m3Boundary(float q) {
  return (e4m3BoundaryGap(q) <= kE4m3NearGap) | (e4m3SmallKey(q) < kE4m3SmallKey);
}

/// For a q that nearE4m3Boundary flags: a float with the code of RN(w / s), found without
/// dividing. The boundary b that q lies by (normal range: its bits with 0x80000 below e4m3's
/// mantissa; below 2^-6: the middle of q's subnormal step, an odd multiple of 2^-10) has an
/// even float mantissa, so RN(w / s) is above b iff |w| / s exceeds the midpoint between b
/// and the next float up, below b iff it is under the midpoint with the next float down, and
/// otherwise b itself, which the conversion rounds to even. The midpoints have at most 25
/// significant bits and s 24, so their products with s are exact in double, and so are the
/// comparisons. RN(w / s) never lies past the boundaries either side of b: in the normal
/// range q is within 8 float steps of b and RN(w / s) within 6 of q; below 2^-6 an e4m3 step
/// spans thousands of float steps.
__device__ __forceinline__ float e4m3Representative(float w, float q, float s) {
  const float aq = fabsf(q);
  const uint32_t b = aq < 0x1p-6f ? fp::bitsOf(fmaf(floorf(aq * 0x1p9f), 0x1p-9f, 0x1p-10f))
                                  : (fp::bitsOf(aq) & 0xFFF00000u) | 0x80000u;
  const float at = fp::floatOf(b), up = fp::floatOf(b + 1), down = fp::floatOf(b - 1);
  const double a = fabs(static_cast<double>(w)), ds = s;
  const double above = 0.5 * (static_cast<double>(at) + up), below = 0.5 * (static_cast<double>(at) + down);
  const float m = a > above * ds ? up : a < below * ds ? down : at;
  return copysignf(m, w);
}

/// fp8Quant of V elements (1 or even): one product each, a representative for the few near a
/// boundary or nonzero and small (about one pack of eight in a thousand for weights; many more
/// for BF16 values against a scale whose mantissa shares their factors), and one
/// conversion per pair. A NaN product (a NaN input, which the caller reports) gives a NaN code.
template <int V> __device__ __forceinline__ void fp8QuantPack(const float* v, const Fp8Divisor& d, uint8_t* o) {
  if (!d.fast) {
#pragma unroll
    for (int j = 0; j < V; ++j)
      o[j] = qmath::fp8Quant(v[j], d.s);
    return;
  }
  // nearE4m3Boundary of the whole pack: its least gap and its least small-key, one min each
  // per element (a NaN product is neither near nor small).
  float q[V];
  uint32_t gap = 0xFFFFFFFFu, small = 0xFFFFFFFFu;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    q[j] = __fmul_rn(v[j], d.r);
    gap = min(gap, e4m3BoundaryGap(q[j]));
    small = min(small, e4m3SmallKey(q[j]));
  }
  if (gap <= kE4m3NearGap || small < kE4m3SmallKey) {
#pragma unroll
    for (int j = 0; j < V; ++j)
      if (nearE4m3Boundary(q[j]))
        q[j] = e4m3Representative(v[j], q[j], d.s);
  }
  if constexpr (V == 1) {
    o[0] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(q[0], __NV_SATFINITE, __NV_E4M3));
  } else {
#pragma unroll
    for (int j = 0; j < V; j += 2)
      e4m3Pair(q[j], q[j + 1], o + j);
  }
}

/// fp8QuantPack of a pack of any element type.
template <class T, int V> __device__ __forceinline__ Pack<uint8_t, V> fp8QuantOf(const Pack<T, V>& x, const Fp8Divisor& d) {
  float v[V];
  toF32s(x, v);
  Pack<uint8_t, V> o;
  fp8QuantPack<V>(v, d, o.v);
  return o;
}

/// e2m1(RN(w / d)) as nvfp4Code computes it, by comparing |w| with thresholds. The code of
/// q = RN(x), x = |w| / d, counts the boundaries q passes: q > 0.25, q >= 0.75, q > 1.25,
/// q >= 1.75, q > 2.5, q >= 3.5, q > 5 (e2m1Encode's rounding). For such a t, RN(x) > t iff
/// x > t + ulp/2 (a tie rounds to t, whose mantissa is even) and RN(x) >= t iff x >= t - ulp/2
/// (ulp the float spacing on that side of t). x > m iff |w| > m * d, and m * d is exact in
/// double (25 + 24 bits); a float exceeds a real number iff it exceeds that number rounded
/// down, and reaches it iff it reaches it rounded up. The sign bit survives unless the
/// quotient underflows to -0: |w| / d > 2^-150. Needs 0 < d < Inf; else the division is done.
struct E2m1Thresholds {
  float above[4]; ///< |w| > above[k]: past 0.25, 1.25, 2.5, 5
  float reach[3]; ///< |w| >= reach[k]: past 0.75, 1.75, 3.5
  float negative; ///< |w| > negative: a negative w keeps its sign bit
  float d;
  bool fast;
};
/// Whether the thresholds can stand for division by d: 0 < d < Inf.
__device__ __forceinline__ bool e2m1ThresholdsApply(float d) { return d > 0.0f && fp::absBits(d) < 0x7F800000u; }
__device__ __forceinline__ E2m1Thresholds e2m1Thresholds(float d) {
  E2m1Thresholds t;
  t.d = d;
  t.fast = e2m1ThresholdsApply(d);
  const double dd = d;
  // t + half the spacing above t, and t - half the spacing below it.
  const double above[4] = {0.25 + 0x1p-26, 1.25 + 0x1p-24, 2.5 + 0x1p-23, 5.0 + 0x1p-22};
  const double reach[3] = {0.75 - 0x1p-25, 1.75 - 0x1p-24, 3.5 - 0x1p-23};
#pragma unroll
  for (int k = 0; k < 4; ++k)
    t.above[k] = __double2float_rd(above[k] * dd);
#pragma unroll
  for (int k = 0; k < 3; ++k)
    t.reach[k] = __double2float_ru(reach[k] * dd);
  t.negative = __double2float_rd(0x1p-150 * dd);
  return t;
}
/// The eight thresholds as words, for a table in shared memory (one entry per scale code, so
/// a group looks its thresholds up instead of computing them), and back with their divisor.
constexpr int kE2m1ThresholdWords = 8;
__device__ __forceinline__ void e2m1ThresholdWords(const E2m1Thresholds& t, uint32_t* w) {
#pragma unroll
  for (int k = 0; k < 4; ++k)
    w[k] = fp::bitsOf(t.above[k]);
#pragma unroll
  for (int k = 0; k < 3; ++k)
    w[4 + k] = fp::bitsOf(t.reach[k]);
  w[7] = fp::bitsOf(t.negative);
}
__device__ __forceinline__ E2m1Thresholds e2m1ThresholdsOf(const uint32_t* w, float d) {
  E2m1Thresholds t;
#pragma unroll
  for (int k = 0; k < 4; ++k)
    t.above[k] = fp::floatOf(w[k]);
#pragma unroll
  for (int k = 0; k < 3; ++k)
    t.reach[k] = fp::floatOf(w[4 + k]);
  t.negative = fp::floatOf(w[7]);
  t.d = d;
  t.fast = e2m1ThresholdsApply(d);
  return t;
}
__device__ __forceinline__ uint32_t e2m1CodeBy(float w, const E2m1Thresholds& t) {
  if (!t.fast)
    return qmath::nvfp4Code(w, t.d);
  const float a = fabsf(w);
  const uint32_t code = (a > t.above[0]) + (a >= t.reach[0]) + (a > t.above[1]) + (a >= t.reach[1]) +
                        (a > t.above[2]) + (a >= t.reach[2]) + (a > t.above[3]);
  return code | (w < 0.0f && a > t.negative ? 8u : 0u);
}

/// e2m1CodeBy's comparisons for BF16 inputs, two elements per instruction. For a non-negative
/// BF16 a and a float x, a > x iff a >= the least BF16 above x, and a >= x iff a >= x rounded
/// up to BF16; so every threshold becomes an "at least" (the seven in increasing order, and
/// the code is how many |w| reaches).
struct E2m1Bf16Thresholds {
  uint32_t reach[7]; ///< a BF16 pair of each threshold, both halves the same
  uint32_t negative; ///< |w| >= negative: a negative w keeps its sign bit
};
__device__ __forceinline__ E2m1Bf16Thresholds e2m1Bf16Thresholds(const E2m1Thresholds& t) {
  // Thresholds are >= 0 and below Inf, where BF16 rounding is on the bits.
  auto leastAbove = [](float x) { return (fp::bitsOf(x) >> 16) + 1u; };
  auto roundedUp = [](float x) { return (fp::bitsOf(x) + 0xFFFFu) >> 16; };
  auto both = [](uint32_t h) { return h | (h << 16); };
  E2m1Bf16Thresholds b;
#pragma unroll
  for (int k = 0; k < 3; ++k) {
    b.reach[2 * k] = both(leastAbove(t.above[k]));
    b.reach[2 * k + 1] = both(roundedUp(t.reach[k]));
  }
  b.reach[6] = both(leastAbove(t.above[3]));
  b.negative = both(leastAbove(t.negative));
  return b;
}

/// Codes of a BF16 pair (bits 0-3 and 16-19, the rest zero). A code's magnitude is how many
/// thresholds |w| reaches, counted by comparisons that give BF16 1.0 or 0 and sums of small
/// integers (exact in BF16): floating-point instructions, whose pipe the rest of a quantizer
/// leaves idle, where selecting thresholds by masks would take logic instructions, the pipe
/// that bounds it. A negative w that keeps its sign (w <= -negative) adds 8, and the count
/// starts at 128, which puts it in the low mantissa bits.
__device__ __forceinline__ uint32_t e2m1CodesBf16x2(uint32_t w, const E2m1Bf16Thresholds& t) {
  constexpr uint32_t kEight = 0x41004100u, kOffset = 0x43004300u; // BF16 pairs of 8 and 128
  const __nv_bfloat162 a = bf16x2Of(w & 0x7FFF7FFFu);
  __nv_bfloat162 reached[7];
#pragma unroll
  for (int k = 0; k < 7; ++k)
    reached[k] = __hge2(a, bf16x2Of(t.reach[k]));
  const __nv_bfloat162 signKept = __hle2(bf16x2Of(w), bf16x2Of(t.negative | 0x80008000u));
  const __nv_bfloat162 n = __hadd2(__hadd2(__hadd2(reached[0], reached[1]), __hadd2(reached[2], reached[3])),
                                   __hadd2(__hadd2(reached[4], reached[5]),
                                           __hadd2(reached[6], __hfma2(signKept, bf16x2Of(kEight), bf16x2Of(kOffset)))));
  return bitsOf(n) - kOffset;
}

/// The eight code bytes of a group from e2m1CodesBf16x2's eight pairs: two pairs x, y become
/// four nibbles by x + 256 y (codes at nibbles 0, 2, 4, 6) plus itself shifted down 12 bits
/// (nibbles 4, 6 to 1, 3), the multiply-add running beside the logic instructions.
__device__ __forceinline__ void packCodePairs(const uint32_t* codes, uint8_t* o) {
  uint32_t words[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint32_t lo = codes[4 * h] + codes[4 * h + 1] * 256u, hi = codes[4 * h + 2] + codes[4 * h + 3] * 256u;
    lo += lo >> 12;
    hi += hi >> 12;
    words[h] = __byte_perm(lo, hi, 0x5410u);
  }
  memcpy(o, words, 8);
}

/// qmath::nvfp4BlockScale(a, t.s) for a block amax a >= 0, from t's reciprocal: a product of
/// at least 2^-6 away from an e4m3 boundary has the quotient's code (as in fp8QuantPack) and
/// takes no clamp; anything else (a zero or tiny block, a near tie, a divisor without a
/// usable reciprocal) gets the division.
__device__ __forceinline__ uint8_t nvfp4BlockScaleBy(float a, const Fp8Divisor& t) {
  const float q = __fmul_rn(a, t.r);
  if (t.fast && e4m3BoundaryGap(q) > kE4m3NearGap && q >= 0x1p-6f)
    return static_cast<uint8_t>(__nv_cvt_float_to_fp8(q, __NV_SATFINITE, __NV_E4M3));
  return qmath::nvfp4BlockScale(a, t.s);
}

/// MXFP8's scale is a power of two, 2^(e-127), whose reciprocal 2^(127-e) is a float for every
/// exponent a quantizer writes (0..254): w * 2^(127-e) and w / 2^(e-127) are the same real
/// number, each rounded once, so mxfp8Quant's division is this product.
__device__ __forceinline__ float e8m0Reciprocal(uint8_t e) {
  const uint32_t biased = 254u - e; // 2^(127-e) = 2^(biased-127)
  return fp::floatOf(biased ? biased << 23 : 0x00400000u);
}

// ---- dequantization, several elements per instruction ---------------------------------------

/// qmath::fp8Dequant (and so mxfp8Dequant) of N codes: for whole words of
/// codes, e4m3 -> F16 by the conversion instruction (exact for every code but NaN) and one
/// product each. With no NaN code and a finite scale no product is NaN; otherwise, and for
/// fewer than four codes, element by element.
template <int N, class Out> __device__ __forceinline__ Pack<Out, N> fp8DequantPack(const Pack<uint8_t, N>& p, float s) {
  auto each = [&] {
    Pack<Out, N> o;
#pragma unroll
    for (int j = 0; j < N; ++j)
      o.v[j] = fromF32<Out>(qmath::fp8Dequant(p.v[j], s));
    return o;
  };
  if constexpr (N % 4 != 0) {
    return each();
  } else {
    uint32_t w[N / 4];
    memcpy(w, p.v, N);
    uint32_t nan = 0; // a byte's low seven bits all ones: 0x7F or 0xFF
#pragma unroll
    for (int k = 0; k < N / 4; ++k)
      nan |= (w[k] & 0x7F7F7F7Fu) + 0x01010101u;
    if ((nan & 0x80808080u) || !(fabsf(s) < INFINITY))
      return each();
    float f[N];
#pragma unroll
    for (int j = 0; j < N; j += 2) {
      const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
          static_cast<__nv_fp8x2_storage_t>(p.v[j] | (p.v[j + 1] << 8)), __NV_E4M3);
      const float2 x = __half22float2(__half2(h));
      f[j] = __fmul_rn(x.x, s);
      f[j + 1] = __fmul_rn(x.y, s);
    }
    return fromF32NoNaN<Out, N>(f);
  }
}

/// BF16 bits of the E2M1 magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6, high and low bytes apart, as
/// byte-permute tables: one __byte_perm looks up four codes (its selector's nibbles).
constexpr uint32_t kE2m1High0to3 = 0x3F3F3F00u, kE2m1High4to7 = 0x40404040u;
constexpr uint32_t kE2m1Low0to3 = 0xC0800000u, kE2m1Low4to7 = 0xC0804000u;

/// qmath::nvfp4Dequant of one 16-element group (8 bytes of codes, low nibble first) with
/// divisor d. The signed E2M1 value of each code is built exactly (code 8 is +0), then one
/// product; a non-finite d goes element by element.
template <class Out> __device__ __forceinline__ Pack<Out, 16> nvfp4DequantPack(const Pack<uint8_t, 8>& p, float d) {
  if (!(fabsf(d) < INFINITY)) {
    Pack<Out, 16> o;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      o.v[2 * j] = fromF32<Out>(qmath::nvfp4Dequant(p.v[j] & 0xFu, d));
      o.v[2 * j + 1] = fromF32<Out>(qmath::nvfp4Dequant(p.v[j] >> 4, d));
    }
    return o;
  }
  uint32_t w[2];
  memcpy(w, p.v, 8);
  float f[16];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint32_t x = w[h], magnitudes = x & 0x77777777u;
    const uint32_t negative = (x >> 3) & (x | (x >> 1) | (x >> 2)) & 0x11111111u; // bit 4k: code k < 0, not 0
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const uint32_t sel = magnitudes >> (16 * q), neg = negative >> (16 * q);
      const uint32_t hi = __byte_perm(kE2m1High0to3, kE2m1High4to7, sel);
      const uint32_t lo = __byte_perm(kE2m1Low0to3, kE2m1Low4to7, sel);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        // A BF16 pair of codes 2r, 2r+1; their sign bits (neg bits 8r, 8r+4) moved to 15, 31.
        uint32_t b = __byte_perm(lo, hi, r ? 0x7362u : 0x5140u);
        b ^= ((neg << (15 - 8 * r)) & 0x8000u) | ((neg << (27 - 8 * r)) & 0x80000000u);
        const int e = 8 * h + 4 * q + 2 * r;
        f[e] = __fmul_rn(fp::floatOf(b << 16), d);
        f[e + 1] = __fmul_rn(fp::floatOf(b & 0xFFFF0000u), d);
      }
    }
  }
  return fromF32NoNaN<Out, 16>(f);
}

} // namespace ckptmap::cuda::detail
