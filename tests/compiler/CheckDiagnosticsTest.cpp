// Semantic errors and warnings of the checker: names, parameters, blocks, ops and their
// arguments, captures, drops. Each asserts the exact text `ckptmap check` prints.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

TEST_CASE("check: a header with no mapping") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
)"),
              R"d(test.rules:1:10: error: rulebook 'demo' has no mapping (mapping mcore <-> hf { ... })
    1 | rulebook demo { model_types "demo" }
      |          ^~~~
test.rules:2:7: warning: parameter 'layers' is never used
    2 | param layers = 2
      |       ^~~~~~
1 error and 1 warning generated.
)d");
}

TEST_CASE("check: unknown convention, with a suggestion") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf-meme {
  "a" = "b"
}
)"),
              R"d(test.rules:2:19: error: unknown convention 'hf-meme'
    2 | mapping mcore <-> hf-meme {
      |                   ^~~~~~~
note: did you mean 'hf-mem'?
1 error generated.
)d");
}

TEST_CASE("check: unknown convention, nothing close") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping megatron <-> hf {
  "a" = "b"
}
)"),
              R"d(test.rules:2:9: error: unknown convention 'megatron'
    2 | mapping megatron <-> hf {
      |         ^~~~~~~~
note: known conventions: mcore, hf, hf-mem
1 error generated.
)d");
}

TEST_CASE("check: a mapping of a convention to itself") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping hf <-> hf {
  "a" = "b"
}
)"),
              R"d(test.rules:2:1: error: a mapping must relate two different conventions
    2 | mapping hf <-> hf {
      | ^~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: duplicate mapping, in either order") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
}
mapping hf <-> mcore {
  "b" = "a"
}
)"),
              R"d(test.rules:5:1: error: a mapping between hf and mcore is already defined
    5 | mapping hf <-> mcore {
      | ^~~~~~~~~~~~~~~~~~~~
test.rules:2:1: note: previous definition is here
    2 | mapping mcore <-> hf {
      | ^~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: duplicate parameter") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
param heads = 4
param layers = 3
mapping mcore <-> hf {
  "a.{layers}.{heads}" = "b.{layers}.{heads}"
}
)"),
              R"d(test.rules:4:7: error: parameter 'layers' is already defined
    4 | param layers = 3
      |       ^~~~~~
test.rules:2:7: note: previous definition is here
    2 | param layers = 2
      |       ^~~~~~
1 error generated.
)d");
}

TEST_CASE("check: duplicate block") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
block attn {
  "q" = "q_proj"
}
block attn {
  "k" = "k_proj"
}
mapping mcore <-> hf {
  use attn
}
)"),
              R"d(test.rules:5:7: error: block 'attn' is already defined
    5 | block attn {
      |       ^~~~
test.rules:2:7: note: previous definition is here
    2 | block attn {
      |       ^~~~
1 error generated.
)d");
}

TEST_CASE("check: duplicate variant") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  choose norms {
    variant fused { "qkv.layer_norm_weight" = "input_layernorm.weight" }
    variant separate { "input_layernorm.weight" = "input_layernorm.weight" }
    variant fused { "norm.weight" = "input_layernorm.weight" }
  }
}
)"),
              R"d(test.rules:6:13: error: variant 'fused' is already defined in choice 'norms'
    6 |     variant fused { "norm.weight" = "input_layernorm.weight" }
      |             ^~~~~
test.rules:4:13: note: previous definition is here
    4 |     variant fused { "qkv.layer_norm_weight" = "input_layernorm.weight" }
      |             ^~~~~
1 error generated.
)d");
}

TEST_CASE("check: unknown name, with a suggestion") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = config.num_hidden_layers
mapping mcore <-> hf {
  for L in 0 .. layrs {
    "decoder.layers.{L}.w" = "model.layers.{L}.w"
  }
}
)"),
              R"d(test.rules:2:7: warning: parameter 'layers' is never used
    2 | param layers = config.num_hidden_layers
      |       ^~~~~~
test.rules:4:17: error: unknown name 'layrs'
    4 |   for L in 0 .. layrs {
      |                 ^~~~~
note: did you mean 'layers'?
1 error and 1 warning generated.
)d");
}

