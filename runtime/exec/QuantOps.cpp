#include "runtime/exec/QuantOps.h"

#include "kernels/Convert.h"
#include "kernels/Quant.h"
#include "kernels/QuantMath.h"

#include <cmath>
#include <cstring>

namespace ckptmap {

namespace {

llvm::Error failed(const char *what, const KernelStatus &status) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s failed: %s", what, status.message().c_str());
}

QuantFormat formatOf(QuantKind kind) {
  switch (kind) {
  case QuantKind::Nvfp4: return QuantFormat::Nvfp4;
  case QuantKind::Fp8Tensor: return QuantFormat::Fp8Tensor;
  case QuantKind::Fp8Block: return QuantFormat::Fp8Block;
  default: return QuantFormat::Mxfp8;
  }
}

/// One matrix the kernels see: an expert's rows, or one row group of an FP8 block grid.
struct Matrix {
  int64_t expert, row0, rows, scaleRow0;
};

/// How a quantized type's parts are laid out, and the matrices it is made of.
struct Geometry {
  std::vector<QuantPart> parts;
  int64_t experts = 1, rows = 0, cols = 0;
  std::vector<Matrix> matrices;

  explicit Geometry(const ValueType &t) {
    auto p = quantParts(t.quant, t.shape);
    if (p)
      parts = std::move(*p);
    else
      llvm::consumeError(p.takeError());
    size_t rank = t.shape.size();
    experts = rank == 3 ? t.shape[0] : 1;
    rows = t.shape[rank - 2];
    cols = t.shape[rank - 1];
    std::vector<int64_t> groups = t.quant.rowGroups.empty() ? std::vector<int64_t>{rows} : t.quant.rowGroups;
    for (int64_t e = 0; e < experts; ++e) {
      int64_t row0 = 0, scaleRow0 = 0;
      for (int64_t g : groups) {
        matrices.push_back({e, row0, g, scaleRow0});
        row0 += g;
        scaleRow0 += (g + 127) / 128;
      }
    }
  }
  int index(QuantRole role) const {
    for (size_t i = 0; i < parts.size(); ++i)
      if (parts[i].role == role)
        return int(i);
    return -1;
  }
  /// Byte offset of matrix `m`'s first element in part `i`.
  size_t offset(size_t i, const Matrix &m, bool fp8Block) const {
    const QuantPart &p = parts[i];
    size_t elem = dtypeSize(p.dtype);
    if (p.role == QuantRole::GlobalScale || p.role == QuantRole::InputScale)
      return size_t(m.expert) * elem;
    int64_t partRows = p.shape[p.shape.size() - 2], partCols = p.shape.back();
    int64_t row = p.role == QuantRole::BlockScale && fp8Block ? m.scaleRow0 : m.row0;
    return (size_t(m.expert) * partRows + row) * partCols * elem;
  }
};

ValueType plainType(const QuantPart &p) { return ValueType{p.dtype, Shape(p.shape.begin(), p.shape.end()), {}}; }

/// A part's bytes in one run, kept alive by `holder`.
const uint8_t *bytesOf(RtValue &bundle, int i, std::vector<RtValue> &holder) {
  holder.push_back(bundle.parts()[i]);
  return holder.back().contiguous().data();
}

/// Global scales as ModelOpt's weight_scale_2 (compressed-tensors stores their inverse).
std::vector<float> modelOptGlobals(const float *stored, int64_t n, QuantNaming naming) {
  std::vector<float> out(stored, stored + n);
  if (naming == QuantNaming::CompressedTensors)
    for (float &x : out)
      x = invertGlobalScale(x);
  return out;
}

/// The first scale a dequantizer would multiply by that is not a positive finite number
/// (NVFP4's weight_scale_2 may also be 0: an all-zero tensor), which would fill the output with
/// NaN, infinities or flipped signs. `values` are the scales as the kernels use them.
llvm::Error checkScales(llvm::ArrayRef<float> values, bool zeroAllowed, const QuantPart &part, llvm::StringRef tensor) {
  for (size_t i = 0; i < values.size(); ++i) {
    float x = values[i];
    if (fp::isFinite(x) && !std::signbit(x) && (x > 0 || zeroAllowed))
      continue;
    std::string name = tensor.empty() ? part.suffix : quantPartName(tensor, part);
    // Where it sits in a grid of scales: (row, col), or (expert, row, col) in a stack.
    std::string where;
    if (part.shape.size() >= 2) {
      int64_t cols = part.shape.back(), rows = part.shape[part.shape.size() - 2];
      where = " (" + (part.shape.size() == 3 ? "expert " + std::to_string(int64_t(i) / (rows * cols)) + ", " : "") +
              "row " + std::to_string(int64_t(i) / cols % rows) + ", col " + std::to_string(int64_t(i) % cols) + ")";
    }
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "'%s': element %zu%s is %g; a quantization scale must be finite and positive",
                                   name.c_str(), i, where.c_str(), double(x));
  }
  return llvm::Error::success();
}

