// Binding errors: the rulebook checks, but does not fit this config.json or this checkpoint.
// Each asserts the exact text `ckptmap check` prints.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

Value config(const char *text) { return Value::parse(text); }

const std::vector<TensorMeta> kTwoLayers = {
    T("model.embed_tokens.weight", {32, 8}),
    T("model.layers.0.mlp.up_proj.weight", {16, 8}),
    T("model.layers.1.mlp.up_proj.weight", {16, 8}),
};

const char *kTwoLayerRules = R"(rulebook demo {
  model_types "demo", "demo_v2"
}
param layers = config.num_hidden_layers
mapping mcore <-> hf {
  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  for L in 0 .. layers {
    "decoder.layers.{L}.mlp.linear_fc1.weight" = "model.layers.{L}.mlp.up_proj.weight"
  }
}
)";

} // namespace

TEST_CASE("bind: the config's model_type is not one the rulebook accepts") {
  CHECK_DIAGS(compileDiagnostics(kTwoLayerRules, config(R"({"model_type": "llama", "num_hidden_layers": 2})"), kTwoLayers,
                                 direction("hf", "mcore")),
              R"d(test.rules:1:10: error: config.json's model_type 'llama' is not one rulebook 'demo' accepts
    1 | rulebook demo {
      |          ^~~~
note: it accepts demo, demo_v2
1 error generated.
)d");
}

TEST_CASE("bind: the config has no model_type") {
  CHECK_DIAGS(compileDiagnostics(kTwoLayerRules, config(R"({"num_hidden_layers": 2})"), kTwoLayers, direction("hf", "mcore")),
              R"d(test.rules:1:10: error: config.json has no model_type
    1 | rulebook demo {
      |          ^~~~
note: it accepts demo, demo_v2
1 error generated.
)d");
}

TEST_CASE("bind: --any-model-type accepts any model_type") {
  BindOptions o = direction("hf", "mcore");
  o.anyModelType = true;
  CHECK_DIAGS(compileDiagnostics(kTwoLayerRules, config(R"({"model_type": "llama", "num_hidden_layers": 2})"), kTwoLayers, o),
              "");
}

TEST_CASE("bind: no mapping for the direction asked") {
  CHECK_DIAGS(compileDiagnostics(kTwoLayerRules, config(R"({"model_type": "demo", "num_hidden_layers": 2})"), kTwoLayers,
                                 direction("hf", "hf-mem")),
              R"d(error: rulebook 'demo' has no mapping between hf and hf-mem
note: it maps mcore <-> hf
1 error generated.
)d");
}

TEST_CASE("bind: -D of a parameter the rulebook does not have") {
  BindOptions o = direction("hf", "mcore");
  o.overrides["layer"] = Value(2);
  o.overrides["zzz"] = Value("x");
  CHECK_DIAGS(compileDiagnostics(kTwoLayerRules, config(R"({"model_type": "demo", "num_hidden_layers": 2})"), kTwoLayers, o),
              R"d(error: -D layer: rulebook 'demo' has no parameter 'layer'
note: did you mean 'layers'?
error: -D zzz: rulebook 'demo' has no parameter 'zzz'
2 errors generated.
)d");
}

TEST_CASE("bind: -D replaces a parameter's value, and its expression is not evaluated") {
  BindOptions o = direction("hf", "mcore");
  o.overrides["layers"] = Value(2);
  // The config lacks num_hidden_layers: the override means it is never read.
  Session s;
  REQUIRE(s.check(kTwoLayerRules));
  auto plan = s.compile(config(R"({"model_type": "demo"})"), kTwoLayers, o);
  CHECK_DIAGS(s.render(), "");
  REQUIRE(plan);
  CHECK(plan->params["layers"] == 2);
  CHECK(plan->outputs.size() == 3);
}

TEST_CASE("bind: a config key that does not exist") {
  CHECK_DIAGS(compileDiagnostics(kTwoLayerRules, config(R"({"model_type": "demo", "num_layers": 2})"), kTwoLayers,
                                 direction("hf", "mcore")),
              R"d(test.rules:4:16: error: config.json has no key 'num_hidden_layers'
    4 | param layers = config.num_hidden_layers
      |                ^~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: a nested config key that does not exist") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param hidden = config.text_config.hidden_size
mapping mcore <-> hf { "a.{hidden}" = "b.{hidden}" }
)",
                                 config(R"({"model_type": "demo", "text_config": {"hidden": 8}})"), {},
                                 direction("hf", "mcore")),
              R"d(test.rules:2:16: error: config.json has no key 'text_config.hidden_size'
    2 | param hidden = config.text_config.hidden_size
      |                ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: a member of something that is not an object") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param hidden = config.text_config.hidden_size
mapping mcore <-> hf { "a.{hidden}" = "b.{hidden}" }
)",
                                 config(R"({"model_type": "demo", "text_config": 7})"), {}, direction("hf", "mcore")),
              R"d(test.rules:2:35: error: 'hidden_size': an integer has no members
    2 | param hidden = config.text_config.hidden_size
      |                                   ^~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: ?? takes the default for a missing key or null, and nothing else") {
  const char *rules = R"(rulebook demo { model_types "demo" }
