#include "compiler/plan/Plan.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <limits>
#include <type_traits>

namespace ckptmap {

using json = nlohmann::json;

static constexpr std::pair<InstrOp, const char *> kInstrNames[] = {
    {InstrOp::Quantize, "quantize"},   {InstrOp::Dequantize, "dequantize"},
    {InstrOp::Load, "load"},           {InstrOp::Store, "store"},         {InstrOp::Concat, "concat"},
    {InstrOp::Split, "split"},         {InstrOp::QkvFuse, "qkv_fuse"},    {InstrOp::QkvSplit, "qkv_split"},
    {InstrOp::Stack, "stack"},         {InstrOp::Unstack, "unstack"},     {InstrOp::Transpose, "transpose"},
    {InstrOp::Reshape, "reshape"},     {InstrOp::Cast, "cast"},           {InstrOp::Affine, "affine"},
    {InstrOp::Fill, "fill"},           {InstrOp::Stash, "stash"},
};

llvm::StringRef instrOpName(InstrOp op) {
  for (auto [o, name] : kInstrNames)
    if (o == op)
      return name;
  return "?";
}

std::optional<InstrOp> parseInstrOp(llvm::StringRef name) {
  for (auto [o, n] : kInstrNames)
    if (name == n)
      return o;
  return std::nullopt;
}

static const char *sourceName(LoadSource s) {
  switch (s) {
  case LoadSource::Input: return "input";
  case LoadSource::Stash: return "stash";
  case LoadSource::Base: return "base";
  }
  return "input";
}

uint64_t ValueType::byteSize() const {
  if (!quant.quantized())
    return uint64_t(numElements(shape)) * dtypeSize(dtype);
  auto parts = quantParts(quant, shape);
  if (!parts) {
    llvm::consumeError(parts.takeError());
    return 0;
  }
  uint64_t total = 0;
  for (const QuantPart &p : *parts)
    total += uint64_t(numElements(p.shape)) * dtypeSize(p.dtype);
  return total;
}

json quantToJson(const QuantType &q) {
  json j{{"format", quantKindName(q.kind).str()}};
  if (q.naming == QuantNaming::CompressedTensors)
    j["naming"] = "compressed-tensors";
  if (q.kind == QuantKind::Fp8Block)
    j["scale_dtype"] = std::string(dtypeName(q.scaleDType));
  if (q.inputScale)
    j["input_scale"] = true;
  if (!q.rowGroups.empty())
    j["row_groups"] = q.rowGroups;
  return j;
}

llvm::Expected<QuantType> quantFromJson(const json &j) {
  auto fail = [](const std::string &m) { return llvm::createStringError(llvm::inconvertibleErrorCode(), m.c_str()); };
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string())
    return fail("a quantized value needs {\"format\": ...}");
  QuantType q;
  auto kind = parseQuantKind(j["format"].get<std::string>());
  if (!kind || *kind == QuantKind::None)
    return fail("unknown quantization format '" + j["format"].get<std::string>() + "'");
  q.kind = *kind;
  if (j.contains("naming")) {
    if (!j["naming"].is_string() || (j["naming"] != "modelopt" && j["naming"] != "compressed-tensors"))
      return fail("naming must be \"modelopt\" or \"compressed-tensors\"");
    if (j["naming"] == "compressed-tensors")
      q.naming = QuantNaming::CompressedTensors;
  }
  if (j.contains("scale_dtype")) {
    auto dt = j["scale_dtype"].is_string() ? parseDType(j["scale_dtype"].get<std::string>()) : std::nullopt;
    if (!dt)
      return fail("bad scale_dtype");
    q.scaleDType = *dt;
  }
  if (j.contains("input_scale")) {
    if (!j["input_scale"].is_boolean())
      return fail("input_scale must be true or false");
    q.inputScale = j["input_scale"].get<bool>();
  }
  if (j.contains("row_groups")) {
    if (!j["row_groups"].is_array())
      return fail("row_groups must be a list");
    for (const json &g : j["row_groups"]) {
      if (!g.is_number_integer() || g.get<int64_t>() <= 0)
        return fail("row_groups entries must be positive integers");
      q.rowGroups.push_back(g.get<int64_t>());
    }
  }
  return q;
}

