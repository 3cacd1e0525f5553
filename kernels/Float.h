// Scalar floating-point formats and exact conversions, usable from host and device code.
//
// Every narrowing conversion rounds once, to nearest with ties to even, using integer
// arithmetic only, so host and device give the same bits whatever the compiler's FP flags.
// Policies (all match torch's `Tensor.to(dtype)` except where noted):
//   * F32/F64 -> BF16, F16: overflow gives +-Inf; NaN stays NaN, sign kept, quiet bit set,
//     top payload bits kept (torch CPU writes the canonical 0x7FC0 / 0x7E00 for any NaN; the
//     two agree on the canonical NaN).
//   * -> F8_E5M2: overflow gives +-Inf; NaN gives sign|0x7F (as torch).
//   * -> F8_E4M3 (e4m3fn: no Inf, max 448, NaN 0x7F/0xFF, subnormals down to 2^-9):
//       e4m3Encode (torch's cast): |x| > 464 (the rounding boundary above 448), +-Inf and NaN
//       give NaN (sign|0x7F); |x| == 464 rounds (tie to even) to 448.
//       e4m3EncodeSat (what the quantizers use): finite overflow and +-Inf clamp to +-448;
//       NaN gives NaN. Identical to `x.clamp(-448, 448).to(torch.float8_e4m3fn)`.
//   * E8M0: value 2^(e-127); 0xFF is NaN; e == 0 is 2^-127 (an F32 subnormal).
//   * E2M1 (NVFP4 element): see e2m1Encode / e2m1Value.
// Widening conversions (BF16/F16/FP8 -> F32, F32 -> F64) are exact; NaN payloads are kept
// (F16/FP8 NaNs become quiet F32 NaNs with the same sign).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CKPTMAP_HD __host__ __device__ __forceinline__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#else
#define CKPTMAP_HD inline
#endif

namespace ckptmap {

// Storage types for the 16- and 8-bit formats: plain bit containers, so templates can be
// specialised on the element type without pulling in cuda_fp16.h or a C++23 <stdfloat>.
struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };
struct e4m3_t { uint8_t bits; };
struct e5m2_t { uint8_t bits; };

namespace fp {

// ---- bit casts ---------------------------------------------------------------------------
CKPTMAP_HD uint32_t bitsOf(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
CKPTMAP_HD float floatOf(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}
CKPTMAP_HD uint64_t bitsOf(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
#endif
}
CKPTMAP_HD double doubleOf(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
#endif
}

CKPTMAP_HD int clz32(uint32_t x) { // x != 0
#if defined(__CUDA_ARCH__)
  return __clz(x);
#else
  return __builtin_clz(x);
#endif
}
CKPTMAP_HD int clz64(uint64_t x) { // x != 0
#if defined(__CUDA_ARCH__)
  return __clzll(static_cast<long long>(x));
#else
  return __builtin_clzll(x);
#endif
}

CKPTMAP_HD bool isNaN(float f) { return (bitsOf(f) & 0x7FFFFFFFu) > 0x7F800000u; }
CKPTMAP_HD bool isNaN(double d) { return (bitsOf(d) & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull; }
CKPTMAP_HD bool isFinite(float f) { return (bitsOf(f) & 0x7FFFFFFFu) < 0x7F800000u; }
/// |f| as bits: for non-negative floats the bit order is the value order, so an integer max
/// over these is an exact, order-independent amax (NaN/Inf compare >= 0x7F800000).
CKPTMAP_HD uint32_t absBits(float f) { return bitsOf(f) & 0x7FFFFFFFu; }

// ---- single IEEE operations -----------------------------------------------------------
// One correctly rounded operation each; the device versions are intrinsics the compiler may
// never fuse into an FMA, and the host build uses -ffp-contract=off, so a * b + c written
// with these is two roundings on both sides. Which NaN an operation returns differs between
// processors (x86 keeps an operand's payload, CUDA returns 0x7FFFFFFF), so a NaN result is
// always the canonical quiet NaN, 0x7FC00000 (torch's NaN; BF16 0x7FC0).
inline constexpr uint32_t kCanonicalNaN = 0x7FC00000u;
inline constexpr uint64_t kCanonicalNaN64 = 0x7FF8000000000000ull;
CKPTMAP_HD float canonical(float r) { return isNaN(r) ? floatOf(kCanonicalNaN) : r; }
CKPTMAP_HD double canonical(double r) { return isNaN(r) ? doubleOf(kCanonicalNaN64) : r; }

CKPTMAP_HD float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return canonical(__fmul_rn(a, b));
#else
  return canonical(a * b);
#endif
}
CKPTMAP_HD float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return canonical(__fdiv_rn(a, b));
#else
  return canonical(a / b);
#endif
}
CKPTMAP_HD float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return canonical(__fadd_rn(a, b));
#else
  return canonical(a + b);
#endif
}
/// a / b, one IEEE division whose NaN is left as the processor makes it: only for callers that
/// treat every NaN alike (e2m1Encode), where canonicalising would cost without changing a bit.
CKPTMAP_HD float quotient(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
CKPTMAP_HD double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return canonical(__dmul_rn(a, b));
#else
  return canonical(a * b);
#endif
}
CKPTMAP_HD double add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return canonical(__dadd_rn(a, b));
#else
  return canonical(a + b);