param tc = config.text_config ?? config
param layers = tc.num_hidden_layers ?? 1
param dense = config.first_k_dense_replace ?? 0
mapping mcore <-> hf {
  for L in dense .. layers { "decoder.layers.{L}.w" = "model.layers.{L}.w" }
}
)";
  SUBCASE("missing keys") {
    Session s;
    REQUIRE(s.check(rules));
    auto plan = s.compile(config(R"({"model_type": "demo"})"), {T("model.layers.0.w", {2})}, direction("hf", "mcore"));
    CHECK_DIAGS(s.render(), "");
    REQUIRE(plan);
    CHECK(plan->params.dump() == R"({"dense":0,"layers":1,"tc":{"model_type":"demo"}})");
  }
  SUBCASE("null values") {
    Session s;
    REQUIRE(s.check(rules));
    auto plan = s.compile(config(R"({"model_type": "demo", "text_config": null, "num_hidden_layers": null})"),
                          {T("model.layers.0.w", {2})}, direction("hf", "mcore"));
    CHECK_DIAGS(s.render(), "");
    REQUIRE(plan);
    CHECK(plan->params["layers"] == 1);
  }
  SUBCASE("present values win") {
    Session s;
    REQUIRE(s.check(rules));
    auto plan = s.compile(config(R"({"model_type": "demo", "text_config": {"num_hidden_layers": 3}, "first_k_dense_replace": 1})"),
                          {T("model.layers.1.w", {2}), T("model.layers.2.w", {2})}, direction("hf", "mcore"));
    CHECK_DIAGS(s.render(), "");
    REQUIRE(plan);
    CHECK(plan->outputs.size() == 2);
  }
  SUBCASE("a real error is not a missing key") {
    CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param n = config.hidden_size / 3 ?? 4
mapping mcore <-> hf { "a.{n}" = "b.{n}" }
)",
                                   config(R"({"model_type": "demo", "hidden_size": 8})"), {}, direction("hf", "mcore")),
                R"d(test.rules:2:11: error: 8 / 3 is not a whole number
    2 | param n = config.hidden_size / 3 ?? 4
      |           ^~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
  }
}

TEST_CASE("bind: a failing assertion shows the values it used") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = config.num_hidden_layers
param dense  = config.first_k_dense_replace ?? 0
assert layers > 0
assert dense <= layers : "first_k_dense_replace exceeds num_hidden_layers"
mapping mcore <-> hf { for L in 0 .. layers { "a.{L}" = "b.{L}" } }
)",
                                 config(R"({"model_type": "demo", "num_hidden_layers": 3, "first_k_dense_replace": 5})"), {},
                                 direction("hf", "mcore")),
              R"d(test.rules:5:1: error: assertion failed: (dense <= layers) (first_k_dense_replace exceeds num_hidden_layers)
    5 | assert dense <= layers : "first_k_dense_replace exceeds num_hidden_layers"
      | ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: with dense = 5, layers = 3
1 error generated.
)d");
}