TEST_CASE("check: unknown name, nothing close") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
assert layers <= maximum_depth
mapping mcore <-> hf {
  "decoder.layers.{layers}.w" = "model.layers.{layers}.w"
}
)"),
              R"d(test.rules:3:18: error: unknown name 'maximum_depth'
    3 | assert layers <= maximum_depth
      |                  ^~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: a parameter sees only the parameters before it") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param hidden = heads * 64
param heads = 4
mapping mcore <-> hf {
  "a.{hidden}" = "b.{hidden}"
}
)"),
              R"d(test.rules:2:16: error: unknown name 'heads'
    2 | param hidden = heads * 64
      |                ^~~~~
1 error generated.
)d");
}

TEST_CASE("check: a loop variable is not visible after its loop") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  for L in 0 .. 2 {
    param first = L * 2
  }
  if first > 0 {
    "a" = "b"
  }
}
)"),
              R"d(test.rules:6:6: error: unknown name 'first'
    6 |   if first > 0 {
      |      ^~~~~
1 error generated.
)d");
}

TEST_CASE("check: unknown block in use, with a suggestion") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
block attention {
  "q" = "q_proj"
}
mapping mcore <-> hf {
  use attnetion
}
)"),
              R"d(test.rules:2:7: warning: block 'attention' is never used
    2 | block attention {
      |       ^~~~~~~~~
test.rules:6:7: error: unknown block 'attnetion'
    6 |   use attnetion
      |       ^~~~~~~~~
note: did you mean 'attention'?
1 error and 1 warning generated.
)d");
}

TEST_CASE("check: a block that uses itself, directly or through another") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
block layer {
  "w" = "w"
  use mlp
}
block mlp {
  "fc1" = "up_proj"
  use layer
}
mapping mcore <-> hf {
  use layer
}
)"),
              R"d(test.rules:8:7: error: block 'layer' uses itself (layer -> mlp -> layer)
    8 |   use layer
      |       ^~~~~
test.rules:2:7: note: block 'layer' is defined here
    2 | block layer {
      |       ^~~~~
1 error generated.
)d");
}

TEST_CASE("check: a block that uses itself directly") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
block layer {
  "w" = "w"
  scope "inner." = "inner." { use layer }
}
mapping mcore <-> hf {
  use layer
}
)"),
              R"d(test.rules:4:35: error: block 'layer' uses itself
    4 |   scope "inner." = "inner." { use layer }
      |                                   ^~~~~
test.rules:2:7: note: block 'layer' is defined here
    2 | block layer {
      |       ^~~~~
1 error generated.
)d");
}

TEST_CASE("check: unknown op, with a suggestion") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "linear_fc1.weight" = gatde("gate_proj.weight", "up_proj.weight")
}
)"),
              R"d(test.rules:3:25: error: unknown op 'gatde'
    3 |   "linear_fc1.weight" = gatde("gate_proj.weight", "up_proj.weight")
      |                         ^~~~~
note: did you mean 'gated'?
1 error generated.
)d");
}

TEST_CASE("check: a value function where an op belongs") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = len("b")
}
)"),
              R"d(test.rules:3:9: error: unknown op 'len'
    3 |   "a" = len("b")
      |         ^~~
note: 'len' is a function on values; a rule side needs a tensor name or an op
1 error generated.
)d");
}

TEST_CASE("check: a value where a tensor belongs") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param n = 4
mapping mcore <-> hf {
  "a" = n + 1
}
)"),
              R"d(test.rules:2:7: warning: parameter 'n' is never used
    2 | param n = 4
      |       ^
test.rules:4:9: error: expected a tensor name or an op here
    4 |   "a" = n + 1
      |         ^~~~~
1 error and 1 warning generated.
)d");
}

TEST_CASE("check: an op used as a value") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param fused = concat(0, "a", "b")
mapping mcore <-> hf {
  "a" = "b"
}
)"),
              R"d(test.rules:2:7: warning: parameter 'fused' is never used
    2 | param fused = concat(0, "a", "b")
      |       ^~~~~
test.rules:2:15: error: op 'concat' produces a tensor and cannot be used as a value
    2 | param fused = concat(0, "a", "b")
      |               ^~~~~~
1 error and 1 warning generated.
)d");
}

