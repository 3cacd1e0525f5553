#include "compiler/plan/Shapes.h"

#include <numeric>

namespace ckptmap {

std::string formatType(const ValueType &t) {
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

llvm::Expected<std::vector<ValueType>> inferOutputs(const Instr &instr, llvm::ArrayRef<ValueType> in,
                                                    llvm::ArrayRef<ValueType> declared) {
  auto arity = [&](size_t nin, size_t nout) -> llvm::Error {
    if (in.size() != nin || (nout != size_t(-1) && declared.size() != nout))
      return fail(instr, "takes " + std::to_string(nin) + " inputs and gives " + std::to_string(nout) + " outputs");
    return llvm::Error::success();
  };
  switch (instr.op) {
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
        if ((*out)[i].dtype != declared[i].dtype || (*out)[i].shape != declared[i].shape)
          return llvm::createStringError(llvm::inconvertibleErrorCode(), "plan step %s: %s gives %s, the plan says %s",
                                         step.rule.c_str(), instrOpName(instr.op).str().c_str(),
                                         formatType((*out)[i]).c_str(), formatType(declared[i]).c_str());
    }
  }
  return llvm::Error::success();
}

} // namespace ckptmap