TEST_CASE("bind: a failing assertion on floats") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param scale = config.rope_scaling.factor ?? 1.0
assert scale >= 1.0 and scale < 64.5 : "unexpected rope scaling"
mapping mcore <-> hf { "a" = "b" }
)",
                                 config(R"({"model_type": "demo", "rope_scaling": {"factor": 0.25}})"), {T("b", {1})},
                                 direction("hf", "mcore")),
              R"d(test.rules:3:1: error: assertion failed: ((scale >= 1.0) and (scale < 64.5)) (unexpected rope scaling)
    3 | assert scale >= 1.0 and scale < 64.5 : "unexpected rope scaling"
      | ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: with scale = 0.25
1 error generated.
)d");
}

TEST_CASE("bind: a failing assertion inside a mapping, with members and indexes") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param kinds = config.layer_types
mapping mcore <-> hf {
  for L in 0 .. len(kinds) {
    assert kinds[L] != "conv" and config.heads % 2 == 0 : "unsupported layer"
    "a.{L}" = "b.{L}"
  }
}
)",
                                 config(R"({"model_type": "demo", "layer_types": ["attn", "conv"], "heads": 4})"),
                                 {T("b.0", {1}), T("b.1", {1})}, direction("hf", "mcore")),
              R"d(test.rules:5:5: error: assertion failed: ((kinds[L] != "conv") and ((config.heads % 2) == 0)) (unsupported layer)
    5 |     assert kinds[L] != "conv" and config.heads % 2 == 0 : "unsupported layer"
      |     ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: with kinds[L] = "conv", L = 1, config.heads = 4
1 error generated.
)d");
}

TEST_CASE("bind: a switch with no case for the value") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param kinds = config.layer_types
mapping mcore <-> hf {
  for L in 0 .. len(kinds) {
    scope "decoder.layers.{L}." = "model.layers.{L}." {
      switch kinds[L] {
        case "attention", "full_attention" { "qkv" = "qkv" }
        case "mamba" { "mixer" = "mixer" }
      }
    }
  }
}
)",
                                 config(R"({"model_type": "demo", "layer_types": ["mamba", "conv"]})"),
                                 {T("model.layers.0.mixer", {2})}, direction("hf", "mcore")),
              R"d(test.rules:6:7: error: no case for kinds[L] = "conv"
    6 |       switch kinds[L] {
      |       ^~~~~~~~~~~~~~~
note: the cases are "attention", "full_attention", "mamba"
note: with L = 1
1 error generated.
)d");
}

TEST_CASE("bind: no variant matches") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  scope "decoder.layers.0." = "model.layers.0." {
    "mlp.linear_fc2.weight" = "mlp.down_proj.weight"
    choose experts {
      variant local "local_experts.{E}" {
        for E in 0 .. 4 {
          "mlp.experts.local_experts.{E}.linear_fc2.weight" = "mlp.experts.{E}.down_proj.weight"
        }
      }
      variant stacked "one 3-D tensor" {
        "mlp.experts.experts.linear_fc2.weight" = "mlp.experts.down_proj"
      }
    }
  }
}
)",
                                 config(R"({"model_type": "demo"})"),
                                 {T("model.layers.0.mlp.down_proj.weight", {8, 16}), T("model.layers.0.mlp.experts.0.down_proj.weight", {8, 4}),
                                  T("model.layers.0.mlp.experts.1.down_proj.weight", {8, 4})},
                                 direction("hf", "mcore")),
              R"d(test.rules:5:12: error: no variant of 'experts' matches the checkpoint at 'decoder.layers.0. = model.layers.0.'
    5 |     choose experts {
      |            ^~~~~~~
test.rules:6:15: note: variant 'local' needs 'model.layers.0.mlp.experts.2.down_proj.weight', which the checkpoint does not have (and 1 more missing); it found 2 of its tensors, e.g. 'model.layers.0.mlp.experts.0.down_proj.weight'
    6 |       variant local "local_experts.{E}" {
      |               ^~~~~
test.rules:11:15: note: variant 'stacked' needs 'model.layers.0.mlp.experts.down_proj', which the checkpoint does not have
   11 |       variant stacked "one 3-D tensor" {
      |               ^~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: several variants match, none consuming more than the others") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  choose norms {
    variant q "with q_norm" {
      "q_layernorm.weight" = "q_norm.weight"
    }
    variant k "with k_norm" {
      "k_layernorm.weight" = "k_norm.weight"
    }
  }
}
)",
                                 config(R"({"model_type": "demo"})"), {T("q_norm.weight", {8}), T("k_norm.weight", {8})},
                                 direction("hf", "mcore")),
              R"d(test.rules:3:10: error: the checkpoint matches several variants of 'norms'
    3 |   choose norms {
      |          ^~~~~
test.rules:4:13: note: variant 'q' matches (1 tensor)
    4 |     variant q "with q_norm" {
      |             ^
test.rules:7:13: note: variant 'k' matches (1 tensor)
    7 |     variant k "with k_norm" {
      |             ^
1 error generated.
)d");
}

TEST_CASE("bind: --variant naming a variant the choice does not have") {
  BindOptions o = direction("hf", "mcore");
  o.variants["norms"] = "te";
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  choose norms {
    variant separate { "input_layernorm.weight" = "input_layernorm.weight" }
    variant fused { "linear_qkv.layer_norm_weight" = "input_layernorm.weight" }
  }
}
)",
                                 config(R"({"model_type": "demo"})"), {T("input_layernorm.weight", {8})}, o),
              R"d(test.rules:3:10: error: --variant norms=te: choice 'norms' has no variant 'te'
    3 |   choose norms {
      |          ^~~~~
note: its variants are separate, fused
1 error generated.
)d");
}

