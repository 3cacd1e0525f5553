// What binding computes from the checkpoint and the config: indexes computed from captures
// (`{layers + M}`), parameters read from tensor shapes (`shape("name")`), and the quantize
// and dequantize ops, each compiled both ways.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

Value config(const char *text) { return Value::parse(text); }

std::string names(const std::vector<TensorMeta> &tensors) {
  std::string out;
  for (const TensorMeta &t : tensors)
    out += t.name + " " + formatShape(t.shape) + "\n";
  return out;
}

/// Compiles `rules` from `from` to `to` and back from what came out; both must compile.
struct RoundTripOf {
  Session s;
  std::optional<Plan> forward, reverse;
  RoundTripOf(const char *rules, const Value &config, const std::vector<TensorMeta> &header, const char *from,
              const char *to) {
    REQUIRE_MESSAGE(s.check(rules), s.render());
    forward = s.compile(config, header, direction(from, to));
    REQUIRE_MESSAGE(forward, s.render());
    reverse = s.compile(config, forward->outputs, direction(to, from));
    REQUIRE_MESSAGE(reverse, s.render());
  }
};

// DeepSeek's MTP layers follow the decoder layers in HF numbering and start at 0 in MCore.
const char *kMtpRules = R"(rulebook demo { model_types "demo" }
param layers = config.num_hidden_layers
mapping mcore <-> hf {
  for L in 0 .. layers {
    "decoder.layers.{L}.w" = "model.layers.{L}.w"
  }
  "mtp.layers.{M}.w" = "model.layers.{layers + M}.w"
}
)";

} // namespace

TEST_CASE("captures in index arithmetic: MTP layers numbered after the decoder") {
  RoundTripOf trip(kMtpRules, config(R"({"model_type": "demo", "num_hidden_layers": 2})"),
                   {T("model.layers.0.w", {4}), T("model.layers.1.w", {4}), T("model.layers.2.w", {4}),
                    T("model.layers.3.w", {4})},
                   "hf", "mcore");
  CHECK_DIAGS(trip.s.render(), "");
  CHECK(names(trip.forward->outputs) == "decoder.layers.0.w [4]\ndecoder.layers.1.w [4]\nmtp.layers.0.w [4]\nmtp.layers.1.w [4]\n");
  CHECK(names(trip.reverse->outputs) == "model.layers.0.w [4]\nmodel.layers.1.w [4]\nmodel.layers.2.w [4]\nmodel.layers.3.w [4]\n");
}

TEST_CASE("captures in index arithmetic: global experts from per-rank local ones") {
  // Each rank holds `local` experts; the global index is rank * local + E.
  const char *rules = R"(rulebook demo { model_types "demo" }
param local = 2
mapping mcore <-> hf {
  for R in 0 .. 2 {
    "ranks.{R}.experts.{E}.w" = "experts.{R * local + E}.w"
  }
}
)";
  Session s;
  REQUIRE(s.check(rules));
  auto plan = s.compile(config(R"({"model_type": "demo"})"),
                        {T("ranks.0.experts.0.w", {2}), T("ranks.0.experts.1.w", {2}), T("ranks.1.experts.0.w", {2}),
                         T("ranks.1.experts.1.w", {2})},
                        direction("mcore", "hf"));
  CHECK_DIAGS(s.render(), "");
  REQUIRE(plan);
  CHECK(names(plan->outputs) == "experts.0.w [2]\nexperts.1.w [2]\nexperts.2.w [2]\nexperts.3.w [2]\n");
  for (const Step &step : plan->steps)
    if (step.instrs[0].tensor == "ranks.1.experts.1.w")
      CHECK(step.instrs[1].tensor == "experts.3.w");
}

