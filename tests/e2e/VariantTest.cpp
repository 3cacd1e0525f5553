// The same checkpoint through MCore's different spellings: --variant picks the spelling
// written, ckptmap.json records it, and the way back needs no options. An MCore checkpoint
// renamed by hand to another spelling converts to the same HF checkpoint.

#include "E2e.h"

#include <regex>

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

struct VariantCase {
  std::string family;
  std::map<std::string, std::string> variants;
  std::vector<std::pair<std::string, Shape>> present;
  std::vector<std::string> absent;
};

std::vector<VariantCase> variantCases() {
  std::vector<VariantCase> cases;
  // NemotronH
  cases.push_back({"nemotron_h",
                   {{"norms", "fused"}},
                   {{"decoder.layers.0.mixer.in_proj.layer_norm_weight", {64}},
                    {"decoder.layers.2.self_attention.linear_qkv.layer_norm_weight", {64}},
                    {"decoder.layers.3.mlp.linear_fc1.layer_norm_weight", {64}},
                    {"decoder.layers.1.pre_mlp_layernorm.weight", {64}},
                    {"mtp.layers.0.mtp_model_layer.layers.0.self_attention.linear_qkv.layer_norm_weight", {64}}},
                   {"decoder.layers.0.norm.weight", "decoder.layers.2.input_layernorm.weight",
                    "decoder.layers.3.pre_mlp_layernorm.weight"}});
  cases.push_back({"nemotron_h",
                   {{"moe_norm", "fused"}, {"final_norm", "final_layernorm"}},
                   {{"decoder.layers.1.mlp.linear_fc1.layer_norm_weight", {64}},
                    {"decoder.layers.5.mlp.linear_fc1.layer_norm_weight", {64}},
                    {"decoder.final_layernorm.weight", {64}}},
                   {"decoder.layers.1.pre_mlp_layernorm.weight", "decoder.final_norm.weight"}});
  cases.push_back({"nemotron_h",
                   {{"experts", "grouped"}},
                   {{"decoder.layers.1.mlp.experts.linear_fc1.weight0", {32, 64}},
                    {"decoder.layers.1.mlp.experts.linear_fc1.weight3", {32, 64}},
                    {"decoder.layers.5.mlp.experts.linear_fc2.weight2", {64, 32}},
                    {"mtp.layers.0.mtp_model_layer.layers.1.mlp.experts.linear_fc1.weight1", {32, 64}}},
                   {"decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight"}});
  cases.push_back({"nemotron_h",
                   {{"experts", "stacked"}},
                   {{"decoder.layers.1.mlp.experts.experts.linear_fc1.weight", {4, 32, 64}},
                    {"decoder.layers.1.mlp.experts.experts.linear_fc2.weight", {4, 64, 32}},
                    {"mtp.layers.0.mtp_model_layer.layers.1.mlp.experts.experts.linear_fc2.weight", {4, 64, 32}}},
                   {"decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight"}});
  // Qwen3.5-MoE
  cases.push_back({"qwen3_5_moe",
                   {{"norms", "fused"}},
                   {{"decoder.layers.0.self_attention.in_proj.layer_norm_weight", {64}},
                    {"decoder.layers.3.self_attention.linear_qkv.layer_norm_weight", {64}},
                    {"mtp.layers.0.mtp_model_layer.self_attention.linear_qkv.layer_norm_weight", {64}}},
                   {"decoder.layers.0.input_layernorm.weight", "decoder.layers.3.input_layernorm.weight"}});
  cases.push_back({"qwen3_5_moe",
                   {{"experts", "grouped"}},
                   {{"decoder.layers.0.mlp.experts.linear_fc1.weight0", {64, 64}},
                    {"decoder.layers.3.mlp.experts.linear_fc2.weight3", {64, 32}}},
                   {"decoder.layers.0.mlp.experts.local_experts.0.linear_fc1.weight"}});
  cases.push_back({"qwen3_5_moe",
                   {{"experts", "stacked"}},
                   {{"decoder.layers.0.mlp.experts.experts.linear_fc1.weight", {4, 64, 64}},
                    {"decoder.layers.0.mlp.experts.experts.linear_fc2.weight", {4, 64, 32}}},
                   {"decoder.layers.0.mlp.experts.local_experts.0.linear_fc1.weight"}});
  cases.push_back({"qwen3_5_moe",
                   {{"mtp_layer", "transformer_layer"}},
                   {{"mtp.layers.0.transformer_layer.self_attention.linear_qkv.weight", {192, 64}},
                    {"mtp.layers.0.transformer_layer.mlp.shared_experts.gate_weight", {1, 64}},
                    {"mtp.layers.0.eh_proj.weight", {64, 128}}},
                   {"mtp.layers.0.mtp_model_layer.self_attention.linear_qkv.weight"}});
  // DeepSeek-V3
  cases.push_back({"deepseek_v3",
                   {{"norms", "fused"}},
                   {{"decoder.layers.0.self_attention.linear_q_up_proj.layer_norm_weight", {32}},
                    {"decoder.layers.0.self_attention.linear_kv_up_proj.layer_norm_weight", {16}},
                    {"decoder.layers.0.mlp.linear_fc1.layer_norm_weight", {64}},
                    {"decoder.layers.0.input_layernorm.weight", {64}},
                    {"mtp.layers.0.mtp_model_layer.self_attention.linear_kv_up_proj.layer_norm_weight", {16}}},
                   {"decoder.layers.0.self_attention.q_layernorm.weight", "decoder.layers.0.pre_mlp_layernorm.weight"}});
  cases.push_back({"deepseek_v3",
                   {{"experts", "grouped"}},
                   {{"decoder.layers.1.mlp.experts.linear_fc1.weight0", {64, 64}},
                    {"mtp.layers.0.mtp_model_layer.mlp.experts.linear_fc2.weight3", {64, 32}}},
                   {"decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight"}});
  cases.push_back({"deepseek_v3",
                   {{"experts", "stacked"}},
                   {{"decoder.layers.1.mlp.experts.experts.linear_fc1.weight", {4, 64, 64}},
                    {"decoder.layers.2.mlp.experts.experts.linear_fc2.weight", {4, 64, 32}}},
                   {"decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight"}});
  cases.push_back({"deepseek_v3",
                   {{"mtp_layer", "transformer_layer"}},
                   {{"mtp.layers.0.transformer_layer.self_attention.linear_q_down_proj.weight", {32, 64}},
                    {"mtp.layers.0.transformer_layer.mlp.router.expert_bias", {4}}},
                   {"mtp.layers.0.mtp_model_layer.self_attention.linear_q_down_proj.weight"}});
  // MiniMax-M3
  cases.push_back({"minimax_m3",
                   {{"norms", "fused"}},
                   {{"decoder.layers.0.self_attention.linear_qkv.layer_norm_weight", {64}},
                    {"decoder.layers.0.mlp.linear_fc1.layer_norm_weight", {64}},
                    {"decoder.layers.1.pre_mlp_layernorm.weight", {64}}},
                   {"decoder.layers.0.input_layernorm.weight", "decoder.layers.0.pre_mlp_layernorm.weight"}});
  cases.push_back({"minimax_m3",
                   {{"experts", "grouped"}},
                   {{"decoder.layers.1.mlp.experts.linear_fc1.weight0", {64, 64}}},
                   {"decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight"}});
  cases.push_back({"minimax_m3",
                   {{"experts", "stacked"}},
                   {{"decoder.layers.2.mlp.experts.experts.linear_fc1.weight", {4, 64, 64}}},
                   {"decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight"}});
  // Every family in the torch_dist key spelling: fused norms everywhere, stacked experts, and
  // the MTP layer as transformer_layer (where the rulebook has the choice).
  for (const std::string &family : families()) {
    VariantCase c{family, {{"norms", "fused"}, {"moe_norm", "fused"}, {"experts", "stacked"}}, {}, {}};
    if (family == "qwen3_5_moe" || family == "deepseek_v3")
      c.variants["mtp_layer"] = "transformer_layer";
    cases.push_back(c);
  }
  return cases;
}

