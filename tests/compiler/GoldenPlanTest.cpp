// Golden plans: a rulebook using every op, compiled both ways against a hand-made header,
// must give exactly the committed plan JSON (regenerate with CKPTMAP_UPDATE_GOLDEN=1).
#include "Helpers.h"

#include "compiler/plan/Shapes.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

const char *kEveryOp = R"(// Every op of the language, both ways.
rulebook every_op {
  model_types "every_op"
}

param layers  = config.num_hidden_layers
param heads   = config.num_attention_heads
param groups  = config.num_key_value_heads
param experts = config.n_routed_experts
param nv      = config.linear_num_value_heads
param vocab   = config.vocab_size

block attention {
  "self_attention.linear_qkv.weight" =
      qkv("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", heads: heads, groups: groups)
}

block gated_attention {
  "self_attention.linear_qkv.weight" =
      qkv("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
          heads: heads, groups: groups, gate: true)
}

mapping mcore <-> hf {
  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  "output_layer.weight" = "lm_head.weight"
  drop mcore "output_layer.bias" because "HF's lm_head has no bias" restore fill(0, [vocab], BF16)
  for L in 0 .. layers {
    scope "decoder.layers.{L}." = "model.layers.{L}." {
      if L == 0 { use attention } else { use gated_attention }
      "mlp.linear_fc1.weight" = gated("mlp.gate_proj.weight", "mlp.up_proj.weight")
      "mlp.experts.experts.linear_fc2.weight" = stack(E in 0 .. experts, "mlp.experts.{E}.down_proj.weight")
      "self_attention.in_proj.weight" = concat(0,
          "linear_attn.in_proj_qkv.weight" : 2 * nv,
          "linear_attn.in_proj_z.weight" : nv,
          "linear_attn.in_proj_b.weight")
      "self_attention.mixed.weight" = concat(1, "linear_attn.left.weight" : 3, "linear_attn.right.weight" : 5)
      "self_attention.conv1d.weight" = reshape("linear_attn.conv1d.weight", to: [8, 1, 4], from: [8, 4])
      "self_attention.out_norm.weight" = affine("linear_attn.norm.weight", shift: -1)
      "self_attention.proj_t.weight" = transpose("linear_attn.proj.weight")
      "self_attention.rot.weight" = transpose("linear_attn.rot.weight", perm: [2, 0, 1])
      cast("mlp.router.expert_bias", from: BF16, to: F32) = "mlp.gate.e_score_correction_bias"
      choose norms {
        variant separate "input_layernorm module" {
          "input_layernorm.weight" = "input_layernorm.weight"
        }
        variant fused "in linear_qkv's layer-norm slot" {
          "self_attention.linear_qkv.layer_norm_weight" = "input_layernorm.weight"
        }
      }
    }
  }
  drop hf "model.rotary_emb.inv_freq" because "recomputed at load"
  drop hf "mtp.embed_tokens.weight" because "MCore's MTP layer shares the embedding"
    restore copy "model.embed_tokens.weight"
  drop hf "model.visual.{*rest}" because "MCore holds the text model only" restore from base
  otherwise "extra.{*rest}" = "model.extra.{*rest}"
  keep "model.norm.weight"
}
)";

const Value kConfig = Value::parse(R"({
  "model_type": "every_op",
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "n_routed_experts": 3,
  "linear_num_value_heads": 2,
  "vocab_size": 16
})");

std::vector<TensorMeta> hfHeader() {
  std::vector<TensorMeta> h = {
      T("model.embed_tokens.weight", {16, 8}),
      T("lm_head.weight", {16, 8}),
      T("model.norm.weight", {8}),
      T("model.rotary_emb.inv_freq", DType::F32, {4}),
      T("mtp.embed_tokens.weight", {16, 8}),
      T("model.visual.patch_embed.weight", {4, 4}),
      T("model.visual.blocks.0.attn.weight", {4, 4}),
      T("model.extra.scale", DType::F32, {2}),
  };
  for (int L = 0; L < 2; ++L) {
    std::string p = "model.layers." + std::to_string(L) + ".";
    // Layer 1's attention is gated: q_proj holds per head its query rows then its gate rows.
    h.push_back(T(p + "self_attn.q_proj.weight", {L == 0 ? 8 : 16, 8}));
    h.push_back(T(p + "self_attn.k_proj.weight", {4, 8}));
    h.push_back(T(p + "self_attn.v_proj.weight", {4, 8}));
    h.push_back(T(p + "mlp.gate_proj.weight", {6, 8}));
    h.push_back(T(p + "mlp.up_proj.weight", {6, 8}));
    for (int E = 0; E < 3; ++E)
      h.push_back(T(p + "mlp.experts." + std::to_string(E) + ".down_proj.weight", {8, 6}));
    h.push_back(T(p + "linear_attn.in_proj_qkv.weight", {4, 8}));
    h.push_back(T(p + "linear_attn.in_proj_z.weight", {2, 8}));
    h.push_back(T(p + "linear_attn.in_proj_b.weight", {3, 8}));
    h.push_back(T(p + "linear_attn.left.weight", {4, 3}));
    h.push_back(T(p + "linear_attn.right.weight", {4, 5}));
    h.push_back(T(p + "linear_attn.conv1d.weight", {8, 4}));
    h.push_back(T(p + "linear_attn.norm.weight", {8}));
    h.push_back(T(p + "linear_attn.proj.weight", {2, 8}));
    h.push_back(T(p + "linear_attn.rot.weight", {2, 3, 4}));
    h.push_back(T(p + "mlp.gate.e_score_correction_bias", DType::F32, {3}));
    h.push_back(T(p + "input_layernorm.weight", {8}));
  }
  return h;
}

