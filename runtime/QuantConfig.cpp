#include "runtime/QuantConfig.h"

namespace ckptmap {

using json = nlohmann::json;

static const char *modelOptAlgo(QuantKind kind) { return kind == QuantKind::Nvfp4 ? "NVFP4" : "FP8"; }

json quantizationConfig(const QuantDeclaration &d) {
  const QuantType &q = d.format;
  switch (q.kind) {
  case QuantKind::Nvfp4:
    if (q.naming == QuantNaming::CompressedTensors) {
      json weights{{"num_bits", 4},        {"type", "float"},  {"strategy", "tensor_group"},
                   {"group_size", 16},     {"symmetric", true}, {"dynamic", false}};
      return json{{"quant_method", "compressed-tensors"},
                  {"format", "nvfp4-pack-quantized"},
                  {"quantization_status", "compressed"},
                  {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}, {"input_activations", nullptr}}}}},
                  {"ignore", d.excludedModules}};
    }
    [[fallthrough]];
  case QuantKind::Fp8Tensor: {
    json j{{"quant_method", "modelopt"}, {"quant_algo", modelOptAlgo(q.kind)}, {"kv_cache_quant_algo", nullptr}};
    if (q.kind == QuantKind::Nvfp4)
      j["group_size"] = 16;
    j["exclude_modules"] = d.excludedModules;
    return j;
  }
  case QuantKind::Fp8Block:
  case QuantKind::Mxfp8: {
    bool mx = q.kind == QuantKind::Mxfp8;
    json j{{"quant_method", "fp8"},
           {"fmt", "e4m3"},
           {"activation_scheme", "dynamic"},
           {"weight_block_size", mx ? std::vector<int>{1, 32} : std::vector<int>{128, 128}}};
    if (mx)
      j["scale_fmt"] = "ue8m0";
    j["modules_to_not_convert"] = d.excludedModules;
    return j;
  }
  case QuantKind::None:
    break;
  }
  return nullptr;
}

std::optional<json> hfQuantConfig(const QuantDeclaration &d) {
  const QuantType &q = d.format;
  bool modelOpt = q.kind == QuantKind::Fp8Tensor || (q.kind == QuantKind::Nvfp4 && q.naming == QuantNaming::ModelOpt);
  if (!modelOpt)
    return std::nullopt;
  json quantization{{"quant_algo", modelOptAlgo(q.kind)}, {"kv_cache_quant_algo", nullptr}};
  if (q.kind == QuantKind::Nvfp4)
    quantization["group_size"] = 16;
  quantization["exclude_modules"] = d.excludedModules;
  return json{{"producer", {{"name", "ckptmap"}, {"version", "1"}}}, {"quantization", quantization}};
}

std::vector<std::string> declaredExclusions(const json &config, const json &hfQuant) {
  auto list = [](const json &j, const char *key) -> std::vector<std::string> {
    std::vector<std::string> out;
    if (j.is_object() && j.contains(key) && j[key].is_array())
      for (const json &e : j[key])
        if (e.is_string())
          out.push_back(e.get<std::string>());
    return out;
  };
  if (hfQuant.is_object() && hfQuant.contains("quantization"))
    if (auto l = list(hfQuant["quantization"], "exclude_modules"); !l.empty())
      return l;
  if (config.is_object() && config.contains("quantization_config")) {
    const json &qc = config["quantization_config"];
    for (const char *key : {"exclude_modules", "ignore", "modules_to_not_convert"})
      if (auto l = list(qc, key); !l.empty())
        return l;
  }
  return {};
}

} // namespace ckptmap
