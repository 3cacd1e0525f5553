// Weight quantization formats: CPU reference implementations (the oracle for the CUDA kernels
// in kernels/Cuda.h, which have the same semantics on device pointers).
//
// Inputs are 2-D [rows, cols] matrices of F32, BF16 or F16, read as F32 (exact). A 3-D stack of
// experts [E, rows, cols] is E independent matrices (quantizeExperts / dequantizeExperts), each
// with its own global scale. Every quantizer rejects NaN/Inf in its input (KernelErrc::NonFinite,
// naming the first offending element) and then writes nothing meaningful.
//
// All arithmetic is IEEE F32, one rounding per written operation, in the order shown
// (kernels/QuantMath.h holds the code shared with CUDA). `e4m3()` rounds to nearest even and
// saturates at +-448.
//
// NVFP4 (ModelOpt): data U8 [r, c/2] (element 2i low nibble, 2i+1 high nibble), scale F8_E4M3
// [r, c/16], global F32 (weight_scale_2). c % 16 == 0.
//   ws2 = amax(|W|) / 2688                      (2688 = 6 * 448, an exact F32 constant)
//   s   = amax(|block|) / (6 * ws2)             (6 * ws2 rounded first)
//         s == 0 -> 1.0; s < 2^-9 -> 2^-9; s_fp8 = e4m3(s)
//   d   = float(s_fp8) * ws2;  x = W / d;  code = e2m1(x)   (Float.h: ties 0.75 1.75 3.5 up)
//   dequantize: value(code) * d                 (d first, as ModelOpt's dequantize; code 8 -> +0)
//   Degenerate tensors: amax == 0 gives ws2 = 0, every s = 1.0 and every code 0 (s = 0/0 and
//   d == 0 are defined that way; torch would produce NaN scales there). With QuantOptions::
//   globalScale the given ws2 replaces amax / 2688 (blocks may then saturate at 448 / 6).
// FP8 per tensor (ModelOpt FP8): data F8_E4M3 [r, c], scale F32 [] (weight_scale).
//   scale = amax / 448, 0 -> 1.0;  q = e4m3(W / scale);  dequantize: float(q) * scale.
// FP8 128x128 block (DeepSeek): data F8_E4M3 [r, c], scale [ceil(r/128), ceil(c/128)] F32 or
//   BF16 (weight_scale_inv); partial edge blocks are blocks of their own.
//   scale = amax(block) / 448, rounded to BF16 when the scale dtype is BF16; 0 -> 1.0;
//   q = e4m3(W / scale) (dividing by the stored scale);  dequantize: float(q) * float(scale),
//   as DeepSeek's weight_dequant (F32 product, then one rounding to the output dtype).
// MXFP8 (OCP MX): data F8_E4M3 [r, c], scale U8 E8M0 [r, c/32]. c % 32 == 0.
//   e = clamp(floor(log2(amax(block))) - 8 + 127, 0, 254), amax == 0 -> 0;  X = 2^(e-127)
//   q = e4m3(W / X);  dequantize: float(q) * X.  (8 = emax of e4m3. torchao divides by
//   max(X, 2^-126) when e == 0; that differs only for blocks with amax < 2^-118.)
// Dequantize writes F32, BF16 or F16 (one rounding of the F32 value). NaN codes (e4m3 0x7F/0xFF,
// E8M0 0xFF) dequantize to NaN.
#pragma once

#include "base/DType.h"
#include "kernels/Float.h"
#include "kernels/Parallel.h"
#include "kernels/Status.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ckptmap {

enum class QuantFormat : uint8_t { Nvfp4, Fp8Tensor, Fp8Block, Mxfp8 };

constexpr std::string_view quantFormatName(QuantFormat f) {
  switch (f) {
  case QuantFormat::Nvfp4: return "nvfp4";
  case QuantFormat::Fp8Tensor: return "fp8";
  case QuantFormat::Fp8Block: return "fp8-block";
  case QuantFormat::Mxfp8: return "mxfp8";
  }
  return "?";
}

inline constexpr size_t kNvfp4GroupSize = 16;
inline constexpr size_t kMxfp8GroupSize = 32;
inline constexpr size_t kFp8BlockSize = 128;

/// Shapes of the parts of one quantized [rows, cols] matrix.
struct QuantShapes {
  DType dataType;              // U8 (NVFP4, packed) or F8_E4M3
  size_t dataRows, dataCols;   // NVFP4 [r, c/2], else [r, c]
  DType scaleType;             // F8_E4M3 (NVFP4), F32 (FP8), F32|BF16 (FP8 block), U8 (MXFP8, E8M0)
  size_t scaleRows, scaleCols; // NVFP4 [r, c/16]; FP8 1x1 (a scalar); block [ceil, ceil]; MX [r, c/32]
  bool hasGlobalScale;         // NVFP4's weight_scale_2 (F32, one per matrix)
  size_t dataBytes() const { return dataRows * dataCols; }
  size_t scaleCount() const { return scaleRows * scaleCols; }
  size_t scaleBytes() const { return scaleCount() * dtypeSize(scaleType); }
};