std::string describe(const std::map<std::string, std::string> &variants) {
  std::string out;
  for (const auto &[k, v] : variants)
    out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

ConvertOptions backOptions(const std::string &family) {
  ConvertOptions o = options(family, "mcore", "hf");
  if (isVl(family))
    o.hfBase = hubDir(family);
  return o;
}

} // namespace

TEST_CASE("--variant writes each MCore spelling, records it, and converts back byte-identically") {
  for (const VariantCase &k : variantCases()) {
    CAPTURE(k.family);
    std::string variants = describe(k.variants);
    CAPTURE(variants);
    TempDir tmp;
    ConvertOptions o = options(k.family, "hf", "mcore");
    o.bind.variants = k.variants;
    ConvertSummary out = convertOk(hubDir(k.family), tmp / "mcore", o);

    auto tensors = tensorsOf(tmp / "mcore");
    for (const auto &[name, shape] : k.present) {
      auto it = tensors.find(name);
      REQUIRE_MESSAGE(it != tensors.end(), "no " << name);
      CHECK_MESSAGE(it->second.shape == shape, name << " " << formatShape(it->second.shape));
    }
    for (const std::string &name : k.absent)
      CHECK_MESSAGE(!tensors.count(name), "unexpected " << name);

    // Every place of each chosen choice took the variant asked for, and ckptmap.json says so.
    json provenance = readJson(tmp / "mcore/ckptmap.json");
    for (const auto &[choice, variant] : k.variants) {
      size_t seen = 0;
      for (const json &c : provenance["choices"])
        if (c["choice"] == choice) {
          ++seen;
          CHECK_MESSAGE(c["variant"] == variant, choice << " at " << c["where"].get<std::string>());
        }
      CHECK_MESSAGE(seen > 0, "no choice " << choice << " recorded");
    }
    for (const ChoiceRecord &c : out.plan.choices)
      if (k.variants.count(c.choice))
        CHECK(c.variant == k.variants.at(c.choice));

    // Back with no variant options: the recorded spelling is read, the hub comes back.
    convertOk(tmp / "mcore", tmp / "hf", backOptions(k.family));
    E2E_REQUIRE_SAME(hubDir(k.family), tmp / "hf");
  }
}