#endif
}

// ---- formats ------------------------------------------------------------------------------
enum class Overflow : uint8_t { Inf, NaN, Saturate };

/// A binary floating-point format of at most 16 bits. `Ieee`: the all-ones exponent holds
/// Inf and NaN. Otherwise (e4m3fn) only the all-ones pattern is NaN and there is no Inf.
template <int ExpBits, int ManBits, bool Ieee> struct Format {
  static constexpr int kExp = ExpBits;
  static constexpr int kMan = ManBits;
  static constexpr int kBits = 1 + ExpBits + ManBits;
  static constexpr int kBias = (1 << (ExpBits - 1)) - 1;
  static constexpr int kEmin = 1 - kBias; // exponent of the smallest normal
  static constexpr bool kIeee = Ieee;
  static constexpr uint32_t kSign = 1u << (kBits - 1);
  static constexpr uint32_t kInf = ((1u << ExpBits) - 1) << ManBits; // Ieee only
  static constexpr uint32_t kMaxFinite = Ieee ? kInf - 1 : (kInf | ((1u << ManBits) - 2));
  static constexpr uint32_t kNaN = Ieee ? (kInf | (1u << (ManBits - 1))) : (kInf | ((1u << ManBits) - 1));
  static constexpr Overflow kDefaultOverflow = Ieee ? Overflow::Inf : Overflow::NaN;
};
using Bf16Format = Format<8, 7, true>;
using F16Format = Format<5, 10, true>;
using E5m2Format = Format<5, 2, true>;
using E4m3Format = Format<4, 3, false>;

namespace detail {

/// Rounds the positive value mag * 2^exp2 (mag != 0, floor(log2(value)) == log2v) to Fmt
/// with ties to even; returns the magnitude bits (no sign), overflow handled per `ov`.
template <class Fmt, class U>
CKPTMAP_HD uint32_t roundMagnitude(U mag, int exp2, int log2v, Overflow ov) {
  constexpr int kWidth = static_cast<int>(sizeof(U) * 8);
  const bool subnormal = log2v < Fmt::kEmin;
  const int e = subnormal ? Fmt::kEmin : log2v;
  const int shift = (e - Fmt::kMan) - exp2; // low bits of mag below the target's quantum
  U r;
  if (shift <= 0) {
    r = mag << (-shift); // exact; r < 2^(kMan+1)
  } else if (shift > kWidth) {
    r = 0; // below half the smallest quantum
  } else if (shift == kWidth) {
    const U half = U(1) << (kWidth - 1);
    r = mag > half ? 1 : 0; // a tie goes to the even 0
  } else {
    r = mag >> shift;
    const U rem = mag & ((U(1) << shift) - 1);
    const U half = U(1) << (shift - 1);
    if (rem > half || (rem == half && (r & 1)))
      ++r;
  }
  // Subnormal: r <= 2^kMan, and r == 2^kMan is the smallest normal's encoding. Normal:
  // r in [2^kMan, 2^(kMan+1)]; adding to the exponent field carries a rounding overflow.
  uint32_t bits = subnormal ? static_cast<uint32_t>(r)
                            : (static_cast<uint32_t>(e + Fmt::kBias - 1) << Fmt::kMan) +
                                  static_cast<uint32_t>(r);
  if (bits > Fmt::kMaxFinite) {
    if (ov == Overflow::Saturate)
      bits = Fmt::kMaxFinite;
    else if (ov == Overflow::NaN || !Fmt::kIeee)
      bits = Fmt::kNaN;
    else
      bits = Fmt::kInf;
  }
  return bits;
}

template <class Fmt> CKPTMAP_HD uint32_t infinity(uint32_t sign, Overflow ov) {
  if (ov == Overflow::Saturate)
    return sign | Fmt::kMaxFinite;
  if (ov == Overflow::NaN || !Fmt::kIeee)
    return sign | Fmt::kNaN;
  return sign | Fmt::kInf;
}

/// NaN in: 16-bit formats keep the top payload bits and set the quiet bit; 8-bit formats
/// write sign|0x7F as torch does.
template <class Fmt> CKPTMAP_HD uint32_t nanFrom(uint32_t sign, uint64_t payloadTop16) {
  if constexpr (Fmt::kBits == 16)
    return sign | Fmt::kInf | (1u << (Fmt::kMan - 1)) |
           static_cast<uint32_t>(payloadTop16 >> (16 - Fmt::kMan));
  else
    return sign | ((1u << (Fmt::kBits - 1)) - 1);
}

} // namespace detail