TEST_CASE("check: unknown function, with a suggestion") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param kinds = config.layer_types
param moe = contian(kinds, "moe")
mapping mcore <-> hf {
  if moe { "a" = "b" }
}
)"),
              R"d(test.rules:3:13: error: unknown function 'contian'
    3 | param moe = contian(kinds, "moe")
      |             ^~~~~~~
note: did you mean 'contains'?
1 error generated.
)d");
}

TEST_CASE("check: unknown function, nothing close") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param kinds = config.layer_types
param layers = size(kinds)
mapping mcore <-> hf {
  for L in 0 .. layers { "a.{L}" = "b.{L}" }
}
)"),
              R"d(test.rules:3:16: error: unknown function 'size'
    3 | param layers = size(kinds)
      |                ^~~~
1 error generated.
)d");
}

TEST_CASE("check: functions take plain arguments") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param n = max(a: 1, 2)
mapping mcore <-> hf {
  "a.{n}" = "b.{n}"
}
)"),
              R"d(test.rules:2:15: error: functions take plain arguments
    2 | param n = max(a: 1, 2)
      |               ^~~~
1 error generated.
)d");
}

TEST_CASE("check: wrong number of tensor parts") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "fc1" = gated("gate_proj")
  "qkv" = qkv("q", "k", heads: 4, groups: 2)
  "cat" = concat(0, "a")
}
)"),
              R"d(test.rules:3:11: error: op 'gated' takes 2 tensor parts, got 1
    3 |   "fc1" = gated("gate_proj")
      |           ^~~~~
test.rules:4:11: error: op 'qkv' takes 3 tensor parts, got 2
    4 |   "qkv" = qkv("q", "k", heads: 4, groups: 2)
      |           ^~~
test.rules:5:11: error: op 'concat' takes at least 2 tensor parts, got 1
    5 |   "cat" = concat(0, "a")
      |           ^~~~~~
3 errors generated.
)d");
}

TEST_CASE("check: unknown named parameter, with a suggestion") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "qkv" = qkv("q", "k", "v", head: 4, groups: 2)
}
)"),
              R"d(test.rules:3:30: error: op 'qkv' has no parameter 'head'
    3 |   "qkv" = qkv("q", "k", "v", head: 4, groups: 2)
      |                              ^~~~
note: did you mean 'heads'?
1 error generated.
)d");
}

TEST_CASE("check: a named parameter given twice") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "cat" = concat(dim: 0, "a", "b", dim: 1)
}
)"),
              R"d(test.rules:3:36: error: parameter 'dim' is given twice
    3 |   "cat" = concat(dim: 0, "a", "b", dim: 1)
      |                                    ^~~
1 error generated.
)d");
}

TEST_CASE("check: too many arguments") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "t" = transpose("x", [1, 0], 2)
}
)"),
              R"d(test.rules:3:32: error: too many arguments to 'transpose'
    3 |   "t" = transpose("x", [1, 0], 2)
      |                                ^
1 error generated.
)d");
}

TEST_CASE("check: missing required parameter") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "cat" = concat("a", "b")
  "f32" = cast("bf16", to: F32)
}
)"),
              R"d(test.rules:3:11: error: op 'concat' needs parameter 'dim'
    3 |   "cat" = concat("a", "b")
      |           ^~~~~~
test.rules:4:11: error: op 'cast' needs parameter 'from'
    4 |   "f32" = cast("bf16", to: F32)
      |           ^~~~
2 errors generated.
)d");
}

TEST_CASE("check: a sized part on an op whose parts take no size") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "fc1" = gated("gate_proj" : 128, "up_proj")
}
)"),
              R"d(test.rules:3:17: error: parts of 'gated' cannot state sizes
    3 |   "fc1" = gated("gate_proj" : 128, "up_proj")
      |                 ^~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: only a tensor part can state a size") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "cat" = concat(0 : 1, "a", "b")
}
)"),
              R"d(test.rules:3:18: error: only a tensor part can state a size
    3 |   "cat" = concat(0 : 1, "a", "b")
      |                  ^
1 error generated.
)d");
}

