// The quantization an output declares, in the files inference engines read: ModelOpt's
// hf_quant_config.json and config.json's `quantization_config` (ModelOpt, compressed-tensors and
// DeepSeek-style FP8 spell it differently).
#pragma once

#include "compiler/quant/QuantType.h"

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

} // namespace ckptmap