/// F32 -> Fmt, one rounding to nearest even.
template <class Fmt>
CKPTMAP_HD uint32_t encode(float f, Overflow ov = Fmt::kDefaultOverflow) {
  uint32_t u = bitsOf(f);
  const uint32_t sign = (u >> 31) ? Fmt::kSign : 0u;
  u &= 0x7FFFFFFFu;
  if (u >= 0x7F800000u) {
    if (u == 0x7F800000u)
      return detail::infinity<Fmt>(sign, ov);
    return detail::nanFrom<Fmt>(sign, (u >> 7) & 0xFFFFu); // top 16 of 23 payload bits
  }
  if (u == 0)
    return sign;
  const uint32_t biased = u >> 23;
  uint32_t mag;
  int exp2, log2v;
  if (biased == 0) {
    mag = u;
    exp2 = -149;
    log2v = 31 - clz32(mag) - 149;
  } else {
    mag = (u & 0x7FFFFFu) | 0x800000u;
    exp2 = static_cast<int>(biased) - 150;
    log2v = static_cast<int>(biased) - 127;
  }
  return sign | detail::roundMagnitude<Fmt>(mag, exp2, log2v, ov);
}

/// F64 -> Fmt, one rounding (never through F32).
template <class Fmt>
CKPTMAP_HD uint32_t encode(double d, Overflow ov = Fmt::kDefaultOverflow) {
  uint64_t u = bitsOf(d);
  const uint32_t sign = (u >> 63) ? Fmt::kSign : 0u;
  u &= 0x7FFFFFFFFFFFFFFFull;
  constexpr uint64_t kInf64 = 0x7FF0000000000000ull;
  if (u >= kInf64) {
    if (u == kInf64)
      return detail::infinity<Fmt>(sign, ov);
    return detail::nanFrom<Fmt>(sign, (u >> 36) & 0xFFFFu); // top 16 of 52 payload bits
  }
  if (u == 0)
    return sign;
  const int biased = static_cast<int>(u >> 52);
  uint64_t mag;
  int exp2, log2v;
  if (biased == 0) {
    mag = u;
    exp2 = -1074;
    log2v = 63 - clz64(mag) - 1074;
  } else {
    mag = (u & 0xFFFFFFFFFFFFFull) | 0x10000000000000ull;
    exp2 = biased - 1075;
    log2v = biased - 1023;
  }
  return sign | detail::roundMagnitude<Fmt>(mag, exp2, log2v, ov);
}

/// Signed magnitude integer -> Fmt, one rounding.
template <class Fmt>
CKPTMAP_HD uint32_t encodeInteger(bool negative, uint64_t mag, Overflow ov = Fmt::kDefaultOverflow) {
  const uint32_t sign = negative ? Fmt::kSign : 0u;
  if (mag == 0)
    return 0; // integers have no -0
  return sign | detail::roundMagnitude<Fmt>(mag, 0, 63 - clz64(mag), ov);
}

