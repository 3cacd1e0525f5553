#include "compiler/quant/Grouping.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <algorithm>
#include <cstring>

namespace ckptmap {

namespace {

/// Candidate formats for a data tensor, most specific first.
std::vector<QuantType> candidates(const TensorMeta &data, bool packedName) {
  std::vector<QuantType> out;
  auto add = [&](QuantKind kind, QuantNaming naming, DType scale = DType::F32) {
    QuantType q;
    q.kind = kind;
    q.naming = naming;
    q.scaleDType = scale;
    out.push_back(q);
  };
  if (packedName) {
    add(QuantKind::Nvfp4, QuantNaming::CompressedTensors);
    return out;
  }
  if (data.dtype == DType::U8) {
    add(QuantKind::Nvfp4, QuantNaming::ModelOpt);
  } else if (data.dtype == DType::F8_E4M3) {
    add(QuantKind::Fp8Block, QuantNaming::ModelOpt, DType::F32);
    add(QuantKind::Fp8Block, QuantNaming::ModelOpt, DType::BF16);
    add(QuantKind::Mxfp8, QuantNaming::ModelOpt);
    add(QuantKind::Fp8Tensor, QuantNaming::ModelOpt);
  }
  return out;
}

/// The logical shape of a data tensor: NVFP4 packs two elements per byte.
llvm::SmallVector<int64_t, 4> logicalShape(const TensorMeta &data, QuantKind kind) {
  llvm::SmallVector<int64_t, 4> s = data.shape;
  if (kind == QuantKind::Nvfp4 && !s.empty())
    s.back() *= 2;
  return s;
}

} // namespace

std::vector<TensorMeta> groupQuantized(llvm::ArrayRef<TensorMeta> stored, const RowGroupHints &rowGroups) {
  llvm::StringMap<const TensorMeta *> byName;
  for (const TensorMeta &t : stored)
    byName[t.name] = &t;
  llvm::StringSet<> taken;
  std::vector<TensorMeta> out;

  // Claims the parts of `data` for the first format whose parts are all present.
  auto group = [&](const TensorMeta &data, bool packed, const std::string &logical) {
    for (QuantType q : candidates(data, packed)) {
      llvm::SmallVector<int64_t, 4> shape = logicalShape(data, q.kind);
      for (bool input : {true, false}) { // the input scale is optional: try with it first
        // Block-scaled formats have no activation scale: "with it" would be the same parts.
        if (input && (q.kind == QuantKind::Fp8Block || q.kind == QuantKind::Mxfp8))
          continue;
        q.inputScale = input;
        std::vector<QuantType> tries = {q};
        auto hint = rowGroups.find(logical);
        if (q.kind == QuantKind::Fp8Block && hint != rowGroups.end()) {
          tries.front().rowGroups = hint->second;
        } else if (q.kind == QuantKind::Fp8Block && shape.size() >= 2 && shape[shape.size() - 2] % 256 != 0 &&
                   shape[shape.size() - 2] % 2 == 0) {
          // An FP8 block grid of two halves each rounded up to 128 rows: a fused [gate; up].
          QuantType halves = q;
          int64_t half = shape[shape.size() - 2] / 2;
          halves.rowGroups = {half, half};
          tries.push_back(halves);
        }
        for (const QuantType &attempt : tries) {
          auto parts = quantParts(attempt, shape);
          if (!parts) {
            llvm::consumeError(parts.takeError());
            continue;
          }
          bool complete = llvm::all_of(*parts, [&](const QuantPart &p) {
            auto it = byName.find(quantPartName(logical, p));
            return it != byName.end() && !taken.count(it->getKey()) && it->second->dtype == p.dtype &&
                   llvm::ArrayRef<int64_t>(it->second->shape) == llvm::ArrayRef<int64_t>(p.shape);
          });
          if (!complete)
            continue;
          for (const QuantPart &p : *parts)
            taken.insert(quantPartName(logical, p));
          out.push_back(TensorMeta{logical, data.dtype, Shape(shape.begin(), shape.end()), attempt});
          return;
        }
      }
    }
  };
  // Logical tensors keep the stored order: a weight takes its data part's place.
  llvm::StringMap<size_t> grouped;
  for (const TensorMeta &t : stored) {
    if (t.dtype != DType::U8 && t.dtype != DType::F8_E4M3)
      continue;
    auto w = splitWeightName(t.name);
    std::string logical = w ? (w->module.empty() ? "" : w->module.str() + ".") + "weight" + w->index.str() : t.name;
    size_t before = out.size();
    group(t, w && w->packed, logical);
    if (out.size() > before)
      grouped[t.name] = before;
  }
  std::vector<TensorMeta> ordered;
  ordered.reserve(stored.size());
  for (const TensorMeta &t : stored) {
    auto g = grouped.find(t.name);
    if (g != grouped.end())
      ordered.push_back(std::move(out[g->second]));
    else if (!taken.count(t.name))
      ordered.push_back(t);
  }
  return ordered;
}

std::vector<TensorMeta> expandQuantized(llvm::ArrayRef<TensorMeta> logical) {
  std::vector<TensorMeta> out;
  for (const TensorMeta &t : logical) {
    if (!t.quant.quantized()) {
      out.push_back(t);
      continue;
    }
    auto parts = quantParts(t.quant, t.shape);
    if (!parts) { // a logical tensor the grouping made always has valid parts
      llvm::consumeError(parts.takeError());
      continue;
    }
    for (const QuantPart &p : *parts)
      out.push_back(TensorMeta{quantPartName(t.name, p), p.dtype, Shape(p.shape.begin(), p.shape.end()), {}});
  }
  return out;
}

} // namespace ckptmap