llvm::SmallVector<llvm::StringRef, 1> Step::summaries() const {
  llvm::SmallVector<llvm::StringRef, 1> out;
  llvm::StringRef(summary).split(out, kSummarySeparator);
  return out;
}

uint64_t Step::peakBytes() const {
  // Values live until the step ends; the sum is an upper bound the budget can rely on.
  uint64_t total = 0;
  for (const ValueType &v : values)
    total += v.byteSize();
  return total;
}

uint64_t Plan::outputBytes() const {
  uint64_t total = 0;
  for (const TensorMeta &t : outputs)
    total += t.byteSize();
  return total;
}

bool naturalLess(llvm::StringRef a, llvm::StringRef b) {
  // Names share long prefixes ("decoder.layers.12.mlp.experts..."), and what both have
  // compares equal: start where they differ, or at the digit run that position is in.
  size_t common = std::mismatch(a.begin(), a.begin() + std::min(a.size(), b.size()), b.begin()).first - a.begin();
  while (common > 0 && llvm::isDigit(a[common - 1]))
    --common;
  size_t i = common, j = common;
  while (i < a.size() && j < b.size()) {
    if (llvm::isDigit(a[i]) && llvm::isDigit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && llvm::isDigit(a[ie])) ++ie;
      while (je < b.size() && llvm::isDigit(b[je])) ++je;
      llvm::StringRef na = a.slice(i, ie).ltrim('0'), nb = b.slice(j, je).ltrim('0');
      if (na.size() != nb.size())
        return na.size() < nb.size();
      if (int c = na.compare(nb))
        return c < 0;
      if (ie - i != je - j)
        return ie - i < je - j;
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j])
      return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

std::string naturalKey(llvm::StringRef name) {
  // A digit run becomes its length without leading zeros (one byte from '0' to '8', or '9'
  // and four more), those digits, and its length as written (four bytes): compared against
  // text, the first byte is a digit, as the run's first character would be.
  auto appendLength = [](std::string &out, size_t n) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out += char((n >> shift) & 0xff);
  };
  std::string key;
  key.reserve(name.size() + 16);
  for (size_t i = 0; i < name.size();) {
    if (!llvm::isDigit(name[i])) {
      key += name[i++];
      continue;
    }
    size_t end = i;
    while (end < name.size() && llvm::isDigit(name[end]))
      ++end;
    llvm::StringRef digits = name.slice(i, end).ltrim('0');
    if (digits.size() < 9) {
      key += char('0' + digits.size());
    } else {
      key += '9';
      appendLength(key, digits.size());
    }
    key += digits;
    appendLength(key, end - i);
    i = end;
  }
  return key;
}

static json metaToJson(const TensorMeta &t) {
  json j{{"name", t.name}, {"dtype", std::string(dtypeName(t.dtype))}, {"shape", std::vector<int64_t>(t.shape.begin(), t.shape.end())}};
  if (t.quant.quantized())
    j["quant"] = quantToJson(t.quant);
  return j;
}

static json valueToJson(const ValueType &v) {
  json j = json::array({std::string(dtypeName(v.dtype)), std::vector<int64_t>(v.shape.begin(), v.shape.end())});
  if (v.quant.quantized())
    j.push_back(quantToJson(v.quant));
  return j;
}