/// Fmt -> F32, exact.
template <class Fmt> CKPTMAP_HD float decode(uint32_t bits) {
  const uint32_t sign = (bits & Fmt::kSign) ? 0x80000000u : 0u;
  const uint32_t mag = bits & (Fmt::kSign - 1);
  const uint32_t e = mag >> Fmt::kMan;
  const uint32_t m = mag & ((1u << Fmt::kMan) - 1);
  if constexpr (Fmt::kIeee) {
    if (e == (1u << Fmt::kExp) - 1)
      return floatOf(sign | (m == 0 ? 0x7F800000u : (0x7FC00000u | (m << (23 - Fmt::kMan)))));
  } else {
    if (mag == Fmt::kNaN)
      return floatOf(sign | 0x7FC00000u);
  }
  if (e == 0) {
    if (m == 0)
      return floatOf(sign);
    // Normalise: value = m * 2^(kEmin - kMan); every format here lands in F32's normal range.
    const int p = 31 - clz32(m);
    const uint32_t fe = static_cast<uint32_t>(Fmt::kEmin - Fmt::kMan + p + 127);
    return floatOf(sign | (fe << 23) | ((m << (23 - p)) & 0x7FFFFFu));
  }
  const uint32_t fe = e - Fmt::kBias + 127;
  return floatOf(sign | (fe << 23) | (m << (23 - Fmt::kMan)));
}

// ---- named conversions ------------------------------------------------------------------
// The device uses the GPU's conversion instructions where they round exactly like encode()
// (to nearest even; BF16/F16 overflow to Inf, e4m3 satfinite) and takes encode() for NaN,
// whose payload the instructions do not keep. The device tests compare both on every F32.
CKPTMAP_HD float bf16ToF32(uint16_t b) { return floatOf(static_cast<uint32_t>(b) << 16); }
CKPTMAP_HD uint16_t f32ToBf16(float f) {
#if defined(__CUDA_ARCH__)
  if (!isNaN(f))
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#endif
  return static_cast<uint16_t>(encode<Bf16Format>(f));
}
CKPTMAP_HD float f16ToF32(uint16_t h) { return decode<F16Format>(h); }
CKPTMAP_HD uint16_t f32ToF16(float f) {
#if defined(__CUDA_ARCH__)
  if (!isNaN(f))
    return __half_as_ushort(__float2half_rn(f));
#endif
  return static_cast<uint16_t>(encode<F16Format>(f));
}
/// e4m3 -> F32 (exact): normal codes by moving the fields, subnormals as m * 2^-9.
CKPTMAP_HD float e4m3ToF32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24, mag = b & 0x7Fu;
  if (mag == 0x7Fu)
    return floatOf(sign | 0x7FC00000u);
  if (mag < 8u)
    return floatOf(sign | bitsOf(static_cast<float>(mag) * 0.001953125f));
  return floatOf(sign | ((mag + (120u << 3)) << 20));
}
/// Saturating: overflow and Inf clamp to +-448; NaN stays NaN. Used by every quantizer.
CKPTMAP_HD uint8_t f32ToE4m3Sat(float f) {
#if defined(__CUDA_ARCH__)
  if (!isNaN(f))
    return static_cast<uint8_t>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3));
#endif
  return static_cast<uint8_t>(encode<E4m3Format>(f, Overflow::Saturate));
}
/// torch's float -> float8_e4m3fn: beyond the rounding boundary 464, +-Inf and NaN give NaN.
CKPTMAP_HD uint8_t f32ToE4m3(float f) {
#if defined(__CUDA_ARCH__)
  if (absBits(f) <= 0x43E80000u) // |f| <= 464: what the saturating conversion rounds the same
    return f32ToE4m3Sat(f);
#endif
  return static_cast<uint8_t>(encode<E4m3Format>(f));
}
CKPTMAP_HD float e5m2ToF32(uint8_t b) { return decode<E5m2Format>(b); }
CKPTMAP_HD uint8_t f32ToE5m2(float f) { return static_cast<uint8_t>(encode<E5m2Format>(f)); }
CKPTMAP_HD uint16_t f64ToBf16(double d) { return static_cast<uint16_t>(encode<Bf16Format>(d)); }
CKPTMAP_HD uint16_t f64ToF16(double d) { return static_cast<uint16_t>(encode<F16Format>(d)); }
CKPTMAP_HD uint8_t f64ToE4m3(double d) { return static_cast<uint8_t>(encode<E4m3Format>(d)); }
CKPTMAP_HD uint8_t f64ToE5m2(double d) { return static_cast<uint8_t>(encode<E5m2Format>(d)); }
/// F64 -> F32: the IEEE conversion (round to nearest even, Inf on overflow, NaN kept).
CKPTMAP_HD float f64ToF32(double d) {
#if defined(__CUDA_ARCH__)
  return __double2float_rn(d);
#else
  return static_cast<float>(d);
#endif
}