TEST_CASE("captures in index arithmetic: scaled, shifted back, in drops and renames") {
  const char *rules = R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "even.{E}" = "all.{2 * E}"
  "odd.{E}" = "all.{2 * E + 1}"
  "prev.{L - 1}.w" = "next.{L}.w"
  drop hf "extra.{K + 10}" because "only the first ten are kept"
  otherwise "kept.{K}" = "renamed.{K + 100}"
}
)";
  Session s;
  REQUIRE(s.check(rules));
  auto plan = s.compile(config(R"({"model_type": "demo"})"),
                        {T("all.0", {1}), T("all.1", {1}), T("all.2", {1}), T("all.3", {1}), T("next.1.w", {1}),
                         T("next.2.w", {1}), T("extra.11", {1}), T("renamed.105", {1})},
                        direction("hf", "mcore"));
  CHECK_DIAGS(s.render(), "");
  REQUIRE(plan);
  CHECK(names(plan->outputs) == "even.0 [1]\neven.1 [1]\nkept.5 [1]\nodd.0 [1]\nodd.1 [1]\nprev.0.w [1]\nprev.1.w [1]\n");
  REQUIRE(plan->drops.size() == 1);
  CHECK(plan->drops[0].tensor == "extra.11");
}

TEST_CASE("captures in index arithmetic: an index the capture would make negative") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "prev.{L - 1}.w" = "next.{L}.w"
}
)",
                                 config(R"({"model_type": "demo"})"), {T("next.0.w", {1})}, direction("hf", "mcore")),
              R"d(test.rules:3:3: error: index {L - 1} with L = 0 is negative (matching 'next.0.w')
    3 |   "prev.{L - 1}.w" = "next.{L}.w"
      |   ^~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("captures in index arithmetic: an index that does not change with its capture") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a.{E}" = "b.{0 * E + 1}"
}
)",
                                 config(R"({"model_type": "demo"})"), {T("b.1", {1})}, direction("hf", "mcore")),
              R"d(test.rules:3:16: error: this index does not change with capture 'E' (it is 1 for every value)
    3 |   "a.{E}" = "b.{0 * E + 1}"
      |                ^~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("shape(): parameters from the checkpoint's tensors, both ways") {
  // The vocabulary comes from whichever embedding the source holds.
  const char *rules = R"(rulebook demo { model_types "demo" }
param vocab = shape("model.embed_tokens.weight")[0] ?? shape("embedding.word_embeddings.weight")[0]
param rows = shape("model.layers.0.in_proj.weight")[0] ?? shape("in_proj.weight")[0] - 2
assert vocab == config.vocab_size : "the embedding has one row per token"
mapping mcore <-> hf {
  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  drop mcore "output_layer.bias" because "HF has no bias" restore fill(0, [vocab], BF16)
  "in_proj.weight" = concat(0, "model.layers.0.in_proj.weight" : rows, "model.layers.0.in_z.weight" : 2)
}
)";
  RoundTripOf trip(rules, config(R"({"model_type": "demo", "vocab_size": 16})"),
                   {T("model.embed_tokens.weight", {16, 4}), T("model.layers.0.in_proj.weight", {4, 4}),
                    T("model.layers.0.in_z.weight", {2, 4})},
                   "hf", "mcore");
  CHECK_DIAGS(trip.s.render(), "");
  CHECK(trip.forward->params["vocab"] == 16);
  CHECK(trip.forward->params["rows"] == 4);
  // On the way back the MCore tensors answer: the split takes its sizes from the fused rows.
  CHECK(trip.reverse->params["vocab"] == 16);
  CHECK(trip.reverse->params["rows"] == 4);
  CHECK(names(trip.reverse->outputs) ==
        "model.embed_tokens.weight [16, 4]\nmodel.layers.0.in_proj.weight [4, 4]\nmodel.layers.0.in_z.weight [2, 4]\n");
  CHECK(names(trip.forward->outputs) == "embedding.word_embeddings.weight [16, 4]\nin_proj.weight [6, 4]\noutput_layer.bias [16]\n");
}

TEST_CASE("shape(): a tensor the checkpoint does not have") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param vocab = shape("model.embed_tokns.weight")[0]
mapping mcore <-> hf { "a.{vocab}" = "b.{vocab}" }
)",
                                 config(R"({"model_type": "demo"})"), {T("model.embed_tokens.weight", {16, 4})},
                                 direction("hf", "mcore")),
              R"d(test.rules:2:15: error: shape(): the checkpoint has no tensor 'model.embed_tokns.weight'
    2 | param vocab = shape("model.embed_tokns.weight")[0]
      |               ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: did you mean 'model.embed_tokens.weight'?
1 error generated.
)d");
}

