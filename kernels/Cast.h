// Elementwise dtype cast and affine map (CPU reference; kernels/Cuda.h has the device twins).
//
// castTensor(from, src, to, dst, n): one rounding per element, to nearest even.
//   * float -> float (F64 F32 F16 BF16 F8_E4M3 F8_E5M2, and F8_E8M0 as a source): through F32
//     when the source is exactly representable in F32 (all but F64), straight from F64
//     otherwise, so F64 -> BF16 rounds once. Overflow and NaN as torch's `.to()` (Float.h):
//     F8_E4M3 overflow becomes NaN (the quantizers saturate instead; a plain cast does not).
//   * integer/BOOL -> float: one rounding of the exact integer.
//   * integer/BOOL -> integer/BOOL: exact; a value that does not fit is an OutOfRange error
//     naming the first such element (BOOL holds 0 and 1 only).
//   * float -> integer and anything -> F8_E8M0 (other than a copy) are UnsupportedCast.
// affineTensor(from, src, to, dst, n, scale, shift): y = x * scale + shift, computed as two
// IEEE operations (never fused) in F32, or in F64 when either dtype is F64, then one
// rounding to `to`. Dtypes F64 F32 F16 BF16. Used for zero-centred norms (w - 1 / w + 1).
#pragma once

#include "base/DType.h"
#include "kernels/Convert.h"
#include "kernels/Parallel.h"
#include "kernels/Status.h"

#include <cstddef>

namespace ckptmap::cpu {

KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n,
                        const Exec& exec = {});

KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n,
                          double scale, double shift, const Exec& exec = {});

} // namespace ckptmap::cpu
