// Binding: a checked rulebook + config.json + a checkpoint's tensor list -> a Binding for one
// direction. Evaluates parameters, unrolls loops, dispatches on layer types, picks variants by
// what the checkpoint holds, and instantiates every name.
#pragma once

#include "compiler/bind/Binding.h"
#include "compiler/check/Checker.h"
#include "compiler/diag/Diagnostics.h"
#include "compiler/TensorMeta.h"

#include <map>
#include <optional>
#include <set>

namespace ckptmap {

struct BindOptions {
  std::string from, to;
  /// -D name=value: replaces a global parameter's value.
  std::map<std::string, Value> overrides;
  /// --variant choice=variant: preferred where the source does not decide.
  std::map<std::string, std::string> variants;
  /// --layout NAME: the variants of a layout the rulebook declares, where the source does not
  /// decide (after --variant, before what the input recorded).
  std::string layout;
  /// The layout the output's storage format requires (`torch_dist` for Megatron-Core's
  /// torch_dist keys), applied after --layout, where the rulebook declares that mcore_layout.
  std::string storageLayout;
  /// Choices a previous run recorded (keyed by choice and place), preferred next.
  std::vector<ChoiceRecord> recorded;
  /// Names of tensors an earlier run kept aside, by the name they will be restored as.
  std::set<std::string> stashed;
  /// Accept a config whose model_type the rulebook does not list.
  bool anyModelType = false;
};

/// Reports every problem to `diags`; returns nullopt when there were errors.
std::optional<Binding> bindRulebook(const CheckedRulebook &rulebook, const Value &config,
                                    llvm::ArrayRef<TensorMeta> source, const BindOptions &options,
                                    DiagnosticEngine &diags);

/// Parses a -D value: JSON when it parses ("64", "true", "[1,2]", "\"x\""), else a string.
Value parseOverride(llvm::StringRef text);

} // namespace ckptmap
