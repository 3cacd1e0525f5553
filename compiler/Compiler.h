// The compiler's front door: rulebook file -> checked rulebook -> plan, and the proof that
// the reverse plan undoes the forward one. Every phase reports into one DiagnosticEngine.
#pragma once

#include "compiler/bind/Binder.h"
#include "compiler/check/Checker.h"
#include "compiler/plan/Plan.h"
#include "compiler/quant/Grouping.h"
#include "compiler/plan/Planner.h"

#include <memory>
#include <optional>
#include <vector>

namespace ckptmap {

/// Parses (with includes) and checks a rulebook; null when it has errors.
std::unique_ptr<CheckedRulebook> loadRulebook(llvm::StringRef path, SourceManager &sources, DiagnosticEngine &diags);

struct CompileInputs {
  Value config;
  std::vector<TensorMeta> source;
  std::vector<TensorMeta> stash;
  std::vector<TensorMeta> base;
  bool haveBase = false;
  /// Fused FP8 block weights whose grids keep their parts' rows (recorded by the run that
  /// wrote them).
  RowGroupHints rowGroups;

  /// `source` as rules see it (a quantized weight and its scales as one tensor): grouped on
  /// first use and shared by the forward plan and the check of the way back. `source` and
  /// `rowGroups` must not change after.
  const std::vector<TensorMeta> &logicalSource() const;

private:
  mutable std::optional<std::vector<TensorMeta>> logicalSource_;
};

/// Binds and plans one direction; null when there were errors.
std::optional<Plan> compilePlan(const CheckedRulebook &rulebook, llvm::StringRef rulebookPath,
                                const CompileInputs &inputs, const BindOptions &options, DiagnosticEngine &diags);

/// What compiling the way back from a forward plan's outputs found.
struct RoundTrip {
  std::optional<Plan> reverse;
  /// Source tensors the way back restores exactly (names, dtypes and shapes).
  size_t restored = 0;
  size_t total = 0;   ///< tensors of the input, a quantized weight and its scales counted once
  /// Differences: missing, extra, or changed tensors. Empty when the round trip is exact.
  std::vector<std::string> mismatches;
  /// Source tensors the way back does not produce because a rule says so (restored from
  /// --hf-base, or dropped for good), with the rule's reason.
  std::vector<std::string> statedGaps;
  /// Steps that may not restore every bit, in either direction: "rule: summary".
  std::vector<std::string> lossy;
};

/// Compiles the reverse of `forward` from its output header alone and compares the result
/// with the forward plan's input: forward then reverse must be the identity on names,
/// dtypes and shapes.
RoundTrip checkRoundTrip(const CheckedRulebook &rulebook, llvm::StringRef rulebookPath, const Plan &forward,
                         const CompileInputs &forwardInputs, const BindOptions &forwardOptions, DiagnosticEngine &diags);

} // namespace ckptmap
