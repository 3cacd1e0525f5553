// Plan passes that change how weights are stored without touching the rules: quantize the
// eligible outputs, dequantize the quantized inputs, or switch the naming of NVFP4 bundles.
// They run on a built plan, before verification, so the rulebook stays format-agnostic.
#pragma once

#include "compiler/plan/Plan.h"

#include <string>
#include <vector>

namespace ckptmap {

struct QuantPassOptions {
  /// --quantize: the format eligible outputs are stored in (kind None: leave them as they are).
  QuantType quantize;
  /// --exclude: glob patterns over output tensor names or their module names.
  std::vector<std::string> exclude;
  /// --dequantize: store every quantized weight as `dequantizeTo`.
  bool dequantize = false;
  DType dequantizeTo = DType::BF16;
  /// --quant-format: the naming NVFP4 outputs use (unset: the input's).
  std::optional<QuantNaming> naming;
};

/// What the passes did, for the summary and the quantization config the output carries.
struct QuantPassReport {
  size_t quantized = 0, dequantized = 0, renamed = 0;
  /// Modules of matrices left unquantized by --quantize (exclude_modules).
  std::vector<std::string> excludedModules;
};

/// Whether the default rules leave this weight unquantized: embeddings, lm_head, routers and
/// gates, norms, conv1d, Mamba's A_log / D / dt_bias, MTP heads.
bool excludedByDefault(llvm::StringRef name);

/// The module engines fuse `name`'s module into ("layers.0.self_attn.qkv" for q_proj, k_proj and
/// v_proj; gate/up; Gated DeltaNet's in_proj parts), whose quantized parts share their per-matrix
/// scales; empty for a module that is not fused.
std::string fusedGroupKey(llvm::StringRef name);

/// Applies the passes; `plan.outputs` follows. Errors name the tensor (a pattern that does not
/// parse, a weight whose shape the format cannot hold).
llvm::Expected<QuantPassReport> applyQuantPasses(Plan &plan, const QuantPassOptions &options);

} // namespace ckptmap
