#include "compiler/plan/Planner.h"

#include "compiler/plan/Shapes.h"
#include "compiler/quant/Grouping.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"

#include <map>
#include <numeric>

namespace ckptmap {

namespace {

/// Builds one step's SSA program, remembering what each value is called in messages.
class StepBuilder {
public:
  uint32_t value(ValueType type, std::string label) {
    step.values.push_back(std::move(type));
    labels.push_back(std::move(label));
    return uint32_t(step.values.size() - 1);
  }
  const ValueType &type(uint32_t v) const { return step.values[v]; }
  const std::string &label(uint32_t v) const { return labels[v]; }

  Step step;
  std::vector<std::string> labels;
};

class Planner {
public:
  Planner(const Binding &binding, const PlanInputs &inputs, DiagnosticEngine &diags)
      : binding_(binding), inputs_(inputs), diags_(diags) {
    for (const TensorMeta &t : inputs.source)
      source_[t.name] = &t;
    for (const TensorMeta &t : inputs.stash)
      stash_[t.name] = &t;
  }

  std::optional<Plan> run();

private:
  std::optional<uint32_t> fuse(StepBuilder &b, const BoundTerm &term);
  bool split(StepBuilder &b, const BoundTerm &term, uint32_t value);
  /// Emits an instruction whose outputs `inferOutputs` derives; reports at `range`.
  std::optional<std::vector<uint32_t>> emit(StepBuilder &b, Instr instr, llvm::ArrayRef<ValueType> declared,
                                            llvm::ArrayRef<std::string> outLabels, SourceRange range);
  std::string where(SourceRange range) const {
    return range.valid() ? diags_.sources().format(range.begin) : "";
  }
  void addStep(StepBuilder &&b);
  void store(StepBuilder &b, const std::string &name, uint32_t value, SourceRange range);

  const Binding &binding_;
  const PlanInputs &inputs_;
  DiagnosticEngine &diags_;
  llvm::StringMap<const TensorMeta *> source_, stash_;
  Plan plan_;
  /// Output name -> (step index, where it was produced).
  llvm::StringMap<std::pair<size_t, SourceRange>> produced_;
  llvm::StringMap<std::vector<SourceRange>> consumed_;
  llvm::StringMap<bool> loaded_;
  size_t currentStep_ = 0;
  bool ok_ = true;
};

std::optional<std::vector<uint32_t>> Planner::emit(StepBuilder &b, Instr instr, llvm::ArrayRef<ValueType> declared,
                                                   llvm::ArrayRef<std::string> outLabels, SourceRange range) {
  std::vector<ValueType> in;
  for (uint32_t v : instr.in)
    in.push_back(b.type(v));
  auto out = inferOutputs(instr, in, declared);
  if (!out) {
    std::vector<std::string> names;
    for (uint32_t v : instr.in)
      names.push_back("'" + b.label(v) + "'");
    diags_.error(range, llvm::toString(out.takeError()) + (names.empty() ? "" : " (from " + llvm::join(names, ", ") + ")"));
    ok_ = false;
    return std::nullopt;
  }
  for (size_t i = 0; i < out->size(); ++i)
    instr.out.push_back(b.value((*out)[i], i < outLabels.size() ? outLabels[i] : instrOpName(instr.op).str()));
  std::vector<uint32_t> ids = instr.out;
  b.step.instrs.push_back(std::move(instr));
  return ids;
}

/// Whether every value of `from` is exactly a value of `to`.
static bool widens(DType from, DType to) {
  if (from == to)
    return true;
  switch (from) {
  case DType::BF16:
  case DType::F16: return to == DType::F32 || to == DType::F64;
  case DType::F32: return to == DType::F64;
  case DType::F8_E4M3:
  case DType::F8_E5M2: return to == DType::F16 || to == DType::BF16 || to == DType::F32 || to == DType::F64;
  default: return false;
  }
}

static int64_t paramInt(const BoundTerm &t, const char *name, int64_t fallback = 0) {
  int i = paramIndex(*t.op, name);
  return i >= 0 && !t.params[i].is_null() ? t.params[i].get<int64_t>() : fallback;
}
static double paramFloat(const BoundTerm &t, const char *name, double fallback) {
  int i = paramIndex(*t.op, name);
  return i >= 0 && !t.params[i].is_null() ? t.params[i].get<double>() : fallback;
}
static bool paramBool(const BoundTerm &t, const char *name) {
  int i = paramIndex(*t.op, name);
  return i >= 0 && !t.params[i].is_null() && t.params[i].get<bool>();
}
static const Value &param(const BoundTerm &t, const char *name) {
  static const Value null;
  int i = paramIndex(*t.op, name);
  return i >= 0 ? t.params[i] : null;
}
static Shape shapeOf(const Value &list) {
  Shape s;
  for (const Value &v : list)
    s.push_back(v.get<int64_t>());
  return s;
}

/// The value a quantize or dequantize op turns `in` (called `label`) into: `quantize` true
/// when this direction quantizes. The op's format and plain dtype (`from` of quantize, `to`
/// of dequantize, BF16 when not given) say what each side must be.
static llvm::Expected<ValueType> quantConversion(const BoundTerm &term, bool quantize, const ValueType &in,
                                                 const std::string &label) {
  QuantType format;
  format.kind = *parseQuantKind(param(term, "format").get<std::string>());
  const char *plainParam = term.op->kind == OpKind::Quantize ? "from" : "to";
  const Value &plainName = param(term, plainParam);
  DType plain = plainName.is_null() ? DType::BF16 : *parseDType(plainName.get<std::string>());
  auto fail = [&](const std::string &m) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: '%s' %s", quantize ? "quantize" : "dequantize",
                                   label.c_str(), m.c_str());
  };
  if (quantize) {
    if (in.quant.quantized())
      return fail("is already quantized (" + formatType(in) + ")");
    if (in.dtype != plain)
      return fail("is " + std::string(dtypeName(in.dtype)) + " but the rule states " + plainParam + ": " +
                  std::string(dtypeName(plain)));
    return quantizedValue(format, in.shape);
  }
  if (in.quant.kind != format.kind)
    return fail("is " + formatType(in) + ", not " + quantKindName(format.kind).str());
  return ValueType{plain, in.shape, {}};
}