namespace {

/// A hand-made respelling of a local-spec MCore checkpoint (the default output).
struct Spelling {
  bool fusedNorms = false;           ///< TE spec / torch_dist: norms in the next linear's layer_norm_weight
  std::string experts = "local";     ///< local, grouped or stacked
  bool transformerLayer = false;     ///< MTP layer under transformer_layer. (torch_dist keys)
};

std::vector<HandTensor> respell(const std::map<std::string, TensorMeta> &local, const Spelling &s) {
  static const std::regex expert(R"(^(.*)mlp\.experts\.local_experts\.(\d+)\.(linear_fc[12])\.weight$)");
  auto has = [&](const std::string &n) { return local.count(n) != 0; };
  auto strip = [](const std::string &n, const std::string &suffix) { return n.substr(0, n.size() - suffix.size()); };

  std::vector<HandTensor> out;
  // stacked: (prefix, fc) -> parts by expert index
  std::map<std::pair<std::string, std::string>, std::map<int, std::string>> stacks;
  for (const auto &[name, meta] : local) {
    std::string n = name;
    std::smatch m;
    if (s.experts != "local" && std::regex_match(name, m, expert)) {
      if (s.experts == "grouped") {
        n = m[1].str() + "mlp.experts." + m[3].str() + ".weight" + m[2].str();
      } else {
        stacks[{m[1].str(), m[3].str()}][std::stoi(m[2].str())] = name;
        continue;
      }
    }
    if (s.fusedNorms) {
      if (endsWith(n, "input_layernorm.weight")) {
        std::string p = strip(n, "input_layernorm.weight");
        if (has(p + "self_attention.linear_qkv.weight"))
          n = p + "self_attention.linear_qkv.layer_norm_weight";
        else if (has(p + "self_attention.in_proj.weight"))
          n = p + "self_attention.in_proj.layer_norm_weight";
      } else if (endsWith(n, "pre_mlp_layernorm.weight")) {
        n = strip(n, "pre_mlp_layernorm.weight") + "mlp.linear_fc1.layer_norm_weight";
      } else if (endsWith(n, "norm.weight") && has(strip(n, "norm.weight") + "mixer.in_proj.weight")) {
        n = strip(n, "norm.weight") + "mixer.in_proj.layer_norm_weight";
      } else if (endsWith(n, "self_attention.q_layernorm.weight") &&
                 has(strip(n, "q_layernorm.weight") + "linear_q_up_proj.weight")) {
        n = strip(n, "q_layernorm.weight") + "linear_q_up_proj.layer_norm_weight";
      } else if (endsWith(n, "self_attention.kv_layernorm.weight")) {
        n = strip(n, "kv_layernorm.weight") + "linear_kv_up_proj.layer_norm_weight";
      }
    }
    if (s.transformerLayer)
      n = replaceAll(n, ".mtp_model_layer.", ".transformer_layer.");
    TensorMeta t = meta;
    t.name = n;
    out.push_back({t, {name}, std::nullopt});
  }
  for (const auto &[key, parts] : stacks) {
    const TensorMeta &first = local.at(parts.begin()->second);
    TensorMeta t = first;
    t.name = key.first + "mlp.experts.experts." + key.second + ".weight";
    if (s.transformerLayer)
      t.name = replaceAll(t.name, ".mtp_model_layer.", ".transformer_layer.");
    t.shape.insert(t.shape.begin(), int64_t(parts.size()));
    HandTensor h{t, {}, std::nullopt};
    int next = 0;
    for (const auto &[e, part] : parts) {
      REQUIRE(e == next++);
      h.parts.push_back(part);
    }
    out.push_back(h);
  }
  return out;
}

} // namespace