json planToJson(const Plan &plan) {
  json out;
  out["version"] = Plan::kVersion;
  out["rulebook"] = plan.rulebook;
  out["family"] = plan.family;
  out["from"] = plan.from;
  out["to"] = plan.to;
  out["params"] = plan.params;
  json choices = json::array();
  for (const ChoiceRecord &c : plan.choices)
    choices.push_back({{"choice", c.choice}, {"where", c.where}, {"variant", c.variant}, {"reason", c.reason}});
  out["choices"] = choices;
  out["inputs"] = json::array();
  for (const TensorMeta &t : plan.inputs)
    out["inputs"].push_back(metaToJson(t));
  out["outputs"] = json::array();
  for (const TensorMeta &t : plan.outputs)
    out["outputs"].push_back(metaToJson(t));
  out["steps"] = json::array();
  for (const Step &s : plan.steps) {
    json step;
    step["rule"] = s.rule;
    step["summary"] = s.summary;
    if (!s.variants.empty())
      step["variants"] = s.variants;
    if (!s.lossless)
      step["lossless"] = false;
    json values = json::array();
    for (const ValueType &v : s.values)
      values.push_back(valueToJson(v));
    step["values"] = values;
    json instrs = json::array();
    for (const Instr &i : s.instrs) {
      json j;
      j["op"] = instrOpName(i.op).str();
      if (!i.in.empty()) j["in"] = i.in;
      if (!i.out.empty()) j["out"] = i.out;
      switch (i.op) {
      case InstrOp::Load:
        j["tensor"] = i.tensor;
        if (i.source != LoadSource::Input) j["source"] = sourceName(i.source);
        break;
      case InstrOp::Store:
      case InstrOp::Stash: j["tensor"] = i.tensor; break;
      case InstrOp::Concat: j["dim"] = i.dim; if (i.requantize) j["requantize"] = true; break;
      case InstrOp::Split: j["dim"] = i.dim; j["sizes"] = i.sizes; break;
      case InstrOp::QkvFuse:
      case InstrOp::QkvSplit:
        j["heads"] = i.heads; j["groups"] = i.groups; j["head_dim"] = i.headDim;
        if (i.gate) j["gate"] = true;
        if (i.requantize) j["requantize"] = true;
        break;
      case InstrOp::Stack: if (i.requantize) j["requantize"] = true; break;
      case InstrOp::Transpose: j["perm"] = i.perm; break;
      case InstrOp::Affine: j["scale"] = i.scale; j["shift"] = i.shift; break;
      case InstrOp::Fill: j["value"] = i.value; break;
      default: break;
      }
      instrs.push_back(j);
    }
    step["instrs"] = instrs;
    out["steps"].push_back(step);
  }
  out["drops"] = json::array();
  for (const PlanDrop &d : plan.drops)
    out["drops"].push_back({{"tensor", d.tensor}, {"reason", d.reason}, {"rule", d.rule}});
  out["gaps"] = json::array();
  for (const PlanGap &g : plan.gaps)
    out["gaps"].push_back({{"pattern", g.pattern}, {"reason", g.reason}, {"rule", g.rule}, {"from_base", g.fromBase}});
  return out;
}

namespace {

/// Reads a plan JSON, keeping the path of what it reads for error messages.
class PlanReader {
public:
  llvm::Error fail(const std::string &where, const std::string &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "plan: %s: %s", where.c_str(), what.c_str());
  }

  llvm::Expected<TensorMeta> meta(const json &j, const std::string &where) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("dtype") ||
        !j["dtype"].is_string() || !j.contains("shape") || !j["shape"].is_array())
      return fail(where, "expected {\"name\", \"dtype\", \"shape\"}");
    TensorMeta t;
    t.name = j["name"].get<std::string>();
    auto dt = parseDType(j["dtype"].get<std::string>());
    if (!dt)
      return fail(where, "unknown dtype '" + j["dtype"].get<std::string>() + "'");
    t.dtype = *dt;
    for (const json &d : j["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        return fail(where, "shape entries must be non-negative integers");
      t.shape.push_back(d.get<int64_t>());
    }
    if (j.contains("quant")) {
      auto q = quantFromJson(j["quant"]);
      if (!q)
        return fail(where, llvm::toString(q.takeError()));
      t.quant = std::move(*q);
    }
    return t;
  }

  template <typename T> llvm::Error get(const json &j, const char *key, T &out, const std::string &where, bool required = true) {
    if (!j.contains(key)) {
      if (required)
        return fail(where, std::string("missing '") + key + "'");
      return llvm::Error::success();
    }
    if (!holds<T>(j[key]))
      return fail(where, std::string("'") + key + "' has the wrong type");
    out = j[key].get<T>();
    return llvm::Error::success();
  }

  /// Whether `v` converts to T without loss (nlohmann would cast a float to an int, or a
  /// negative number to an unsigned one).
  template <typename T> static bool holds(const json &v) {
    if constexpr (std::is_same_v<T, bool>) {
      return v.is_boolean();
    } else if constexpr (std::is_integral_v<T>) {
      if (v.is_number_unsigned())
        return v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
      if (!v.is_number_integer())
        return false;
      int64_t x = v.get<int64_t>();
      return x >= 0 ? uint64_t(x) <= uint64_t(std::numeric_limits<T>::max())
                    : std::is_signed_v<T> && x >= int64_t(std::numeric_limits<T>::min());
    } else if constexpr (std::is_floating_point_v<T>) {
      return v.is_number();
    } else if constexpr (std::is_same_v<T, std::string>) {
      return v.is_string();
    } else {
      return v.is_array() && llvm::all_of(v, [](const json &e) { return holds<typename T::value_type>(e); });
    }
  }

  /// The optional list `key` of objects; `each` reads one, given its path for errors.
  llvm::Error objects(const json &j, const char *key,
                      llvm::function_ref<llvm::Error(const json &, const std::string &)> each) {
    if (!j.contains(key))
      return llvm::Error::success();
    if (!j[key].is_array())
      return fail(key, "not a list");
    for (size_t i = 0; i < j[key].size(); ++i) {
      std::string where = std::string(key) + "[" + std::to_string(i) + "]";
      if (!j[key][i].is_object())
        return fail(where, "not an object");
      if (auto e = each(j[key][i], where))
        return e;
    }
    return llvm::Error::success();
  }
};

} // namespace

