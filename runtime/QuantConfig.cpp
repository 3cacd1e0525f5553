#include "runtime/QuantConfig.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/Support/GlobPattern.h"

namespace ckptmap {

using json = nlohmann::json;

/// The keys an exclusion list goes by: ModelOpt's, compressed-tensors', DeepSeek-style FP8's.
static const char *const kExclusionKeys[] = {"exclude_modules", "ignore", "modules_to_not_convert"};

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
  // vLLM loads hf_quant_config.json only from a producer named "modelopt": the format's name;
  // the version says what wrote it.
  return json{{"producer", {{"name", "modelopt"}, {"version", "ckptmap " CKPTMAP_VERSION}}},
              {"quantization", quantization}};
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
    for (const char *key : kExclusionKeys)
      if (auto l = list(qc, key); !l.empty())
        return l;
  }
  return {};
}

/// For every module the plan converts, the modules it writes from it, both in plan order. A step
/// that writes nothing (a dropped tensor kept aside) renames nothing. The names point into the
/// plan.
static llvm::MapVector<llvm::StringRef, std::vector<std::string>> moduleRenames(const Plan &plan) {
  llvm::MapVector<llvm::StringRef, std::vector<std::string>> out;
  for (const Step &step : plan.steps) {
    std::vector<std::string> written;
    for (const Instr &i : step.instrs)
      if (i.op == InstrOp::Store && !llvm::is_contained(written, moduleOf(i.tensor)))
        written.push_back(moduleOf(i.tensor).str());
    if (written.empty())
      continue;
    for (const Instr &i : step.instrs)
      if (i.op == InstrOp::Load && i.source == LoadSource::Input) {
        std::vector<std::string> &targets = out[moduleOf(i.tensor)];
        for (const std::string &m : written)
          if (!llvm::is_contained(targets, m))
            targets.push_back(m);
      }
  }
  return out;
}

std::vector<std::string> renameExcludedModules(llvm::ArrayRef<std::string> modules, const Plan &plan) {
  auto renames = moduleRenames(plan);
  std::vector<std::string> out;
  auto add = [&](const std::string &m) {
    if (!llvm::is_contained(out, m))
      out.push_back(m);
  };
  for (const std::string &entry : modules) {
    if (auto it = renames.find(entry); it != renames.end()) {
      llvm::for_each(it->second, add);
      continue;
    }
    // ModelOpt's lists may hold fnmatch patterns ("model.layers.*.mlp.gate").
    std::vector<std::string> matched;
    bool renamed = false;
    if (entry.find_first_of("*?[") != std::string::npos) {
      if (auto glob = llvm::GlobPattern::create(entry)) {
        for (const auto &[module, targets] : renames)
          if (glob->match(module)) {
            renamed = renamed || targets != std::vector<std::string>{module.str()};
            matched.insert(matched.end(), targets.begin(), targets.end());
          }
      } else {
        llvm::consumeError(glob.takeError()); // not a pattern after all: a name
      }
    }
    if (renamed)
      llvm::for_each(matched, add);
    else
      add(entry);
  }
  return out;
}

bool renameExclusionLists(json &file, const Plan &plan) {
  bool changed = false;
  if (!file.is_object())
    return false;
  for (const char *section : {"quantization", "quantization_config"}) {
    auto holder = file.find(section);
    if (holder == file.end() || !holder->is_object())
      continue;
    for (const char *key : kExclusionKeys) {
      auto list = holder->find(key);
      if (list == holder->end() || !list->is_array() ||
          !llvm::all_of(*list, [](const json &e) { return e.is_string(); }))
        continue;
      std::vector<std::string> names = list->get<std::vector<std::string>>();
      std::vector<std::string> renamed = renameExcludedModules(names, plan);
      if (renamed != names) {
        *list = renamed;
        changed = true;
      }
    }
  }
  return changed;
}

} // namespace ckptmap