std::optional<uint32_t> Planner::fuse(StepBuilder &b, const BoundTerm &term) {
  if (term.isTensor()) {
    std::string name = term.name.str();
    auto it = source_.find(name);
    if (it == source_.end()) {
      diags_.error(term.range, "tensor '" + name + "' is not in the checkpoint");
      ok_ = false;
      return std::nullopt;
    }
    const TensorMeta &meta = *it->second;
    uint32_t v = b.value(typeOf(meta), name);
    Instr load;
    load.op = InstrOp::Load;
    load.tensor = name;
    load.out = {v};
    b.step.instrs.push_back(load);
    consumed_[name].push_back(term.range);
    loaded_[name] = true;
    return v;
  }
  std::vector<uint32_t> parts;
  for (const BoundTerm &operand : term.operands) {
    auto v = fuse(b, operand);
    if (!v)
      return std::nullopt;
    parts.push_back(*v);
  }
  const OpInfo &op = *term.op;
  Instr instr;
  instr.in = parts;
  instr.requantize = paramBool(term, "requantize");
  std::vector<ValueType> declared(1);
  std::string label = std::string(op.name) + "(" + b.label(parts[0]) + (parts.size() > 1 ? ", ..." : "") + ")";
  switch (op.kind) {
  case OpKind::Concat: {
    instr.op = InstrOp::Concat;
    instr.dim = paramInt(term, "dim");
    for (size_t i = 0; i < parts.size(); ++i) {
      const ValueType &t = b.type(parts[i]);
      if (!term.sizes[i] || instr.dim < 0 || instr.dim >= int64_t(t.shape.size()))
        continue;
      // A stated size is a claim about the tensor: check it rather than trust it. The error
      // points at the size and shows what it was computed from (usually config values).
      if (t.shape[instr.dim] != *term.sizes[i]) {
        SourceRange at = i < term.sizeRanges.size() && term.sizeRanges[i].valid() ? term.sizeRanges[i] : term.range;
        Diagnostic &d = diags_.error(at, "concat: '" + b.label(parts[i]) + "' has " + std::to_string(t.shape[instr.dim]) +
                                             " along dim " + std::to_string(instr.dim) + " but the rule states " +
                                             std::to_string(*term.sizes[i]));
        if (i < term.sizeValues.size() && !term.sizeValues[i].empty())
          d.note("with " + term.sizeValues[i]);
        ok_ = false;
        return std::nullopt;
      }
    }
    break;
  }
  case OpKind::Gated: {
    instr.op = InstrOp::Concat;
    instr.dim = 0;
    const ValueType &g = b.type(parts[0]), &u = b.type(parts[1]);
    if (g.shape != u.shape) {
      diags_.error(term.range, "gated: gate '" + b.label(parts[0]) + "' is " + formatShape(g.shape) + " but up '" +
                                   b.label(parts[1]) + "' is " + formatShape(u.shape));
      ok_ = false;
      return std::nullopt;
    }
    break;
  }
  case OpKind::Qkv: {
    instr.op = InstrOp::QkvFuse;
    instr.heads = paramInt(term, "heads");
    instr.groups = paramInt(term, "groups");
    instr.gate = paramBool(term, "gate");
    const ValueType &k = b.type(parts[1]);
    if (k.shape.empty() || instr.groups <= 0 || k.shape[0] % instr.groups != 0) {
      diags_.error(term.range, "qkv: k '" + b.label(parts[1]) + "' has " + (k.shape.empty() ? "no" : std::to_string(k.shape[0])) +
                                   " rows, not a multiple of groups = " + std::to_string(instr.groups));
      ok_ = false;
      return std::nullopt;
    }
    instr.headDim = k.shape[0] / instr.groups;
    break;
  }
  case OpKind::Stack:
    instr.op = InstrOp::Stack;
    break;
  case OpKind::Transpose: {
    instr.op = InstrOp::Transpose;
    size_t rank = b.type(parts[0]).shape.size();
    if (!param(term, "perm").is_null()) {
      instr.perm = param(term, "perm").get<std::vector<int64_t>>();
    } else {
      for (size_t d = 0; d < rank; ++d)
        instr.perm.push_back(int64_t(d));
      if (rank >= 2)
        std::swap(instr.perm[rank - 1], instr.perm[rank - 2]);
    }
    break;
  }
  case OpKind::Reshape: {
    instr.op = InstrOp::Reshape;
    Shape from = shapeOf(param(term, "from"));
    if (b.type(parts[0]).shape != from) {
      diags_.error(term.range, "reshape: '" + b.label(parts[0]) + "' is " + formatShape(b.type(parts[0]).shape) +
                                   " but the rule states from: " + formatShape(from));
      ok_ = false;
      return std::nullopt;
    }
    declared[0] = ValueType{b.type(parts[0]).dtype, shapeOf(param(term, "to"))};
    break;
  }
  case OpKind::Cast: {
    instr.op = InstrOp::Cast;
    DType from = *parseDType(param(term, "from").get<std::string>());
    if (b.type(parts[0]).dtype != from) {
      diags_.error(term.range, "cast: '" + b.label(parts[0]) + "' is " + std::string(dtypeName(b.type(parts[0]).dtype)) +
                                   " but the rule states from: " + std::string(dtypeName(from)));
      ok_ = false;
      return std::nullopt;
    }
    declared[0] = ValueType{*parseDType(param(term, "to").get<std::string>()), b.type(parts[0]).shape};
    if (!widens(from, declared[0].dtype))
      b.step.lossless = false;
    break;
  }
  case OpKind::Affine:
    instr.op = InstrOp::Affine;
    instr.scale = paramFloat(term, "scale", 1.0);
    instr.shift = paramFloat(term, "shift", 0.0);
    break;
  case OpKind::Quantize:
  case OpKind::Dequantize: {
    bool quantize = op.kind == OpKind::Quantize;
    auto out = quantConversion(term, quantize, b.type(parts[0]), b.label(parts[0]));
    if (!out) {
      diags_.error(term.range, llvm::toString(out.takeError()));
      ok_ = false;
      return std::nullopt;
    }
    instr.op = quantize ? InstrOp::Quantize : InstrOp::Dequantize;
    declared[0] = std::move(*out);
    break;
  }
  }
  if (!op.lossless && op.kind != OpKind::Cast)
    b.step.lossless = false;
  auto out = emit(b, std::move(instr), declared, {label}, term.range);
  if (!out)
    return std::nullopt;
  return out->front();
}