TEST_CASE("check: a binding that is not first") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "experts" = stack("experts.{E}.w", E in 0 .. 4)
}
)"),
              R"d(test.rules:3:38: error: the binding must be the first argument of 'stack'
    3 |   "experts" = stack("experts.{E}.w", E in 0 .. 4)
      |                                      ^~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: a binding on an op that takes none") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "t" = transpose(E in 0 .. 4, "x.{E}")
}
)"),
              R"d(test.rules:3:19: error: op 'transpose' takes no binding
    3 |   "t" = transpose(E in 0 .. 4, "x.{E}")
      |                   ^~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: stack without its binding") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "experts" = stack("experts.0.w")
}
)"),
              R"d(test.rules:3:15: error: 'stack' needs a binding first: stack(E in 0 .. n, ...)
    3 |   "experts" = stack("experts.0.w")
      |               ^~~~~
1 error generated.
)d");
}

TEST_CASE("check: ops on both sides of a rule") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  transpose("a") = transpose("b")
}
)"),
              R"d(test.rules:3:3: error: only one side of a rule can apply an op; the other must name one tensor
    3 |   transpose("a") = transpose("b")
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: an otherwise rule that applies an op") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  otherwise "a.{*rest}" = transpose("b.{*rest}")
}
)"),
              R"d(test.rules:3:3: error: an 'otherwise' rule renames: both sides must be tensor names
    3 |   otherwise "a.{*rest}" = transpose("b.{*rest}")
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: a capture on one side only, with a suggestion") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
mapping mcore <-> hf {
  "decoder.layers.{layer}.w" = "model.layers.{layers}.w"
  "vision.{i}.{*rest}" = "model.vision.{j}.{*rest}"
}
)"),
              R"d(test.rules:4:20: error: capture 'layer' appears only on the left side of the rule
    4 |   "decoder.layers.{layer}.w" = "model.layers.{layers}.w"
      |                    ^~~~~
note: did you mean 'layers'?
test.rules:5:12: error: capture 'i' appears only on the left side of the rule
    5 |   "vision.{i}.{*rest}" = "model.vision.{j}.{*rest}"
      |            ^
note: did you mean 'j'?
test.rules:5:41: error: capture 'j' appears only on the right side of the rule
    5 |   "vision.{i}.{*rest}" = "model.vision.{j}.{*rest}"
      |                                         ^
note: did you mean 'i'?
3 errors generated.
)d");
}

TEST_CASE("check: a rest capture of a bound name") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param rest = "x"
mapping mcore <-> hf {
  "a.{*rest}" = "b.{*rest}"
}
)"),
              R"d(test.rules:2:7: warning: parameter 'rest' is never used
    2 | param rest = "x"
      |       ^~~~
test.rules:4:6: error: 'rest' is already bound; a rest capture needs a fresh name
    4 |   "a.{*rest}" = "b.{*rest}"
      |      ^~~~~~~
test.rules:4:20: error: 'rest' is already bound; a rest capture needs a fresh name
    4 |   "a.{*rest}" = "b.{*rest}"
      |                    ^~~~~~~
2 errors and 1 warning generated.
)d");
}

TEST_CASE("check: a capture outside a name pattern") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param prefix = "model.{*rest}"
mapping mcore <-> hf {
  "a" = "{prefix}"
}
)"),
              R"d(test.rules:2:23: error: a capture can only appear in a tensor name pattern
    2 | param prefix = "model.{*rest}"
      |                       ^~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: empty tensor name") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "" = "b"
}
)"),
              R"d(test.rules:3:3: error: empty tensor name
    3 |   "" = "b"
      |   ^~
1 error generated.
)d");
}

TEST_CASE("check: drop without a reason") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf "rotary_emb.inv_freq" because ""
}
)"),
              R"d(test.rules:4:3: error: a drop must state its reason
    4 |   drop hf "rotary_emb.inv_freq" because ""
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: drop of an unknown side") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hff "rotary_emb.inv_freq" because "recomputed at load"
}
)"),
              R"d(test.rules:4:8: error: unknown convention 'hff'
    4 |   drop hff "rotary_emb.inv_freq" because "recomputed at load"
      |        ^~~
note: did you mean 'hf'?
1 error generated.
)d");
}

TEST_CASE("check: restore fill with an unknown dtype") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf "bias" because "MCore has no bias here" restore fill(0, [4], BF61)
}
)"),
              R"d(test.rules:4:72: error: unknown dtype 'BF61'
    4 |   drop hf "bias" because "MCore has no bias here" restore fill(0, [4], BF61)
      |                                                                        ^~~~
