// The parser's AST, printed back as normalized rulebook text: a golden dump of a rulebook
// using every construct, and dump -> parse -> dump is the identity on the shipped rulebooks.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

const char *kEveryConstruct = R"(// Every construct of the language once.
rulebook every_construct {
  model_types "demo", "demo_v2"
  description "not printed by the dump"
}

/* Parameters: literals, config paths, defaults, operators, functions. */
param layers = config.num_hidden_layers
param dense  = config.first_k_dense_replace ?? 0   "layers below this are dense"
param kinds  = config.layers_block_type ?? chars(config.hybrid_override_pattern)
param ratio  = 0.5
param big    = 1e6
param exact  = 0.1234567891234 + 2.0 + 1.5e-7
param neg    = -3 + 2 * (4 - 1) / 3 % 2
param flags  = [true, false, null, "s", [1, 2]]
param tc     = ifelse(len(kinds) > 0 and not false or true, config.text_config ?? config, config)
param at     = kinds[0] == "M" != (layers >= 2) == (dense < 1) == (dense <= 1) == (dense > 1)
param dt     = dtype(config.torch_dtype ?? "bfloat16")
param total  = min(1, 2) + max([3, 4]) + count(kinds, "E") + ifelse(contains(kinds, "M"), 1, 0)
param lm     = "model."
param prefix = "{config.prefix ?? \"m\"}layers.\t\\"

assert layers > 0
assert dense <= layers : "first_k_dense_replace exceeds num_hidden_layers"

block attention {
  "self_attention.linear_qkv.weight" =
      qkv("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
          heads: 8, groups: 2, gate: false)
  "self_attention.linear_proj.weight" = "self_attn.o_proj.weight"
}

block layer {
  param local = L * 2
  assert local >= 0
  switch kinds[L] {
    case "M", "mamba" { "mixer.in_proj.weight" = "mixer.in_proj.weight" }
    case "*" { use attention }
    default { "mlp.linear_fc1.weight" = gated("mlp.gate_proj.weight", "mlp.up_proj.weight") }
  }
  if L < dense {
    "mlp.linear_fc2.weight" = "mlp.down_proj.weight"
  } else if L == dense {
    optional "mlp.router.expert_bias" = "mlp.gate.e_score_correction_bias"
  } else {
    "mlp.experts.linear_fc2.weight" = stack(E in 0 .. 4, transpose("mlp.experts.{E}.down_proj.weight", perm: [1, 0]))
  }
  choose norms {
    variant separate "doc text" { "input_layernorm.weight" = "input_layernorm.weight" }
    variant fused { "self_attention.linear_qkv.layer_norm_weight" = "input_layernorm.weight" }
  }
}

mapping mcore <-> hf {
  "embedding.word_embeddings.weight" = "{lm}embed_tokens.weight"
  for L in 0 .. layers {
    scope "decoder.layers.{L}." = "{lm}layers.{L}." { use layer }
  }
  "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 2 * 4, "in_proj_z.weight" : 4, "in_proj_b.weight")
  "conv1d.weight" = reshape("conv1d.weight", to: [8, 1, 4], from: [8, 4])
  cast("bias", from: BF16, to: F32) = "bias"
  "out_norm.weight" = affine("norm.weight", scale: 1, shift: -1)
  drop hf "model.rotary_emb.inv_freq" because "the \"inv_freq\" buffer is recomputed at load"
  drop hf "mtp.{m}.embed_tokens.weight" because "shared" restore copy "{lm}embed_tokens.weight"
  drop mcore "output_layer.bias" because "HF has no bias" restore fill(0, [32], BF16)
  drop hf "model.visual.{*rest}" because "text only" restore from base
  otherwise "extra.{*rest}" = "model.extra.{*rest}"
  keep "lm_head.weight"
}

mapping hf <-> hf-mem {
  keep "{*name}"
}
)";

std::string dumpOf(const std::string &text, const std::string &name = "dump.rules") {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto rb = parseRulebookText(name, text, sources, diags);
  REQUIRE_MESSAGE(!diags.hasErrors(), diags.render());
  std::string out;
  llvm::raw_string_ostream os(out);
  rb->dump(os);
  return os.str();
}

std::string dumpOfFile(const std::string &path) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto rb = parseRulebookFile(path, sources, diags);
  REQUIRE(rb);
  REQUIRE_MESSAGE(!diags.hasErrors(), diags.render());
  std::string out;
  llvm::raw_string_ostream os(out);
  rb->dump(os);
  return os.str();
}

} // namespace

TEST_CASE("AST dump: every construct (golden)") {
  checkGolden("every_construct.ast.txt", dumpOf(kEveryConstruct));
}

TEST_CASE("AST dump: the dump parses back to the same dump") {
  std::string once = dumpOf(kEveryConstruct);
  CHECK(dumpOf(once) == once);
}

TEST_CASE("AST dump: the every-construct rulebook also checks") {
  Session s;
  CHECK(s.check(kEveryConstruct));
  CHECK(s.diags.errorCount() == 0);
}

TEST_CASE("AST dump: shipped rulebooks, with their includes merged, dump stably") {
  for (const char *family : {"deepseek_v3", "minimax_m3", "nemotron_h", "qwen3_5_moe"}) {
    CAPTURE(family);
    std::string once = dumpOfFile(sourcePath(std::string("rulebooks/") + family + ".rules"));
    CHECK(once.rfind(std::string("rulebook ") + family + " {\n", 0) == 0);
    CHECK(dumpOf(once) == once);
  }
}