void Planner::store(StepBuilder &b, const std::string &name, uint32_t value, SourceRange range) {
  Instr instr;
  instr.op = InstrOp::Store;
  instr.tensor = name;
  instr.in = {value};
  b.step.instrs.push_back(instr);
  auto [it, inserted] = produced_.try_emplace(name, currentStep_, range);
  if (!inserted) {
    if (it->second.second.begin == range.begin)
      diags_.error(range, "output '" + name + "' is produced by more than one instance of this rule");
    else
      diags_.error(range, "output '" + name + "' is produced more than once")
          .note("it is also produced here", it->second.second);
    ok_ = false;
    return;
  }
  const ValueType &t = b.type(value);
  plan_.outputs.push_back(metaOf(name, t));
}

bool Planner::split(StepBuilder &b, const BoundTerm &term, uint32_t value) {
  if (term.isTensor()) {
    store(b, term.name.str(), value, term.range);
    return true;
  }
  const OpInfo &op = *term.op;
  const ValueType type = b.type(value);
  const std::string whole = b.label(value);
  Instr instr;
  instr.in = {value};
  std::vector<ValueType> declared(term.operands.size());
  std::vector<std::string> labels;
  for (size_t i = 0; i < term.operands.size(); ++i)
    labels.push_back(term.operands[i].isTensor() ? term.operands[i].name.str()
                                                 : "part " + std::to_string(i) + " of '" + whole + "'");
  auto error = [&](const std::string &message) {
    diags_.error(term.range, message);
    ok_ = false;
    return false;
  };
  switch (op.kind) {
  case OpKind::Concat: {
    instr.op = InstrOp::Split;
    instr.dim = paramInt(term, "dim");
    if (instr.dim < 0 || instr.dim >= int64_t(type.shape.size()))
      return error("split: dim " + std::to_string(instr.dim) + " is out of range for '" + whole + "' " + formatShape(type.shape));
    int64_t known = 0;
    size_t unknown = 0;
    for (const auto &s : term.sizes) {
      if (s)
        known += *s;
      else
        ++unknown;
    }
    if (unknown > 1)
      return error("split of '" + whole + "' along dim " + std::to_string(instr.dim) + " needs the size of each part: " +
                   std::to_string(unknown) + " parts state none (write `part : size`)");
    for (const auto &s : term.sizes)
      instr.sizes.push_back(s ? *s : type.shape[instr.dim] - known);
    if (unknown == 1 && instr.sizes.end() != std::find_if(instr.sizes.begin(), instr.sizes.end(), [](int64_t s) { return s < 0; }))
      return error("split: the stated sizes add up to " + std::to_string(known) + ", more than '" + whole + "' has along dim " +
                   std::to_string(instr.dim) + " (" + std::to_string(type.shape[instr.dim]) + ")");
    break;
  }
  case OpKind::Gated:
    instr.op = InstrOp::Split;
    instr.dim = 0;
    if (type.shape.empty() || type.shape[0] % 2 != 0)
      return error("split_gated: '" + whole + "' " + formatShape(type.shape) + " does not have an even number of rows");
    instr.sizes = {type.shape[0] / 2, type.shape[0] / 2};
    break;
  case OpKind::Qkv: {
    instr.op = InstrOp::QkvSplit;
    instr.heads = paramInt(term, "heads");
    instr.groups = paramInt(term, "groups");
    instr.gate = paramBool(term, "gate");
    int64_t perHead = instr.heads * (instr.gate ? 2 : 1) + 2 * instr.groups;
    if (type.shape.empty() || perHead <= 0 || type.shape[0] % perHead != 0)
      return error("split_qkv: '" + whole + "' has " + (type.shape.empty() ? "no" : std::to_string(type.shape[0])) +
                   " rows, not a multiple of " + std::to_string(perHead) + " (heads " + std::to_string(instr.heads) +
                   (instr.gate ? " with gates" : "") + " + 2 x groups " + std::to_string(instr.groups) + ")");
    instr.headDim = type.shape[0] / perHead;
    break;
  }
  case OpKind::Stack:
    instr.op = InstrOp::Unstack;
    if (type.shape.empty() || type.shape[0] != int64_t(term.operands.size()))
      return error("unstack: '" + whole + "' " + formatShape(type.shape) + " does not have " +
                   std::to_string(term.operands.size()) + " entries along dim 0");
    break;
  case OpKind::Transpose: {
    instr.op = InstrOp::Transpose;
    size_t rank = type.shape.size();
    std::vector<int64_t> perm;
    if (!param(term, "perm").is_null()) {
      perm = param(term, "perm").get<std::vector<int64_t>>();
    } else {
      for (size_t d = 0; d < rank; ++d)
        perm.push_back(int64_t(d));
      if (rank >= 2)
        std::swap(perm[rank - 1], perm[rank - 2]);
    }
    if (perm.size() != rank)
      return error("transpose: perm has " + std::to_string(perm.size()) + " entries for '" + whole + "' " + formatShape(type.shape));
    instr.perm.assign(rank, 0);
    for (size_t d = 0; d < rank; ++d) {
      if (perm[d] < 0 || perm[d] >= int64_t(rank))
        return error("transpose: perm is not a permutation");
      instr.perm[perm[d]] = int64_t(d); // the inverse permutation
    }
    break;
  }
  case OpKind::Reshape: {
    instr.op = InstrOp::Reshape;
    Shape to = shapeOf(param(term, "to"));
    if (type.shape != to)
      return error("reshape: '" + whole + "' is " + formatShape(type.shape) + " but the rule states to: " + formatShape(to));
    declared[0] = ValueType{type.dtype, shapeOf(param(term, "from"))};
    break;
  }
  case OpKind::Cast: {
    instr.op = InstrOp::Cast;
    DType to = *parseDType(param(term, "to").get<std::string>());
    if (type.dtype != to)
      return error("cast: '" + whole + "' is " + std::string(dtypeName(type.dtype)) + " but the rule states to: " +
                   std::string(dtypeName(to)));
    declared[0] = ValueType{*parseDType(param(term, "from").get<std::string>()), type.shape};
    if (!widens(to, declared[0].dtype))
      b.step.lossless = false;
    break;
  }
  case OpKind::Affine: {
    instr.op = InstrOp::Affine;
    double scale = paramFloat(term, "scale", 1.0), shift = paramFloat(term, "shift", 0.0);
    if (scale == 0)
      return error("affine: scale 0 has no inverse");
    instr.scale = 1.0 / scale;
    instr.shift = -shift / scale;
    break;
  }
  case OpKind::Quantize:
  case OpKind::Dequantize: {
    // The way back of quantize dequantizes, and of dequantize quantizes.
    bool quantize = op.kind == OpKind::Dequantize;
    auto out = quantConversion(term, quantize, type, whole);
    if (!out)
      return error(llvm::toString(out.takeError()));
    instr.op = quantize ? InstrOp::Quantize : InstrOp::Dequantize;
    declared[0] = std::move(*out);
    break;
  }
  }
  if (!op.lossless && op.kind != OpKind::Cast)
    b.step.lossless = false;
  auto outs = emit(b, std::move(instr), declared, labels, term.range);
  if (!outs)
    return false;
  for (size_t i = 0; i < term.operands.size(); ++i)
    if (!split(b, term.operands[i], (*outs)[i]))
      return false;
  return true;
}

