// The HF layouts the public releases use (reference/releases.md), built from the fixtures:
// every layout of the same weights gives the same MCore checkpoint, the way back restores the
// layout the input had (recorded in the MCore output), --layout writes any of them, and a
// block that mixes two layouts or matches none is an error naming it.

#include "E2e.h"

#include <functional>
#include <regex>

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

/// A tensor's new name, or "" to leave it out.
using Rename = std::function<std::string(const std::string &)>;

/// A checkpoint made from `from`: each tensor renamed by `rename`, and the routed experts of
/// every layer whose prefix `fuse` accepts fused as the official Qwen3.5 release stores them:
/// `experts.gate_up_proj` [E, 2I, H] (expert by expert, gate rows then up rows) and
/// `experts.down_proj` [E, H, I], no `.weight`. `gate`, `up`, `down` are the per-expert leaf
/// names. Config files come from `configFrom` (default: `from`).
void writeLayout(const std::string &from, const std::string &outDir, const Rename &rename,
                 const std::function<bool(const std::string &)> &fuse, const std::string &configFrom = "",
                 const std::vector<std::string> &leaves = {"gate_proj", "up_proj", "down_proj"}) {
  static const std::regex expert(R"(^(.*experts\.)(\d+)\.(\w+)\.weight$)");
  std::vector<HandTensor> out;
  struct Fused {
    TensorMeta first;
    std::map<int, std::map<std::string, std::string>> parts; ///< expert -> leaf -> name
  };
  std::map<std::string, Fused> fused; ///< by the renamed `...experts.` prefix
  for (const auto &[name, meta] : tensorsOf(from)) {
    std::string n = rename(name);
    if (n.empty())
      continue;
    std::smatch m;
    if (std::regex_match(n, m, expert) && fuse(m[1].str()) &&
        llvm::is_contained(leaves, m[3].str())) {
      Fused &f = fused[m[1].str()];
      f.first = meta;
      f.parts[std::stoi(m[2].str())][m[3].str()] = name;
      continue;
    }
    TensorMeta t = meta;
    t.name = n;
    out.push_back({t, {name}, std::nullopt});
  }
  for (const auto &[prefix, f] : fused) {
    HandTensor gateUp{f.first, {}, std::nullopt}, down{f.first, {}, std::nullopt};
    int next = 0;
    for (const auto &[e, byLeaf] : f.parts) {
      REQUIRE(e == next++);
      REQUIRE(byLeaf.size() == 3);
      gateUp.parts.push_back(byLeaf.at(leaves[0]));
      gateUp.parts.push_back(byLeaf.at(leaves[1]));
      down.parts.push_back(byLeaf.at(leaves[2]));
    }
    auto metas = tensorsOf(from);
    const Shape &g = metas.at(f.parts.begin()->second.at(leaves[0])).shape; // [I, H]
    const Shape &d = metas.at(f.parts.begin()->second.at(leaves[2])).shape; // [H, I]
    int64_t experts = int64_t(f.parts.size());
    gateUp.meta.name = prefix + "gate_up_proj";
    gateUp.meta.shape = {experts, 2 * g[0], g[1]};
    down.meta.name = prefix + "down_proj";
    down.meta.shape = {experts, d[0], d[1]};
    out.push_back(gateUp);
    out.push_back(down);
  }
  std::string configDir = configFrom.empty() ? from : configFrom;
  writeByHand(from, outDir, out, {"config.json", "generation_config.json"}, configDir);
}

Rename same() {
  return [](const std::string &n) { return n; };
}

/// One layout of a family, made from its fixtures.
struct LayoutCase {
  std::string family, layout;
  std::function<void(const TempDir &, const std::string &)> build;
  /// Recorded choices this layout must bind (choice, where-prefix, variant).
  std::vector<std::tuple<std::string, std::string, std::string>> binds;
};

bool notMtp(const std::string &prefix) { return !startsWith(prefix, "mtp."); }
bool any(const std::string &) { return true; }
bool none(const std::string &) { return false; }

