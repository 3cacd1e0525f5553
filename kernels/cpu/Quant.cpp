#include "kernels/Quant.h"

#include "kernels/Convert.h"
#include "kernels/Errors.h"
#include "kernels/QuantMath.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

namespace ckptmap {

KernelStatus quantShapes(QuantFormat format, size_t rows, size_t cols, QuantShapes& out, DType blockScaleType) {
  auto ceilDiv = [](size_t a, size_t b) { return (a + b - 1) / b; };
  switch (format) {
  case QuantFormat::Nvfp4:
    if (cols % kNvfp4GroupSize)
      return errors::badShape("NVFP4 needs a column count divisible by 16, got " + std::to_string(cols));
    out = {DType::U8, rows, cols / 2, DType::F8_E4M3, rows, cols / kNvfp4GroupSize, true};
    return {};
  case QuantFormat::Fp8Tensor:
    out = {DType::F8_E4M3, rows, cols, DType::F32, 1, 1, false};
    return {};
  case QuantFormat::Fp8Block:
    if (blockScaleType != DType::F32 && blockScaleType != DType::BF16)
      return errors::unsupportedDType("FP8 block scale", blockScaleType);
    out = {DType::F8_E4M3, rows, cols, blockScaleType, ceilDiv(rows, kFp8BlockSize), ceilDiv(cols, kFp8BlockSize),
           false};
    return {};
  case QuantFormat::Mxfp8:
    if (cols % kMxfp8GroupSize)
      return errors::badShape("MXFP8 needs a column count divisible by 32, got " + std::to_string(cols));
    out = {DType::F8_E4M3, rows, cols, DType::U8, rows, cols / kMxfp8GroupSize, false};
    return {};
  }
  return errors::badShape("unknown quantization format");
}

float invertGlobalScale(float x) { return fp::div(1.0f, x); }

bool globalScaleRoundTrips(float x) {
  return fp::bitsOf(invertGlobalScale(invertGlobalScale(x))) == fp::bitsOf(x);
}

namespace cpu {
namespace {

constexpr size_t kGrain = 1 << 16;

/// Per-chunk amax as |x| bits plus the first non-finite index of the chunk.
struct AmaxPart {
  uint32_t bits = 0;
  size_t firstBad = KernelStatus::kNoIndex;
};

template <class T> AmaxPart amaxRange(const T* w, size_t b, size_t e) {
  AmaxPart r;
  for (size_t i = b; i < e; ++i)
    r.bits = std::max(r.bits, fp::absBits(toF32(w[i])));
  if (r.bits >= 0x7F800000u)
    for (size_t i = b; i < e; ++i)
      if (!fp::isFinite(toF32(w[i]))) {
        r.firstBad = i;
        break;
      }
  return r;
}

/// Element index of a non-finite value in a block-structured scan: the first bad element in
/// flat order, found again by a plain scan (only on the error path).
template <class T> KernelStatus nonFiniteIn(const T* w, size_t n, size_t cols) {
  for (size_t i = 0; i < n; ++i)
    if (!fp::isFinite(toF32(w[i])))
      return errors::nonFinite(toF32(w[i]), i, cols);
  return {};
}

template <class Out> void dequantNvfp4(const uint8_t* packed, const uint8_t* scales, float ws2, size_t rows,
                                       size_t cols, Out* dst, const Exec& exec) {
  const size_t blocks = rows * cols / kNvfp4GroupSize;
  parallelFor(blocks, kGrain / kNvfp4GroupSize, exec.threads, [&](size_t, size_t b, size_t e) {
    for (size_t blk = b; blk < e; ++blk) {
      const float d = qmath::nvfp4BlockDivisor(scales[blk], ws2);
      const uint8_t* p = packed + blk * (kNvfp4GroupSize / 2);
      Out* o = dst + blk * kNvfp4GroupSize;
      for (size_t j = 0; j < kNvfp4GroupSize / 2; ++j) {
        o[2 * j] = fromF32<Out>(qmath::nvfp4Dequant(p[j] & 0xFu, d));
        o[2 * j + 1] = fromF32<Out>(qmath::nvfp4Dequant(p[j] >> 4, d));
      }
    }
  });
}

template <class Out>
void dequantFp8(const uint8_t* q, float scale, size_t n, Out* dst, const Exec& exec) {
  parallelFor(n, kGrain, exec.threads, [&](size_t, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      dst[i] = fromF32<Out>(qmath::fp8Dequant(q[i], scale));
  });
}

template <class Out>
void dequantFp8Block(const uint8_t* q, DType scaleType, const void* scaleInv, size_t rows, size_t cols,
                     Out* dst, const Exec& exec) {
  const size_t gridCols = (cols + kFp8BlockSize - 1) / kFp8BlockSize;
  parallelFor(rows, 1, exec.threads, [&](size_t, size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) {
      const size_t srow = (r / kFp8BlockSize) * gridCols;
      for (size_t c = 0; c < cols; ++c) {
        const size_t si = srow + c / kFp8BlockSize;
        const float s = scaleType == DType::BF16 ? fp::bf16ToF32(static_cast<const uint16_t*>(scaleInv)[si])
                                                 : static_cast<const float*>(scaleInv)[si];
        dst[r * cols + c] = fromF32<Out>(qmath::fp8Dequant(q[r * cols + c], s));
      }
    }
  });
}

template <class Out>
void dequantMxfp8(const uint8_t* q, const uint8_t* scales, size_t rows, size_t cols, Out* dst,
                  const Exec& exec) {
  const size_t blocks = rows * cols / kMxfp8GroupSize;
  parallelFor(blocks, kGrain / kMxfp8GroupSize, exec.threads, [&](size_t, size_t b, size_t e) {
    for (size_t blk = b; blk < e; ++blk) {
      const float x = fp::e8m0ToF32(scales[blk]);
      for (size_t j = 0; j < kMxfp8GroupSize; ++j) {
        const size_t i = blk * kMxfp8GroupSize + j;
        dst[i] = fromF32<Out>(qmath::mxfp8Dequant(q[i], x));
      }
    }
  });
}

} // namespace

template <class T> KernelStatus amax(const T* w, size_t n, float& result, size_t cols, const Exec& exec) {
  std::vector<AmaxPart> parts(chunkCount(n, kGrain, exec.threads));
  parallelFor(n, kGrain, exec.threads,
              [&](size_t chunk, size_t b, size_t e) { parts[chunk] = amaxRange(w, b, e); });
  uint32_t bits = 0;
  for (const AmaxPart& p : parts) {
    if (p.firstBad != KernelStatus::kNoIndex)
      return errors::nonFinite(toF32(w[p.firstBad]), p.firstBad, cols);
    bits = std::max(bits, p.bits);
  }
  result = fp::floatOf(bits);
  return {};
}

template <class T>
KernelStatus quantizeNvfp4(const T* w, size_t rows, size_t cols, uint8_t* packed, uint8_t* scales,
                           float* globalScale, const QuantOptions& opt) {
  QuantShapes shapes;
  if (KernelStatus s = quantShapes(QuantFormat::Nvfp4, rows, cols, shapes); !s)
    return s;
  const size_t n = rows * cols;
  float ws2;
  if (opt.globalScale) {
    ws2 = *opt.globalScale;
    float unused;
    if (KernelStatus s = amax(w, n, unused, cols, opt.exec); !s)
      return s;
  } else {
    float a;
    if (KernelStatus s = amax(w, n, a, cols, opt.exec); !s)
      return s;
    ws2 = qmath::nvfp4GlobalScale(a);
  }
  *globalScale = ws2;
  const float ws2x6 = fp::mul(qmath::kE2m1Max, ws2);
  const size_t blocks = n / kNvfp4GroupSize;
  parallelFor(blocks, kGrain / kNvfp4GroupSize, opt.exec.threads, [&](size_t, size_t b, size_t e) {
    for (size_t blk = b; blk < e; ++blk) {
      float v[kNvfp4GroupSize];
      uint32_t bmax = 0;
      for (size_t j = 0; j < kNvfp4GroupSize; ++j) {
        v[j] = toF32(w[blk * kNvfp4GroupSize + j]);
        bmax = std::max(bmax, fp::absBits(v[j]));
      }
      const uint8_t s = qmath::nvfp4BlockScale(fp::floatOf(bmax), ws2x6);
      scales[blk] = s;
      const float d = qmath::nvfp4BlockDivisor(s, ws2);
      uint8_t* p = packed + blk * (kNvfp4GroupSize / 2);
      for (size_t j = 0; j < kNvfp4GroupSize / 2; ++j)
        p[j] = static_cast<uint8_t>(qmath::nvfp4Code(v[2 * j], d) | (qmath::nvfp4Code(v[2 * j + 1], d) << 4));
    }
  });
  return {};
}

template <class T> KernelStatus quantizeFp8(const T* w, size_t n, uint8_t* q, float* scale, const Exec& exec) {
  return quantizeFp8Scaled(w, n, q, scale, std::nullopt, exec);
}

template <class T>
KernelStatus quantizeFp8Scaled(const T* w, size_t n, uint8_t* q, float* scale, std::optional<float> fixed,
                               const Exec& exec) {
  float a;
  if (KernelStatus s = amax(w, n, a, 0, exec); !s)
    return s;
  const float sc = fixed ? *fixed : qmath::fp8Scale(a);
  *scale = sc;
  parallelFor(n, kGrain, exec.threads, [&](size_t, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      q[i] = qmath::fp8Quant(toF32(w[i]), sc);
  });
  return {};
}

template <class T>
KernelStatus quantizeFp8Block(const T* w, size_t rows, size_t cols, uint8_t* q, DType scaleType, void* scaleInv,
                              const Exec& exec) {
  if (scaleType != DType::F32 && scaleType != DType::BF16)
    return errors::unsupportedDType("FP8 block scale", scaleType);
  const size_t gridRows = (rows + kFp8BlockSize - 1) / kFp8BlockSize;
  const size_t gridCols = (cols + kFp8BlockSize - 1) / kFp8BlockSize;
  std::vector<uint8_t> bad(gridRows, 0);
  parallelFor(gridRows, 1, exec.threads, [&](size_t, size_t gb, size_t ge) {
    for (size_t gr = gb; gr < ge; ++gr) {
      const size_t r0 = gr * kFp8BlockSize, r1 = std::min(rows, r0 + kFp8BlockSize);
      for (size_t gc = 0; gc < gridCols; ++gc) {
        const size_t c0 = gc * kFp8BlockSize, c1 = std::min(cols, c0 + kFp8BlockSize);
        uint32_t bmax = 0;
        for (size_t r = r0; r < r1; ++r)
          for (size_t c = c0; c < c1; ++c)
            bmax = std::max(bmax, fp::absBits(toF32(w[r * cols + c])));
        if (bmax >= 0x7F800000u) {
          bad[gr] = 1;
          continue;
        }
        float sc;
        if (scaleType == DType::BF16) {
          const uint16_t sb = qmath::fp8ScaleBf16(fp::floatOf(bmax));
          static_cast<uint16_t*>(scaleInv)[gr * gridCols + gc] = sb;
          sc = fp::bf16ToF32(sb);
        } else {
          sc = qmath::fp8Scale(fp::floatOf(bmax));
          static_cast<float*>(scaleInv)[gr * gridCols + gc] = sc;
        }
        for (size_t r = r0; r < r1; ++r)
          for (size_t c = c0; c < c1; ++c)
            q[r * cols + c] = qmath::fp8Quant(toF32(w[r * cols + c]), sc);
      }
    }
  });
  if (std::find(bad.begin(), bad.end(), 1) != bad.end())
    return nonFiniteIn(w, rows * cols, cols);
  return {};
}

template <class T>
KernelStatus quantizeMxfp8(const T* w, size_t rows, size_t cols, uint8_t* q, uint8_t* scales, const Exec& exec) {
  QuantShapes shapes;
  if (KernelStatus s = quantShapes(QuantFormat::Mxfp8, rows, cols, shapes); !s)
    return s;
  const size_t blocks = rows * cols / kMxfp8GroupSize;
  std::vector<uint8_t> bad(chunkCount(blocks, kGrain / kMxfp8GroupSize, exec.threads), 0);
  parallelFor(blocks, kGrain / kMxfp8GroupSize, exec.threads, [&](size_t chunk, size_t b, size_t e) {
    for (size_t blk = b; blk < e; ++blk) {
      const T* src = w + blk * kMxfp8GroupSize;
      uint32_t bmax = 0;
      for (size_t j = 0; j < kMxfp8GroupSize; ++j)
        bmax = std::max(bmax, fp::absBits(toF32(src[j])));
      if (bmax >= 0x7F800000u) {
        bad[chunk] = 1;
        continue;
      }
      const uint8_t ex = qmath::mxfp8Exponent(bmax);
      scales[blk] = ex;
      const float x = fp::e8m0ToF32(ex);
      for (size_t j = 0; j < kMxfp8GroupSize; ++j)
        q[blk * kMxfp8GroupSize + j] = qmath::mxfp8Quant(toF32(src[j]), x);
    }
  });
  if (std::find(bad.begin(), bad.end(), 1) != bad.end())
    return nonFiniteIn(w, rows * cols, cols);
  return {};
}

#define CKPTMAP_INSTANTIATE(T)                                                                               \
  template KernelStatus amax<T>(const T*, size_t, float&, size_t, const Exec&);                              \
  template KernelStatus quantizeNvfp4<T>(const T*, size_t, size_t, uint8_t*, uint8_t*, float*,              \
                                         const QuantOptions&);                                               \
  template KernelStatus quantizeFp8<T>(const T*, size_t, uint8_t*, float*, const Exec&);                     \
  template KernelStatus quantizeFp8Scaled<T>(const T*, size_t, uint8_t*, float*, std::optional<float>, const Exec&); \
  template KernelStatus quantizeFp8Block<T>(const T*, size_t, size_t, uint8_t*, DType, void*, const Exec&);  \
  template KernelStatus quantizeMxfp8<T>(const T*, size_t, size_t, uint8_t*, uint8_t*, const Exec&);
CKPTMAP_INSTANTIATE(float)
CKPTMAP_INSTANTIATE(bf16_t)
CKPTMAP_INSTANTIATE(f16_t)
#undef CKPTMAP_INSTANTIATE

KernelStatus quantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                      const QuantOptions& opt) {
  KernelStatus status;
  const bool known = visitQuantDType(in, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* w = static_cast<const T*>(src);
    switch (out.format) {
    case QuantFormat::Nvfp4:
      if (!out.globalScale) {
        status = errors::badShape("NVFP4 quantization needs a global scale output");
        break;
      }
      status = quantizeNvfp4(w, rows, cols, static_cast<uint8_t*>(out.data), static_cast<uint8_t*>(out.scale),
                             out.globalScale, opt);
      break;
    case QuantFormat::Fp8Tensor:
      status = quantizeFp8Scaled(w, rows * cols, static_cast<uint8_t*>(out.data), static_cast<float*>(out.scale),
                                 opt.globalScale, opt.exec);
      break;
    case QuantFormat::Fp8Block:
      status = quantizeFp8Block(w, rows, cols, static_cast<uint8_t*>(out.data), out.scaleType, out.scale, opt.exec);
      break;
    case QuantFormat::Mxfp8:
      status = quantizeMxfp8(w, rows, cols, static_cast<uint8_t*>(out.data), static_cast<uint8_t*>(out.scale), opt.exec);
      break;
    }
  });
  if (!known)
    return errors::unsupportedDType("quantization", in);
  return status;
}