llvm::Expected<Plan> planFromJson(const json &j) {
  PlanReader r;
  Plan plan;
  if (!j.is_object())
    return r.fail("top", "not a JSON object");
  int version = 0;
  if (auto e = r.get(j, "version", version, "top")) return e;
  if (version != Plan::kVersion)
    return r.fail("version", "plan version " + std::to_string(version) + " is not supported (this build reads " +
                                 std::to_string(Plan::kVersion) + ")");
  if (auto e = r.get(j, "rulebook", plan.rulebook, "top", false)) return e;
  if (auto e = r.get(j, "family", plan.family, "top", false)) return e;
  if (auto e = r.get(j, "from", plan.from, "top")) return e;
  if (auto e = r.get(j, "to", plan.to, "top")) return e;
  if (j.contains("params"))
    plan.params = j["params"];
  for (const char *key : {"inputs", "outputs", "steps"})
    if (!j.contains(key) || !j[key].is_array())
      return r.fail(key, "missing or not a list");
  for (size_t i = 0; i < j["inputs"].size(); ++i) {
    auto m = r.meta(j["inputs"][i], "inputs[" + std::to_string(i) + "]");
    if (!m) return m.takeError();
    plan.inputs.push_back(std::move(*m));
  }
  for (size_t i = 0; i < j["outputs"].size(); ++i) {
    auto m = r.meta(j["outputs"][i], "outputs[" + std::to_string(i) + "]");
    if (!m) return m.takeError();
    plan.outputs.push_back(std::move(*m));
  }
  if (auto e = r.objects(j, "choices", [&](const json &c, const std::string &where) -> llvm::Error {
        ChoiceRecord choice;
        for (auto [key, out] : {std::pair{"choice", &choice.choice}, {"where", &choice.where},
                                {"variant", &choice.variant}, {"reason", &choice.reason}})
          if (auto e = r.get(c, key, *out, where, false))
            return e;
        plan.choices.push_back(std::move(choice));
        return llvm::Error::success();
      }))
    return e;
  for (size_t si = 0; si < j["steps"].size(); ++si) {
    const json &sj = j["steps"][si];
    std::string where = "steps[" + std::to_string(si) + "]";
    Step step;
    if (auto e = r.get(sj, "rule", step.rule, where, false)) return e;
    if (auto e = r.get(sj, "summary", step.summary, where, false)) return e;
    if (auto e = r.get(sj, "variants", step.variants, where, false)) return e;
    if (auto e = r.get(sj, "lossless", step.lossless, where, false)) return e;
    if (!sj.contains("values") || !sj["values"].is_array() || !sj.contains("instrs") || !sj["instrs"].is_array())
      return r.fail(where, "needs 'values' and 'instrs' lists");
    for (const json &v : sj["values"]) {
      if (!v.is_array() || (v.size() != 2 && v.size() != 3) || !v[0].is_string() || !v[1].is_array())
        return r.fail(where + ".values", "each value is [dtype, shape] or [dtype, shape, quantization]");
      auto dt = parseDType(v[0].get<std::string>());
      if (!dt)
        return r.fail(where + ".values", "unknown dtype '" + v[0].get<std::string>() + "'");
      ValueType vt;
      vt.dtype = *dt;
      for (const json &d : v[1]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0)
          return r.fail(where + ".values", "shape entries must be non-negative integers");
        vt.shape.push_back(d.get<int64_t>());
      }
      if (v.size() == 3) {
        auto q = quantFromJson(v[2]);
        if (!q)
          return r.fail(where + ".values", llvm::toString(q.takeError()));
        vt.quant = std::move(*q);
      }
      step.values.push_back(std::move(vt));
    }
    for (size_t ii = 0; ii < sj["instrs"].size(); ++ii) {
      const json &ij = sj["instrs"][ii];
      std::string iw = where + ".instrs[" + std::to_string(ii) + "]";
      std::string opName;
      if (auto e = r.get(ij, "op", opName, iw)) return e;
      auto op = parseInstrOp(opName);
      if (!op)
        return r.fail(iw, "unknown op '" + opName + "'");
      Instr instr;
      instr.op = *op;
      if (auto e = r.get(ij, "in", instr.in, iw, false)) return e;
      if (auto e = r.get(ij, "out", instr.out, iw, false)) return e;
      for (uint32_t v : instr.in)
        if (v >= step.values.size()) return r.fail(iw, "value " + std::to_string(v) + " does not exist");
      for (uint32_t v : instr.out)
        if (v >= step.values.size()) return r.fail(iw, "value " + std::to_string(v) + " does not exist");
      if (auto e = r.get(ij, "tensor", instr.tensor, iw, false)) return e;
      std::string source = "input";
      if (auto e = r.get(ij, "source", source, iw, false)) return e;
      instr.source = source == "stash" ? LoadSource::Stash : source == "base" ? LoadSource::Base : LoadSource::Input;
      if (auto e = r.get(ij, "dim", instr.dim, iw, false)) return e;
      if (auto e = r.get(ij, "sizes", instr.sizes, iw, false)) return e;
      if (auto e = r.get(ij, "heads", instr.heads, iw, false)) return e;
      if (auto e = r.get(ij, "groups", instr.groups, iw, false)) return e;
      if (auto e = r.get(ij, "head_dim", instr.headDim, iw, false)) return e;
      if (auto e = r.get(ij, "gate", instr.gate, iw, false)) return e;
      if (auto e = r.get(ij, "perm", instr.perm, iw, false)) return e;
      if (auto e = r.get(ij, "scale", instr.scale, iw, false)) return e;
      if (auto e = r.get(ij, "shift", instr.shift, iw, false)) return e;
      if (auto e = r.get(ij, "value", instr.value, iw, false)) return e;
      if (auto e = r.get(ij, "requantize", instr.requantize, iw, false)) return e;
      step.instrs.push_back(std::move(instr));
    }
    plan.steps.push_back(std::move(step));
  }
  if (auto e = r.objects(j, "drops", [&](const json &d, const std::string &where) -> llvm::Error {
        PlanDrop drop;
        for (auto [key, out] : {std::pair{"tensor", &drop.tensor}, {"reason", &drop.reason}, {"rule", &drop.rule}})
          if (auto e = r.get(d, key, *out, where, false))
            return e;
        plan.drops.push_back(std::move(drop));
        return llvm::Error::success();
      }))
    return e;
  if (auto e = r.objects(j, "gaps", [&](const json &g, const std::string &where) -> llvm::Error {
        PlanGap gap;
        for (auto [key, out] : {std::pair{"pattern", &gap.pattern}, {"reason", &gap.reason}, {"rule", &gap.rule}})
          if (auto e = r.get(g, key, *out, where, false))
            return e;
        if (auto e = r.get(g, "from_base", gap.fromBase, where, false))
          return e;
        plan.gaps.push_back(std::move(gap));
        return llvm::Error::success();
      }))
    return e;
  return plan;
}

} // namespace ckptmap
