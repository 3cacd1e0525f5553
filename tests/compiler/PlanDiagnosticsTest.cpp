// Planning errors: the rules bind, but the tensors do not fit them (coverage, shapes, dtypes,
// stated sizes). Each asserts the exact text `ckptmap check` prints.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

const Value kConfig = Value::parse(R"({"model_type": "demo"})");

std::string plan(const std::string &body, const std::vector<TensorMeta> &header, const char *from = "hf",
                 const char *to = "mcore") {
  return compileDiagnostics("rulebook demo { model_types \"demo\" }\nmapping mcore <-> hf {\n" + body + "}\n", kConfig,
                            header, direction(from, to));
}

} // namespace

TEST_CASE("plan: uncovered tensors, grouped by pattern") {
  CHECK_DIAGS(plan(R"(  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
)",
                   {T("model.embed_tokens.weight", {8, 4}), T("lm_head.weight", {8, 4}),
                    T("model.layers.0.self_attn.rotary_emb.inv_freq", DType::F32, {2}),
                    T("model.layers.1.self_attn.rotary_emb.inv_freq", DType::F32, {2}),
                    T("model.layers.10.self_attn.rotary_emb.inv_freq", DType::F32, {2}),
                    T("model.layers.0.mlp.experts.3.w", {2}), T("model.layers.2.mlp.experts.0.w", {2})}),
              R"d(error: 6 tensors of the checkpoint are not covered by any rule (map or drop each one, with a reason)
note: 'lm_head.weight'
note: 'model.layers.{N}.mlp.experts.{N}.w': 2 tensors, e.g. 'model.layers.0.mlp.experts.3.w'
note: 'model.layers.{N}.self_attn.rotary_emb.inv_freq': 3 tensors, e.g. 'model.layers.0.self_attn.rotary_emb.inv_freq'
1 error generated.
)d");
}

TEST_CASE("plan: a tensor consumed by two rules") {
  CHECK_DIAGS(plan(R"(  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  "output_layer.weight" = "model.embed_tokens.weight"
)",
                   {T("model.embed_tokens.weight", {8, 4})}),
              R"d(test.rules:4:27: error: tensor 'model.embed_tokens.weight' is consumed by more than one rule
    4 |   "output_layer.weight" = "model.embed_tokens.weight"
      |                           ^~~~~~~~~~~~~~~~~~~~~~~~~~~
test.rules:3:40: note: it is also consumed here
    3 |   "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
      |                                        ^~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: a tensor consumed by a rule and a drop") {
  CHECK_DIAGS(plan(R"(  "a" = "b"
  drop hf "b" because "not needed"
)",
                   {T("b", {8, 4})}),
              R"d(test.rules:4:3: error: tensor 'b' is consumed by more than one rule
    4 |   drop hf "b" because "not needed"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
test.rules:3:9: note: it is also consumed here
    3 |   "a" = "b"
      |         ^~~
1 error generated.
)d");
}

TEST_CASE("plan: an output produced twice") {
  CHECK_DIAGS(plan(R"(  "decoder.final_layernorm.weight" = "model.norm.weight"
  "decoder.final_layernorm.weight" = "model.final_norm.weight"
)",
                   {T("model.norm.weight", {8}), T("model.final_norm.weight", {8})}),
              R"d(test.rules:4:3: error: output 'decoder.final_layernorm.weight' is produced more than once
    4 |   "decoder.final_layernorm.weight" = "model.final_norm.weight"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
test.rules:3:3: note: it is also produced here
    3 |   "decoder.final_layernorm.weight" = "model.norm.weight"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: a concat size the rule states disagrees with the tensor") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param nk = config.linear_num_key_heads
param dk = config.linear_key_head_dim
param nv = config.linear_num_value_heads
mapping mcore <-> hf {
  "in_proj.weight" = concat(0,
      "in_proj_qkv.weight" : 2 * nk * dk + nv * dk,
      "in_proj_z.weight" : nv * dk,
      "in_proj_b.weight" : nv)
}
)",
                                 Value::parse(R"({"model_type": "demo", "linear_num_key_heads": 2, "linear_key_head_dim": 4,
                                                  "linear_num_value_heads": 4})"),
                                 {T("in_proj_qkv.weight", {32, 8}), T("in_proj_z.weight", {16, 8}), T("in_proj_b.weight", {2, 8})},
                                 direction("hf", "mcore")),
              R"d(test.rules:9:28: error: concat: 'in_proj_b.weight' has 2 along dim 0 but the rule states 4
    9 |       "in_proj_b.weight" : nv)
      |                            ^~