TEST_CASE("shape(): of something that is not a name") {
  CHECK_DIAGS(compileDiagnostics(R"(rulebook demo { model_types "demo" }
param n = shape(3)
mapping mcore <-> hf { "a.{n}" = "b.{n}" }
)",
                                 config(R"({"model_type": "demo"})"), {}, direction("hf", "mcore")),
              R"d(test.rules:2:11: error: shape() needs a tensor name, not an integer
    2 | param n = shape(3)
      |           ^~~~~~~~
1 error generated.
)d");
}

// A VL tower MCore does not hold, whose MLP two HF layouts spell differently: the way out
// drops it, the way back takes it from --hf-base in either spelling and writes the output's.
namespace {
const char *kBaseRules = R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a" = "b"
  drop hf "vis.{i}.mlp.{*rest}" because "MCore holds the text model only"
    restore from base "vis.{i}.mlp.{*rest}", "vis.{i}.ffn.{*rest}"
  otherwise drop hf "vis.{*rest}" because "MCore holds the text model only" restore from base
}
)";

std::string dropsOf(const Plan &plan) {
  std::string out;
  for (const PlanDrop &d : plan.drops)
    out += d.tensor + " by " + d.rule + "\n";
  return out;
}

/// mcore -> hf of kBaseRules with `base` as --hf-base: the outputs and where each came from.
std::string restoredFrom(const std::vector<TensorMeta> &base, std::string &diagnostics) {
  Session s;
  REQUIRE_MESSAGE(s.check(kBaseRules), s.render());
  CompileInputs inputs;
  inputs.config = config(R"({"model_type": "demo"})");
  inputs.source = {T("a", {2})};
  inputs.base = base;
  inputs.haveBase = true;
  auto plan = compilePlan(*s.rulebook, "test.rules", inputs, direction("mcore", "hf"), s.diags);
  diagnostics = s.render();
  REQUIRE(plan);
  std::string out;
  for (const Step &step : plan->steps)
    for (const Instr &i : step.instrs)
      if (i.op == InstrOp::Store)
        out += i.tensor + " <- " + (step.instrs.front().source == LoadSource::Base ? "base " : "") +
               step.instrs.front().tensor + " (" + step.rule + ")\n";
  return out;
}
} // namespace

TEST_CASE("otherwise drop: consumes what no other statement did") {
  Session s;
  REQUIRE_MESSAGE(s.check(kBaseRules), s.render());
  auto plan = s.compile(config(R"({"model_type": "demo"})"),
                        {T("b", {2}), T("vis.0.mlp.w", {2}), T("vis.0.attn.w", {2}), T("vis.1.mlp.w", {2})},
                        direction("hf", "mcore"));
  REQUIRE_MESSAGE(plan, s.render());
  CHECK(s.render() == "");
  CHECK(dropsOf(*plan) == "vis.0.mlp.w by test.rules:4:3\n"
                          "vis.1.mlp.w by test.rules:4:3\n"
                          "vis.0.attn.w by test.rules:6:3\n");
}

TEST_CASE("restore from base: either spelling of the base, written as the rule spells it; the rest by otherwise") {
  std::string diagnostics;
  CHECK(restoredFrom({T("vis.0.ffn.w", {2}), T("vis.0.attn.w", {2}), T("vis.1.mlp.w", {2})}, diagnostics) ==
        "b <- a (test.rules:3:3)\n"
        "vis.0.mlp.w <- base vis.0.ffn.w (test.rules:4:3)\n"
        "vis.1.mlp.w <- base vis.1.mlp.w (test.rules:4:3)\n"
        "vis.0.attn.w <- base vis.0.attn.w (test.rules:6:3)\n");
  CHECK(diagnostics == "");
}

TEST_CASE("restore from base: a base that holds none of it is warned about") {
  std::string diagnostics;
  CHECK(restoredFrom({T("other.w", {2})}, diagnostics) == "b <- a (test.rules:3:3)\n");
  CHECK_DIAGS(diagnostics, R"d(test.rules:4:3: warning: no tensor of --hf-base matches 'vis.{i}.mlp.{*rest}'; the output will not have it
    4 |   drop hf "vis.{i}.mlp.{*rest}" because "MCore holds the text model only"
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
test.rules:6:3: warning: no tensor of --hf-base matches 'vis.{*rest}'; the output will not have it
    6 |   otherwise drop hf "vis.{*rest}" because "MCore holds the text model only" restore from base
      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
2 warnings generated.
)d");
}