KernelStatus dequantize(const QuantRef& in, size_t rows, size_t cols, DType out, void* dst, const Exec& exec) {
  QuantShapes shapes;
  if (KernelStatus s = quantShapes(in.format, rows, cols, shapes, in.scaleType); !s)
    return s;
  if (in.format == QuantFormat::Nvfp4 && !in.globalScale)
    return errors::badShape("NVFP4 dequantization needs the global scale");
  const uint8_t* data = static_cast<const uint8_t*>(in.data);
  const bool known = visitQuantDType(out, [&](auto tag) {
    using Out = typename decltype(tag)::type;
    Out* o = static_cast<Out*>(dst);
    switch (in.format) {
    case QuantFormat::Nvfp4:
      dequantNvfp4(data, static_cast<const uint8_t*>(in.scale), *in.globalScale, rows, cols, o, exec);
      break;
    case QuantFormat::Fp8Tensor:
      dequantFp8(data, *static_cast<const float*>(in.scale), rows * cols, o, exec);
      break;
    case QuantFormat::Fp8Block:
      dequantFp8Block(data, in.scaleType, in.scale, rows, cols, o, exec);
      break;
    case QuantFormat::Mxfp8:
      dequantMxfp8(data, static_cast<const uint8_t*>(in.scale), rows, cols, o, exec);
      break;
    }
  });
  if (!known)
    return errors::unsupportedDType("dequantization output", out);
  return {};
}