/// A block scale part's values as F32; MXFP8 stores them as E8M0 exponent bytes (U8).
std::vector<float> scaleValues(const uint8_t *raw, size_t count, DType dtype, QuantKind kind) {
  std::vector<float> out(count);
  if (kind == QuantKind::Mxfp8) {
    for (size_t i = 0; i < count; ++i)
      out[i] = fp::e8m0ToF32(raw[i]);
    return out;
  }
  visitDType(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (conv::kIsF32Exact<T>)
      for (size_t i = 0; i < count; ++i) {
        T v;
        std::memcpy(&v, raw + i * sizeof(T), sizeof(T));
        out[i] = conv::toF32(v);
      }
  });
  return out;
}

} // namespace

llvm::Expected<RtValue> dequantizeValue(RtValue &in, DType to, KernelBackend &kernels, llvm::StringRef name) {
  const ValueType &t = in.type();
  Geometry g(t);
  std::vector<RtValue> holder;
  int di = g.index(QuantRole::Data), si = g.index(QuantRole::BlockScale), gi = g.index(QuantRole::GlobalScale);
  const uint8_t *data = bytesOf(in, di, holder);
  const uint8_t *scales = si >= 0 ? bytesOf(in, si, holder) : nullptr;
  if (si >= 0) {
    const QuantPart &p = g.parts[size_t(si)];
    if (auto e = checkScales(scaleValues(scales, size_t(numElements(p.shape)), p.dtype, t.quant.kind), false, p, name))
      return e;
  }
  std::vector<float> globals;
  if (gi >= 0) {
    const uint8_t *raw = bytesOf(in, gi, holder);
    std::vector<float> stored(size_t(g.experts));
    std::memcpy(stored.data(), raw, stored.size() * sizeof(float));
    globals = modelOptGlobals(stored.data(), g.experts, t.quant.naming);
    if (auto e = checkScales(globals, t.quant.kind == QuantKind::Nvfp4, g.parts[size_t(gi)], name))
      return e;
  }
  size_t elem = dtypeSize(to);
  std::vector<uint8_t> out(size_t(numElements(t.shape)) * elem);
  bool fp8Block = t.quant.kind == QuantKind::Fp8Block;
  for (const Matrix &m : g.matrices) {
    QuantRef ref{formatOf(t.quant.kind), data + g.offset(di, m, fp8Block), nullptr, t.quant.scaleDType, nullptr};
    if (t.quant.kind == QuantKind::Fp8Tensor)
      ref.scale = &globals[size_t(m.expert)];
    else
      ref.scale = scales + g.offset(si, m, fp8Block);
    if (t.quant.kind == QuantKind::Nvfp4)
      ref.globalScale = &globals[size_t(m.expert)];
    uint8_t *dst = out.data() + (size_t(m.expert) * g.rows + m.row0) * g.cols * elem;
    KernelStatus s = kernels.dequantize(ref, size_t(m.rows), size_t(g.cols), to, dst);
    if (!s)
      return failed("dequantize", s);
  }
  return RtValue(ValueType{to, t.shape, {}}, TensorBytes::owned(std::move(out)));
}

