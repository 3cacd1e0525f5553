// Every rulebook bound to configs the fixtures do not cover. A small header synthesizer per
// family builds the tensor list (names, dtypes, shapes) a hub checkpoint of a modified config
// would have, from the fixture's tensors as templates (one layer per kind, expert 0 for every
// expert). Each must compile and round-trip from headers alone; a config that disagrees with
// its tensors must fail with an error that says what is wrong.

#include "E2e.h"

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

/// A hub checkpoint that does not exist: its config.json and its tensors' headers.
struct Synthetic {
  json config;
  std::vector<TensorMeta> tensors;

  void add(const std::string &name, const TensorMeta &like, std::optional<Shape> shape = std::nullopt) {
    if (!names.insert(name).second)
      FAIL("synthesized twice: " << name);
    TensorMeta t = like;
    t.name = name;
    if (shape)
      t.shape = *shape;
    tensors.push_back(std::move(t));
  }
  void remove(const std::string &prefix) {
    std::erase_if(tensors, [&](const TensorMeta &t) { return startsWith(t.name, prefix); });
    std::erase_if(names, [&](const std::string &n) { return startsWith(n, prefix); });
  }
  bool has(const std::string &name) const { return names.count(name) != 0; }

private:
  std::set<std::string> names;
};

/// The tensors of a family's hub fixture, the templates of every synthetic header.
class Templates {
public:
  explicit Templates(const std::string &family)
      : tensors_(tensorsOf(hubDir(family))), config_(readJson(hubDir(family) + "/config.json")) {}

  const json &config() const { return config_; }
  const TensorMeta &at(const std::string &name) const {
    auto it = tensors_.find(name);
    REQUIRE_MESSAGE(it != tensors_.end(), "no template tensor " << name);
    return it->second;
  }
  /// (name relative to `prefix`, tensor) for every tensor under `prefix`.
  std::vector<std::pair<std::string, TensorMeta>> under(const std::string &prefix) const {
    std::vector<std::pair<std::string, TensorMeta>> out;
    for (const auto &[name, meta] : tensors_)
      if (startsWith(name, prefix))
        out.push_back({name.substr(prefix.size()), meta});
    REQUIRE_MESSAGE(!out.empty(), "no template tensors under " << prefix);
    return out;
  }

private:
  std::map<std::string, TensorMeta> tensors_;
  json config_;
};

/// Adds a MoE block's tensors from a template layer: the router and its bias sized for
/// `experts`, expert 0 repeated as every expert, the rest as is. `moe` is the block's prefix
/// ("mlp.", "mixer.", "block_sparse_moe.") relative to the layer.
void addMoe(Synthetic &s, const Templates &t, const std::string &from, const std::string &to, const std::string &moe,
            int experts) {
  for (const auto &[rel, meta] : t.under(from + moe)) {
    if (startsWith(rel, "experts.")) {
      if (!startsWith(rel, "experts.0."))
        continue;
      for (int e = 0; e < experts; ++e)
        s.add(to + moe + "experts." + std::to_string(e) + "." + rel.substr(10), meta);
    } else if (rel == "gate.weight") {
      s.add(to + moe + rel, meta, Shape{experts, meta.shape[1]});
    } else if (rel == "gate.e_score_correction_bias" || rel == "e_score_correction_bias") {
      s.add(to + moe + rel, meta, Shape{experts});
    } else {
      s.add(to + moe + rel, meta);
    }
  }
}

/// Adds the tensors of grouped-query attention from a template layer, k/v sized for `groups`.
void addAttention(Synthetic &s, const Templates &t, const std::string &from, const std::string &to,
                  const std::string &attn, int groups, int headDim) {
  for (const auto &[rel, meta] : t.under(from + attn)) {
    if (startsWith(rel, "index_"))
      continue; // MiniMax's indexer: added by the caller
    if (rel == "k_proj.weight" || rel == "v_proj.weight")
      s.add(to + attn + rel, meta, Shape{groups * headDim, meta.shape[1]});
    else
      s.add(to + attn + rel, meta);
  }
}

void addAs(Synthetic &s, const Templates &t, const std::string &from, const std::string &to) {
  for (const auto &[rel, meta] : t.under(from))
    s.add(to + rel, meta);
}

// ---------------------------------------------------------------------------------------------
// NemotronH

struct NemotronSpec {
  std::string pattern = "ME*-ME";   ///< M mamba, * attention, - mlp, E moe
  enum class Spelling { Words, Transformers, Hybrid } spelling = Spelling::Transformers;
  int groups = 2;
  int experts = 4;
  std::string mtpPattern = "*E";
  int mtpBlocks = 1;
  bool tied = false;
};

std::string nemotronKind(char c, NemotronSpec::Spelling spelling) {
  using S = NemotronSpec::Spelling;
  switch (c) {
  case 'M': return spelling == S::Transformers ? "linear_attention" : "mamba";
  case '*': return spelling == S::Transformers ? "full_attention" : "attention";
  case '-': return "mlp";
  default: return "moe";
  }
}

