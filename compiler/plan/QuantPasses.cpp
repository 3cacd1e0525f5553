#include "compiler/plan/QuantPasses.h"

#include "compiler/plan/Shapes.h"
#include "compiler/quant/Grouping.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/GlobPattern.h"

#include <map>
#include <numeric>

namespace ckptmap {

bool excludedByDefault(llvm::StringRef name) {
  llvm::SmallVector<llvm::StringRef, 8> parts;
  name.split(parts, '.');
  for (llvm::StringRef c : parts) {
    // Routers and gates pick experts: their few rows decide everything downstream.
    if (c == "gate" || c == "router" || c == "shared_expert_gate" || c == "D" || c == "A_log" || c == "dt_bias" ||
        c == "lm_head" || c == "output_layer" || c == "eh_proj" || c == "shared_head")
      return true;
    if (c.contains("embed") || c.contains("norm") || c.contains("conv1d") || c.contains("bias") ||
        c.contains("vision") || c.contains("visual") || c.contains("multi_modal_projector"))
      return true;
  }
  // Qwen3.5's MTP input projection, like DeepSeek's eh_proj, stays in high precision.
  return name.startswith("mtp.fc.");
}

std::string fusedGroupKey(llvm::StringRef name) {
  auto weight = splitWeightName(name);
  llvm::StringRef module = weight ? weight->module : name;
  auto [parent, leaf] = module.rsplit('.');
  static const std::pair<llvm::StringLiteral, llvm::StringLiteral> kFused[] = {
      {"q_proj", "qkv"},       {"k_proj", "qkv"},     {"v_proj", "qkv"},     {"gate_proj", "gate_up"},
      {"up_proj", "gate_up"},  {"in_proj_qkv", "in_proj"}, {"in_proj_z", "in_proj"}, {"in_proj_b", "in_proj"},
      {"in_proj_a", "in_proj"}, {"w1", "w13"},         {"w3", "w13"}};
  for (const auto &[member, fused] : kFused)
    if (leaf == member)
      return (parent + "." + fused + (weight ? weight->index : "")).str();
  return "";
}

namespace {

/// A weight stored in another format than --quantize asks for is dequantized to BF16 and
/// quantized from there: bit for bit what dequantizing to a BF16 checkpoint (--dequantize, or
/// DeepSeek's fp8_cast_bf16) and quantizing that gives, which is how such checkpoints are made.
/// The extra rounding (at most 2^-8 relative) is far below the step of any target format.
constexpr DType kRequantizeThrough = DType::BF16;

/// Appends step `from` to step `into`, renumbering its values.
void mergeStep(Step &into, Step &&from) {
  uint32_t offset = uint32_t(into.values.size());
  into.values.insert(into.values.end(), from.values.begin(), from.values.end());
  for (Instr &i : from.instrs) {
    for (uint32_t &v : i.in)
      v += offset;
    for (uint32_t &v : i.out)
      v += offset;
    into.instrs.push_back(std::move(i));
  }
  into.summary += Step::kSummarySeparator.str() + from.summary;
  into.lossless = into.lossless && from.lossless;
}

class QuantPasses {
public:
  QuantPasses(Plan &plan, const QuantPassOptions &options) : plan_(plan), options_(options) {}

