#include "compiler/quant/QuantType.h"

#include "compiler/TensorMeta.h"

namespace ckptmap {

static constexpr std::pair<QuantKind, const char *> kKindNames[] = {
    {QuantKind::None, "none"},         {QuantKind::Nvfp4, "nvfp4"}, {QuantKind::Fp8Tensor, "fp8"},
    {QuantKind::Fp8Block, "fp8-block"}, {QuantKind::Mxfp8, "mxfp8"}};

llvm::StringRef quantKindName(QuantKind k) {
  for (auto [kind, name] : kKindNames)
    if (kind == k)
      return name;
  return "?";
}

std::optional<QuantKind> parseQuantKind(llvm::StringRef name) {
  for (auto [kind, n] : kKindNames)
    if (name == n)
      return kind;
  // The rule language writes the format as a word, where '-' cannot go.
  if (name == "fp8_block")
    return QuantKind::Fp8Block;
  return std::nullopt;
}

int64_t QuantType::groupCols() const {
  switch (kind) {
  case QuantKind::Nvfp4: return 16;
  case QuantKind::Mxfp8: return 32;
  case QuantKind::Fp8Block: return 128;
  default: return 1;
  }
}

std::string describe(const QuantType &q) {
  std::string out = quantKindName(q.kind).str();
  if (q.kind == QuantKind::Nvfp4 && q.naming == QuantNaming::CompressedTensors)
    out += " (compressed-tensors)";
  if (q.kind == QuantKind::Fp8Block && q.scaleDType != DType::F32)
    out += " (" + std::string(dtypeName(q.scaleDType)) + " scales)";
  return out;
}

DType quantDataType(QuantKind kind) { return kind == QuantKind::Nvfp4 ? DType::U8 : DType::F8_E4M3; }

int64_t blockScaleRows(int64_t rows, llvm::ArrayRef<int64_t> groups) {
  if (groups.empty())
    return (rows + 127) / 128;
  int64_t n = 0;
  for (int64_t g : groups)
    n += (g + 127) / 128;
  return n;
}

/// FP8 block scale rows covering logical rows [0, row) of groups `groups`.
static int64_t blockRowsBefore(int64_t row, llvm::ArrayRef<int64_t> groups, int64_t rows) {
  std::vector<int64_t> all = groups.empty() ? std::vector<int64_t>{rows} : std::vector<int64_t>(groups.begin(), groups.end());
  int64_t blocks = 0;
  for (int64_t g : all) {
    int64_t take = std::min(g, row);
    blocks += (take + 127) / 128;
    row -= take;
    if (row <= 0)
      break;
  }
  return blocks;
}

PartCut partCut(const QuantType &q, llvm::ArrayRef<int64_t> shape, const QuantPart &part, int64_t dim, int64_t start,
                int64_t count) {
  int64_t rank = int64_t(shape.size());
  PartCut cut{false, dim, start, count};
  if (dim < rank - 2) // experts: every part has one entry per matrix
    return cut;
  if (part.role == QuantRole::GlobalScale || part.role == QuantRole::InputScale)
    return PartCut{true, 0, 0, 0};
  bool cols = dim == rank - 1;
  if (part.role == QuantRole::Data) {
    if (cols && q.kind == QuantKind::Nvfp4)
      cut.start /= 2, cut.count /= 2;
    return cut;
  }
  // Block scales: one per block of groupCols() columns; FP8 block grids also group rows.
  if (cols) {
    int64_t g = q.groupCols();
    cut.start = start / g;
    cut.count = (start + count + g - 1) / g - cut.start;
  } else if (q.kind == QuantKind::Fp8Block) {
    int64_t rows = shape[rank - 2];
    cut.start = blockRowsBefore(start, q.rowGroups, rows);
    cut.count = blockRowsBefore(start + count, q.rowGroups, rows) - cut.start;
  }
  return cut;
}

static llvm::Error bad(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message.c_str());
}