/// MiniMax-M3's hub names of a dense layer and of the vision MLP: `mlp.`, not
/// `block_sparse_moe.` (which save_pretrained writes).
std::string minimaxOfficial(const std::string &n) {
  static const std::regex dense(R"(^(language_model\.model\.layers\.0\.)block_sparse_moe\.(.*)$)");
  static const std::regex vision(R"(^(vision_tower\.vision_model\.encoder\.layers\.\d+\.)block_sparse_moe\.(.*)$)");
  std::smatch m;
  if (std::regex_match(n, m, dense) || std::regex_match(n, m, vision))
    return m[1].str() + "mlp." + m[2].str();
  return n;
}

std::vector<LayoutCase> layoutCases() {
  std::vector<LayoutCase> cases;
  const std::string lmL0 = "decoder.layers.0. = model.language_model.layers.0.";
  cases.push_back({"qwen3_5_moe", "saved",
                   [](const TempDir &, const std::string &dir) { writeLayout(hubDir("qwen3_5_moe"), dir, same(), none); },
                   {{"hf_experts", lmL0, "per_expert"}, {"mtp_experts", "mtp.layers.0.mtp_model_layer. = mtp.layers.0.", "per_expert"}}});
  cases.push_back({"qwen3_5_moe", "official",
                   [](const TempDir &, const std::string &dir) { writeLayout(hubDir("qwen3_5_moe"), dir, same(), notMtp); },
                   {{"hf_experts", lmL0, "fused"}, {"mtp_experts", "mtp.layers.0.mtp_model_layer. = mtp.layers.0.", "per_expert"}}});
  cases.push_back({"qwen3_5_moe", "fused",
                   [](const TempDir &, const std::string &dir) { writeLayout(hubDir("qwen3_5_moe"), dir, same(), any); },
                   {{"hf_experts", lmL0, "fused"}, {"mtp_experts", "mtp.layers.0.mtp_model_layer. = mtp.layers.0.", "fused"}}});
  cases.push_back({"minimax_m3", "saved",
                   [](const TempDir &, const std::string &dir) { writeLayout(hubDir("minimax_m3"), dir, same(), none); },
                   {{"text_layout", " = ", "hub"}, {"dense_layout", "decoder.layers.0. = language_model.model.layers.0.", "saved"}}});
  cases.push_back({"minimax_m3", "official",
                   [](const TempDir &, const std::string &dir) {
                     writeLayout(hubDir("minimax_m3"), dir, minimaxOfficial, none);
                   },
                   {{"text_layout", " = ", "hub"}, {"dense_layout", "decoder.layers.0. = language_model.model.layers.0.", "official"}}});
  cases.push_back({"minimax_m3", "in_memory",
                   [](const TempDir &tmp, const std::string &dir) {
                     std::string staged = stageSingleFile(tmp, "inmem-staged", inmemFile("minimax_m3"), hubDir("minimax_m3"));
                     writeLayout(staged, dir, same(), none);
                   },
                   {{"text_layout", " = ", "in_memory"}, {"hf_experts", "decoder.layers.1. = model.language_model.layers.1.", "fused"}}});
  cases.push_back({"minimax_m3", "text",
                   [](const TempDir &tmp, const std::string &dir) {
                     // The standalone text model: the in-memory names without the language_model
                     // level and without the vision tower, and the text config alone.
                     std::string staged = stageSingleFile(tmp, "inmem-staged", inmemFile("minimax_m3"), hubDir("minimax_m3"));
                     json config = readJson(hubDir("minimax_m3") + "/config.json")["text_config"];
                     config["architectures"] = {"MiniMaxM3SparseForCausalLM"};
                     writeFile(staged + "/config.json", config.dump(2));
                     writeLayout(staged, dir,
                                 [](const std::string &n) -> std::string {
                                   if (startsWith(n, "model.language_model."))
                                     return "model." + n.substr(std::strlen("model.language_model."));
                                   return startsWith(n, "lm_head.") ? n : "";
                                 },
                                 none);
                   },
                   {{"text_layout", " = ", "text"}, {"hf_experts", "decoder.layers.2. = model.layers.2.", "fused"}}});
  return cases;
}

ConvertOptions back(const std::string &family, const std::string &hfBase) {
  ConvertOptions o = options(family, "mcore", "hf");
  if (isVl(family))
    o.hfBase = hfBase;
  return o;
}

