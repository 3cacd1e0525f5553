// Planning: a Binding + the source tensors' metadata -> a Plan. Infers every shape and dtype,
// cross-checks the sizes rules state against the tensors, and verifies coverage: every
// source tensor consumed exactly once, every output produced exactly once.
#pragma once

#include "compiler/bind/Binding.h"
#include "compiler/diag/Diagnostics.h"
#include "compiler/plan/Plan.h"
#include "compiler/quant/Grouping.h"

#include <optional>

namespace ckptmap {

struct PlanInputs {
  llvm::ArrayRef<TensorMeta> source;
  llvm::ArrayRef<TensorMeta> stash; ///< tensors an earlier run kept aside
  llvm::ArrayRef<TensorMeta> base;  ///< the --hf-base checkpoint, when given
  bool haveBase = false;
};

/// A plan that writes every tensor of a checkpoint under its own name (quantized weights as
/// bundles): the base of `ckptmap quantize`, whose work the quantization passes add.
Plan identityPlan(llvm::ArrayRef<TensorMeta> stored, llvm::StringRef convention, const RowGroupHints &rowGroups = {});

/// Reports every problem to `diags`; returns nullopt when there were errors.
std::optional<Plan> buildPlan(const Binding &binding, const PlanInputs &inputs, DiagnosticEngine &diags);

} // namespace ckptmap
