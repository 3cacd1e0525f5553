#include "compiler/plan/Shapes.h"

#include <numeric>

namespace ckptmap {

std::string formatType(const ValueType &t) {
  if (t.quant.quantized())
    return describe(t.quant) + " " + formatShape(t.shape);
  return std::string(dtypeName(t.dtype)) + " " + formatShape(t.shape);
}

static llvm::Error fail(const Instr &instr, const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: %s", instrOpName(instr.op).str().c_str(),
                                 message.c_str());
}

/// All inputs share dtype and every dim but `skip` (-1: every dim).
static llvm::Error sameExcept(const Instr &instr, llvm::ArrayRef<ValueType> in, int64_t skip) {
  for (size_t i = 1; i < in.size(); ++i) {
    if (in[i].dtype != in[0].dtype)
      return fail(instr, "parts have different dtypes: " + formatType(in[0]) + " and " + formatType(in[i]));
    if (in[i].shape.size() != in[0].shape.size())
      return fail(instr, "parts have different ranks: " + formatType(in[0]) + " and " + formatType(in[i]));
    for (size_t d = 0; d < in[0].shape.size(); ++d)
      if (int64_t(d) != skip && in[i].shape[d] != in[0].shape[d])
        return fail(instr, "parts differ in dim " + std::to_string(d) + ": " + formatShape(in[0].shape) + " and " +
                               formatShape(in[i].shape));
  }
  return llvm::Error::success();
}

static int64_t qkvRowsPerHead(const Instr &instr) { return instr.gate ? 2 : 1; }

// Quantized values: the op must move every part consistently. Blocks of elements sharing a
// scale cannot be cut, and FP8 block grids of fused parts keep one grid per part.

static bool anyQuantized(llvm::ArrayRef<ValueType> values) {
  return llvm::any_of(values, [](const ValueType &v) { return v.quant.quantized(); });
}

/// Parts joined or compared must share a format (FP8 block grids may differ in rows).
static llvm::Error sameQuant(const Instr &instr, llvm::ArrayRef<ValueType> in) {
  for (const ValueType &v : in) {
    QuantType a = v.quant, b = in[0].quant;
    a.rowGroups.clear();
    b.rowGroups.clear();
    if (a != b)
      return fail(instr, "parts are quantized differently: " + describe(in[0].quant) + " and " + describe(v.quant));
  }
  return llvm::Error::success();
}

/// The row groups of an FP8 block value ([rows] for one regular grid).
static std::vector<int64_t> rowGroupsOf(const ValueType &v) {
  if (!v.quant.rowGroups.empty())
    return v.quant.rowGroups;
  return {v.shape[v.shape.size() - 2]};
}

/// A grid whose groups are all multiples of 128 rows, but for the last, is one regular grid.
static std::vector<int64_t> normalizeGroups(std::vector<int64_t> groups) {
  for (size_t i = 0; i + 1 < groups.size(); ++i)
    if (groups[i] % 128 != 0)
      return groups;
  return {};
}

/// Cuts FP8 block row groups at `sizes`; a cut must fall on a group boundary or on a 128-row
/// block boundary within a group.
static llvm::Expected<std::vector<std::vector<int64_t>>> cutRowGroups(const Instr &instr, std::vector<int64_t> groups,
                                                                      llvm::ArrayRef<int64_t> sizes) {
  std::vector<std::vector<int64_t>> out;
  size_t g = 0;
  int64_t usedInGroup = 0;
  for (int64_t size : sizes) {
    std::vector<int64_t> mine;
    int64_t need = size;
    while (need > 0 && g < groups.size()) {
      int64_t left = groups[g] - usedInGroup;
      int64_t take = std::min(left, need);
      if (take < left && (usedInGroup + take) % 128 != 0)
        return fail(instr, "cutting " + std::to_string(take) + " rows of a " + std::to_string(groups[g]) +
                               "-row FP8 block group splits a 128x128 scale block");
      mine.push_back(take);
      need -= take;
      usedInGroup += take;
      if (usedInGroup == groups[g]) {
        ++g;
        usedInGroup = 0;
      }
    }
    out.push_back(normalizeGroups(mine));
  }
  return out;
}