/// One NemotronH layer of kind `c` at HF prefix `to`; the fixture's layers 0-3 are the templates.
void addNemotronLayer(Synthetic &s, const Templates &t, char c, const std::string &to, const NemotronSpec &spec) {
  const std::string from = std::string("backbone.layers.") + (c == 'M' ? "0" : c == 'E' ? "1" : c == '*' ? "2" : "3") + ".";
  s.add(to + "norm.weight", t.at(from + "norm.weight"));
  if (c == 'E')
    addMoe(s, t, from, to, "mixer.", spec.experts);
  else if (c == '*')
    addAttention(s, t, from, to, "mixer.", spec.groups, 16);
  else
    addAs(s, t, from + "mixer.", to + "mixer.");
}

Synthetic nemotron(const NemotronSpec &spec) {
  Templates t("nemotron_h");
  Synthetic s;
  s.config = t.config();
  json kinds = json::array(), mtpKinds = json::array();
  for (char c : spec.pattern)
    kinds.push_back(nemotronKind(c, spec.spelling));
  for (char c : spec.mtpPattern)
    mtpKinds.push_back(nemotronKind(c, spec.spelling));
  s.config.erase("layers_block_type");
  s.config.erase("mtp_layers_block_type");
  if (spec.spelling == NemotronSpec::Spelling::Hybrid) {
    s.config["hybrid_override_pattern"] = spec.pattern;
    if (spec.mtpBlocks > 0)
      s.config["mtp_hybrid_override_pattern"] = spec.mtpPattern;
  } else {
    s.config["layers_block_type"] = kinds;
    if (spec.mtpBlocks > 0)
      s.config["mtp_layers_block_type"] = mtpKinds;
  }
  s.config["num_hidden_layers"] = spec.pattern.size();
  s.config["num_key_value_heads"] = spec.groups;
  s.config["n_routed_experts"] = spec.experts;
  s.config["num_nextn_predict_layers"] = spec.mtpBlocks;
  s.config["tie_word_embeddings"] = spec.tied;

  s.add("backbone.embeddings.weight", t.at("backbone.embeddings.weight"));
  for (size_t L = 0; L < spec.pattern.size(); ++L)
    addNemotronLayer(s, t, spec.pattern[L], "backbone.layers." + std::to_string(L) + ".", spec);
  s.add("backbone.norm_f.weight", t.at("backbone.norm_f.weight"));
  if (!spec.tied)
    s.add("lm_head.weight", t.at("lm_head.weight"));
  const size_t depth = spec.mtpPattern.size();
  for (int b = 0; b < spec.mtpBlocks; ++b)
    for (size_t i = 0; i < depth; ++i) {
      std::string to = "mtp.layers." + std::to_string(b * depth + i) + ".";
      addNemotronLayer(s, t, spec.mtpPattern[i], to, spec);
      if (i == 0)
        for (const char *n : {"eh_proj.weight", "enorm.weight", "hnorm.weight"})
          s.add(to + n, t.at(std::string("mtp.layers.0.") + n));
      if (i == depth - 1)
        s.add(to + "final_layernorm.weight", t.at("mtp.layers.1.final_layernorm.weight"));
    }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Qwen3.5-MoE

struct QwenSpec {
  std::vector<std::string> layerTypes = {"linear_attention", "linear_attention", "linear_attention", "full_attention"};
  int groups = 2;
  int experts = 4;
  int mtp = 1;
  bool tied = false;
  bool vl = true; ///< false: the text model alone (qwen3_5_moe_text, prefix model.)
};

void addQwenLayer(Synthetic &s, const Templates &t, bool full, const std::string &to, const QwenSpec &spec) {
  const std::string from = full ? "model.language_model.layers.3." : "model.language_model.layers.0.";
  s.add(to + "input_layernorm.weight", t.at(from + "input_layernorm.weight"));
  s.add(to + "post_attention_layernorm.weight", t.at(from + "post_attention_layernorm.weight"));
  if (full)
    addAttention(s, t, from, to, "self_attn.", spec.groups, 16);
  else
    addAs(s, t, from + "linear_attn.", to + "linear_attn.");
  addMoe(s, t, from, to, "mlp.", spec.experts);
}

Synthetic qwen(const QwenSpec &spec) {
  Templates t("qwen3_5_moe");
  Synthetic s;
  json text = t.config()["text_config"];
  text["layer_types"] = spec.layerTypes;
  text["num_hidden_layers"] = spec.layerTypes.size();
  text["num_key_value_heads"] = spec.groups;
  text["num_experts"] = spec.experts;
  text["mtp_num_hidden_layers"] = spec.mtp;
  text["tie_word_embeddings"] = spec.tied;
  if (spec.vl) {
    s.config = t.config();
    s.config["text_config"] = text;
    s.config["tie_word_embeddings"] = spec.tied;
  } else {
    s.config = text;
  }
  const std::string lm = spec.vl ? "model.language_model." : "model.";
  s.add(lm + "embed_tokens.weight", t.at("model.language_model.embed_tokens.weight"));
  for (size_t L = 0; L < spec.layerTypes.size(); ++L)
    addQwenLayer(s, t, spec.layerTypes[L] == "full_attention", lm + "layers." + std::to_string(L) + ".", spec);
  s.add(lm + "norm.weight", t.at("model.language_model.norm.weight"));
  if (!spec.tied)
    s.add("lm_head.weight", t.at("lm_head.weight"));
  if (spec.mtp > 0) {
    addQwenLayer(s, t, true, "mtp.layers.0.", spec);
    for (const char *n : {"mtp.fc.weight", "mtp.norm.weight", "mtp.pre_fc_norm_embedding.weight", "mtp.pre_fc_norm_hidden.weight"})
      s.add(n, t.at(n));
  }
  if (spec.vl)
    addAs(s, t, "model.visual.", "model.visual.");
  return s;
}

// ---------------------------------------------------------------------------------------------
// DeepSeek-V3

struct DeepSeekSpec {
  int layers = 3;
  int dense = 1; ///< first_k_dense_replace
  int experts = 4;
  int mtp = 1;
  bool qLora = true;
  bool tied = false;
};

void addDeepSeekLayer(Synthetic &s, const Templates &t, bool dense, const std::string &to, const DeepSeekSpec &spec) {
  // Attention and norms from layer 0; the MLP from layer 0 (dense) or layer 1 (MoE).
  for (const char *n : {"input_layernorm.weight", "post_attention_layernorm.weight"})
    s.add(to + n, t.at(std::string("model.layers.0.") + n));
  for (const auto &[rel, meta] : t.under("model.layers.0.self_attn.")) {
    if (!spec.qLora && startsWith(rel, "q_"))
      continue;
    s.add(to + "self_attn." + rel, meta);
  }
  if (!spec.qLora) {
    // q_proj: heads * (qk_nope + qk_rope) rows.
    const json &c = t.config();
    int64_t rows = c["num_attention_heads"].get<int64_t>() * c["qk_head_dim"].get<int64_t>();
    s.add(to + "self_attn.q_proj.weight", t.at("model.layers.0.self_attn.q_a_proj.weight"),
          Shape{rows, c["hidden_size"].get<int64_t>()});
  }
  if (dense)
    addAs(s, t, "model.layers.0.mlp.", to + "mlp.");
  else
    addMoe(s, t, "model.layers.1.", to, "mlp.", spec.experts);
}

Synthetic deepseek(const DeepSeekSpec &spec) {
  Templates t("deepseek_v3");
  Synthetic s;
  s.config = t.config();
  s.config["num_hidden_layers"] = spec.layers;
  s.config["first_k_dense_replace"] = spec.dense;
  s.config["n_routed_experts"] = spec.experts;
  s.config["num_nextn_predict_layers"] = spec.mtp;
  s.config["tie_word_embeddings"] = spec.tied;
  if (!spec.qLora)
    s.config["q_lora_rank"] = nullptr;
  s.add("model.embed_tokens.weight", t.at("model.embed_tokens.weight"));
  for (int L = 0; L < spec.layers; ++L)
    addDeepSeekLayer(s, t, L < spec.dense, "model.layers." + std::to_string(L) + ".", spec);
  s.add("model.norm.weight", t.at("model.norm.weight"));
  if (!spec.tied)
    s.add("lm_head.weight", t.at("lm_head.weight"));
  for (int m = 0; m < spec.mtp; ++m) {
    std::string to = "model.layers." + std::to_string(spec.layers + m) + ".";
    addDeepSeekLayer(s, t, false, to, spec);
    for (const char *n : {"eh_proj.weight", "enorm.weight", "hnorm.weight", "embed_tokens.weight",
                          "shared_head.norm.weight", "shared_head.head.weight"})
      s.add(to + n, t.at(std::string("model.layers.3.") + n));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// MiniMax-M3

struct MiniMaxSpec {
  std::vector<std::string> mlp = {"dense", "sparse", "sparse"};
  std::vector<std::string> attention = {"full_attention", "minimax_m3_sparse", "full_attention"};
  int groups = 2;
  int experts = 4;
  bool tied = false;
};

Synthetic minimax(const MiniMaxSpec &spec) {
  Templates t("minimax_m3");
  Synthetic s;
  s.config = t.config();
  json &text = s.config["text_config"];
  text["mlp_layer_types"] = spec.mlp;
  text["layer_types"] = spec.attention;
  text["num_hidden_layers"] = spec.mlp.size();
  text["num_key_value_heads"] = spec.groups;
  text["num_local_experts"] = spec.experts;
  text["tie_word_embeddings"] = spec.tied;
  s.config["tie_word_embeddings"] = spec.tied;
  const std::string lm = "language_model.model.";
  s.add(lm + "embed_tokens.weight", t.at(lm + "embed_tokens.weight"));
  for (size_t L = 0; L < spec.mlp.size(); ++L) {
    std::string to = lm + "layers." + std::to_string(L) + ".";
    for (const char *n : {"input_layernorm.weight", "post_attention_layernorm.weight"})
      s.add(to + n, t.at(lm + "layers.0." + n));
    addAttention(s, t, lm + "layers.0.", to, "self_attn.", spec.groups, 16);
    if (spec.attention[L] == "minimax_m3_sparse")
      for (const auto &[rel, meta] : t.under(lm + "layers.1.self_attn.index_"))
        s.add(to + "self_attn.index_" + rel, meta);
    if (spec.mlp[L] == "dense")
      addAs(s, t, lm + "layers.0.block_sparse_moe.", to + "block_sparse_moe.");
    else
      addMoe(s, t, lm + "layers.1.", to, "block_sparse_moe.", spec.experts);
  }
  s.add(lm + "norm.weight", t.at(lm + "norm.weight"));
  if (!spec.tied)
    s.add("language_model.lm_head.weight", t.at("language_model.lm_head.weight"));
  for (const char *p : {"vision_tower.", "multi_modal_projector.", "patch_merge_mlp."})
    addAs(s, t, p, p);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Compiling a synthetic header

struct Outcome {
  std::optional<Plan> plan;
  std::optional<RoundTrip> trip;
  std::string errors; ///< everything the compiler reported
};

Outcome compileSynthetic(const std::string &family, const Synthetic &s, const std::string &to,
                         std::map<std::string, std::string> variants = {}) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto rulebook = loadRulebook(rulebookFile(family), sources, diags);
  REQUIRE_MESSAGE(rulebook != nullptr, diags.render());
  CompileInputs inputs;
  inputs.config = s.config;
  inputs.source = s.tensors;
  BindOptions options;
  options.from = "hf";
  options.to = to;
  options.variants = std::move(variants);
  Outcome out;
  out.plan = compilePlan(*rulebook, rulebookFile(family), inputs, options, diags);
  if (out.plan) {
    DiagnosticEngine back(sources);
    out.trip = checkRoundTrip(*rulebook, rulebookFile(family), *out.plan, inputs, options, back);
    out.errors = back.render();
  }
  out.errors = diags.render() + out.errors;
  return out;
}

/// Compiles hf -> mcore and hf -> hf-mem and proves both ways back restore everything but the
/// stated gaps (`mcoreGaps` vision tensors; MTP tensors on hf-mem). Returns the MCore plan.
Plan requireRoundTrips(const std::string &family, const Synthetic &s, size_t mcoreGaps, size_t memGaps,
                       bool withMem = true) {
  Plan mcore;
  for (const std::string to : {"mcore", "hf-mem"}) {
    if (to == "hf-mem" && !withMem)
      continue;
    CAPTURE(to);
    Outcome o = compileSynthetic(family, s, to);
    REQUIRE_MESSAGE(o.plan.has_value(), o.errors);
    REQUIRE_MESSAGE(o.trip->reverse.has_value(), o.errors);
    CHECK_MESSAGE(o.trip->mismatches.empty(), joinLines(o.trip->mismatches));
    size_t gaps = to == "mcore" ? mcoreGaps : memGaps;
    CHECK(o.trip->statedGaps.size() == gaps);
    CHECK(o.trip->restored == s.tensors.size() - gaps);
    if (to == "mcore")
      mcore = *o.plan;
  }
  return mcore;
}

std::map<std::string, TensorMeta> outputsOf(const Plan &p) { return tensorsOf(p.outputs); }

size_t countPrefix(const std::vector<TensorMeta> &tensors, const std::string &prefix) {
  return size_t(std::count_if(tensors.begin(), tensors.end(), [&](const TensorMeta &t) { return startsWith(t.name, prefix); }));
}

/// REQUIREs that compiling fails and that the errors contain every one of `texts`.
void requireFailure(const std::string &family, const Synthetic &s, const std::vector<std::string> &texts,
                    const std::string &to = "mcore") {
  Outcome o = compileSynthetic(family, s, to);
  REQUIRE_MESSAGE(!o.plan.has_value(), "compiled, but should not have");
  // E2E_SHOW_ERRORS=1 prints the full diagnostics, to see what a case reports.
  if (std::getenv("E2E_SHOW_ERRORS"))
    MESSAGE(o.errors);
  for (const std::string &text : texts)
    CHECK_MESSAGE(o.errors.find(text) != std::string::npos, "expected '" << text << "' in:\n" << o.errors);
}

/// The synthesizer, given the fixture's own config, must give the fixture's header.
void requireSameHeader(const Synthetic &s, const std::string &family) {
  auto synthetic = tensorsOf(s.tensors);
  auto hub = tensorsOf(hubDir(family));
  CHECK(synthetic.size() == s.tensors.size());
  CHECK(synthetic.size() == hub.size());
  for (const auto &[name, meta] : hub) {
    auto it = synthetic.find(name);
    REQUIRE_MESSAGE(it != synthetic.end(), "synthesizer misses " << name);
    CHECK_MESSAGE((it->second.shape == meta.shape && it->second.dtype == meta.dtype), name);
  }
}

} // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("synthesizers reproduce the fixtures' headers from the fixtures' configs") {
  requireSameHeader(nemotron({}), "nemotron_h");
  requireSameHeader(qwen({}), "qwen3_5_moe");
  requireSameHeader(deepseek({}), "deepseek_v3");
  requireSameHeader(minimax({}), "minimax_m3");
}

TEST_CASE("NemotronH on other configs") {
  using S = NemotronSpec::Spelling;
  SUBCASE("layer patterns in every spelling") {
    for (S spelling : {S::Words, S::Transformers, S::Hybrid})
      for (const std::string pattern : {"M", "MEM*", "M-M-M*E", "EEEE", "*-*-", "MMEM*EMM-E"}) {
        CAPTURE(pattern);
        CAPTURE(int(spelling));
        NemotronSpec spec;
        spec.pattern = pattern;
        spec.spelling = spelling;
        Plan p = requireRoundTrips("nemotron_h", nemotron(spec), 0, 22);
        auto out = outputsOf(p);
        for (size_t L = 0; L < pattern.size(); ++L) {
          std::string d = "decoder.layers." + std::to_string(L) + ".";
          switch (pattern[L]) {
          case 'M': CHECK(out.count(d + "mixer.in_proj.weight")); break;
          case '*': CHECK(out.count(d + "self_attention.linear_qkv.weight")); break;
          case '-': CHECK(out.count(d + "mlp.linear_fc1.weight")); break;
          default: CHECK(out.count(d + "mlp.experts.local_experts.3.linear_fc2.weight")); break;
          }
        }
      }
  }
  SUBCASE("GQA ratios") {
    for (int groups : {1, 2, 4}) {
      CAPTURE(groups);
      NemotronSpec spec;
      spec.groups = groups;
      Plan p = requireRoundTrips("nemotron_h", nemotron(spec), 0, 22);
      CHECK(outputsOf(p).at("decoder.layers.2.self_attention.linear_qkv.weight").shape == Shape{(4 + 2 * groups) * 16, 64});
    }
  }
  SUBCASE("expert counts") {
    for (int experts : {1, 2, 8, 16}) {
      CAPTURE(experts);
      NemotronSpec spec;
      spec.experts = experts;
      Plan p = requireRoundTrips("nemotron_h", nemotron(spec), 0, 14 + 2 * experts);
      CHECK(countPrefix(p.outputs, "decoder.layers.1.mlp.experts.local_experts.") == size_t(2 * experts));
      CHECK(outputsOf(p).at("decoder.layers.5.mlp.router.weight").shape == Shape{experts, 64});
    }
  }
  SUBCASE("MTP depth and blocks") {
    struct Mtp {
      std::string pattern;
      int blocks;
    };
    for (const Mtp &m : {Mtp{"", 0}, Mtp{"E", 1}, Mtp{"*E", 1}, Mtp{"*-E", 1}, Mtp{"*E", 2}, Mtp{"M*E", 2}}) {
      CAPTURE(m.pattern);
      CAPTURE(m.blocks);
      for (S spelling : {S::Words, S::Hybrid}) {
        NemotronSpec spec;
        spec.mtpPattern = m.pattern;
        spec.mtpBlocks = m.blocks;
        spec.spelling = spelling;
        Synthetic s = nemotron(spec);
        size_t mtpTensors = countPrefix(s.tensors, "mtp.");
        Plan p = requireRoundTrips("nemotron_h", s, 0, mtpTensors);
        auto out = outputsOf(p);
        for (int b = 0; b < m.blocks; ++b) {
          std::string blk = "mtp.layers." + std::to_string(b) + ".";
          CHECK(out.count(blk + "eh_proj.weight"));
          CHECK(out.count(blk + "final_layernorm.weight"));
          for (size_t i = 0; i < m.pattern.size(); ++i)
            CHECK(countPrefix(p.outputs, blk + "mtp_model_layer.layers." + std::to_string(i) + ".") > 0);
        }
        CHECK_FALSE(out.count("mtp.layers." + std::to_string(m.blocks) + ".eh_proj.weight"));
      }
    }
  }
  SUBCASE("tied embeddings") {
    NemotronSpec spec;
    spec.tied = true;
    Plan p = requireRoundTrips("nemotron_h", nemotron(spec), 0, 22);
    CHECK_FALSE(outputsOf(p).count("output_layer.weight"));
  }
}

TEST_CASE("NemotronH configs that disagree with the tensors") {
  SUBCASE("wrong num_key_value_heads") {
    Synthetic s = nemotron({});
    s.config["num_key_value_heads"] = 4;
    requireFailure("nemotron_h", s,
                   {"qkv_fuse: q, k, v have 64, 32, 32 rows; heads 4, groups 4, head_dim 8 need 32, 32, 32 "
                    "(from 'backbone.layers.2.mixer.q_proj.weight', 'backbone.layers.2.mixer.k_proj.weight', "
                    "'backbone.layers.2.mixer.v_proj.weight')",
                    "(from 'mtp.layers.0.mixer.q_proj.weight'"});
  }
  SUBCASE("an expert missing from the header") {
    Synthetic s = nemotron({});
    s.remove("backbone.layers.5.mixer.experts.3.");
    requireFailure("nemotron_h", s,
                   {"no variant of 'experts' matches the checkpoint at 'decoder.layers.5. = backbone.layers.5.'",
                    "variant 'local' needs 'backbone.layers.5.mixer.experts.3.up_proj.weight', which the checkpoint "
                    "does not have (and 1 more missing)"});
  }
  SUBCASE("one expert more than the config says") {
    NemotronSpec spec;
    spec.experts = 5;
    Synthetic s = nemotron(spec);
    s.config["n_routed_experts"] = 4;
    requireFailure("nemotron_h", s,
                   {"6 tensors of the checkpoint are not covered by any rule",
                    "'backbone.layers.{N}.mixer.experts.{N}.up_proj.weight': 2 tensors, e.g. "
                    "'backbone.layers.1.mixer.experts.4.up_proj.weight'",
                    "'mtp.layers.1.mixer.experts.4.down_proj.weight'"});
  }
  SUBCASE("layer pattern and num_hidden_layers disagree") {
    Synthetic s = nemotron({});
    s.config["num_hidden_layers"] = 5;
    requireFailure("nemotron_h", s, {"the layer pattern and num_hidden_layers disagree"});
  }
  SUBCASE("a layer of the wrong kind") {
    Synthetic s = nemotron({});
    s.config["layers_block_type"][3] = "moe";
    requireFailure("nemotron_h", s,
                   {"rule needs a tensor the checkpoint does not have: 'backbone.layers.3.mixer.gate.weight'"});
  }
  SUBCASE("an unknown layer kind") {
    Synthetic s = nemotron({});
    s.config["layers_block_type"][3] = "conv";
    requireFailure("nemotron_h", s, {"no case for kind = \"conv\""});
  }
  SUBCASE("MTP layers without their pattern") {
    Synthetic s = nemotron({});
    s.config.erase("mtp_layers_block_type");
    requireFailure("nemotron_h", s, {"MTP layers need mtp_layers_block_type or mtp_hybrid_override_pattern"});
  }
}

TEST_CASE("Qwen3.5-MoE on other configs") {
  SUBCASE("layer patterns") {
    using Types = std::vector<std::string>;
    for (const Types &types : {Types{"full_attention"}, Types{"linear_attention", "full_attention"},
                               Types{"full_attention", "linear_attention", "linear_attention", "full_attention",
                                     "linear_attention", "linear_attention", "linear_attention", "full_attention"}}) {
      QwenSpec spec;
      spec.layerTypes = types;
      Synthetic s = qwen(spec);
      Plan p = requireRoundTrips("qwen3_5_moe", s, 21, 29);
      auto out = outputsOf(p);
      for (size_t L = 0; L < types.size(); ++L) {
        std::string d = "decoder.layers." + std::to_string(L) + ".self_attention.";
        CHECK(out.count(d + (types[L] == "full_attention" ? "linear_qkv.weight" : "in_proj.weight")));
      }
    }
  }
  SUBCASE("GQA ratios: gated q, k and v rows") {
    for (int groups : {1, 2, 4}) {
      CAPTURE(groups);
      QwenSpec spec;
      spec.groups = groups;
      Plan p = requireRoundTrips("qwen3_5_moe", qwen(spec), 21, 29);
      CHECK(outputsOf(p).at("decoder.layers.3.self_attention.linear_qkv.weight").shape ==
            Shape{(2 * 4 + 2 * groups) * 16, 64});
      CHECK(outputsOf(p).at("mtp.layers.0.mtp_model_layer.self_attention.linear_qkv.weight").shape ==
            Shape{(2 * 4 + 2 * groups) * 16, 64});
    }
  }
  SUBCASE("expert counts") {
    for (int experts : {1, 8}) {
      CAPTURE(experts);
      QwenSpec spec;
      spec.experts = experts;
      Plan p = requireRoundTrips("qwen3_5_moe", qwen(spec), 21, 17 + 3 * experts);
      CHECK(countPrefix(p.outputs, "decoder.layers.0.mlp.experts.local_experts.") == size_t(2 * experts));
    }
  }
  SUBCASE("no MTP") {
    QwenSpec spec;
    spec.mtp = 0;
    Plan p = requireRoundTrips("qwen3_5_moe", qwen(spec), 21, 0);
    CHECK(countPrefix(p.outputs, "mtp.") == 0);
  }
  SUBCASE("tied embeddings") {
    QwenSpec spec;
    spec.tied = true;
    Plan p = requireRoundTrips("qwen3_5_moe", qwen(spec), 21, 29);
    CHECK_FALSE(outputsOf(p).count("output_layer.weight"));
  }
  SUBCASE("the text model alone") {
    QwenSpec spec;
    spec.vl = false;
    Synthetic s = qwen(spec);
    CHECK(s.config["model_type"] == "qwen3_5_moe_text");
    Plan p = requireRoundTrips("qwen3_5_moe", s, 0, 29);
    CHECK(outputsOf(p).count("embedding.word_embeddings.weight"));
    CHECK(p.drops.empty());
  }
}

TEST_CASE("Qwen3.5-MoE configs that disagree with the tensors") {
  SUBCASE("wrong num_key_value_heads") {
    Synthetic s = qwen({});
    s.config["text_config"]["num_key_value_heads"] = 1;
    requireFailure("qwen3_5_moe", s,
                   {"qkv_fuse: q, k, v have 128, 32, 32 rows; heads 4, groups 1, head_dim 32 need 256, 32, 32 "
                    "(from 'model.language_model.layers.3.self_attn.q_proj.weight'"});
  }
  SUBCASE("wrong GatedDeltaNet value heads: the stated split size is checked") {
    Synthetic s = qwen({});
    s.config["text_config"]["linear_num_value_heads"] = 2;
    requireFailure("qwen3_5_moe", s,
                   {"concat: 'model.language_model.layers.0.linear_attn.in_proj_qkv.weight' has 128 along dim 0 "
                    "but the rule states 96"});
  }
  SUBCASE("an expert missing from the header") {
    Synthetic s = qwen({});
    s.remove("model.language_model.layers.2.mlp.experts.1.");
    requireFailure("qwen3_5_moe", s,
                   {"no variant of 'hf_experts' matches the checkpoint at 'decoder.layers.2. = model.language_model.layers.2.'",
                    "needs 'model.language_model.layers.2.mlp.experts.1.gate_proj.weight'"});
  }
  SUBCASE("layer_types shorter than num_hidden_layers") {
    Synthetic s = qwen({});
    s.config["text_config"]["num_hidden_layers"] = 5;
    requireFailure("qwen3_5_moe", s, {"layer_types must name every layer"});
  }
  SUBCASE("two MTP layers") {
    Synthetic s = qwen({});
    s.config["text_config"]["mtp_num_hidden_layers"] = 2;
    requireFailure("qwen3_5_moe", s, {"one MTP layer is supported"});
  }
}

TEST_CASE("DeepSeek-V3 on other configs") {
  SUBCASE("first_k_dense_replace") {
    for (int dense : {0, 1, 2, 3}) {
      CAPTURE(dense);
      DeepSeekSpec spec;
      spec.dense = dense;
      Synthetic s = deepseek(spec);
      Plan p = requireRoundTrips("deepseek_v3", s, 0, 32);
      auto out = outputsOf(p);
      for (int L = 0; L < 3; ++L) {
        std::string d = "decoder.layers." + std::to_string(L) + ".mlp.";
        CHECK(out.count(d + (L < dense ? "linear_fc1.weight" : "router.weight")));
      }
    }
  }
  SUBCASE("MTP depth 0, 1, 2") {
    for (int mtp : {0, 1, 2}) {
      CAPTURE(mtp);
      DeepSeekSpec spec;
      spec.mtp = mtp;
      Plan p = requireRoundTrips("deepseek_v3", deepseek(spec), 0, 32 * size_t(mtp));
      CHECK(p.drops.size() == 2 * size_t(mtp));
      auto out = outputsOf(p);
      for (int m = 0; m < mtp; ++m)
        CHECK(out.count("mtp.layers." + std::to_string(m) + ".mtp_model_layer.self_attention.linear_q_down_proj.weight"));
      CHECK_FALSE(out.count("mtp.layers." + std::to_string(mtp) + ".eh_proj.weight"));
    }
  }
  SUBCASE("without q_lora: q_proj") {
    DeepSeekSpec spec;
    spec.qLora = false;
    Synthetic s = deepseek(spec);
    CHECK(s.has("model.layers.0.self_attn.q_proj.weight"));
    CHECK_FALSE(s.has("model.layers.0.self_attn.q_a_proj.weight"));
    Plan p = requireRoundTrips("deepseek_v3", s, 0, 30);
    auto out = outputsOf(p);
    CHECK(out.at("decoder.layers.0.self_attention.linear_q_proj.weight").shape == Shape{96, 64});
    CHECK_FALSE(out.count("decoder.layers.0.self_attention.linear_q_down_proj.weight"));
    CHECK_FALSE(out.count("decoder.layers.0.self_attention.q_layernorm.weight"));
  }
  SUBCASE("expert counts") {
    for (int experts : {2, 8}) {
      CAPTURE(experts);
      DeepSeekSpec spec;
      spec.experts = experts;
      Plan p = requireRoundTrips("deepseek_v3", deepseek(spec), 0, 20 + 3 * experts);
      CHECK(countPrefix(p.outputs, "decoder.layers.2.mlp.experts.local_experts.") == size_t(2 * experts));
    }
  }
  // Tied embeddings are covered without MTP only: with MTP layers, the drop of
  // `shared_head.head.weight` restores a copy of "lm_head.weight" (deepseek_v3.rules, the second
  // drop in the MTP loop), which a tied checkpoint does not have, so it does not compile.
  SUBCASE("tied embeddings without MTP") {
    DeepSeekSpec spec;
    spec.tied = true;
    spec.mtp = 0;
    Plan p = requireRoundTrips("deepseek_v3", deepseek(spec), 0, 0);
    CHECK_FALSE(outputsOf(p).count("output_layer.weight"));
  }
}

TEST_CASE("DeepSeek-V3 configs that disagree with the tensors") {
  SUBCASE("first_k_dense_replace larger than the dense layers") {
    Synthetic s = deepseek({});
    s.config["first_k_dense_replace"] = 2;
    requireFailure("deepseek_v3", s,
                   {"rule needs 2 tensors the checkpoint does not have: 'model.layers.1.mlp.gate_proj.weight', "
                    "'model.layers.1.mlp.up_proj.weight'"});
  }
  SUBCASE("first_k_dense_replace beyond the layers") {
    Synthetic s = deepseek({});
    s.config["first_k_dense_replace"] = 5;
    requireFailure("deepseek_v3", s, {"first_k_dense_replace exceeds num_hidden_layers"});
  }
  SUBCASE("q_lora_rank given but q_proj in the checkpoint") {
    DeepSeekSpec spec;
    spec.qLora = false;
    Synthetic s = deepseek(spec);
    s.config["q_lora_rank"] = 32;
    requireFailure("deepseek_v3", s,
                   {"rule needs 3 tensors the checkpoint does not have: 'model.layers.0.self_attn.q_a_proj.weight'"});
  }
  SUBCASE("an expert missing from the header") {
    Synthetic s = deepseek({});
    s.remove("model.layers.2.mlp.experts.2.");
    requireFailure("deepseek_v3", s,
                   {"no variant of 'hf_experts' matches the checkpoint at 'decoder.layers.2. = model.layers.2.'",
                    "needs 'model.layers.2.mlp.experts.2.gate_proj.weight'"});
  }
  SUBCASE("an expert missing from the MTP layer") {
    // Both spellings of the MTP layer need it, so the outer choice reports it.
    Synthetic s = deepseek({});
    s.remove("model.layers.3.mlp.experts.2.");
    requireFailure("deepseek_v3", s,
                   {"no variant of 'mtp_layer' matches the checkpoint at 'mtp.layers.0. = model.layers.3.'",
                    "needs 'model.layers.3.mlp.experts.2.gate_proj.weight'"});
  }
  SUBCASE("MTP layers the config does not announce") {
    Synthetic s = deepseek({});
    s.config["num_nextn_predict_layers"] = 0;
    requireFailure("deepseek_v3", s,
                   {"32 tensors of the checkpoint are not covered by any rule", "'model.layers.3.eh_proj.weight'"});
  }
}

TEST_CASE("MiniMax-M3 on other configs") {
  SUBCASE("layer patterns") {
    struct Pattern {
      std::vector<std::string> mlp, attention;
    };
    for (const Pattern &pt : {Pattern{{"sparse"}, {"full_attention"}},
                              Pattern{{"dense", "dense", "sparse", "sparse"},
                                      {"minimax_m3_sparse", "full_attention", "minimax_m3_sparse", "minimax_m3_sparse"}},
                              Pattern{{"sparse", "dense"}, {"full_attention", "full_attention"}}}) {
      MiniMaxSpec spec;
      spec.mlp = pt.mlp;
      spec.attention = pt.attention;
      Plan p = requireRoundTrips("minimax_m3", minimax(spec), 27, 0);
      auto out = outputsOf(p);
      for (size_t L = 0; L < pt.mlp.size(); ++L) {
        std::string d = "decoder.layers." + std::to_string(L) + ".";
        CHECK(out.count(d + (pt.mlp[L] == "dense" ? "mlp.linear_fc1.weight" : "mlp.router.weight")));
        CHECK(out.count(d + "self_attention.indexer.q_proj.weight") == (pt.attention[L] == "minimax_m3_sparse"));
      }
    }
  }
  SUBCASE("GQA ratios") {
    for (int groups : {1, 4}) {
      CAPTURE(groups);
      MiniMaxSpec spec;
      spec.groups = groups;
      Plan p = requireRoundTrips("minimax_m3", minimax(spec), 27, 0);
      CHECK(outputsOf(p).at("decoder.layers.1.self_attention.linear_qkv.weight").shape == Shape{(4 + 2 * groups) * 16, 64});
    }
  }
  SUBCASE("expert counts") {
    for (int experts : {1, 8}) {
      CAPTURE(experts);
      MiniMaxSpec spec;
      spec.experts = experts;
      Plan p = requireRoundTrips("minimax_m3", minimax(spec), 27, 0);
      CHECK(countPrefix(p.outputs, "decoder.layers.2.mlp.experts.local_experts.") == size_t(2 * experts));
    }
  }
  SUBCASE("tied embeddings") {
    MiniMaxSpec spec;
    spec.tied = true;
    // hf <-> mcore only: the hf <-> hf-mem mapping renames language_model.lm_head.weight
    // unconditionally (minimax_m3.rules, `"language_model.lm_head.weight" = "lm_head.weight"`),
    // so a tied checkpoint does not compile to hf-mem.
    Plan p = requireRoundTrips("minimax_m3", minimax(spec), 27, 0, false);
    CHECK_FALSE(outputsOf(p).count("output_layer.weight"));
  }
}

TEST_CASE("MiniMax-M3 configs that disagree with the tensors") {
  SUBCASE("wrong num_key_value_heads") {
    Synthetic s = minimax({});
    s.config["text_config"]["num_key_value_heads"] = 4;
    requireFailure("minimax_m3", s,
                   {"qkv_fuse: q, k, v have 64, 32, 32 rows; heads 4, groups 4, head_dim 8 need 32, 32, 32 "
                    "(from 'language_model.model.layers.0.self_attn.q_proj.weight'"});
  }
  SUBCASE("a sparse-attention layer without its indexer") {
    Synthetic s = minimax({});
    s.config["text_config"]["layer_types"][2] = "minimax_m3_sparse";
    requireFailure("minimax_m3", s,
                   {"no variant of 'text_layout' matches the checkpoint\n",
                    "variant 'hub' needs 'language_model.model.layers.2.self_attn.index_q_proj.weight', which the "
                    "checkpoint does not have"});
  }
  SUBCASE("an expert missing from the header") {
    Synthetic s = minimax({});
    s.remove("language_model.model.layers.1.block_sparse_moe.experts.0.");
    requireFailure("minimax_m3", s,
                   {"no variant of 'text_layout' matches the checkpoint\n",
                    "variant 'hub' needs 'language_model.model.layers.1.block_sparse_moe.experts.0.w1.weight'"});
  }
  SUBCASE("mlp_layer_types shorter than the layers") {
    Synthetic s = minimax({});
    s.config["text_config"]["mlp_layer_types"] = {"dense", "sparse"};
    requireFailure("minimax_m3", s, {"mlp_layer_types and layer_types must name every layer"});
  }
}