  llvm::Expected<QuantPassReport> run() {
    for (const std::string &p : options_.exclude) {
      auto glob = llvm::GlobPattern::create(p);
      if (!glob)
        return llvm::createStringError(llvm::inconvertibleErrorCode(), "--exclude '%s': %s", p.c_str(),
                                       llvm::toString(glob.takeError()).c_str());
      exclude_.push_back(std::move(*glob));
    }
    // Without --quantize, --dequantize or --quant-format no step changes.
    if (!options_.quantize.quantized() && !options_.dequantize && !options_.naming)
      return report_;
    if (options_.quantize.quantized())
      mergeFusedSteps();
    if (options_.dequantize)
      dropKvCacheScales();
    for (Step &step : plan_.steps)
      if (auto e = rewrite(step))
        return llvm::Expected<QuantPassReport>(std::move(e));
    // The outputs take the types their stores now write.
    llvm::StringMap<ValueType> stored;
    for (const Step &step : plan_.steps)
      for (const Instr &i : step.instrs)
        if (i.op == InstrOp::Store)
          stored[i.tensor] = step.values[i.in[0]];
    for (TensorMeta &t : plan_.outputs) {
      auto it = stored.find(t.name);
      if (it != stored.end())
        t = metaOf(t.name, it->second);
    }
    std::sort(report_.excludedModules.begin(), report_.excludedModules.end(),
              [](const std::string &a, const std::string &b) { return naturalLess(a, b); });
    report_.excludedModules.erase(std::unique(report_.excludedModules.begin(), report_.excludedModules.end()),
                                  report_.excludedModules.end());
    return report_;
  }

private:
  /// Steps storing parts of one fused module (q/k/v, gate/up) become one step, so the parts
  /// are quantized together.
  void mergeFusedSteps() {
    llvm::StringMap<size_t> owner;
    std::vector<Step> kept;
    for (Step &step : plan_.steps) {
      std::string key;
      for (const Instr &i : step.instrs)
        if (i.op == InstrOp::Store && key.empty())
          key = fusedGroupKey(i.tensor);
      auto it = key.empty() ? owner.end() : owner.find(key);
      if (it != owner.end()) {
        mergeStep(kept[it->second], std::move(step));
        continue;
      }
      if (!key.empty())
        owner[key] = kept.size();
      kept.push_back(std::move(step));
    }
    plan_.steps = std::move(kept);
  }

  /// --dequantize: FP8 KV-cache scales (`k_proj.k_scale`, `v_proj.v_scale`) mean nothing to an
  /// output that declares no quantization, so the steps that copy them become drops.
  void dropKvCacheScales() {
    llvm::StringSet<> inputs, outputs;
    llvm::erase_if(plan_.steps, [&](const Step &step) {
      const Instr *load = nullptr, *store = nullptr;
      for (const Instr &i : step.instrs) {
        const Instr *&slot = i.op == InstrOp::Load ? load : store;
        if ((i.op != InstrOp::Load && i.op != InstrOp::Store) || slot)
          return false; // not a plain copy of one tensor
        slot = &i;
      }
      if (!load || !store || !isKvCacheScale(metaOf(store->tensor, step.values[store->in[0]])))
        return false;
      plan_.drops.push_back(
          PlanDrop{load->tensor, "an FP8 KV-cache scale, and the dequantized output declares no quantization", step.rule});
      inputs.insert(load->tensor);
      outputs.insert(store->tensor);
      return true;
    });
    llvm::erase_if(plan_.inputs, [&](const TensorMeta &t) { return inputs.contains(t.name); });
    llvm::erase_if(plan_.outputs, [&](const TensorMeta &t) { return outputs.contains(t.name); });
  }

  /// A loaded bundle that the output should not keep as it is.
  bool dequantizes(const QuantType &q) const {
    if (options_.dequantize)
      return true;
    return options_.quantize.quantized() && q.kind != options_.quantize.kind;
  }

  bool userExcluded(llvm::StringRef name, llvm::StringRef module) const {
    return llvm::any_of(exclude_, [&](const llvm::GlobPattern &g) { return g.match(name) || g.match(module); });
  }

  /// --quantize: the type `name` is stored as, or none when it stays as it is.
  std::optional<ValueType> quantizedType(const std::string &name, const ValueType &t) {
    // Linear weights: "X.weight" (or TE's "X.weight3"), or fused experts named by projection.
    auto weight = splitWeightName(name);
    bool linear = weight ? !weight->packed : llvm::StringRef(name).endswith("_proj");
    bool matrix = linear && (t.shape.size() == 2 || t.shape.size() == 3) &&
                  (t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16);
    if (!matrix || !options_.quantize.quantized() || t.quant.quantized())
      return std::nullopt;
    ValueType q = quantizedValue(options_.quantize, t.shape);
    auto parts = quantParts(q.quant, q.shape);
    bool fits = bool(parts);
    if (!fits)
      llvm::consumeError(parts.takeError()); // a shape the format cannot hold stays as it is
    std::string module = moduleOf(name).str();
    if (!fits || excludedByDefault(name) || userExcluded(name, module)) {
      report_.excludedModules.push_back(module);
      return std::nullopt;
    }
    return q;
  }