llvm::Expected<std::vector<ValueType>> inferOutputs(const Instr &instr, llvm::ArrayRef<ValueType> in,
                                                    llvm::ArrayRef<ValueType> declared) {
  auto arity = [&](size_t nin, size_t nout) -> llvm::Error {
    if (in.size() != nin || (nout != size_t(-1) && declared.size() != nout))
      return fail(instr, "takes " + std::to_string(nin) + " inputs and gives " + std::to_string(nout) + " outputs");
    return llvm::Error::success();
  };
  // Ops that look at elements one by one cannot see through a quantized encoding.
  bool elementwise = instr.op == InstrOp::Transpose || instr.op == InstrOp::Reshape || instr.op == InstrOp::Cast ||
                     instr.op == InstrOp::Affine;
  if (elementwise && anyQuantized(in))
    return fail(instr, "'" + formatType(in[0]) + "' is quantized; dequantize it first");
  switch (instr.op) {
  case InstrOp::Quantize: {
    // Several values quantized together share their per-matrix scales.
    if (in.empty() || declared.size() != in.size())
      return fail(instr, "gives one quantized value per input");
    for (size_t i = 0; i < in.size(); ++i) {
      if (!declared[i].quant.quantized() || declared[i].shape != in[i].shape)
        return fail(instr, "quantizes to a quantized value of the same shape");
      if (in[i].quant.quantized()) { // another naming of the same numbers
        if (in.size() != 1 || in[i].quant.kind != declared[i].quant.kind)
          return fail(instr, "'" + formatType(in[i]) + "' is quantized; dequantize it first");
      } else if (in[i].dtype != DType::F32 && in[i].dtype != DType::BF16 && in[i].dtype != DType::F16) {
        return fail(instr, "quantizes F32, BF16 or F16, not " + formatType(in[i]));
      }
      if (declared[i].quant.kind != declared[0].quant.kind)
        return fail(instr, "quantizes its inputs to one format");
      auto parts = quantParts(declared[i].quant, declared[i].shape);
      if (!parts)
        return fail(instr, llvm::toString(parts.takeError()));
    }
    return std::vector<ValueType>(declared.begin(), declared.end());
  }
  case InstrOp::Dequantize:
    if (auto e = arity(1, 1)) return e;
    if (!in[0].quant.quantized() || declared[0].quant.quantized() || declared[0].shape != in[0].shape ||
        (declared[0].dtype != DType::F32 && declared[0].dtype != DType::BF16 && declared[0].dtype != DType::F16))
      return fail(instr, "dequantizes a quantized value to F32, BF16 or F16 of the same shape");
    return std::vector<ValueType>{declared[0]};
  case InstrOp::Load:
    if (auto e = arity(0, 1)) return e;
    return std::vector<ValueType>(declared.begin(), declared.end());
  case InstrOp::Store:
  case InstrOp::Stash:
    if (instr.op == InstrOp::Stash) {
      if (auto e = arity(2, 0)) return e;
      if (in[0].dtype != in[1].dtype || in[0].shape != in[1].shape)
        return fail(instr, "compares " + formatType(in[0]) + " with " + formatType(in[1]));
    } else if (auto e = arity(1, 0)) {
      return e;
    }
    return std::vector<ValueType>{};
  case InstrOp::Fill:
    if (auto e = arity(0, 1)) return e;
    return std::vector<ValueType>(declared.begin(), declared.end());
  case InstrOp::Concat: {
    if (in.empty() || declared.size() != 1)
      return fail(instr, "takes parts and gives one output");
    if (instr.dim < 0 || instr.dim >= int64_t(in[0].shape.size()))
      return fail(instr, "dim " + std::to_string(instr.dim) + " is out of range for " + formatType(in[0]));
    if (auto e = sameExcept(instr, in, instr.dim)) return e;
    ValueType out = in[0];
    out.shape[instr.dim] = 0;
    for (const ValueType &v : in)
      out.shape[instr.dim] += v.shape[instr.dim];
    if (anyQuantized(in)) {
      if (auto e = sameQuant(instr, in)) return e;
      const QuantType &q = in[0].quant;
      int64_t rank = int64_t(out.shape.size()), group = q.groupCols();
      if (instr.dim == rank - 1)
        for (size_t i = 0; i + 1 < in.size(); ++i)
          if (in[i].shape.back() % group != 0)
            return fail(instr, "joining " + describe(q) + " parts along their columns needs each part's columns to be a multiple of " +
                                   std::to_string(group) + ", not " + std::to_string(in[i].shape.back()));
      if (q.kind == QuantKind::Fp8Block && instr.dim == rank - 2) {
        std::vector<int64_t> groups;
        for (const ValueType &v : in)
          for (int64_t g : rowGroupsOf(v))
            groups.push_back(g);
        out.quant.rowGroups = normalizeGroups(groups);
      } else if (q.kind == QuantKind::Fp8Block &&
                 llvm::any_of(in, [&](const ValueType &v) { return v.quant.rowGroups != q.rowGroups; })) {
        return fail(instr, "FP8 block parts with different row grids can only be joined along their rows");
      }
    }
    return std::vector<ValueType>{out};
  }
  case InstrOp::Split: {
    if (in.size() != 1 || declared.size() != instr.sizes.size())
      return fail(instr, "gives one output per size");
    if (instr.dim < 0 || instr.dim >= int64_t(in[0].shape.size()))
      return fail(instr, "dim " + std::to_string(instr.dim) + " is out of range for " + formatType(in[0]));
    int64_t total = std::accumulate(instr.sizes.begin(), instr.sizes.end(), int64_t(0));
    if (total != in[0].shape[instr.dim] || llvm::any_of(instr.sizes, [](int64_t s) { return s < 0; }))
      return fail(instr, "sizes add up to " + std::to_string(total) + " but the tensor has " +
                             std::to_string(in[0].shape[instr.dim]) + " along dim " + std::to_string(instr.dim));
    std::vector<ValueType> out;
    for (int64_t s : instr.sizes) {
      ValueType v = in[0];
      v.shape[instr.dim] = s;
      out.push_back(v);
    }
    if (in[0].quant.quantized()) {
      const QuantType &q = in[0].quant;
      int64_t rank = int64_t(in[0].shape.size()), group = q.groupCols();
      if (instr.dim == rank - 1)
        for (size_t i = 0; i + 1 < instr.sizes.size(); ++i)
          if (instr.sizes[i] % group != 0)
            return fail(instr, "cutting " + describe(q) + " columns must keep blocks of " + std::to_string(group) +
                                   " whole; a part of " + std::to_string(instr.sizes[i]) + " columns does not");
      if (q.kind == QuantKind::Fp8Block && instr.dim == rank - 2) {
        auto groups = cutRowGroups(instr, rowGroupsOf(in[0]), instr.sizes);
        if (!groups)
          return groups.takeError();
        for (size_t i = 0; i < out.size(); ++i)
          out[i].quant.rowGroups = (*groups)[i];
      }
    }
    return out;
  }
  case InstrOp::QkvFuse:
  case InstrOp::QkvSplit: {
    bool fuse = instr.op == InstrOp::QkvFuse;
    if (auto e = fuse ? arity(3, 1) : arity(1, 3)) return e;
    if (instr.heads <= 0 || instr.groups <= 0 || instr.headDim <= 0 || instr.heads % instr.groups != 0)
      return fail(instr, "heads " + std::to_string(instr.heads) + " must be a positive multiple of groups " +
                             std::to_string(instr.groups) + ", head_dim positive");
    int64_t qRows = instr.heads * instr.headDim * qkvRowsPerHead(instr);
    int64_t kvRows = instr.groups * instr.headDim;
    auto withRows = [](ValueType v, int64_t rows) {
      v.shape[0] = rows;
      return v;
    };
    if (anyQuantized(in)) {
      if (auto e = sameQuant(instr, in)) return e;
      if (in[0].quant.kind == QuantKind::Fp8Block &&
          (instr.headDim % 128 != 0 || llvm::any_of(in, [](const ValueType &v) { return !v.quant.rowGroups.empty(); })))
        return fail(instr, "FP8 block weights can be regrouped by heads only when a head is a multiple of 128 rows (head_dim " +
                               std::to_string(instr.headDim) + ")");
    }
    if (fuse) {
      if (in[0].shape.empty())
        return fail(instr, "q is a scalar");
      if (auto e = sameExcept(instr, in, 0)) return e;
      if (in[0].shape[0] != qRows || in[1].shape[0] != kvRows || in[2].shape[0] != kvRows)
        return fail(instr, "q, k, v have " + std::to_string(in[0].shape[0]) + ", " + std::to_string(in[1].shape[0]) + ", " +
                               std::to_string(in[2].shape[0]) + " rows; heads " + std::to_string(instr.heads) + ", groups " +
                               std::to_string(instr.groups) + ", head_dim " + std::to_string(instr.headDim) + " need " +
                               std::to_string(qRows) + ", " + std::to_string(kvRows) + ", " + std::to_string(kvRows));
      return std::vector<ValueType>{withRows(in[0], qRows + 2 * kvRows)};
    }
    if (in[0].shape.empty() || in[0].shape[0] != qRows + 2 * kvRows)
      return fail(instr, "the fused tensor " + formatType(in[0]) + " does not have " + std::to_string(qRows + 2 * kvRows) + " rows");
    return std::vector<ValueType>{withRows(in[0], qRows), withRows(in[0], kvRows), withRows(in[0], kvRows)};
  }
  case InstrOp::Stack: {
    if (in.empty() || declared.size() != 1)
      return fail(instr, "takes parts and gives one output");
    if (auto e = sameExcept(instr, in, -1)) return e;
    if (anyQuantized(in)) {
      if (auto e = sameQuant(instr, in)) return e;
      if (llvm::any_of(in, [&](const ValueType &v) { return v.quant.rowGroups != in[0].quant.rowGroups; }))
        return fail(instr, "FP8 block parts with different row grids cannot be stacked");
      if (in[0].shape.size() != 2)
        return fail(instr, "only [rows, cols] quantized weights can be stacked, not " + formatType(in[0]));
    }
    ValueType out = in[0];
    out.shape.insert(out.shape.begin(), int64_t(in.size()));
    return std::vector<ValueType>{out};
  }
  case InstrOp::Unstack: {
    if (in.size() != 1 || in[0].shape.empty() || int64_t(declared.size()) != in[0].shape[0])
      return fail(instr, "gives one output per entry of the leading dim");
    ValueType part = in[0];
    part.shape.erase(part.shape.begin());
    return std::vector<ValueType>(declared.size(), part);
  }
  case InstrOp::Transpose: {
    if (auto e = arity(1, 1)) return e;
    size_t rank = in[0].shape.size();
    std::vector<int64_t> seen(rank, 0);
    if (instr.perm.size() != rank)
      return fail(instr, "perm has " + std::to_string(instr.perm.size()) + " entries for a rank-" + std::to_string(rank) + " tensor");
    ValueType out = in[0];
    for (size_t d = 0; d < rank; ++d) {
      int64_t p = instr.perm[d];
      if (p < 0 || p >= int64_t(rank) || seen[p]++)
        return fail(instr, "perm is not a permutation");
      out.shape[d] = in[0].shape[p];
    }
    return std::vector<ValueType>{out};
  }
  case InstrOp::Reshape:
    if (auto e = arity(1, 1)) return e;
    if (declared[0].dtype != in[0].dtype || numElements(declared[0].shape) != numElements(in[0].shape))
      return fail(instr, "cannot reshape " + formatType(in[0]) + " to " + formatType(declared[0]));
    return std::vector<ValueType>{declared[0]};
  case InstrOp::Cast:
    if (auto e = arity(1, 1)) return e;
    if (declared[0].shape != in[0].shape || !isFloating(in[0].dtype) || !isFloating(declared[0].dtype))
      return fail(instr, "cannot cast " + formatType(in[0]) + " to " + formatType(declared[0]));
    return std::vector<ValueType>{declared[0]};
  case InstrOp::Affine:
    if (auto e = arity(1, 1)) return e;
    if (!isFloating(in[0].dtype))
      return fail(instr, "needs a floating-point tensor, not " + formatType(in[0]));
    return std::vector<ValueType>{in[0]};
  }
  return fail(instr, "unknown instruction");
}