std::string lines(const std::vector<std::string> &v) {
  std::string out;
  for (const std::string &s : v)
    out += s + "\n";
  return out;
}

struct BothWays {
  Session session;
  std::optional<Plan> forward, reverse;

  BothWays() {
    REQUIRE(session.check(kEveryOp, "every_op.rules"));
    forward = session.compile(kConfig, hfHeader(), direction("hf", "mcore"), "every_op.rules");
    REQUIRE_MESSAGE(forward, session.render());
    // The way back reads what the way out wrote.
    reverse = session.compile(kConfig, forward->outputs, direction("mcore", "hf"), "every_op.rules");
    REQUIRE_MESSAGE(reverse, session.render());
  }
};

} // namespace

TEST_CASE("golden plan: every op, hf -> mcore") {
  BothWays b;
  CHECK_DIAGS(b.session.render(), "");
  checkGolden("every_op.hf-mcore.json", planToJson(*b.forward).dump(2) + "\n");
}

TEST_CASE("golden plan: every op, mcore -> hf") {
  BothWays b;
  checkGolden("every_op.mcore-hf.json", planToJson(*b.reverse).dump(2) + "\n");
}

TEST_CASE("golden plan: both plans verify and survive JSON") {
  BothWays b;
  for (const Plan *p : {&*b.forward, &*b.reverse}) {
    CHECK_FALSE(bool(verifyPlanTypes(*p)));
    nlohmann::json once = planToJson(*p);
    Plan back = requireValue(planFromJson(once));
    CHECK(planToJson(back) == once);
  }
}

TEST_CASE("golden plan: the round-trip check of the every-op rulebook") {
  Session s;
  REQUIRE(s.check(kEveryOp, "every_op.rules"));
  CompileInputs inputs;
  inputs.config = kConfig;
  inputs.source = hfHeader();
  BindOptions options = direction("hf", "mcore");
  auto forward = compilePlan(*s.rulebook, "every_op.rules", inputs, options, s.diags);
  REQUIRE(forward);
  RoundTrip trip = checkRoundTrip(*s.rulebook, "every_op.rules", *forward, inputs, options, s.diags);
  CHECK_DIAGS(s.render(), "");
  REQUIRE(trip.reverse);
  CHECK(lines(trip.mismatches) == "");
  // Every input but the dropped ones comes back with its name, dtype and shape.
  CHECK(trip.restored == hfHeader().size() - 3);
  CHECK(lines(trip.statedGaps) == "'model.rotary_emb.inv_freq' is not restored: recomputed at load (every_op.rules:53:3)\n"
                                  "'model.visual.patch_embed.weight' comes back from --hf-base (every_op.rules:56:3)\n"
                                  "'model.visual.blocks.0.attn.weight' comes back from --hf-base (every_op.rules:56:3)\n");
  CHECK(lines(trip.lossy) == "every_op.rules:39:7: affine (hf -> mcore), 2 steps\n"
                             "every_op.rules:42:7: cast (hf -> mcore), 2 steps\n"
                             "every_op.rules:39:7: affine (mcore -> hf), 2 steps\n");
}

TEST_CASE("golden plan: binding then planning is what compilePlan does") {
  Session s;
  REQUIRE(s.check(kEveryOp, "every_op.rules"));
  auto binding = s.bind(kConfig, hfHeader(), direction("hf", "mcore"));
  REQUIRE_MESSAGE(binding, s.render());
  // Rules per layer: attention, gated, stack, two concats, reshape, affine, two transposes,
  // cast, the chosen norm; then the embedding, the output layer, and two fallback renames.
  CHECK(binding->rules.size() == 2 * 11 + 2 + 2);
  CHECK(binding->drops.size() == 5); // inv_freq, the mtp embedding, two visual tensors, the fill
  CHECK(binding->choices.size() == 2);
  CHECK(binding->fromBase.empty());
  CHECK(binding->notRestored.empty());
  CHECK(binding->params.dump() == R"({"experts":3,"groups":2,"heads":4,"layers":2,"nv":2,"vocab":16})");

  std::vector<TensorMeta> header = hfHeader();
  PlanInputs inputs{header, {}, {}, false};
  auto plan = buildPlan(*binding, inputs, s.diags);
  REQUIRE_MESSAGE(plan, s.render());
  plan->rulebook = "every_op.rules";
  plan->family = "every_op";
  BothWays b;
  CHECK(planToJson(*plan) == planToJson(*b.forward));
}