TEST_CASE("bind: a rule needs tensors the checkpoint lacks") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  for L in 0 .. 6 {
    "decoder.layers.{L}.mlp.linear_fc1.weight" = gated("model.layers.{L}.mlp.gate_proj.weight", "model.layers.{L}.mlp.up_proj.weight")
  }
  "output_layer.weight" = "lm_head.weight"
}
)",
                                 config(R"({"model_type": "demo"})"),
                                 {T("model.layers.0.mlp.gate_proj.weight", {4, 2}), T("model.layers.0.mlp.up_proj.weight", {4, 2})},
                                 direction("hf", "mcore")),
              R"d(test.rules:4:5: error: rule needs 10 tensors the checkpoint does not have: 'model.layers.1.mlp.gate_proj.weight', 'model.layers.1.mlp.up_proj.weight', 'model.layers.2.mlp.gate_proj.weight' and 7 more
    4 |     "decoder.layers.{L}.mlp.linear_fc1.weight" = gated("model.layers.{L}.mlp.gate_proj.weight", "model.layers.{L}.mlp.up_proj.weight")
      |     ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: 'model.layers.1.mlp.gate_proj.weight': the checkpoint has 'model.layers.{N}.mlp.gate_proj.weight' only with other numbers, e.g. 'model.layers.0.mlp.gate_proj.weight'
test.rules:6:3: error: rule needs a tensor the checkpoint does not have: 'lm_head.weight'
    6 |   "output_layer.weight" = "lm_head.weight"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
2 errors generated.
)d");
}

TEST_CASE("bind: an optional rule applies all or nothing") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  optional "fc1" = gated("gate_proj", "up_proj")
  optional "router.expert_bias" = "gate.e_score_correction_bias"
}
)",
                                 config(R"({"model_type": "demo"})"), {T("gate_proj", {4, 2})}, direction("hf", "mcore")),
              R"d(test.rules:3:3: error: rule needs a tensor the checkpoint does not have: 'up_proj'
    3 |   optional "fc1" = gated("gate_proj", "up_proj")
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: an integer division that is not whole") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param heads = config.num_attention_heads
param groups = config.num_key_value_heads
param per_group = heads / groups
mapping mcore <-> hf { "a.{per_group}" = "b.{per_group}" }
)",
                                 config(R"({"model_type": "demo", "num_attention_heads": 10, "num_key_value_heads": 4})"), {},
                                 direction("hf", "mcore")),
              R"d(test.rules:4:19: error: 10 / 4 is not a whole number
    4 | param per_group = heads / groups
      |                   ^~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: division by zero") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param n = 8 % config.groups
mapping mcore <-> hf { "a.{n}" = "b.{n}" }
)",
                                 config(R"({"model_type": "demo", "groups": 0})"), {}, direction("hf", "mcore")),
              R"d(test.rules:2:11: error: division by zero
    2 | param n = 8 % config.groups
      |           ^~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: an index out of range") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param kinds = config.layer_types