TEST_CASE("an MCore checkpoint renamed by hand to another spelling converts to the same HF checkpoint") {
  const std::vector<std::pair<std::string, Spelling>> spellings = {
      {"TE spec (fused norms, grouped experts)", {true, "grouped", false}},
      {"torch_dist keys (fused norms, stacked experts, transformer_layer)", {true, "stacked", true}},
      {"local spec, grouped experts", {false, "grouped", false}},
  };
  for (const std::string &family : families()) {
    CAPTURE(family);
    TempDir tmp;
    convertOk(hubDir(family), tmp / "local", options(family, "hf", "mcore"));
    auto local = tensorsOf(tmp / "local");
    for (size_t i = 0; i < spellings.size(); ++i) {
      const auto &[label, spelling] = spellings[i];
      CAPTURE(label);
      std::string dir = tmp / ("respelled-" + std::to_string(i));
      Spelling sp = spelling;
      // NemotronH nests its MTP layers under mtp_model_layer.layers.{i} in every spelling.
      sp.transformerLayer = sp.transformerLayer && family != "nemotron_h" && family != "minimax_m3";
      std::vector<HandTensor> tensors = respell(local, sp);
      // Stacking (and only stacking) changes the number of tensors.
      if (sp.experts != "stacked")
        CHECK(tensors.size() == local.size());
      // Neither ckptmap.json nor any option names the spelling: the checkpoint alone decides.
      writeByHand(tmp / "local", dir, tensors, {"config.json", "generation_config.json"}, tmp / "local");
      // What the way out kept aside (DeepSeek's MTP embedding and head differ from the main
      // ones in the fixture) travels beside the tensors under its own names.
      if (fs::exists(tmp / "local/ckptmap-stash"))
        fs::copy(tmp / "local/ckptmap-stash", dir + "/ckptmap-stash");
      std::set<std::string> respelled;
      for (const HandTensor &t : tensors)
        respelled.insert(t.meta.name);
      CHECK(respelled.size() == tensors.size());

      ConvertOptions o = backOptions(family);
      if (family == "minimax_m3" || family == "qwen3_5_moe")
        o.bind.layout = "saved"; // the hub fixture's layout, not recorded here
      convertOk(dir, tmp / "hf", o);
      E2E_REQUIRE_SAME(hubDir(family), tmp / "hf");
      fs::remove_all(tmp / "hf");
    }
  }
}

TEST_CASE("DeepSeek-V3 without what was kept aside: the MTP embedding and head are the main ones") {
  TempDir tmp;
  convertOk(hubDir("deepseek_v3"), tmp / "mcore", options("deepseek_v3", "hf", "mcore"));
  REQUIRE(fs::exists(tmp / "mcore/ckptmap-stash"));
  fs::remove_all(tmp / "mcore/ckptmap-stash");
  convertOk(tmp / "mcore", tmp / "hf", options("deepseek_v3", "mcore", "hf"));
  DiffResult diff = diffPaths(hubDir("deepseek_v3"), tmp / "hf");
  CHECK(diff.onlyInA.empty());
  CHECK(diff.onlyInB.empty());
  REQUIRE(diff.differences.size() == 2);
  CHECK(diff.differences[0].name == "model.layers.3.embed_tokens.weight");
  CHECK(diff.differences[1].name == "model.layers.3.shared_head.head.weight");
  auto out = openTensors(tmp / "hf");
  auto hub = openTensors(hubDir("deepseek_v3"));
  auto bytesOf = [](const TensorSource &s, const std::string &n) {
    auto b = requireValue(s.read(*s.find(n)));
    return std::vector<uint8_t>(b.bytes().begin(), b.bytes().end());
  };
  CHECK(bytesOf(*out, "model.layers.3.embed_tokens.weight") == bytesOf(*hub, "model.embed_tokens.weight"));
  CHECK(bytesOf(*out, "model.layers.3.shared_head.head.weight") == bytesOf(*hub, "lm_head.weight"));
}
