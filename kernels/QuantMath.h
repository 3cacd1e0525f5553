// The per-element and per-block arithmetic of every quantization format, written once for
// the CPU reference and the CUDA kernels. Each operation is one IEEE F32 operation
// (fp::mul / fp::div), so both sides produce the same bits. Quant.h documents the formats.
#pragma once

#include "kernels/Float.h"

#include <cstdint>

namespace ckptmap::qmath {

inline constexpr float kE4m3Max = 448.0f;
inline constexpr float kE2m1Max = 6.0f;
/// 6 * 448 evaluated as the F32 constant 2688 (exact).
inline constexpr float kNvfp4GlobalDivisor = 2688.0f;
/// 2^-9, the smallest e4m3 subnormal: the floor of an NVFP4 block scale.
inline constexpr float kE4m3MinSubnormal = 0.001953125f;

// ---- NVFP4 ----------------------------------------------------------------------------
/// weight_scale_2 = amax / 2688 (one F32 division).
CKPTMAP_HD float nvfp4GlobalScale(float amax) { return fp::div(amax, kNvfp4GlobalDivisor); }

/// Block scale (e4m3 bits) from the block's amax and 6 * weight_scale_2 (computed once per
/// tensor as fp::mul(6, ws2)): s = amax_block / (6 * ws2); s == 0 or NaN (0/0, only when
/// ws2 == 0) -> 1.0; s < 2^-9 -> 2^-9; then e4m3 round to nearest even, saturating.
CKPTMAP_HD uint8_t nvfp4BlockScale(float blockAmax, float ws2Times6) {
  float s = fp::div(blockAmax, ws2Times6);
  if (s == 0.0f || fp::isNaN(s))
    s = 1.0f;
  if (s < kE4m3MinSubnormal)
    s = kE4m3MinSubnormal;
  return fp::f32ToE4m3Sat(s);
}

/// The divisor of a block, float(s_fp8) * ws2; dequantization multiplies by the same value.
CKPTMAP_HD float nvfp4BlockDivisor(uint8_t scaleBits, float ws2) {
  return fp::mul(fp::e4m3ToF32(scaleBits), ws2);
}

/// E2M1 code of w in a block with divisor d: e2m1(w / d). A zero divisor (only for an
/// all-zero tensor, or one whose amax is below 2^-128 so that ws2 underflows) encodes every
/// element as +0.
CKPTMAP_HD uint8_t nvfp4Code(float w, float divisor) {
  return divisor == 0.0f ? uint8_t{0} : fp::e2m1Encode(fp::quotient(w, divisor));
}

/// value(code) * (float(s_fp8) * ws2), the block divisor computed first (as ModelOpt's
/// dequantize does), then one product.
CKPTMAP_HD float nvfp4Dequant(uint32_t code, float divisor) { return fp::mul(fp::e2m1Value(code), divisor); }

// ---- FP8-E4M3 per tensor and per 128x128 block ---------------------------------------------
/// scale = amax / 448 (one F32 division); 0 (amax == 0, or amax below 448 * 2^-150) -> 1.0.
CKPTMAP_HD float fp8Scale(float amax) {
  const float s = fp::div(amax, kE4m3Max);
  return s == 0.0f ? 1.0f : s;
}

/// Block scale stored as BF16: amax / 448 rounded to BF16; 0 -> 1.0. Returns the BF16 bits.
CKPTMAP_HD uint16_t fp8ScaleBf16(float amax) {
  const uint16_t b = fp::f32ToBf16(fp::div(amax, kE4m3Max));
  return (b & 0x7FFFu) == 0 ? uint16_t{0x3F80} : b;
}

/// e4m3(w / scale), saturating at +-448.
CKPTMAP_HD uint8_t fp8Quant(float w, float scale) { return fp::f32ToE4m3Sat(fp::div(w, scale)); }

/// float(fp8) * scale.
CKPTMAP_HD float fp8Dequant(uint8_t q, float scale) { return fp::mul(fp::e4m3ToF32(q), scale); }

// ---- MXFP8 (OCP MX, E4M3 elements, 32-element blocks) ---------------------------------------
/// Shared E8M0 exponent from the block amax (as |x| bits): floor(log2(amax)) - 8 (8 = emax of
/// e4m3), biased by 127 and clamped to [0, 254]; amax == 0 gives 0 (2^-127).
CKPTMAP_HD uint8_t mxfp8Exponent(uint32_t amaxBits) {
  if (amaxBits == 0)
    return 0;
  int e = fp::floorLog2(fp::floatOf(amaxBits)) - 8 + 127;
  e = e < 0 ? 0 : (e > 254 ? 254 : e);
  return static_cast<uint8_t>(e);
}

/// e4m3(w / 2^(e-127)), saturating at +-448: FP8's quotient with a power-of-two scale.
CKPTMAP_HD uint8_t mxfp8Quant(float w, float scale) { return fp8Quant(w, scale); }

/// float(fp8) * 2^(e-127): FP8's product with a power-of-two scale.
CKPTMAP_HD float mxfp8Dequant(uint8_t q, float scale) { return fp8Dequant(q, scale); }

} // namespace ckptmap::qmath