note: with nv = 4
1 error generated.
)d");
}

TEST_CASE("plan: a concat size computed from several config values") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param nk = config.linear_num_key_heads
param dk = config.linear_key_head_dim
param nv = config.linear_num_value_heads
param dv = config.linear_value_head_dim
mapping mcore <-> hf {
  for L in 0 .. 1 {
    scope "decoder.layers.{L}." = "model.layers.{L}." {
      "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 2 * nk * dk + nv * dv, "in_proj_z.weight" : nv * dv)
    }
  }
}
)",
                                 Value::parse(R"({"model_type": "demo", "linear_num_key_heads": 2, "linear_key_head_dim": 4,
                                                  "linear_num_value_heads": 4, "linear_value_head_dim": 8})"),
                                 {T("model.layers.0.in_proj_qkv.weight", {48, 8}), T("model.layers.0.in_proj_z.weight", {32, 8})},
                                 direction("hf", "mcore")),
              R"d()d");
}

TEST_CASE("plan: a split with two parts of unknown size") {
  CHECK_DIAGS(plan(R"(  "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 24, "in_proj_z.weight", "in_proj_b.weight")
)",
                   {T("in_proj.weight", {40, 8})}, "mcore", "hf"),
              R"d(test.rules:3:22: error: split of 'in_proj.weight' along dim 0 needs the size of each part: 2 parts state none (write `part : size`)
    3 |   "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 24, "in_proj_z.weight", "in_proj_b.weight")
      |                      ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: a split whose stated sizes exceed the tensor") {
  CHECK_DIAGS(plan(R"(  "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 24, "in_proj_z.weight" : 24, "in_proj_b.weight")
)",
                   {T("in_proj.weight", {40, 8})}, "mcore", "hf"),
              R"d(test.rules:3:22: error: split: the stated sizes add up to 48, more than 'in_proj.weight' has along dim 0 (40)
    3 |   "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 24, "in_proj_z.weight" : 24, "in_proj_b.weight")
      |                      ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: a split whose stated sizes do not add up") {
  CHECK_DIAGS(plan(R"(  "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 24, "in_proj_z.weight" : 8)
)",
                   {T("in_proj.weight", {40, 8})}, "mcore", "hf"),
              R"d(test.rules:3:22: error: split: sizes add up to 32 but the tensor has 40 along dim 0 (from 'in_proj.weight')
    3 |   "in_proj.weight" = concat(0, "in_proj_qkv.weight" : 24, "in_proj_z.weight" : 8)
      |                      ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: concat parts that differ off the joined dim") {
  CHECK_DIAGS(plan(R"(  "fused" = concat(1, "a", "b")
  "mixed" = concat(0, "c", "d")
)",
                   {T("a", {4, 2}), T("b", {3, 2}), T("c", {4, 2}), T("d", DType::F32, {4, 2})}),
              R"d(test.rules:3:13: error: concat: parts differ in dim 0: [4, 2] and [3, 2] (from 'a', 'b')
    3 |   "fused" = concat(1, "a", "b")
      |             ^~~~~~~~~~~~~~~~~~~
test.rules:4:13: error: concat: parts have different dtypes: BF16 [4, 2] and F32 [4, 2] (from 'c', 'd')
    4 |   "mixed" = concat(0, "c", "d")
      |             ^~~~~~~~~~~~~~~~~~~
2 errors generated.
)d");
}