std::string variantAt(const json &provenance, const std::string &choice, const std::string &where) {
  for (const json &c : provenance["choices"])
    if (c["choice"] == choice && c["where"] == where)
      return c["variant"];
  return "(none)";
}

} // namespace

TEST_CASE("every HF layout of the same weights gives the same MCore checkpoint, and comes back as it was") {
  std::map<std::string, std::string> reference; // family -> MCore from the hub fixture
  TempDir tmp;
  for (const LayoutCase &k : layoutCases()) {
    CAPTURE(k.family);
    CAPTURE(k.layout);
    if (!reference.count(k.family)) {
      reference[k.family] = tmp / (k.family + "-mcore-hub");
      convertOk(hubDir(k.family), reference[k.family], options(k.family, "hf", "mcore"));
    }
    TempDir work;
    std::string hf = work / "hf";
    k.build(work, hf);
    ConvertSummary out = convertOk(hf, work / "mcore", options(k.family, "hf", "mcore"));
    E2E_REQUIRE_SAME(reference[k.family], work / "mcore");

    json provenance = readJson(work / "mcore/ckptmap.json");
    for (const auto &[choice, where, variant] : k.binds)
      CHECK_MESSAGE(variantAt(provenance, choice, where) == variant, choice << " at " << where);
    // A choice the source decides says so.
    for (const ChoiceRecord &c : out.plan.choices)
      if (c.choice == "hf_experts" || c.choice == "text_layout" || c.choice == "mtp_experts")
        CHECK_MESSAGE(c.reason == "the only variant the checkpoint matches", c.choice << " at " << c.where);

    // Back with no options: the layout recorded in the MCore output, byte for byte.
    convertOk(work / "mcore", work / "back", back(k.family, hf));
    E2E_REQUIRE_SAME(hf, work / "back");

    // --layout writes it from an MCore checkpoint that recorded another layout.
    ConvertOptions o = back(k.family, hf);
    o.bind.layout = k.layout;
    convertOk(reference[k.family], work / "by-name", o);
    E2E_REQUIRE_SAME(hf, work / "by-name");
  }
}

TEST_CASE("with nothing recorded, the way back writes the official release's layout") {
  for (const std::string &family : {std::string("qwen3_5_moe"), std::string("minimax_m3")}) {
    CAPTURE(family);
    TempDir tmp;
    convertOk(hubDir(family), tmp / "mcore", options(family, "hf", "mcore"));
    fs::remove(tmp / "mcore/ckptmap.json");
    std::string official = tmp / "official";
    for (const LayoutCase &k : layoutCases())
      if (k.family == family && k.layout == "official")
        k.build(tmp, official);
    ConvertSummary s = convertOk(tmp / "mcore", tmp / "hf", back(family, official));
    E2E_REQUIRE_SAME(official, tmp / "hf");
    bool sawDefault = false;
    for (const ChoiceRecord &c : s.plan.choices)
      if (c.reason == "default layout official")
        sawDefault = true;
    CHECK(sawDefault);
  }
}