1 error generated.
)d");
}

TEST_CASE("check: restore fill of a pattern with captures") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf "layers.{i}.bias" because "MCore has no bias here" restore fill(0, [4], F32)
}
)"),
              R"d(test.rules:4:11: error: a dropped tensor restored by fill must be named without captures
    4 |   drop hf "layers.{i}.bias" because "MCore has no bias here" restore fill(0, [4], F32)
      |           ^~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("check: restore copy naming a capture the pattern lacks") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf "mtp.{m}.embed" because "shared" restore copy "embed.{n}"
}
)"),
              R"d(test.rules:4:65: error: unknown name 'n'
    4 |   drop hf "mtp.{m}.embed" because "shared" restore copy "embed.{n}"
      |                                                                 ^
note: did you mean 'm'?
1 error generated.
)d");
}

TEST_CASE("check: built-in names cannot be redefined") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param config = 3
param BF16 = "bfloat16"
mapping mcore <-> hf {
  for F32 in 0 .. 2 {
    "a.{F32}" = "b.{F32}"
  }
}
)"),
              R"d(test.rules:2:7: error: 'config' is a built-in name and cannot be redefined
    2 | param config = 3
      |       ^~~~~~
test.rules:3:7: error: 'BF16' is a built-in name and cannot be redefined
    3 | param BF16 = "bfloat16"
      |       ^~~~
test.rules:5:7: error: 'F32' is a built-in name and cannot be redefined
    5 |   for F32 in 0 .. 2 {
      |       ^~~
3 errors generated.
)d");
}

TEST_CASE("check: every error of a file in one run, sorted by position") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param heads = 4
mapping mcore <-> hf {
  "qkv" = qkv("q", "k", "v", heads: heads, group: 2)
  use missing_block
  "o" = trnaspose("o_proj")
  "x" = "y.{hedas}"
}
)"),
              R"d(test.rules:4:44: error: op 'qkv' has no parameter 'group'
    4 |   "qkv" = qkv("q", "k", "v", heads: heads, group: 2)
      |                                            ^~~~~
note: did you mean 'groups'?
test.rules:5:7: error: unknown block 'missing_block'
    5 |   use missing_block
      |       ^~~~~~~~~~~~~
test.rules:6:9: error: unknown op 'trnaspose'
    6 |   "o" = trnaspose("o_proj")
      |         ^~~~~~~~~
note: did you mean 'transpose'?
test.rules:7:13: error: capture 'hedas' appears only on the right side of the rule
    7 |   "x" = "y.{hedas}"
      |             ^~~~~
note: did you mean 'heads'?
4 errors generated.
)d");
}

TEST_CASE("check: an error in a block used twice is reported once") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
block mlp {
  "fc1" = gated("gate", "up", "down")
}
mapping mcore <-> hf {
  scope "a." = "b." { use mlp }
  scope "c." = "d." { use mlp }
}
)"),
              R"d(test.rules:3:11: error: op 'gated' takes 2 tensor parts, got 3
    3 |   "fc1" = gated("gate", "up", "down")
      |           ^~~~~
1 error generated.
)d");
}

TEST_CASE("warning: unused parameter") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
param heads = 4 "query heads"
mapping mcore <-> hf {
  for L in 0 .. layers { "a.{L}" = "b.{L}" }
}
)"),
              R"d(test.rules:3:7: warning: parameter 'heads' is never used
    3 | param heads = 4 "query heads"
      |       ^~~~~
1 warning generated.
)d");
}

TEST_CASE("warning: unused block") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
block mlp {
  "fc1" = gated("gate", "up")
}
mapping mcore <-> hf {
  "a" = "b"
}
)"),
              R"d(test.rules:2:7: warning: block 'mlp' is never used
    2 | block mlp {
      |       ^~~
1 warning generated.
)d");
}

TEST_CASE("warnings and errors together") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param unused = 1
mapping mcore <-> hf {
  "a" = gated("b")
}
)"),
              R"d(test.rules:2:7: warning: parameter 'unused' is never used
    2 | param unused = 1
      |       ^~~~~~
test.rules:4:9: error: op 'gated' takes 2 tensor parts, got 1
    4 |   "a" = gated("b")
      |         ^~~~~