TEST_CASE("plan: gated halves of different shapes") {
  CHECK_DIAGS(plan(R"(  "mlp.linear_fc1.weight" = gated("mlp.gate_proj.weight", "mlp.up_proj.weight")
)",
                   {T("mlp.gate_proj.weight", {96, 64}), T("mlp.up_proj.weight", {64, 64})}),
              R"d(test.rules:3:29: error: gated: gate 'mlp.gate_proj.weight' is [96, 64] but up 'mlp.up_proj.weight' is [64, 64]
    3 |   "mlp.linear_fc1.weight" = gated("mlp.gate_proj.weight", "mlp.up_proj.weight")
      |                             ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: split_gated of an odd number of rows") {
  CHECK_DIAGS(plan(R"(  "mlp.linear_fc1.weight" = gated("mlp.gate_proj.weight", "mlp.up_proj.weight")
)",
                   {T("mlp.linear_fc1.weight", {97, 64})}, "mcore", "hf"),
              R"d(test.rules:3:29: error: split_gated: 'mlp.linear_fc1.weight' [97, 64] does not have an even number of rows
    3 |   "mlp.linear_fc1.weight" = gated("mlp.gate_proj.weight", "mlp.up_proj.weight")
      |                             ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: qkv whose key rows do not divide by the groups") {
  CHECK_DIAGS(plan(R"(  "linear_qkv.weight" = qkv("q_proj.weight", "k_proj.weight", "v_proj.weight", heads: 8, groups: 3)
)",
                   {T("q_proj.weight", {64, 16}), T("k_proj.weight", {16, 16}), T("v_proj.weight", {16, 16})}),
              R"d(test.rules:3:25: error: qkv: k 'k_proj.weight' has 16 rows, not a multiple of groups = 3
    3 |   "linear_qkv.weight" = qkv("q_proj.weight", "k_proj.weight", "v_proj.weight", heads: 8, groups: 3)
      |                         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: qkv whose query rows disagree with the heads") {
  CHECK_DIAGS(plan(R"(  "linear_qkv.weight" = qkv("q_proj.weight", "k_proj.weight", "v_proj.weight", heads: 8, groups: 2)
)",
                   {T("q_proj.weight", {48, 16}), T("k_proj.weight", {16, 16}), T("v_proj.weight", {16, 16})}),
              R"d(test.rules:3:25: error: qkv_fuse: q, k, v have 48, 16, 16 rows; heads 8, groups 2, head_dim 8 need 64, 16, 16 (from 'q_proj.weight', 'k_proj.weight', 'v_proj.weight')
    3 |   "linear_qkv.weight" = qkv("q_proj.weight", "k_proj.weight", "v_proj.weight", heads: 8, groups: 2)
      |                         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: split_qkv of rows that do not divide into heads") {
  CHECK_DIAGS(plan(R"(  "linear_qkv.weight" = qkv("q_proj.weight", "k_proj.weight", "v_proj.weight", heads: 8, groups: 2, gate: true)
)",
                   {T("linear_qkv.weight", {90, 16})}, "mcore", "hf"),
              R"d(test.rules:3:25: error: split_qkv: 'linear_qkv.weight' has 90 rows, not a multiple of 20 (heads 8 with gates + 2 x groups 2)
    3 |   "linear_qkv.weight" = qkv("q_proj.weight", "k_proj.weight", "v_proj.weight", heads: 8, groups: 2, gate: true)
      |                         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: unstack of a tensor with the wrong number of entries") {
  CHECK_DIAGS(plan(R"(  "experts.linear_fc2.weight" = stack(E in 0 .. 4, "experts.{E}.down_proj.weight")
)",
                   {T("experts.linear_fc2.weight", {3, 8, 2})}, "mcore", "hf"),
              R"d(test.rules:3:33: error: unstack: 'experts.linear_fc2.weight' [3, 8, 2] does not have 4 entries along dim 0
    3 |   "experts.linear_fc2.weight" = stack(E in 0 .. 4, "experts.{E}.down_proj.weight")
      |                                 ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: stack of parts that differ") {
  CHECK_DIAGS(plan(R"(  "experts.linear_fc2.weight" = stack(E in 0 .. 2, "experts.{E}.down_proj.weight")
)",
                   {T("experts.0.down_proj.weight", {8, 2}), T("experts.1.down_proj.weight", {8, 3})}),
              R"d(test.rules:3:33: error: stack: parts differ in dim 1: [8, 2] and [8, 3] (from 'experts.0.down_proj.weight', 'experts.1.down_proj.weight')
    3 |   "experts.linear_fc2.weight" = stack(E in 0 .. 2, "experts.{E}.down_proj.weight")
      |                                 ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: cast of a tensor whose dtype is not the stated from") {
  CHECK_DIAGS(plan(R"(  cast("gate.e_score_correction_bias", from: BF16, to: F32) = "gate.e_score_correction_bias"
)",
                   {T("gate.e_score_correction_bias", DType::F32, {8})}, "mcore", "hf"),
              R"d(test.rules:3:3: error: cast: 'gate.e_score_correction_bias' is F32 but the rule states from: BF16
    3 |   cast("gate.e_score_correction_bias", from: BF16, to: F32) = "gate.e_score_correction_bias"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: cast back of a tensor whose dtype is not the stated to") {
  CHECK_DIAGS(plan(R"(  cast("gate.e_score_correction_bias", from: BF16, to: F32) = "gate.e_score_correction_bias"
)",
                   {T("gate.e_score_correction_bias", DType::BF16, {8})}, "hf", "mcore"),
              R"d(test.rules:3:3: error: cast: 'gate.e_score_correction_bias' is BF16 but the rule states to: F32
    3 |   cast("gate.e_score_correction_bias", from: BF16, to: F32) = "gate.e_score_correction_bias"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: cast to an integer type") {
  CHECK_DIAGS(plan(R"(  "ids" = cast("ids", from: BF16, to: I32)
)",
                   {T("ids", DType::BF16, {8})}),
              R"d(test.rules:3:11: error: cast: cannot cast BF16 [8] to I32 [8] (from 'ids')
    3 |   "ids" = cast("ids", from: BF16, to: I32)
      |           ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: reshape of a tensor whose shape is not the stated from") {
  CHECK_DIAGS(plan(R"(  "conv1d.weight" = reshape("conv1d.weight", to: [64, 1, 4], from: [64, 4])
)",
                   {T("conv1d.weight", {64, 8})}),
              R"d(test.rules:3:21: error: reshape: 'conv1d.weight' is [64, 8] but the rule states from: [64, 4]
    3 |   "conv1d.weight" = reshape("conv1d.weight", to: [64, 1, 4], from: [64, 4])
      |                     ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: reshape to a different number of elements") {
  CHECK_DIAGS(plan(R"(  "conv1d.weight" = reshape("conv1d.weight", to: [64, 2, 4], from: [64, 4])
)",
                   {T("conv1d.weight", {64, 4})}),
              R"d(test.rules:3:21: error: reshape: cannot reshape BF16 [64, 4] to BF16 [64, 2, 4] (from 'conv1d.weight')
    3 |   "conv1d.weight" = reshape("conv1d.weight", to: [64, 2, 4], from: [64, 4])
      |                     ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: transpose with a perm of the wrong rank") {
  CHECK_DIAGS(plan(R"(  "w" = transpose("w", perm: [1, 0])
)",
                   {T("w", {2, 3, 4})}),
              R"d(test.rules:3:9: error: transpose: perm has 2 entries for a rank-3 tensor (from 'w')
    3 |   "w" = transpose("w", perm: [1, 0])
      |         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: restore copy of an output no rule produces") {
  CHECK_DIAGS(plan(R"(  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  drop hf "mtp.shared_head.head.weight" because "MCore's MTP shares the output head" restore copy "lm_head.weight"
)",
                   {T("embedding.word_embeddings.weight", {8, 4})}, "mcore", "hf"),
              R"d(test.rules:4:3: error: cannot restore 'mtp.shared_head.head.weight' as a copy of 'lm_head.weight': no rule produces 'lm_head.weight'
    4 |   drop hf "mtp.shared_head.head.weight" because "MCore's MTP shares the output head" restore copy "lm_head.weight"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: a dropped copy whose type differs from the tensor it copies") {
  CHECK_DIAGS(plan(R"(  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  drop hf "mtp.embed_tokens.weight" because "MCore's MTP shares the embedding" restore copy "model.embed_tokens.weight"
)",
                   {T("model.embed_tokens.weight", {8, 4}), T("mtp.embed_tokens.weight", {8, 2})}),
              R"d(test.rules:4:3: error: 'mtp.embed_tokens.weight' (BF16 [8, 2]) cannot be a copy of 'model.embed_tokens.weight' (BF16 [8, 4])
    4 |   drop hf "mtp.embed_tokens.weight" because "MCore's MTP shares the embedding" restore copy "model.embed_tokens.weight"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: a tensor shared by every instance of a rule with captures") {
  // The instances come from the pattern with captures, so the shared part is consumed by
  // each of them.
  CHECK_DIAGS(plan(R"(  "x.{i}" = gated("gate", "up.{i}")
)",
                   {T("gate", {2}), T("up.0", {2}), T("up.1", {2})}),
              R"d(test.rules:3:19: error: tensor 'gate' is consumed by more than one instance of this rule
    3 |   "x.{i}" = gated("gate", "up.{i}")
      |                   ^~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: an output produced by every iteration of a loop") {
  CHECK_DIAGS(plan(R"(  for L in 0 .. 2 {
    "decoder.final_layernorm.weight" = "model.layers.{L}.norm.weight"
  }
)",
                   {T("model.layers.0.norm.weight", {2}), T("model.layers.1.norm.weight", {2})}),
              R"d(test.rules:4:5: error: output 'decoder.final_layernorm.weight' is produced by more than one instance of this rule
    4 |     "decoder.final_layernorm.weight" = "model.layers.{L}.norm.weight"
      |     ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: concat of parts of different ranks") {
  CHECK_DIAGS(plan(R"(  "w" = concat(0, "a", "b")
)",
                   {T("a", {2, 3}), T("b", {2})}),
              R"d(test.rules:3:9: error: concat: parts have different ranks: BF16 [2, 3] and BF16 [2] (from 'a', 'b')
    3 |   "w" = concat(0, "a", "b")
      |         ^~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: the way back of an affine map with scale 0") {
  CHECK_DIAGS(plan(R"(  "norm.weight" = affine("norm.weight", scale: 0, shift: 1)
)",
                   {T("norm.weight", {4})}, "mcore", "hf"),
              R"d(test.rules:3:19: error: affine: scale 0 has no inverse
    3 |   "norm.weight" = affine("norm.weight", scale: 0, shift: 1)
      |                   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: quantize of a tensor that is not the stated dtype, or already quantized") {
  CHECK_DIAGS(plan(R"(  "a" = quantize(nvfp4, "x")
  "b" = quantize(fp8, "y", from: F32)
)",
                   {T("x", DType::F32, {4, 16}), T("y", DType::F32, {4, 16})}),
              R"d(test.rules:3:9: error: quantize: 'x' is F32 but the rule states from: BF16
    3 |   "a" = quantize(nvfp4, "x")
      |         ^~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: dequantize of a tensor that is not quantized so") {
  CHECK_DIAGS(plan(R"(  "a" = dequantize("x", format: fp8)
)",
                   {T("x", {4, 16})}),
              R"d(test.rules:3:9: error: dequantize: 'x' is BF16 [4, 16], not fp8
    3 |   "a" = dequantize("x", format: fp8)
      |         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: quantize of a shape the format cannot hold") {
  CHECK_DIAGS(plan(R"(  "a" = quantize(nvfp4, "x")
)",
                   {T("x", {4, 10})}),
              R"d(test.rules:3:9: error: quantize: nvfp4 needs the column count to be a multiple of 16, not 10 (from 'x')
    3 |   "a" = quantize(nvfp4, "x")
      |         ^~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("plan: a bound tensor the planned checkpoint does not have") {
  // Binding and planning against different headers: the planner names the tensor.
  Session s;
  REQUIRE(s.check("rulebook demo { model_types \"demo\" }\nmapping mcore <-> hf {\n  \"a\" = \"b\"\n}\n"));
  auto binding = s.bind(kConfig, {T("b", {2})}, direction("hf", "mcore"));
  REQUIRE(binding);
  std::vector<TensorMeta> other = {T("c", {2})};
  PlanInputs inputs{other, {}, {}, false};
  CHECK_FALSE(buildPlan(*binding, inputs, s.diags));
  CHECK_DIAGS(s.render(), R"d(test.rules:3:9: error: tensor 'b' is not in the checkpoint
    3 |   "a" = "b"
      |         ^~~
error: 1 tensor of the checkpoint is not covered by any rule (map or drop each one, with a reason)
note: 'c'
2 errors generated.
)d");
}