llvm::Expected<std::vector<QuantPart>> quantParts(const QuantType &q, llvm::ArrayRef<int64_t> shape) {
  if (shape.size() != 2 && shape.size() != 3)
    return bad(describe(q) + " needs a [rows, cols] or [experts, rows, cols] weight, not " + formatShape(shape));
  llvm::SmallVector<int64_t, 4> lead(shape.begin(), shape.end() - 2);
  int64_t rows = shape[shape.size() - 2], cols = shape.back();
  auto with = [&](std::initializer_list<int64_t> tail) {
    llvm::SmallVector<int64_t, 4> s = lead;
    s.append(tail.begin(), tail.end());
    return s;
  };
  // One global or input scale per matrix: a scalar, or one per expert.
  llvm::SmallVector<int64_t, 4> perMatrix = lead;
  bool ct = q.naming == QuantNaming::CompressedTensors;
  if (ct && perMatrix.empty())
    perMatrix.push_back(1); // compressed-tensors stores [1]
  std::vector<QuantPart> parts;
  int64_t group = q.groupCols();
  if (q.kind != QuantKind::Fp8Tensor && q.kind != QuantKind::Fp8Block && cols % group != 0)
    return bad(describe(q) + " needs the column count to be a multiple of " + std::to_string(group) + ", not " +
               std::to_string(cols));
  switch (q.kind) {
  case QuantKind::None:
    return bad("not quantized");
  case QuantKind::Nvfp4:
    parts.push_back({QuantRole::Data, ct ? "weight_packed" : "weight", DType::U8, with({rows, cols / 2})});
    parts.push_back({QuantRole::BlockScale, "weight_scale", DType::F8_E4M3, with({rows, cols / 16})});
    parts.push_back({QuantRole::GlobalScale, ct ? "weight_global_scale" : "weight_scale_2", DType::F32, perMatrix});
    if (q.inputScale)
      parts.push_back({QuantRole::InputScale, ct ? "input_global_scale" : "input_scale", DType::F32, perMatrix});
    break;
  case QuantKind::Fp8Tensor:
    parts.push_back({QuantRole::Data, "weight", DType::F8_E4M3, with({rows, cols})});
    parts.push_back({QuantRole::GlobalScale, "weight_scale", DType::F32, perMatrix});
    if (q.inputScale)
      parts.push_back({QuantRole::InputScale, "input_scale", DType::F32, perMatrix});
    break;
  case QuantKind::Fp8Block:
    parts.push_back({QuantRole::Data, "weight", DType::F8_E4M3, with({rows, cols})});
    parts.push_back({QuantRole::BlockScale, "weight_scale_inv", q.scaleDType,
                     with({blockScaleRows(rows, q.rowGroups), (cols + 127) / 128})});
    break;
  case QuantKind::Mxfp8:
    parts.push_back({QuantRole::Data, "weight", DType::F8_E4M3, with({rows, cols})});
    parts.push_back({QuantRole::BlockScale, "weight_scale_inv", DType::U8, with({rows, cols / 32})});
    break;
  }
  return parts;
}

std::optional<WeightName> splitWeightName(llvm::StringRef name) {
  size_t dot = name.rfind('.');
  WeightName out;
  out.module = dot == llvm::StringRef::npos ? "" : name.take_front(dot);
  llvm::StringRef last = dot == llvm::StringRef::npos ? name : name.drop_front(dot + 1);
  for (llvm::StringRef stem : {"weight_packed", "weight"}) {
    if (!last.startswith(stem))
      continue;
    llvm::StringRef index = last.drop_front(stem.size());
    if (!llvm::all_of(index, [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    out.packed = stem == "weight_packed";
    out.index = index;
    return out;
  }
  return std::nullopt;
}

llvm::StringRef moduleOf(llvm::StringRef tensor) {
  auto weight = splitWeightName(tensor);
  return weight ? weight->module : tensor;
}

std::string quantPartName(llvm::StringRef logicalName, const QuantPart &part) {
  if (auto w = splitWeightName(logicalName); w && !w->packed)
    return (w->module.empty() ? "" : w->module.str() + ".") + part.suffix + w->index.str();
  // A fused tensor named without ".weight" ("experts.gate_up_proj"): its scales sit beside
  // it with the part's suffix ("experts.gate_up_proj_weight_scale").
  return part.suffix == "weight" ? logicalName.str() : logicalName.str() + "_" + part.suffix;
}
} // namespace ckptmap