llvm::Expected<RtValue> quantizeValue(RtValue &in, const ValueType &target, KernelBackend &kernels,
                                      llvm::ArrayRef<float> globals, const RtValue *inputScale) {
  Geometry g(target);
  if (g.parts.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "cannot quantize %s to %s",
                                   formatShape(target.shape).c_str(), describe(target.quant).c_str());
  std::vector<std::vector<uint8_t>> bytes;
  for (const QuantPart &p : g.parts)
    bytes.emplace_back(size_t(numElements(p.shape)) * dtypeSize(p.dtype));
  int di = g.index(QuantRole::Data), si = g.index(QuantRole::BlockScale), gi = g.index(QuantRole::GlobalScale),
      ii = g.index(QuantRole::InputScale);
  const uint8_t *src = in.contiguous().data();
  size_t elem = dtypeSize(in.type().dtype);
  bool fp8Block = target.quant.kind == QuantKind::Fp8Block;
  for (const Matrix &m : g.matrices) {
    QuantOptions options;
    if (!globals.empty())
      options.globalScale = globals[size_t(m.expert)];
    QuantOut out{formatOf(target.quant.kind), bytes[di].data() + g.offset(di, m, fp8Block), nullptr,
                 target.quant.scaleDType, nullptr};
    float *global = gi >= 0 ? reinterpret_cast<float *>(bytes[gi].data() + g.offset(gi, m, fp8Block)) : nullptr;
    if (target.quant.kind == QuantKind::Fp8Tensor)
      out.scale = global;
    else
      out.scale = bytes[si].data() + g.offset(si, m, fp8Block);
    if (target.quant.kind == QuantKind::Nvfp4)
      out.globalScale = global;
    const uint8_t *from = src + (size_t(m.expert) * g.rows + m.row0) * g.cols * elem;
    KernelStatus s = kernels.quantize(in.type().dtype, from, size_t(m.rows), size_t(g.cols), out, options);
    if (!s)
      return failed("quantize", s);
  }
  if (gi >= 0 && target.quant.naming == QuantNaming::CompressedTensors)
    for (size_t at = 0; at < bytes[gi].size(); at += sizeof(float)) {
      float x;
      std::memcpy(&x, bytes[gi].data() + at, sizeof x);
      x = invertGlobalScale(x);
      std::memcpy(bytes[gi].data() + at, &x, sizeof x);
    }
  std::vector<RtValue> parts;
  for (size_t i = 0; i < g.parts.size(); ++i) {
    if (int(i) == ii) {
      if (!inputScale)
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "an input_scale cannot be computed from weights; it must come from the input");
      parts.push_back(inputScale->retyped(plainType(g.parts[i])));
      continue;
    }
    parts.push_back(RtValue(plainType(g.parts[i]), TensorBytes::owned(std::move(bytes[i]))));
  }
  return RtValue::bundle(target, std::move(parts));
}

llvm::Expected<RtValue> renameQuantized(RtValue &in, const ValueType &target, bool &exact) {
  Geometry from(in.type()), to(target);
  if (from.parts.size() != to.parts.size())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "cannot rename %s as %s",
                                   describe(in.type().quant).c_str(), describe(target.quant).c_str());
  bool invert = in.type().quant.naming != target.quant.naming;
  std::vector<RtValue> parts;
  for (size_t i = 0; i < from.parts.size(); ++i) {
    QuantRole role = from.parts[i].role;
    if (!invert || (role != QuantRole::GlobalScale && role != QuantRole::InputScale)) {
      parts.push_back(in.parts()[i].retyped(plainType(to.parts[i])));
      continue;
    }
    RtValue copy = in.parts()[i];
    llvm::ArrayRef<uint8_t> raw = copy.contiguous();
    std::vector<uint8_t> out(raw.begin(), raw.end());
    for (size_t at = 0; at < out.size(); at += sizeof(float)) {
      float x;
      std::memcpy(&x, out.data() + at, sizeof x);
      exact = exact && globalScaleRoundTrips(x);
      x = invertGlobalScale(x);
      std::memcpy(out.data() + at, &x, sizeof x);
    }
    parts.push_back(RtValue(plainType(to.parts[i]), TensorBytes::owned(std::move(out))));
  }
  return RtValue::bundle(target, std::move(parts));
}