/// Shapes for `format`; BadShape when cols does not fit the format's group size, and
/// UnsupportedDType for an FP8 block scale type other than F32 or BF16 (`blockScaleType` is
/// only read for Fp8Block).
KernelStatus quantShapes(QuantFormat format, size_t rows, size_t cols, QuantShapes& out,
                         DType blockScaleType = DType::F32);

/// Read-only view of a quantized matrix (or a stack of them). Host pointers for cpu::,
/// device pointers for cuda::.
struct QuantRef {
  QuantFormat format;
  const void* data;                    // see the format table above
  const void* scale;                   // per-block scales, or FP8's scalar scale
  DType scaleType = DType::F32;        // Fp8Block: F32 or BF16; ignored otherwise
  const float* globalScale = nullptr;  // NVFP4 weight_scale_2 (one per expert)
};

/// Destination of a quantizer.
struct QuantOut {
  QuantFormat format;
  void* data;
  void* scale;
  DType scaleType = DType::F32; // Fp8Block: F32 or BF16
  float* globalScale = nullptr; // NVFP4 (one per expert)
};

struct QuantOptions {
  Exec exec;
  /// NVFP4: use this weight_scale_2 instead of amax / 2688; FP8 per tensor: this scale instead
  /// of amax / 448 (e.g. fused parts sharing the largest of their scales). Other formats ignore it.
  std::optional<float> globalScale;
};

namespace cpu {

/// Quantizes W [rows, cols] (dtype `in`: F32, BF16, F16) into `out`.
KernelStatus quantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                      const QuantOptions& opt = {});

/// Dequantizes into dst [rows, cols] of dtype `out` (F32, BF16, F16).
KernelStatus dequantize(const QuantRef& in, size_t rows, size_t cols, DType out, void* dst,
                        const Exec& exec = {});

/// dequantize to `via` (F32 by default, or BF16 to reproduce "cast to BF16, then quantize")
/// into `scratch` (rows * cols elements of `via`; allocated when null), then quantize: the
/// same bits as the two calls.
KernelStatus requantize(const QuantRef& in, size_t rows, size_t cols, const QuantOut& out,
                        const QuantOptions& opt = {}, DType via = DType::F32, void* scratch = nullptr);

/// [E, rows, cols] as E matrices; expert e's parts start at e * (its part's size), and
/// NVFP4's global scale is out.globalScale[e].
KernelStatus quantizeExperts(DType in, const void* src, size_t experts, size_t rows, size_t cols,
                             const QuantOut& out, const QuantOptions& opt = {});
KernelStatus dequantizeExperts(const QuantRef& in, size_t experts, size_t rows, size_t cols, DType out,
                               void* dst, const Exec& exec = {});

// Typed entry points; T is float, bf16_t or f16_t (explicitly instantiated).
template <class T>
KernelStatus quantizeNvfp4(const T* w, size_t rows, size_t cols, uint8_t* packed, uint8_t* scales,
                           float* globalScale, const QuantOptions& opt = {});
template <class T>
KernelStatus quantizeFp8(const T* w, size_t n, uint8_t* q, float* scale, const Exec& exec = {});
/// quantizeFp8 with the scale given (`fixed`) instead of derived from the data.
template <class T>
KernelStatus quantizeFp8Scaled(const T* w, size_t n, uint8_t* q, float* scale, std::optional<float> fixed,
                               const Exec& exec = {});
template <class T>
KernelStatus quantizeFp8Block(const T* w, size_t rows, size_t cols, uint8_t* q, DType scaleType,
                              void* scaleInv, const Exec& exec = {});
template <class T>
KernelStatus quantizeMxfp8(const T* w, size_t rows, size_t cols, uint8_t* q, uint8_t* scales,
                           const Exec& exec = {});

/// amax(|W|) as F32, or NonFinite naming the first NaN/Inf.
template <class T> KernelStatus amax(const T* w, size_t n, float& result, size_t cols = 0, const Exec& exec = {});

} // namespace cpu

// ---- compressed-tensors global scales -----------------------------------------------------
// compressed-tensors NVFP4 stores weight_global_scale = 1 / weight_scale_2 (and
// input_global_scale = 1 / input_scale) as F32 [1]; packed data and block scales are the same
// bytes as ModelOpt's. Both directions use invertGlobalScale. In F32, 1/(1/x) == x holds for
// 82.84% of floats (exhaustive over one binade; the ratio is the same in every binade whose
// reciprocal is normal), and where it fails no F32 g at all has 1/g == x, so the only way to get
// x back after ModelOpt -> compressed-tensors -> ModelOpt is to keep x itself somewhere else;
// otherwise the round trip changes weight_scale_2 by one ulp and must be reported.

/// 1.0f / x, one IEEE division.
float invertGlobalScale(float x);

/// invertGlobalScale(invertGlobalScale(x)) == x, bit for bit.
bool globalScaleRoundTrips(float x);

} // namespace ckptmap
