#include "compiler/Compiler.h"

#include "compiler/parse/Parser.h"
#include "compiler/plan/Shapes.h"
#include "compiler/quant/Grouping.h"

#include "llvm/ADT/StringMap.h"

#include <map>

namespace ckptmap {

std::unique_ptr<CheckedRulebook> loadRulebook(llvm::StringRef path, SourceManager &sources, DiagnosticEngine &diags) {
  auto ast = parseRulebookFile(path, sources, diags);
  if (!ast || diags.hasErrors())
    return nullptr;
  return checkRulebook(std::move(ast), diags);
}

namespace {

/// Binds and plans one direction from tensors grouped already (logical tensors).
std::optional<Plan> compileLogical(const CheckedRulebook &rulebook, llvm::StringRef rulebookPath, const Value &config,
                                   const PlanInputs &inputs, const BindOptions &options, DiagnosticEngine &diags) {
  BindOptions bindOptions = options;
  for (const TensorMeta &t : inputs.stash)
    bindOptions.stashed.insert(t.name);
  auto binding = bindRulebook(rulebook, config, inputs.source, bindOptions, diags);
  if (!binding)
    return std::nullopt;
  auto plan = buildPlan(*binding, inputs, diags);
  if (!plan)
    return std::nullopt;
  plan->rulebook = rulebookPath.str();
  plan->family = rulebook.ast().name;
  return plan;
}

} // namespace

const std::vector<TensorMeta> &CompileInputs::logicalSource() const {
  if (!logicalSource_)
    logicalSource_ = groupQuantized(source, rowGroups);
  return *logicalSource_;
}

std::optional<Plan> compilePlan(const CheckedRulebook &rulebook, llvm::StringRef rulebookPath,
                                const CompileInputs &inputs, const BindOptions &options, DiagnosticEngine &diags) {
  // Rules see a quantized weight as one tensor; its scales travel with it.
  std::vector<TensorMeta> stash = groupQuantized(inputs.stash), base = groupQuantized(inputs.base);
  return compileLogical(rulebook, rulebookPath, inputs.config,
                        PlanInputs{inputs.logicalSource(), stash, base, inputs.haveBase}, options, diags);
}

RoundTrip checkRoundTrip(const CheckedRulebook &rulebook, llvm::StringRef rulebookPath, const Plan &forward,
                         const CompileInputs &forwardInputs, const BindOptions &forwardOptions, DiagnosticEngine &diags) {
  RoundTrip result;
  // The input as rules see it: what the way back must restore, and what --hf-base would hold
  // (read, as a run reads --hf-base, without the input's recorded row groups).
  const std::vector<TensorMeta> &original = forwardInputs.logicalSource();
  std::vector<TensorMeta> unhinted;
  if (!forwardInputs.rowGroups.empty())
    unhinted = groupQuantized(forwardInputs.source);
  const std::vector<TensorMeta> &base = forwardInputs.rowGroups.empty() ? original : unhinted;
  // The way back reads the forward plan's outputs, grouped as every input is.
  std::vector<TensorMeta> back = groupQuantized(forward.outputs);
  BindOptions options;
  options.from = forward.to;
  options.to = forward.from;
  options.overrides = forwardOptions.overrides;
  options.recorded = forward.choices;
  options.anyModelType = forwardOptions.anyModelType;
  result.reverse = compileLogical(rulebook, rulebookPath, forwardInputs.config, PlanInputs{back, {}, base, true},
                                  options, diags);
  if (!result.reverse)
    return result;

  llvm::StringMap<const TensorMeta *> produced;
  for (const TensorMeta &t : result.reverse->outputs)
    produced[t.name] = &t;
  // What only --hf-base supplies is a stated gap, not a failure of the rules.
  llvm::StringMap<std::string> baseReason;
  for (const Step &s : result.reverse->steps)
    if (llvm::any_of(s.instrs, [](const Instr &i) { return i.op == InstrOp::Load && i.source == LoadSource::Base; }))
      for (const Instr &i : s.instrs)
        if (i.op == InstrOp::Store)
          baseReason[i.tensor] = s.rule; // under the name it is restored as
  std::vector<std::pair<NameTemplate, const PlanGap *>> gaps;
  for (const PlanGap &g : result.reverse->gaps)
    gaps.push_back({NameTemplate::fromDisplay(g.pattern), &g});
  result.total = original.size();
  for (const TensorMeta &t : original) {
    auto it = produced.find(t.name);
    if (it == produced.end()) {
      // A tensor a rule drops for good is a stated loss, not a failure of the rules.
      auto gap = llvm::find_if(gaps, [&](const auto &g) {
        llvm::StringMap<std::string> captures;
        return g.first.match(t.name, captures);
      });
      if (gap != gaps.end())
        result.statedGaps.push_back("'" + t.name + "' is not restored: " + gap->second->reason + " (" + gap->second->rule + ")");
      else
        result.mismatches.push_back("'" + t.name + "' is not restored");
      continue;
    }
    if (baseReason.count(t.name)) {
      result.statedGaps.push_back("'" + t.name + "' comes back from --hf-base (" + baseReason[t.name] + ")");
      produced.erase(it);
      continue;
    }
    const TensorMeta &r = *it->second;
    if (r.dtype != t.dtype || r.shape != t.shape || r.quant != t.quant)
      result.mismatches.push_back("'" + t.name + "' comes back as " + formatType(typeOf(r)) + ", not " +
                                  formatType(typeOf(t)));
    else
      ++result.restored;
    produced.erase(t.name);
  }
  for (const auto &extra : produced)
    result.mismatches.push_back("'" + extra.getKey().str() + "' appears on the way back but was not in the input");
  for (const PlanGap &g : forward.gaps)
    result.statedGaps.push_back("'" + g.pattern + "' is not produced: " + g.reason + " (" + g.rule + ")");
  for (const Plan *p : {&forward, static_cast<const Plan *>(&*result.reverse)}) {
    std::map<std::string, size_t> lossy;
    std::vector<std::string> order;
    for (const Step &s : p->steps) {
      if (s.lossless)
        continue;
      std::string line = s.rule + ": " + s.summary + " (" + p->from + " -> " + p->to + ")";
      if (!lossy[line]++)
        order.push_back(line);
    }
    for (const std::string &line : order)
      result.lossy.push_back(lossy[line] == 1 ? line : line + ", " + std::to_string(lossy[line]) + " steps");
  }
  return result;
}

} // namespace ckptmap
