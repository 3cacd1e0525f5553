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

std::string quantPartName(llvm::StringRef logicalName, const QuantPart &part) {
  size_t dot = logicalName.rfind('.');
  llvm::StringRef base = dot == llvm::StringRef::npos ? "" : logicalName.take_front(dot + 1);
  return base.str() + part.suffix;
}

} // namespace ckptmap