KernelStatus requantize(const QuantRef& in, size_t rows, size_t cols, const QuantOut& out,
                        const QuantOptions& opt, DType via, void* scratch) {
  if (via != DType::F32 && via != DType::BF16 && via != DType::F16)
    return errors::unsupportedDType("requantization intermediate", via);
  std::unique_ptr<std::byte[]> owned;
  if (!scratch) {
    owned = std::make_unique<std::byte[]>(rows * cols * dtypeSize(via));
    scratch = owned.get();
  }
  if (KernelStatus s = dequantize(in, rows, cols, via, scratch, opt.exec); !s)
    return s;
  return quantize(via, scratch, rows, cols, out, opt);
}

namespace {

/// Byte offsets of expert e's parts.
struct ExpertStride {
  size_t data, scale;
};

KernelStatus expertStride(QuantFormat f, DType scaleType, size_t rows, size_t cols, ExpertStride& st) {
  QuantShapes sh;
  if (KernelStatus s = quantShapes(f, rows, cols, sh, scaleType); !s)
    return s;
  st = {sh.dataBytes(), sh.scaleBytes()};
  return {};
}

} // namespace

KernelStatus quantizeExperts(DType in, const void* src, size_t experts, size_t rows, size_t cols,
                             const QuantOut& out, const QuantOptions& opt) {
  ExpertStride st;
  if (KernelStatus s = expertStride(out.format, out.scaleType, rows, cols, st); !s)
    return s;
  const size_t inBytes = rows * cols * dtypeSize(in);
  for (size_t e = 0; e < experts; ++e) {
    QuantOut o = out;
    o.data = static_cast<std::byte*>(out.data) + e * st.data;
    o.scale = static_cast<std::byte*>(out.scale) + e * st.scale;
    if (out.globalScale)
      o.globalScale = out.globalScale + e;
    if (KernelStatus s = quantize(in, static_cast<const std::byte*>(src) + e * inBytes, rows, cols, o, opt); !s)
      return errors::inExpert(s, e);
  }
  return {};
}

KernelStatus dequantizeExperts(const QuantRef& in, size_t experts, size_t rows, size_t cols, DType out, void* dst,
                               const Exec& exec) {
  ExpertStride st;
  if (KernelStatus s = expertStride(in.format, in.scaleType, rows, cols, st); !s)
    return s;
  const size_t outBytes = rows * cols * dtypeSize(out);
  for (size_t e = 0; e < experts; ++e) {
    QuantRef r = in;
    r.data = static_cast<const std::byte*>(in.data) + e * st.data;
    r.scale = static_cast<const std::byte*>(in.scale) + e * st.scale;
    if (in.globalScale)
      r.globalScale = in.globalScale + e;
    if (KernelStatus s = dequantize(r, rows, cols, out, static_cast<std::byte*>(dst) + e * outBytes, exec); !s)
      return errors::inExpert(s, e);
  }
  return {};
}

} // namespace cpu
} // namespace ckptmap