TEST_CASE("plan: restoring a kept-aside tensor the stash does not hold") {
  Session s;
  REQUIRE(s.check(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  drop hf "mtp.embed_tokens.weight" because "MCore's MTP shares the embedding" restore copy "model.embed_tokens.weight"
}
)"));
  BindOptions o = direction("mcore", "hf");
  o.stashed.insert("mtp.embed_tokens.weight"); // as a recorded run says, but the stash is empty
  std::vector<TensorMeta> header = {T("embedding.word_embeddings.weight", {8, 4})};
  auto binding = s.bind(kConfig, header, o);
  REQUIRE(binding);
  PlanInputs inputs{header, {}, {}, false};
  CHECK_FALSE(buildPlan(*binding, inputs, s.diags));
  CHECK_DIAGS(s.render(), R"d(test.rules:4:3: error: 'mtp.embed_tokens.weight' is not among the tensors kept aside
    4 |   drop hf "mtp.embed_tokens.weight" because "MCore's MTP shares the embedding" restore copy "model.embed_tokens.weight"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

namespace {

/// The round trip of `rules` from an HF header: what it finds wrong, one line each.
std::string roundTripMismatches(const std::string &rules, const std::vector<TensorMeta> &header) {
  Session s;
  REQUIRE_MESSAGE(s.check(rules), s.render());
  CompileInputs inputs;
  inputs.config = kConfig;
  inputs.source = header;
  BindOptions options = direction("hf", "mcore");
  auto forward = compilePlan(*s.rulebook, "test.rules", inputs, options, s.diags);
  REQUIRE_MESSAGE(forward, s.render());
  RoundTrip trip = checkRoundTrip(*s.rulebook, "test.rules", *forward, inputs, options, s.diags);
  REQUIRE_MESSAGE(trip.reverse, s.render());
  std::string out;
  for (const std::string &m : trip.mismatches)
    out += m + "\n";
  return out;
}

// Rules that read the direction from the checkpoint, so that the way back differs.
const char *kOneWayHeader = R"(rulebook demo { model_types "demo" }
param back = len(shape("m.x") ?? []) > 0
param rows = shape("h.a")[0] ?? 2
mapping mcore <-> hf {
)";

} // namespace

TEST_CASE("round trip: a tensor the way back does not restore") {
  CHECK(roundTripMismatches(std::string(kOneWayHeader) + R"(  "m.x" = "h.x"
  if back { drop mcore "m.y" because "only on the way back" } else { "m.y" = "h.y" }
}
)",
                            {T("h.x", {2}), T("h.y", {2})}) == "'h.y' is not restored\n");
}

TEST_CASE("round trip: a tensor that comes back with another shape") {
  CHECK(roundTripMismatches(std::string(kOneWayHeader) + R"(  "m.x" = concat(0, "h.a" : rows, "h.b")
}
)",
                            {T("h.a", {4, 2}), T("h.b", {2, 2})}) ==
        "'h.a' comes back as BF16 [2, 2], not BF16 [4, 2]\n'h.b' comes back as BF16 [4, 2], not BF16 [2, 2]\n");
}

TEST_CASE("round trip: a tensor that appears only on the way back") {
  CHECK(roundTripMismatches(std::string(kOneWayHeader) + R"(  "m.x" = "h.x"
  if back { drop hf "h.extra" because "only on the way back" restore fill(0, [2], BF16) }
}
)",
                            {T("h.x", {2})}) == "'h.extra' appears on the way back but was not in the input\n");
}