TEST_CASE("a block that mixes two expert layouts, or matches none, is an error naming it") {
  TempDir tmp;
  std::string fused = tmp / "fused";
  writeLayout(hubDir("qwen3_5_moe"), fused, same(), notMtp);
  const std::string layer1 = "model.language_model.layers.1.mlp.experts.";

  SUBCASE("mixed") {
    // Layer 1 holds the fused tensors and expert 0's own tensors besides.
    std::string dir = tmp / "mixed";
    auto hub = tensorsOf(hubDir("qwen3_5_moe"));
    std::vector<HandTensor> tensors;
    for (const auto &[name, meta] : tensorsOf(fused))
      tensors.push_back({meta, {}, std::vector<uint8_t>(meta.byteSize(), 0)});
    for (const char *leaf : {"gate_proj", "up_proj", "down_proj"}) {
      TensorMeta t = hub.at(layer1 + "0." + leaf + ".weight");
      tensors.push_back({t, {}, std::vector<uint8_t>(t.byteSize(), 0)});
    }
    writeByHand(fused, dir, tensors, {"config.json", "generation_config.json"}, fused);
    SourceManager sources;
    DiagnosticEngine diags(sources);
    auto r = convert(dir, tmp / "out", options("qwen3_5_moe", "hf", "mcore"), sources, diags);
    REQUIRE(!r);
    llvm::consumeError(r.takeError());
    std::string text = diags.render();
    CHECK_MESSAGE(text.find("error: the checkpoint mixes variants of 'hf_experts' at "
                            "'decoder.layers.1. = model.language_model.layers.1.': it has the tensors of 'fused' and '" +
                            layer1 + "0.down_proj.weight' of 'per_expert'\n") != std::string::npos,
                  text);
    CHECK_MESSAGE(text.find("note: variant 'per_expert' needs '" + layer1 +
                            "1.gate_proj.weight', which the checkpoint does not have; it found 3 of its tensors, e.g. '" +
                            layer1 + "0.down_proj.weight'\n") != std::string::npos,
                  text);
    CHECK_MESSAGE(text.find("note: variant 'fused' matches (2 tensors)\n") != std::string::npos, text);
    CHECK_MESSAGE(text.find("1 error generated.") != std::string::npos, text);
    CHECK(!fs::exists(tmp / "out"));
  }
  SUBCASE("none") {
    // Layer 1 lost its fused down_proj.
    std::string dir = tmp / "none";
    std::vector<HandTensor> tensors;
    for (const auto &[name, meta] : tensorsOf(fused))
      if (name != layer1 + "down_proj")
        tensors.push_back({meta, {name}, std::nullopt});
    writeByHand(fused, dir, tensors, {"config.json", "generation_config.json"}, fused);
    SourceManager sources;
    DiagnosticEngine diags(sources);
    auto r = convert(dir, tmp / "out", options("qwen3_5_moe", "hf", "mcore"), sources, diags);
    REQUIRE(!r);
    llvm::consumeError(r.takeError());
    std::string text = diags.render();
    CHECK_MESSAGE(text.find("error: no variant of 'hf_experts' matches the checkpoint at "
                            "'decoder.layers.1. = model.language_model.layers.1.'") != std::string::npos,
                  text);
    CHECK_MESSAGE(text.find("note: variant 'fused' needs '" + layer1 +
                            "down_proj', which the checkpoint does not have; it found 1 of its tensors, e.g. '" +
                            layer1 + "gate_up_proj'") != std::string::npos,
                  text);
    CHECK(!fs::exists(tmp / "out"));
  }
}

TEST_CASE("--layout names a layout the rulebook declares") {
  TempDir tmp;
  convertOk(hubDir("qwen3_5_moe"), tmp / "mcore", options("qwen3_5_moe", "hf", "mcore"));
  ConvertOptions o = back("qwen3_5_moe", hubDir("qwen3_5_moe"));
  o.bind.layout = "oficial";
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto r = convert(tmp / "mcore", tmp / "hf", o, sources, diags);
  REQUIRE(!r);
  llvm::consumeError(r.takeError());
  std::string text = diags.render();
  CHECK_MESSAGE(text.find("error: --layout oficial: rulebook 'qwen3_5_moe' has no layout 'oficial'") != std::string::npos,
                text);
  CHECK_MESSAGE(text.find("note: did you mean 'official'?") != std::string::npos, text);
}