  uint32_t addValue(Step &step, ValueType t) {
    step.values.push_back(std::move(t));
    return uint32_t(step.values.size() - 1);
  }

  llvm::Error rewrite(Step &step) {
    std::vector<uint32_t> remap(step.values.size());
    std::iota(remap.begin(), remap.end(), 0);
    bool retype = false; // a value changed type: later instructions' outputs follow
    std::vector<Instr> out;
    std::map<std::string, std::vector<std::pair<Instr, ValueType>>> groups;
    for (Instr instr : step.instrs) {
      for (uint32_t &v : instr.in)
        v = remap[v];
      if (retype && !instr.in.empty() && !instr.out.empty()) {
        std::vector<ValueType> in, declared;
        for (uint32_t v : instr.in)
          in.push_back(step.values[v]);
        for (uint32_t v : instr.out)
          declared.push_back(step.values[v]);
        auto types = inferOutputs(instr, in, declared);
        if (!types)
          return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: %s", step.rule.c_str(),
                                         llvm::toString(types.takeError()).c_str());
        for (size_t i = 0; i < instr.out.size(); ++i)
          step.values[instr.out[i]] = (*types)[i];
      }
      if (instr.op == InstrOp::Load && step.values[instr.out[0]].quant.quantized() &&
          dequantizes(step.values[instr.out[0]].quant)) {
        ValueType plain{options_.dequantize ? options_.dequantizeTo : kRequantizeThrough,
                        step.values[instr.out[0]].shape, {}};
        Instr d(InstrOp::Dequantize);
        d.in = {instr.out[0]};
        d.out = {addValue(step, plain)};
        remap.push_back(d.out[0]);
        remap[instr.out[0]] = d.out[0];
        out.push_back(instr);
        out.push_back(d);
        retype = true;
        ++report_.dequantized;
        step.lossless = false; // the way back quantizes again
        continue;
      }
      if (instr.op == InstrOp::Store) {
        const ValueType t = step.values[instr.in[0]];
        if (std::optional<ValueType> target = quantizedType(instr.tensor, t)) {
          std::string key = fusedGroupKey(instr.tensor);
          groups[key.empty() ? instr.tensor : key].push_back({instr, *target});
          ++report_.quantized;
          step.lossless = false;
          continue;
        }
        if (t.quant.kind == QuantKind::Nvfp4 && options_.naming && t.quant.naming != *options_.naming) {
          ValueType target = t;
          target.quant.naming = *options_.naming;
          groups[instr.tensor].push_back({instr, target});
          ++report_.renamed;
          continue;
        }
      }
      out.push_back(instr);
    }
    // The quantized stores come last, each group of fused parts quantized by one instruction.
    for (auto &[key, members] : groups) {
      Instr q(InstrOp::Quantize);
      for (auto &[store, target] : members) {
        q.in.push_back(store.in[0]);
        q.out.push_back(addValue(step, target));
        store.in[0] = q.out.back();
      }
      out.push_back(q);
      for (auto &member : members)
        out.push_back(member.first);
    }
    step.instrs = std::move(out);
    return llvm::Error::success();
  }

  Plan &plan_;
  const QuantPassOptions &options_;
  std::vector<llvm::GlobPattern> exclude_;
  QuantPassReport report_;
};

} // namespace

llvm::Expected<QuantPassReport> applyQuantPasses(Plan &plan, const QuantPassOptions &options) {
  return QuantPasses(plan, options).run();
}

} // namespace ckptmap
