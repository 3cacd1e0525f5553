// The quantization an output declares, in the files inference engines read: ModelOpt's
// hf_quant_config.json and config.json's `quantization_config` (ModelOpt, compressed-tensors and
// DeepSeek-style FP8 spell it differently).
#pragma once

#include "compiler/plan/Plan.h"
#include "compiler/quant/QuantType.h"

#include "llvm/ADT/ArrayRef.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace ckptmap {

/// What to declare: the format every quantized weight of the output has, and the modules left
/// in high precision.
struct QuantDeclaration {
  QuantType format;
  std::vector<std::string> excludedModules;
};

/// config.json's `quantization_config` for the declaration.
nlohmann::json quantizationConfig(const QuantDeclaration &d);

/// hf_quant_config.json, for the formats ModelOpt writes it for (NVFP4 and FP8 in its naming).
std::optional<nlohmann::json> hfQuantConfig(const QuantDeclaration &d);

/// The modules an input's quantization config leaves unquantized, whichever spelling it uses.
std::vector<std::string> declaredExclusions(const nlohmann::json &config, const nlohmann::json &hfQuantConfig);

/// An exclusion list in the output's convention: a module the plan converts becomes the modules
/// it writes from it, a pattern the modules it matches (kept as it is where they keep their
/// names); any other name stays, such as a vision tower or a dropped copy the output leaves out
/// and a later conversion back restores.
std::vector<std::string> renameExcludedModules(llvm::ArrayRef<std::string> modules, const Plan &plan);

/// Renames, in place, the exclusion lists of a config.json (`quantization_config`) or an
/// hf_quant_config.json (`quantization`) through the plan; whether any list changed.
bool renameExclusionLists(nlohmann::json &file, const Plan &plan);

} // namespace ckptmap