std::vector<const RtValue *> sharedScales(const RtValue &bundle) {
  Geometry g(bundle.type());
  std::vector<const RtValue *> out;
  for (size_t i = 0; i < g.parts.size(); ++i)
    if (g.parts[i].role == QuantRole::GlobalScale || g.parts[i].role == QuantRole::InputScale)
      out.push_back(&bundle.parts()[i]);
  return out;
}

std::vector<float> largestGlobalScales(llvm::ArrayRef<RtValue *> bundles) {
  std::vector<float> best;
  for (RtValue *b : bundles) {
    Geometry g(b->type());
    int gi = g.index(QuantRole::GlobalScale);
    if (gi < 0)
      continue;
    RtValue copy = b->parts()[gi];
    llvm::ArrayRef<uint8_t> raw = copy.contiguous();
    std::vector<float> stored(raw.size() / sizeof(float));
    std::memcpy(stored.data(), raw.data(), stored.size() * sizeof(float));
    std::vector<float> mine = modelOptGlobals(stored.data(), int64_t(stored.size()), b->type().quant.naming);
    best.resize(std::max(best.size(), mine.size()), 0.0f);
    for (size_t i = 0; i < mine.size(); ++i)
      best[i] = std::max(best[i], mine[i]);
  }
  return best;
}

std::optional<RtValue> largestInputScale(llvm::ArrayRef<RtValue *> bundles) {
  std::vector<float> stored, value; // the winners as stored, and as ModelOpt's scales
  std::optional<ValueType> type;
  for (RtValue *b : bundles) {
    Geometry g(b->type());
    int ii = g.index(QuantRole::InputScale);
    if (ii < 0)
      return std::nullopt;
    type = plainType(g.parts[size_t(ii)]);
    RtValue copy = b->parts()[size_t(ii)];
    llvm::ArrayRef<uint8_t> raw = copy.contiguous();
    std::vector<float> mine(raw.size() / sizeof(float));
    std::memcpy(mine.data(), raw.data(), mine.size() * sizeof(float));
    std::vector<float> real = modelOptGlobals(mine.data(), int64_t(mine.size()), b->type().quant.naming);
    if (stored.empty()) {
      stored = mine;
      value = real;
    }
    for (size_t i = 0; i < std::min(real.size(), value.size()); ++i)
      if (real[i] > value[i]) {
        value[i] = real[i];
        stored[i] = mine[i];
      }
  }
  if (!type)
    return std::nullopt;
  std::vector<uint8_t> bytes(stored.size() * sizeof(float));
  std::memcpy(bytes.data(), stored.data(), bytes.size());
  return RtValue(*type, TensorBytes::owned(std::move(bytes)));
}

llvm::Expected<std::vector<float>> sharedQuantScales(llvm::ArrayRef<RtValue *> plain, QuantKind kind,
                                                     KernelBackend &kernels) {
  if (kind != QuantKind::Nvfp4 && kind != QuantKind::Fp8Tensor)
    return std::vector<float>{};
  std::vector<float> amax;
  for (RtValue *v : plain) {
    const ValueType &t = v->type();
    size_t experts = t.shape.size() == 3 ? size_t(t.shape[0]) : 1;
    size_t n = size_t(numElements(t.shape)) / experts;
    const uint8_t *data = v->contiguous().data();
    amax.resize(std::max(amax.size(), experts), 0.0f);
    for (size_t e = 0; e < experts; ++e) {
      float a = 0;
      KernelStatus s = kernels.amax(t.dtype, data + e * n * dtypeSize(t.dtype), n, size_t(t.shape.back()), a);
      if (!s)
        return failed("quantize", s);
      amax[e] = std::max(amax[e], a);
    }
  }
  for (float &a : amax)
    a = kind == QuantKind::Nvfp4 ? qmath::nvfp4GlobalScale(a) : qmath::fp8Scale(a);
  return amax;
}
} // namespace ckptmap
