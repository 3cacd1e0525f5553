// CUDA versions of the kernels in Cast.h and Quant.h: the same semantics and bit-identical
// results (the arithmetic is the shared __host__ __device__ code of Float.h, Convert.h and
// QuantMath.h), operating on device pointers.
//
// Streams: `stream` is a cudaStream_t (nullptr = the default stream); it is void* here so that
// this header needs no CUDA headers. castTensor, affineTensor and dequantize only enqueue work.
// quantize and requantize synchronise `stream` once at the end, because finding NaN/Inf in the
// input is a status they must return. Without a GPU (or in a build without CUDA) every call
// returns KernelErrc::NoDevice.
//
// Differences from the CPU entry points: castTensor on the device handles floating-point dtypes
// (F64 F32 F16 BF16 F8_E4M3 F8_E5M2, F8_E8M0 as a source) and same-dtype copies of any dtype;
// integer conversions are UnsupportedCast here (they are rare and small: use cpu::castTensor).
// QuantOptions::exec is ignored.
#pragma once

#include "base/DType.h"
#include "kernels/Quant.h"
#include "kernels/Status.h"

#include <cstddef>
#include <cstdint>

namespace ckptmap::cuda {

/// True when the CUDA runtime sees at least one GPU (false in a build without CUDA).
bool cudaAvailable();

KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n, void* stream = nullptr);

KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n, double scale,
                          double shift, void* stream = nullptr);

/// As cpu::transpose (kernels/Layout.h); `shape` and `perm` are host arrays.
KernelStatus transpose(const void* src, void* dst, const int64_t* shape, const int64_t* perm, size_t rank,
                       size_t elemBytes, void* stream = nullptr);

/// amax(|W|) of a device tensor, returned to the host; NonFinite on NaN/Inf.
KernelStatus amax(DType in, const void* src, size_t n, float& result, void* stream = nullptr);

KernelStatus quantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                      const QuantOptions& opt = {}, void* stream = nullptr);
KernelStatus quantizeExperts(DType in, const void* src, size_t experts, size_t rows, size_t cols,
                             const QuantOut& out, const QuantOptions& opt = {}, void* stream = nullptr);

/// QuantRef::globalScale (NVFP4) and the FP8 per-tensor scale are device pointers too.
KernelStatus dequantize(const QuantRef& in, size_t rows, size_t cols, DType out, void* dst,
                        void* stream = nullptr);
KernelStatus dequantizeExperts(const QuantRef& in, size_t experts, size_t rows, size_t cols, DType out,
                               void* dst, void* stream = nullptr);

/// Dequantize to `via` in `scratch` (device memory of rows * cols elements; allocated when
/// null), then quantize: the same bits as the two calls (and as cpu::requantize).
KernelStatus requantize(const QuantRef& in, size_t rows, size_t cols, const QuantOut& out,
                        const QuantOptions& opt = {}, DType via = DType::F32, void* scratch = nullptr,
                        void* stream = nullptr);

} // namespace ckptmap::cuda