mapping mcore <-> hf {
  for L in 0 .. config.num_hidden_layers {
    if kinds[L] == "moe" { "a.{L}" = "b.{L}" }
  }
}
)",
                                 config(R"({"model_type": "demo", "layer_types": ["moe", "moe"], "num_hidden_layers": 3})"),
                                 {T("b.0", {1}), T("b.1", {1})}, direction("hf", "mcore")),
              R"d(test.rules:5:8: error: index 2 is out of range (the list has 2 entries)
    5 |     if kinds[L] == "moe" { "a.{L}" = "b.{L}" }
      |        ^~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: values of the wrong type") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = config.num_hidden_layers
mapping mcore <-> hf {
  for L in 0 .. layers { "a.{L}" = "b.{L}" }
}
)",
                                 config(R"({"model_type": "demo", "num_hidden_layers": "2"})"), {}, direction("hf", "mcore")),
              R"d(test.rules:4:17: error: expected an integer, got a string ("2")
    4 |   for L in 0 .. layers { "a.{L}" = "b.{L}" }
      |                 ^~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: a condition that is not a boolean") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  if config.tie_word_embeddings { "a" = "b" }
}
)",
                                 config(R"({"model_type": "demo", "tie_word_embeddings": 1})"), {}, direction("hf", "mcore")),
              R"d(test.rules:3:6: error: expected a boolean, got an integer (1)
    3 |   if config.tie_word_embeddings { "a" = "b" }
      |      ^~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: a name interpolating something that is not an integer or a string") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param kinds = config.layer_types
mapping mcore <-> hf {
  "decoder.{kinds}.w" = "model.{kinds}.w"
}
)",
                                 config(R"({"model_type": "demo", "layer_types": ["a", "b"]})"), {}, direction("hf", "mcore")),
              R"d(test.rules:4:12: error: a name can only interpolate integers and strings, not ["a","b"]
    4 |   "decoder.{kinds}.w" = "model.{kinds}.w"
      |            ^~~~~~~
test.rules:4:32: error: a name can only interpolate integers and strings, not ["a","b"]
    4 |   "decoder.{kinds}.w" = "model.{kinds}.w"
      |                                ^~~~~~~
2 errors generated.
)d");
}

TEST_CASE("bind: an op parameter of the wrong type") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "qkv" = qkv("q", "k", "v", heads: config.heads, groups: 2)
  "f" = cast("b", from: "bfloat17", to: F32)
}
)",
                                 config(R"({"model_type": "demo", "heads": 4.5})"),
                                 {T("q", {8, 2}), T("k", {4, 2}), T("v", {4, 2}), T("b", {2})}, direction("hf", "mcore")),
              R"d(test.rules:3:37: error: parameter 'heads' must be an integer, not 4.5
    3 |   "qkv" = qkv("q", "k", "v", heads: config.heads, groups: 2)
      |                                     ^~~~~~~~~~~~
test.rules:4:25: error: parameter 'from' must be a dtype, not "bfloat17"
    4 |   "f" = cast("b", from: "bfloat17", to: F32)
      |                         ^~~~~~~~~~
2 errors generated.
)d");
}

TEST_CASE("bind: a stack over an empty range") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "experts.w" = stack(E in 0 .. config.n_routed_experts, "experts.{E}.w")
}
)",
                                 config(R"({"model_type": "demo", "n_routed_experts": 0})"), {}, direction("hf", "mcore")),
              R"d(test.rules:3:23: error: 'E in 0 .. 0' is empty: nothing to stack
    3 |   "experts.w" = stack(E in 0 .. config.n_routed_experts, "experts.{E}.w")
      |                       ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: a drop of a convention the mapping does not relate") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf-mem "model.rotary_emb.inv_freq" because "recomputed"
}
)",
                                 config(R"({"model_type": "demo"})"), {T("b", {1})}, direction("hf", "mcore")),
              R"d(test.rules:4:8: error: this mapping relates mcore and hf; it cannot drop hf-mem tensors
    4 |   drop hf-mem "model.rotary_emb.inv_freq" because "recomputed"
      |        ^~~~~~