TEST_CASE("NemotronH: the layer kinds in any of the three config spellings give the same MCore checkpoint") {
  TempDir tmp;
  convertOk(hubDir("nemotron_h"), tmp / "reference", options("nemotron_h", "hf", "mcore"));
  json hub = readJson(hubDir("nemotron_h") + "/config.json");
  struct Spelling {
    std::string label;
    std::function<void(json &)> apply;
  };
  const std::vector<Spelling> spellings = {
      {"hybrid_override_pattern", [](json &c) {
         c.erase("layers_block_type");
         c.erase("mtp_layers_block_type");
         c["hybrid_override_pattern"] = "ME*-ME";
         c["mtp_hybrid_override_pattern"] = "*E";
       }},
      {"layers_block_type (mamba / attention)", [](json &c) {
         c["layers_block_type"] = {"mamba", "moe", "attention", "mlp", "mamba", "moe"};
         c["mtp_layers_block_type"] = {"attention", "moe"};
       }},
      {"layer_types", [](json &c) {
         c["layer_types"] = c["layers_block_type"];
         c.erase("layers_block_type");
       }},
  };
  for (size_t i = 0; i < spellings.size(); ++i) {
    CAPTURE(spellings[i].label);
    std::string dir = tmp / ("hf-" + std::to_string(i));
    fs::create_directories(dir);
    for (const std::string &f : listFiles(hubDir("nemotron_h")))
      copyFile(hubDir("nemotron_h") + "/" + f, dir + "/" + f);
    json config = hub;
    spellings[i].apply(config);
    writeFile(dir + "/config.json", config.dump(2));
    std::string mcore = tmp / ("mcore-" + std::to_string(i));
    convertOk(dir, mcore, options("nemotron_h", "hf", "mcore"));
    E2E_REQUIRE_SAME(tmp / "reference", mcore);
    std::string hf = tmp / ("back-" + std::to_string(i));
    convertOk(mcore, hf, options("nemotron_h", "mcore", "hf"));
    E2E_REQUIRE_SAME(dir, hf);
    CHECK(readFile(hf + "/config.json") == readFile(dir + "/config.json"));
  }
}

TEST_CASE("inspect names the family, the layout found for each kind of block and the formats") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  std::string official = tmp / "official";
  writeLayout(hubDir("qwen3_5_moe"), official, same(), notMtp);
  const std::string log = tmp / "log";
  REQUIRE(runCli("inspect " + q(official), log) == 0);
  std::string text = readFile(log);
  CHECK_MESSAGE(text.find("family: qwen3_5_moe (rulebook ") != std::string::npos, text);
  CHECK_MESSAGE(text.find("\n  layout hf_experts: fused (4x)\n  layout mtp_experts: per_expert (1x)\n"
                          "  format unquantized: 101 tensors, e.g. 'lm_head.weight'\n") != std::string::npos,
                text);

  REQUIRE(runCli("inspect " + q(hubDir("deepseek_v3_fp8")), log) == 0);
  text = readFile(log);
  CHECK_MESSAGE(text.find("\n  format fp8-block: 48 tensors, e.g. 'model.layers.0.mlp.down_proj.weight'\n"
                          "  format unquantized: 25 tensors, e.g. 'lm_head.weight'\n") != std::string::npos,
                text);
}

TEST_CASE("MiniMax-M3: hf -> hf-mem -> hf --layout official writes the hub release's layout, vision MLP included") {
  // The way through MCore takes the vision tower from --hf-base as it is; through hf-mem every
  // name is mapped, so the vision MLP moves to mlp. as well.
  TempDir tmp;
  std::string official = tmp / "official";
  writeLayout(hubDir("minimax_m3"), official, minimaxOfficial, none);
  convertOk(hubDir("minimax_m3"), tmp / "mem", options("minimax_m3", "hf", "hf-mem"));
  ConvertOptions o = options("minimax_m3", "hf-mem", "hf");
  o.bind.layout = "official";
  convertOk(tmp / "mem", tmp / "hf", o);
  E2E_REQUIRE_SAME(official, tmp / "hf");
}

TEST_CASE("MiniMax-M3 through MCore: the vision MLP from --hf-base follows the output's layout, whichever the base has") {
  TempDir tmp;
  const std::string saved = hubDir("minimax_m3"), official = tmp / "official";
  writeLayout(saved, official, minimaxOfficial, none);
  convertOk(saved, tmp / "mcore", options("minimax_m3", "hf", "mcore"));
  for (const std::string &base : {saved, official})
    for (const std::string &layout : {std::string("saved"), std::string("official")}) {
      CAPTURE(base);
      CAPTURE(layout);
      ConvertOptions o = back("minimax_m3", base);
      o.bind.layout = layout;
      const std::string out = tmp / ("from-" + fs::path(base).filename().string() + "-as-" + layout);
      convertOk(tmp / "mcore", out, o);
      E2E_REQUIRE_SAME(layout == "official" ? official : saved, out);
    }
}
