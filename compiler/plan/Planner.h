// Planning: a Binding + the source tensors' metadata -> a Plan. Infers every shape and dtype,
// cross-checks the sizes rules state against the tensors, and verifies coverage: every
// source tensor consumed exactly once, every output produced exactly once.
#pragma once

#include "compiler/bind/Binding.h"
#include "compiler/diag/Diagnostics.h"
#include "compiler/plan/Plan.h"

#include <optional>

namespace ckptmap {

struct PlanInputs {
  llvm::ArrayRef<TensorMeta> source;
  llvm::ArrayRef<TensorMeta> stash; ///< tensors an earlier run kept aside
  llvm::ArrayRef<TensorMeta> base;  ///< the --hf-base checkpoint, when given
  bool haveBase = false;
};

/// Reports every problem to `diags`; returns nullopt when there were errors.
std::optional<Plan> buildPlan(const Binding &binding, const PlanInputs &inputs, DiagnosticEngine &diags);

} // namespace ckptmap