llvm::Error verifyPlanTypes(const Plan &plan) {
  for (const Step &step : plan.steps) {
    std::vector<bool> defined(step.values.size(), false);
    for (const Instr &instr : step.instrs) {
      std::vector<ValueType> in, declared;
      for (uint32_t v : instr.in) {
        if (!defined[v])
          return llvm::createStringError(llvm::inconvertibleErrorCode(), "plan step %s: value %u is used before it is defined",
                                         step.rule.c_str(), v);
        in.push_back(step.values[v]);
      }
      for (uint32_t v : instr.out) {
        if (defined[v])
          return llvm::createStringError(llvm::inconvertibleErrorCode(), "plan step %s: value %u is defined twice",
                                         step.rule.c_str(), v);
        declared.push_back(step.values[v]);
        defined[v] = true;
      }
      auto out = inferOutputs(instr, in, declared);
      if (!out)
        return llvm::createStringError(llvm::inconvertibleErrorCode(), "plan step %s: %s", step.rule.c_str(),
                                       llvm::toString(out.takeError()).c_str());
      for (size_t i = 0; i < out->size(); ++i)
        if ((*out)[i].dtype != declared[i].dtype || (*out)[i].shape != declared[i].shape ||
            (*out)[i].quant != declared[i].quant)
          return llvm::createStringError(llvm::inconvertibleErrorCode(), "plan step %s: %s gives %s, the plan says %s",
                                         step.rule.c_str(), instrOpName(instr.op).str().c_str(),
                                         formatType((*out)[i]).c_str(), formatType(declared[i]).c_str());
    }
  }
  return llvm::Error::success();
}

} // namespace ckptmap
