// Type rules of the plan's instructions: what each produces from what it is given. The
// planner uses them to build plans; the verifier re-checks plans read from JSON, so the
// runtime only ever executes instructions whose shapes agree.
#pragma once

#include "compiler/plan/Plan.h"

namespace ckptmap {

/// The types of `instr`'s outputs given its inputs. For instructions whose result type is
/// chosen rather than derived (load, fill, cast, reshape), `declared` gives it and is checked.
llvm::Expected<std::vector<ValueType>> inferOutputs(const Instr &instr, llvm::ArrayRef<ValueType> in,
                                                    llvm::ArrayRef<ValueType> declared);

/// Re-derives every value type of every step; errors name the step's rule.
llvm::Error verifyPlanTypes(const Plan &plan);

std::string formatType(const ValueType &t);

} // namespace ckptmap