void Planner::addStep(StepBuilder &&b) {
  plan_.steps.push_back(std::move(b.step));
  ++currentStep_;
}

static std::string summarize(const BoundRule &rule) {
  const BoundTerm &op = rule.source.isTensor() ? rule.target : rule.source;
  if (op.isTensor())
    return "rename";
  return rule.source.isTensor() ? op.op->inverseName : op.op->name;
}

std::optional<Plan> Planner::run() {
  plan_.from = binding_.from;
  plan_.to = binding_.to;
  plan_.params = binding_.params;
  plan_.choices = binding_.choices;

  for (const BoundRule &rule : binding_.rules) {
    StepBuilder b;
    b.step.rule = where(rule.stmt ? rule.stmt->range() : rule.fallback->range());
    b.step.summary = summarize(rule);
    b.step.variants = rule.variantTrail;
    auto value = fuse(b, rule.source);
    if (!value)
      continue;
    if (!split(b, rule.target, *value))
      continue;
    addStep(std::move(b));
  }

  for (const BoundDrop &drop : binding_.drops) {
    std::string rule = where(drop.stmt->range());
    if (drop.consumes) {
      consumed_[drop.name].push_back(drop.stmt->range());
      plan_.drops.push_back(PlanDrop{drop.name, drop.stmt->reason, rule});
      if (drop.copyOf.empty())
        continue;
      // The dropped tensor is meant to duplicate another: keep it aside where it does not,
      // so the way back restores it exactly.
      StepBuilder b;
      b.step.rule = rule;
      b.step.summary = "keep aside if different";
      const TensorMeta &a = *source_[drop.name], &c = *source_[drop.copyOf];
      uint32_t va = b.value(typeOf(a), a.name), vc = b.value(typeOf(c), c.name);
      Instr la(InstrOp::Load), lc(InstrOp::Load), st(InstrOp::Stash);
      la.tensor = a.name;
      la.out = {va};
      lc.tensor = c.name;
      lc.out = {vc};
      st.tensor = a.name;
      st.in = {va, vc};
      if (a.dtype != c.dtype || a.shape != c.shape || a.quant != c.quant) {
        diags_.error(drop.stmt->range(), "'" + a.name + "' (" + std::string(dtypeName(a.dtype)) + " " + formatShape(a.shape) +
                                             ") cannot be a copy of '" + c.name + "' (" + std::string(dtypeName(c.dtype)) + " " +
                                             formatShape(c.shape) + ")");
        ok_ = false;
        continue;
      }
      b.step.instrs = {la, lc, st};
      loaded_[a.name] = loaded_[c.name] = true;
      addStep(std::move(b));
      continue;
    }
    StepBuilder b;
    b.step.rule = rule;
    if (drop.fill) {
      b.step.summary = "fill";
      Instr fill(InstrOp::Fill);
      fill.value = drop.fillValue;
      ValueType t{*parseDType(drop.fillDType), Shape(drop.fillShape.begin(), drop.fillShape.end())};
      fill.out = {b.value(t, drop.name)};
      b.step.instrs.push_back(fill);
      store(b, drop.name, fill.out[0], drop.stmt->range());
      addStep(std::move(b));
    } else if (drop.fromStash) {
      auto it = stash_.find(drop.name);
      if (it == stash_.end()) {
        diags_.error(drop.stmt->range(), "'" + drop.name + "' is not among the tensors kept aside");
        ok_ = false;
        continue;
      }
      b.step.summary = "restore kept-aside tensor";
      Instr load(InstrOp::Load);
      load.tensor = drop.name;
      load.source = LoadSource::Stash;
      load.out = {b.value(typeOf(*it->second), drop.name)};
      b.step.instrs.push_back(load);
      store(b, drop.name, load.out[0], drop.stmt->range());
      addStep(std::move(b));
    } else {
      // A copy of another output: the step producing that output stores its value twice.
      auto it = produced_.find(drop.copyOf);
      if (it == produced_.end()) {
        diags_.error(drop.stmt->range(), "cannot restore '" + drop.name + "' as a copy of '" + drop.copyOf +
                                             "': no rule produces '" + drop.copyOf + "'");
        ok_ = false;
        continue;
      }
      Step &producer = plan_.steps[it->second.first];
      uint32_t value = 0;
      for (const Instr &i : producer.instrs)
        if (i.op == InstrOp::Store && i.tensor == drop.copyOf)
          value = i.in[0];
      StepBuilder copy;
      copy.step = std::move(producer);
      copy.labels.assign(copy.step.values.size(), drop.copyOf);
      size_t index = it->second.first;
      size_t saved = currentStep_;
      currentStep_ = index;
      store(copy, drop.name, value, drop.stmt->range());
      currentStep_ = saved;
      plan_.steps[index] = std::move(copy.step);
    }
  }

  // `restore from base`: each --hf-base tensor goes to the first restore that names it, the
  // `otherwise drop`s after all others, under the restore's spelling of the output.
  llvm::StringSet<> takenFromBase;
  for (bool fallbacks : {false, true})
    for (const BaseRestore &restore : binding_.fromBase) {
      const ast::DropStmt &stmt = *restore.stmt;
      if (stmt.fallback != fallbacks)
        continue;
      if (!inputs_.haveBase) {
        plan_.gaps.push_back(PlanGap{restore.target.display(), stmt.reason, where(stmt.range()), true});
        continue;
      }
      size_t taken = 0;
      for (const TensorMeta &t : inputs_.base) {
        llvm::StringMap<std::string> captures;
        if (takenFromBase.contains(t.name) ||
            llvm::none_of(restore.sources, [&](const NameTemplate &s) { return s.match(t.name, captures); }))
          continue;
        takenFromBase.insert(t.name);
        StepBuilder b;
        b.step.rule = where(stmt.range());
        b.step.summary = "copy from --hf-base";
        Instr load(InstrOp::Load);
        load.tensor = t.name;
        load.source = LoadSource::Base;
        load.out = {b.value(typeOf(t), t.name)};
        b.step.instrs.push_back(load);
        store(b, restore.target.instantiate(captures).str(), load.out[0], stmt.range());
        addStep(std::move(b));
        ++taken;
      }
      // Most likely a base in another layout than the output: what it holds is not written.
      if (!taken)
        diags_.warning(stmt.range(), "no tensor of --hf-base matches '" +
                                         (restore.sources.size() == 1 ? restore.sources.front().display()
                                                                      : restore.target.display()) +
                                         "'; the output will not have it");
    }
  for (const auto &[pattern, stmt] : binding_.notRestored)
    plan_.gaps.push_back(PlanGap{pattern.display(), stmt->reason, where(stmt->range()), false});

  // Coverage: every source tensor is consumed exactly once.
  for (const auto &entry : consumed_) {
    if (entry.getValue().size() < 2)
      continue;
    const SourceRange &first = entry.getValue()[0], &second = entry.getValue()[1];
    if (first.begin == second.begin) {
      // One statement, several instances: a loop, a block used twice, or captures.
      diags_.error(second, "tensor '" + entry.getKey().str() + "' is consumed by more than one instance of this rule");
    } else {
      Diagnostic &d = diags_.error(second, "tensor '" + entry.getKey().str() + "' is consumed by more than one rule");
      d.note("it is also consumed here", first);
    }
    ok_ = false;
  }
  std::map<std::string, std::vector<std::string>> uncovered;
  size_t uncoveredCount = 0;
  for (const TensorMeta &t : inputs_.source) {
    if (consumed_.count(t.name))
      continue;
    uncovered[numberPattern(t.name)].push_back(t.name);
    ++uncoveredCount;
  }
  if (uncoveredCount) {
    Diagnostic &d = diags_.error({}, std::to_string(uncoveredCount) + " tensor" + (uncoveredCount == 1 ? "" : "s") +
                                         " of the checkpoint " + (uncoveredCount == 1 ? "is" : "are") +
                                         " not covered by any rule (map or drop each one, with a reason)");
    for (const auto &[shape, names] : uncovered) {
      d.note(names.size() == 1 ? "'" + names[0] + "'"
                               : "'" + shape + "': " + std::to_string(names.size()) + " tensors, e.g. '" + names[0] + "'");
    }
    ok_ = false;
  }
  if (!ok_)
    return std::nullopt;

  for (const TensorMeta &t : inputs_.source)
    if (loaded_.count(t.name))
      plan_.inputs.push_back(t);
  // Sorting positions rather than the tensors moves each output once, not at every merge.
  std::vector<uint32_t> order(plan_.outputs.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::string> keys;
  keys.reserve(order.size());
  for (const TensorMeta &t : plan_.outputs)
    keys.push_back(naturalKey(t.name));
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
  std::vector<TensorMeta> sorted;
  sorted.reserve(order.size());
  for (uint32_t i : order)
    sorted.push_back(std::move(plan_.outputs[i]));
  plan_.outputs = std::move(sorted);
  return std::move(plan_);
}

} // namespace

std::optional<Plan> buildPlan(const Binding &binding, const PlanInputs &inputs, DiagnosticEngine &diags) {
  return Planner(binding, inputs, diags).run();
}

Plan identityPlan(llvm::ArrayRef<TensorMeta> stored, llvm::StringRef convention, const RowGroupHints &rowGroups) {
  Plan plan;
  plan.family = "identity";
  plan.from = plan.to = convention.str();
  for (const TensorMeta &t : groupQuantized(stored, rowGroups)) {
    Step step;
    step.rule = "identity";
    step.summary = "same name";
    step.values = {typeOf(t)};
    Instr load(InstrOp::Load), store(InstrOp::Store);
    load.tensor = store.tensor = t.name;
    load.out = {0};
    store.in = {0};
    step.instrs = {load, store};
    plan.steps.push_back(std::move(step));
    plan.inputs.push_back(t);
    plan.outputs.push_back(t);
  }
  return plan;
}

} // namespace ckptmap