1 error generated.
)d");
}

TEST_CASE("bind: a drop needs the tensor it names") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf "mtp.embed_tokens.weight" because "MTP shares the main embedding" restore copy "model.embed_tokens.weight"
}
)",
                                 config(R"({"model_type": "demo"})"), {T("b", {1}), T("mtp.embed_tokens.weight", {4, 2})},
                                 direction("hf", "mcore")),
              R"d(test.rules:4:3: error: drop needs a tensor the checkpoint does not have: 'model.embed_tokens.weight'
    4 |   drop hf "mtp.embed_tokens.weight" because "MTP shares the main embedding" restore copy "model.embed_tokens.weight"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: did you mean 'mtp.embed_tokens.weight'?
1 error generated.
)d");
}

TEST_CASE("bind: restore copy of a pattern whose captures have no values") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  drop hf "model.layers.{m}.embed_tokens.weight" because "MTP shares the main embedding" restore copy "model.embed_tokens.weight"
}
)",
                                 config(R"({"model_type": "demo"})"), {T("embedding.word_embeddings.weight", {4, 2})},
                                 direction("mcore", "hf")),
              R"d(test.rules:4:11: error: 'model.layers.{m}.embed_tokens.weight' cannot be restored by copy: its captures have no values on this side
    4 |   drop hf "model.layers.{m}.embed_tokens.weight" because "MTP shares the main embedding" restore copy "model.embed_tokens.weight"
      |           ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("warning: a rule with captures that matches nothing") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  "vision.{i}.{*rest}" = "model.visual.blocks.{i}.{*rest}"
}
)",
                                 config(R"({"model_type": "demo"})"), {T("b", {1})}, direction("hf", "mcore")),
              R"d(test.rules:4:3: warning: rule matches no tensor of the checkpoint (model.visual.blocks.{i}.{*rest})
    4 |   "vision.{i}.{*rest}" = "model.visual.blocks.{i}.{*rest}"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 warning generated.
)d");
}

TEST_CASE("warning: a rule that matches nothing in many places warns once") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  for L in 0 .. 3 {
    scope "decoder.layers.{L}." = "model.layers.{L}." {
      "norm.weight" = "norm.weight"
      "experts.{E}.w" = "mlp.experts.{E}.w"
    }
  }
}
)",
                                 config(R"({"model_type": "demo"})"),
                                 {T("model.layers.0.norm.weight", {2}), T("model.layers.1.norm.weight", {2}),
                                  T("model.layers.2.norm.weight", {2})},
                                 direction("hf", "mcore")),
              R"d(test.rules:6:7: warning: rule matches no tensor of the checkpoint (model.layers.0.mlp.experts.{E}.w and 2 more)
    6 |       "experts.{E}.w" = "mlp.experts.{E}.w"
      |       ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 warning generated.
)d");
}

namespace {

const char *kChoices = R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  for L in 0 .. 2 {
    scope "decoder.layers.{L}." = "model.layers.{L}." {
      choose norms {
        variant separate { "input_layernorm.weight" = "input_layernorm.weight" }
        variant fused { "linear_qkv.layer_norm_weight" = "input_layernorm.weight" }
      }
      choose experts {
        variant one { "experts.w0" = "experts.0.w" }
        variant both { "experts.w0" = "experts.0.w"  "experts.w1" = "experts.1.w" }
      }
    }
  }
}
)";

/// "choice@where=variant (reason)" for every choice a compile made.
std::string choices(const std::vector<TensorMeta> &header, BindOptions options) {
  Session s;
  REQUIRE(s.check(kChoices));
  auto plan = s.compile(config(R"({"model_type": "demo"})"), header, std::move(options));
  REQUIRE_MESSAGE(plan, s.render());
  std::string out;
  for (const ChoiceRecord &c : plan->choices)
    out += c.choice + "@" + c.where + "=" + c.variant + " (" + c.reason + ")\n";
  return out;
}