namespace {

const char *kQuantOps = R"(// The quantize and dequantize ops, both ways.
rulebook quant_ops {
  model_types "quant_ops"
}

mapping mcore <-> hf {
  "decoder.layers.0.mlp.linear_fc2.weight" = quantize(nvfp4, "model.layers.0.mlp.down_proj.weight")
  "decoder.layers.0.mlp.linear_fc1.weight" =
      quantize(gated("model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight"), format: fp8_block)
  "decoder.layers.0.mlp.experts.linear_fc2.weight" =
      stack(E in 0 .. 2, quantize(fp8, "model.layers.0.mlp.experts.{E}.down_proj.weight", from: F32))
  "decoder.layers.0.self_attention.linear_proj.weight" =
      dequantize("model.layers.0.self_attn.o_proj.weight", format: fp8)
}
)";

const Value kQuantConfig = Value::parse(R"({"model_type": "quant_ops"})");

/// As a checkpoint stores them: o_proj is FP8 with its per-tensor scale.
std::vector<TensorMeta> quantHfHeader() {
  return {
      T("model.layers.0.mlp.down_proj.weight", {8, 32}),
      T("model.layers.0.mlp.gate_proj.weight", {128, 128}),
      T("model.layers.0.mlp.up_proj.weight", {128, 128}),
      T("model.layers.0.mlp.experts.0.down_proj.weight", DType::F32, {4, 16}),
      T("model.layers.0.mlp.experts.1.down_proj.weight", DType::F32, {4, 16}),
      T("model.layers.0.self_attn.o_proj.weight", DType::F8_E4M3, {16, 16}),
      T("model.layers.0.self_attn.o_proj.weight_scale", DType::F32, {}),
  };
}

struct QuantBothWays {
  Session session;
  CompileInputs inputs;
  std::optional<Plan> forward, reverse;

  QuantBothWays() {
    REQUIRE(session.check(kQuantOps, "quant_ops.rules"));
    inputs.config = kQuantConfig;
    inputs.source = quantHfHeader();
    forward = compilePlan(*session.rulebook, "quant_ops.rules", inputs, direction("hf", "mcore"), session.diags);
    REQUIRE_MESSAGE(forward, session.render());
    // The way back reads the stored parts the way out wrote.
    reverse = session.compile(kQuantConfig, expandQuantized(forward->outputs), direction("mcore", "hf"), "quant_ops.rules");
    REQUIRE_MESSAGE(reverse, session.render());
  }
};

} // namespace

TEST_CASE("golden plan: quantize and dequantize, hf -> mcore") {
  QuantBothWays b;
  CHECK_DIAGS(b.session.render(), "");
  CHECK_FALSE(bool(verifyPlanTypes(*b.forward)));
  checkGolden("quant_ops.hf-mcore.json", planToJson(*b.forward).dump(2) + "\n");
}

TEST_CASE("golden plan: quantize and dequantize, mcore -> hf") {
  QuantBothWays b;
  CHECK_FALSE(bool(verifyPlanTypes(*b.reverse)));
  checkGolden("quant_ops.mcore-hf.json", planToJson(*b.reverse).dump(2) + "\n");
}

TEST_CASE("golden plan: the round trip of quantize and dequantize restores every type, and says it may round") {
  QuantBothWays b;
  RoundTrip trip = checkRoundTrip(*b.session.rulebook, "quant_ops.rules", *b.forward, b.inputs, direction("hf", "mcore"),
                                  b.session.diags);
  CHECK_DIAGS(b.session.render(), "");
  REQUIRE(trip.reverse);
  CHECK(lines(trip.mismatches) == "");
  CHECK(trip.restored == 6);
  CHECK(trip.total == 6);
  CHECK(lines(trip.lossy) == "quant_ops.rules:7:3: quantize (hf -> mcore)\n"
                             "quant_ops.rules:8:3: quantize (hf -> mcore)\n"
                             "quant_ops.rules:10:3: stack (hf -> mcore)\n"
                             "quant_ops.rules:12:3: dequantize (hf -> mcore)\n"
                             "quant_ops.rules:7:3: dequantize (mcore -> hf)\n"
                             "quant_ops.rules:8:3: dequantize (mcore -> hf)\n"
                             "quant_ops.rules:10:3: unstack (mcore -> hf)\n"
                             "quant_ops.rules:12:3: quantize (mcore -> hf)\n");
  // Every output of the way out is stored in the format its rule states.
  for (const TensorMeta &t : b.forward->outputs)
    CHECK_MESSAGE(t.quant.quantized() == (t.name != "decoder.layers.0.self_attention.linear_proj.weight"), t.name);
}
