#include "compiler/quant/Grouping.h"

#include "llvm/ADT/StringMap.h"

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
  // One pass over the names, then work per data tensor only; parts are tracked by position.
  llvm::StringMap<uint32_t> byName(uint32_t(stored.size()));
  for (size_t i = 0; i < stored.size(); ++i)
    byName[stored[i].name] = uint32_t(i);
  std::vector<bool> taken(stored.size());
  auto untaken = [&](const std::string &name) -> const TensorMeta * {
    auto it = byName.find(name);
    return it == byName.end() || taken[it->second] ? nullptr : &stored[it->second];
  };
  std::vector<TensorMeta> out;

  // Claims the parts of `data` for the first format whose parts are all present.
  auto group = [&](const TensorMeta &data, bool packed, const std::string &logical) {
    // Every format has a scale named one of these: without either, none can be complete.
    QuantPart scale{QuantRole::BlockScale, "weight_scale", DType::F32, {}}, scaleInv = scale;
    scaleInv.suffix = "weight_scale_inv";
    if (!untaken(quantPartName(logical, scale)) && !untaken(quantPartName(logical, scaleInv)))
      return;
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
          std::vector<uint32_t> found;
          for (const QuantPart &p : *parts) {
            const TensorMeta *t = untaken(quantPartName(logical, p));
            if (!t || t->dtype != p.dtype || llvm::ArrayRef<int64_t>(t->shape) != llvm::ArrayRef<int64_t>(p.shape))
              break;
            found.push_back(uint32_t(t - stored.data()));
          }
          if (found.size() != parts->size())
            continue;
          for (uint32_t i : found)
            taken[i] = true;
          out.push_back(TensorMeta{logical, data.dtype, Shape(shape.begin(), shape.end()), attempt});
          return;
        }
      }
    }
  };
  // Logical tensors keep the stored order: a weight takes its data part's place.
  std::vector<int64_t> groupOf(stored.size(), -1);
  for (size_t i = 0; i < stored.size(); ++i) {
    const TensorMeta &t = stored[i];
    if (t.dtype != DType::U8 && t.dtype != DType::F8_E4M3)
      continue;
    auto w = splitWeightName(t.name);
    std::string logical = w ? (w->module.empty() ? "" : w->module.str() + ".") + "weight" + w->index.str() : t.name;
    size_t before = out.size();
    group(t, w && w->packed, logical);
    if (out.size() > before)
      groupOf[i] = int64_t(before);
  }
  std::vector<TensorMeta> ordered;
  ordered.reserve(stored.size());
  for (size_t i = 0; i < stored.size(); ++i) {
    if (groupOf[i] >= 0)
      ordered.push_back(std::move(out[size_t(groupOf[i])]));
    else if (!taken[i])
      ordered.push_back(stored[i]);
  }
  return ordered;
}

bool isKvCacheScale(const TensorMeta &t) {
  llvm::StringRef name = t.name;
  return (name.endswith(".k_scale") || name.endswith(".v_scale")) && t.dtype == DType::F32 && t.shape.empty();
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