/// E8M0 scale: 2^(e - 127), 0xFF is NaN, 0 is 2^-127.
CKPTMAP_HD float e8m0ToF32(uint8_t e) {
  if (e == 0xFF)
    return floatOf(0x7FC00000u);
  if (e == 0)
    return floatOf(0x00400000u);
  return floatOf(static_cast<uint32_t>(e) << 23);
}

/// floor(log2(|f|)) for finite nonzero f (subnormals included).
CKPTMAP_HD int floorLog2(float f) {
  const uint32_t u = absBits(f);
  const int biased = static_cast<int>(u >> 23);
  return biased ? biased - 127 : (31 - clz32(u)) - 149;
}

// ---- E2M1 (NVFP4 elements) ------------------------------------------------------------
/// Code of x: sign bit (x < 0) in bit 3; magnitude index into {0, .5, 1, 1.5, 2, 3, 4, 6}
/// rounded to nearest, saturating at 6. Exact midpoints 0.75, 1.75 and 3.5 round up (to the
/// even index), the midpoints 0.25, 1.25, 2.5 and 5 round down (ModelOpt's _cast_fp4:
/// searchsorted over the midpoints plus one where |x| equals an odd-indexed midpoint).
/// A negative x that rounds to 0 keeps the sign bit (code 8).
CKPTMAP_HD uint8_t e2m1Encode(float x) {
  // E2M1 is a float format (1 mantissa bit, exponents 0..2, subnormal step 0.5) and the rule
  // above is its round to nearest even: below 1 the steps of 0.5 are two comparisons; from 1
  // up, the F32 mantissa is rounded to one bit (ties to even) in integer arithmetic.
  // Both cases are computed and one selected: no divergent branch in a GPU warp.
  const uint32_t u = absBits(x);
  const float a = floatOf(u);
  const uint32_t below1 = (a > 0.25f) + (a >= 0.75f);
  const uint32_t r = u + 0x1FFFFFu + ((u >> 22) & 1u);
  const uint32_t e = (r >> 23) - 127u;
  const uint32_t from1 = e > 2u ? 7u : 2u + 2u * e + ((r >> 22) & 1u);
  uint32_t code = u < 0x3F800000u ? below1 : from1;
  code = u > 0x7F800000u ? 0u : code; // NaN (quantizers never pass one)
  return static_cast<uint8_t>(code | (x < 0.0f ? 8u : 0u));
}

/// Value of an E2M1 code. Code 8 (negative zero) is +0, as ModelOpt's value table has it,
/// so dequantized zeros are +0 whatever their code's sign bit.
CKPTMAP_HD float e2m1Value(uint32_t code) {
  // Magnitudes times 2: 0 1 2 3 4 6 8 12.
  const uint32_t m = code & 7u;
  const uint32_t twice = m < 4 ? m : (m == 4 ? 4u : m == 5 ? 6u : m == 6 ? 8u : 12u);
  const float v = static_cast<float>(twice) * 0.5f;
  return (code & 8u) && m ? -v : v;
}

} // namespace fp

// ---- element-type traits (template parameter -> F32) ------------------------------------
CKPTMAP_HD float toF32(float v) { return v; }
CKPTMAP_HD float toF32(bf16_t v) { return fp::bf16ToF32(v.bits); }
CKPTMAP_HD float toF32(f16_t v) { return fp::f16ToF32(v.bits); }
CKPTMAP_HD float toF32(e4m3_t v) { return fp::e4m3ToF32(v.bits); }
CKPTMAP_HD float toF32(e5m2_t v) { return fp::e5m2ToF32(v.bits); }

/// Rounds an F32 to the element type T (torch's .to(T) semantics, see the top of the file).
template <class T> CKPTMAP_HD T fromF32(float v);
template <> CKPTMAP_HD float fromF32<float>(float v) { return v; }
template <> CKPTMAP_HD bf16_t fromF32<bf16_t>(float v) { return bf16_t{fp::f32ToBf16(v)}; }
template <> CKPTMAP_HD f16_t fromF32<f16_t>(float v) { return f16_t{fp::f32ToF16(v)}; }
template <> CKPTMAP_HD e4m3_t fromF32<e4m3_t>(float v) { return e4m3_t{fp::f32ToE4m3(v)}; }
template <> CKPTMAP_HD e5m2_t fromF32<e5m2_t>(float v) { return e5m2_t{fp::f32ToE5m2(v)}; }

} // namespace ckptmap