std::vector<TensorMeta> layers(int experts) {
  std::vector<TensorMeta> h;
  for (int L = 0; L < 2; ++L) {
    std::string p = "model.layers." + std::to_string(L) + ".";
    h.push_back(T(p + "input_layernorm.weight", {4}));
    for (int e = 0; e < experts; ++e)
      h.push_back(T(p + "experts." + std::to_string(e) + ".w", {4}));
  }
  return h;
}

} // namespace

TEST_CASE("bind: how a choice is made") {
  SUBCASE("the source decides: only one variant matches, or one consumes more") {
    CHECK(choices(layers(1), direction("hf", "mcore")) ==
          "norms@decoder.layers.0. = model.layers.0.=separate (default (listed first))\n"
          "experts@decoder.layers.0. = model.layers.0.=one (the only variant the checkpoint matches)\n"
          "norms@decoder.layers.1. = model.layers.1.=separate (default (listed first))\n"
          "experts@decoder.layers.1. = model.layers.1.=one (the only variant the checkpoint matches)\n");
    CHECK(choices(layers(2), direction("hf", "mcore")) ==
          "norms@decoder.layers.0. = model.layers.0.=separate (default (listed first))\n"
          "experts@decoder.layers.0. = model.layers.0.=both (matches the most tensors)\n"
          "norms@decoder.layers.1. = model.layers.1.=separate (default (listed first))\n"
          "experts@decoder.layers.1. = model.layers.1.=both (matches the most tensors)\n");
  }
  SUBCASE("--variant decides where the source does not, and only there") {
    BindOptions o = direction("hf", "mcore");
    o.variants["norms"] = "fused";
    o.variants["experts"] = "one";
    CHECK(choices(layers(2), o) ==
          "norms@decoder.layers.0. = model.layers.0.=fused (--variant norms=fused)\n"
          "experts@decoder.layers.0. = model.layers.0.=both (matches the most tensors)\n"
          "norms@decoder.layers.1. = model.layers.1.=fused (--variant norms=fused)\n"
          "experts@decoder.layers.1. = model.layers.1.=both (matches the most tensors)\n");
  }
  SUBCASE("a recorded choice, at its place first, else anywhere") {
    BindOptions o = direction("hf", "mcore");
    o.recorded.push_back(ChoiceRecord{"norms", "decoder.layers.7. = model.layers.7.", "separate", "", {}});
    o.recorded.push_back(ChoiceRecord{"norms", "decoder.layers.1. = model.layers.1.", "fused", "", {}});
    CHECK(choices(layers(1), o) ==
          "norms@decoder.layers.0. = model.layers.0.=separate (recorded by the run that wrote the input)\n"
          "experts@decoder.layers.0. = model.layers.0.=one (the only variant the checkpoint matches)\n"
          "norms@decoder.layers.1. = model.layers.1.=fused (recorded by the run that wrote the input)\n"
          "experts@decoder.layers.1. = model.layers.1.=one (the only variant the checkpoint matches)\n");
    // --variant outranks what was recorded.
    o.variants["norms"] = "separate";
    CHECK(choices(layers(1), o) ==
          "norms@decoder.layers.0. = model.layers.0.=separate (--variant norms=separate)\n"
          "experts@decoder.layers.0. = model.layers.0.=one (the only variant the checkpoint matches)\n"
          "norms@decoder.layers.1. = model.layers.1.=separate (--variant norms=separate)\n"
          "experts@decoder.layers.1. = model.layers.1.=one (the only variant the checkpoint matches)\n");
  }
}

TEST_CASE("bind: a misspelt config key, with a suggestion") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param hidden = config.text_config.hidden_szie
param heads = config["num_heads"]
mapping mcore <-> hf { "a.{hidden}.{heads}" = "b.{hidden}.{heads}" }
)",
                                 config(R"({"model_type": "demo", "text_config": {"hidden_size": 8}, "num_attention_heads": 2, "num_head": 2})"),
                                 {}, direction("hf", "mcore")),
              R"d(test.rules:2:16: error: config.json has no key 'text_config.hidden_szie'
    2 | param hidden = config.text_config.hidden_szie
      |                ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: did you mean 'hidden_size'?
test.rules:3:15: error: no key "num_heads"
    3 | param heads = config["num_heads"]
      |               ^~~~~~~~~~~~~~~~~~~
note: did you mean 'num_head'?
2 errors generated.
)d");
}