1 error and 1 warning generated.
)d");
}

TEST_CASE("check: an index computed from two unknown names") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
mapping mcore <-> hf {
  "mtp.layers.{M}.w" = "model.layers.{layres + M}.w"
}
)"),
              R"d(test.rules:2:7: warning: parameter 'layers' is never used
    2 | param layers = 2
      |       ^~~~~~
test.rules:4:38: error: an index can be computed from one capture, but this one uses 2 unknown names: 'layres', 'M'
    4 |   "mtp.layers.{M}.w" = "model.layers.{layres + M}.w"
      |                                      ^~~~~~~~~~~~
note: did you mean 'layers' for 'layres'?
1 error and 1 warning generated.
)d");
}

TEST_CASE("check: a capture an index does not just scale and shift") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "half.{E}" = "all.{E / 2}"
  "sq.{E}" = "all.{E * E}"
}
)"),
              R"d(test.rules:3:22: error: unknown name 'E'
    3 |   "half.{E}" = "all.{E / 2}"
      |                      ^
note: a capture can enter an index only as a * E + b
test.rules:4:20: error: unknown name 'E'
    4 |   "sq.{E}" = "all.{E * E}"
      |                    ^
note: a capture can enter an index only as a * E + b
2 errors generated.
)d");
}

TEST_CASE("check: a capture only in an index on one side") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
mapping mcore <-> hf {
  "mtp.w" = "model.layers.{layers + M}.w"
}
)"),
              R"d(test.rules:4:37: error: capture 'M' appears only on the right side of the rule
    4 |   "mtp.w" = "model.layers.{layers + M}.w"
      |                                     ^
1 error generated.
)d");
}

TEST_CASE("check: quantize with an unknown format") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = quantize(nvfp5, "b")
  "c" = dequantize("d", format: int4)
}
)"),
              R"d(test.rules:3:18: error: unknown quantization format 'nvfp5'
    3 |   "a" = quantize(nvfp5, "b")
      |                  ^~~~~
note: did you mean 'nvfp4'?
test.rules:4:33: error: unknown quantization format 'int4'
    4 |   "c" = dequantize("d", format: int4)
      |                                 ^~~~
note: the formats are nvfp4, fp8, fp8_block, mxfp8
2 errors generated.
)d");
}

TEST_CASE("check: a rulebook without a header") {
  // The parser refuses a file without one; the checker also refuses an AST built without one.
  CHECK_DIAGS(checkDiagnostics("// nothing here yet\n"),
              R"d(test.rules:2:1: error: a rulebook must start with its header: rulebook NAME { model_types "..." }
1 error generated.
)d");
  SourceManager sources;
  DiagnosticEngine diags(sources);
  CHECK_FALSE(checkRulebook(std::make_unique<ast::Rulebook>(), diags));
  CHECK_DIAGS(diags.render(), R"d(error: the rulebook has no header (rulebook NAME { ... })
1 error generated.
)d");
}

TEST_CASE("check: a --hf-base name must capture what the dropped name uses, and no more") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf "vis.{i}.mlp.{*rest}" because "vision" restore from base "vis.mlp.{*rest}", "vis.{i}.{j}.{*rest}"
}
)"),
              R"d(test.rules:4:68: error: this --hf-base name does not capture 'i', which the dropped name uses
    4 |   drop hf "vis.{i}.mlp.{*rest}" because "vision" restore from base "vis.mlp.{*rest}", "vis.{i}.{j}.{*rest}"
      |                                                                    ^~~~~~~~~~~~~~~~~
test.rules:4:97: error: capture 'j' appears only in the --hf-base name
    4 |   drop hf "vis.{i}.mlp.{*rest}" because "vision" restore from base "vis.mlp.{*rest}", "vis.{i}.{j}.{*rest}"
      |                                                                                                 ^
2 errors generated.
)d");
}

TEST_CASE("check: an otherwise drop restores from base or not at all") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  otherwise drop hf "mtp.{*rest}" because "shared" restore copy "b"
}
)"),
              R"d(test.rules:4:3: error: an 'otherwise drop' restores from base or not at all
    4 |   otherwise drop hf "mtp.{*rest}" because "shared" restore copy "b"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}