TEST_CASE("bind: --from or --to naming no convention") {
  CHECK_DIAGS(compileDiagnostics(kTwoLayerRules, config(R"({"model_type": "demo", "num_hidden_layers": 2})"), kTwoLayers,
                                 direction("hf_mem", "megatron")),
              R"d(error: --from hf_mem: unknown convention
note: did you mean 'hf-mem'?
error: --to megatron: unknown convention
note: the conventions are mcore, hf, hf-mem
2 errors generated.
)d");
}

TEST_CASE("bind: --variant naming a choice the rulebook does not make") {
  const char *rules = R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  choose norms {
    variant separate { "input_layernorm.weight" = "input_layernorm.weight" }
    variant fused { "linear_qkv.layer_norm_weight" = "input_layernorm.weight" }
  }
}
)";
  BindOptions o = direction("hf", "mcore");
  o.variants["nroms"] = "fused";
  o.variants["experts"] = "grouped";
  CHECK_DIAGS(compileDiagnostics(rules, config(R"({"model_type": "demo"})"), {T("input_layernorm.weight", {8})}, o),
              R"d(error: --variant experts=grouped: rulebook 'demo' has no choice 'experts'
note: its choices are norms
error: --variant nroms=fused: rulebook 'demo' has no choice 'nroms'
note: did you mean 'norms'?
2 errors generated.
)d");
  BindOptions misspelt = direction("hf", "mcore");
  misspelt.variants["norms"] = "fsued";
  CHECK_DIAGS(compileDiagnostics(rules, config(R"({"model_type": "demo"})"), {T("input_layernorm.weight", {8})}, misspelt),
              R"d(test.rules:3:10: error: --variant norms=fsued: choice 'norms' has no variant 'fsued'
    3 |   choose norms {
      |          ^~~~~
note: did you mean 'fused'?
note: its variants are separate, fused
1 error generated.
)d");
}

TEST_CASE("bind: --variant naming a variant that does not fit is reported once") {
  BindOptions o = direction("hf", "mcore");
  o.variants["norms"] = "te";
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  for L in 0 .. 3 {
    scope "decoder.layers.{L}." = "model.layers.{L}." {
      choose norms {
        variant separate { "input_layernorm.weight" = "input_layernorm.weight" }
        variant fused { "linear_qkv.layer_norm_weight" = "input_layernorm.weight" }
        variant te { "linear_qkv.layer_norm_weight" = "input_layernorm.weight"
                     "linear_qkv.layer_norm_bias" = "input_layernorm.bias" }
      }
    }
  }
}
)",
                                 config(R"({"model_type": "demo"})"),
                                 {T("model.layers.0.input_layernorm.weight", {8}), T("model.layers.1.input_layernorm.weight", {8}),
                                  T("model.layers.2.input_layernorm.weight", {8})},
                                 o),
              R"d(test.rules:5:14: error: --variant norms=te: that variant does not fit the checkpoint at 'decoder.layers.0. = model.layers.0.'
    5 |       choose norms {
      |              ^~~~~
note: the variants that fit are separate, fused
1 error generated.
)d");
}

TEST_CASE("bind: a fill value or shape of the wrong type") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop mcore "bias" because "HF has none" restore fill("zero", [4], BF16)
  drop mcore "scale" because "HF has none" restore fill(1, 4, BF16)
  drop mcore "shift" because "HF has none" restore fill(1, [4, -1], BF16)
}
)",
                                 config(R"({"model_type": "demo"})"), {T("b", {4})}, direction("hf", "mcore")),
              R"d(test.rules:4:56: error: a fill value must be a number, not "zero"
    4 |   drop mcore "bias" because "HF has none" restore fill("zero", [4], BF16)
      |                                                        ^~~~~~
test.rules:5:60: error: a fill shape must be a list of sizes, not 4
    5 |   drop mcore "scale" because "HF has none" restore fill(1, 4, BF16)
      |                                                            ^
test.rules:6:60: error: a fill shape must be a list of sizes, not [4,-1]
    6 |   drop mcore "shift" because "HF has none" restore fill(1, [4, -1], BF16)
      |                                                            ^~~~~~~
3 errors generated.
)d");
}
