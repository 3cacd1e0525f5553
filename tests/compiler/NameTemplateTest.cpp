// The name matcher the binder applies to every tensor name: integer captures, rest
// captures, backtracking between them, and names that are not layer numbers.
#include "Helpers.h"

using namespace ckptmap;

namespace {

NameTemplate tpl(llvm::StringRef display) { return NameTemplate::fromDisplay(display); }

/// The captures of a match as "a=1 b=x", or "no match".
std::string match(llvm::StringRef pattern, llvm::StringRef name, llvm::StringMap<std::string> captures = {}) {
  if (!tpl(pattern).match(name, captures))
    return "no match";
  std::vector<std::string> parts;
  for (const auto &c : captures)
    parts.push_back(c.getKey().str() + "=" + c.getValue());
  std::sort(parts.begin(), parts.end());
  return llvm::join(parts, " ");
}

} // namespace

TEST_CASE("NameTemplate: literal names match only themselves") {
  CHECK(match("model.norm.weight", "model.norm.weight") == "");
  CHECK(match("model.norm.weight", "model.norm.weigh") == "no match");
  CHECK(match("model.norm.weight", "model.norm.weights") == "no match");
  CHECK(match("model.norm.weight", "xmodel.norm.weight") == "no match");
  CHECK(match("", "") == "");
  CHECK(match("", "a") == "no match");
}

TEST_CASE("NameTemplate: integer captures") {
  CHECK(match("model.layers.{L}.w", "model.layers.0.w") == "L=0");
  CHECK(match("model.layers.{L}.w", "model.layers.12.w") == "L=12");
  CHECK(match("model.layers.{L}.w", "model.layers.123456789012345678901234567890.w") == "L=123456789012345678901234567890");
  CHECK(match("model.layers.{L}.w", "model.layers.x.w") == "no match");
  CHECK(match("model.layers.{L}.w", "model.layers..w") == "no match");
  CHECK(match("model.layers.{L}.w", "model.layers.-1.w") == "no match");
  CHECK(match("model.layers.{L}.w", "model.layers.1a.w") == "no match");
  CHECK(match("linear_fc1.weight{E}", "linear_fc1.weight7") == "E=7");
  CHECK(match("linear_fc1.weight{E}", "linear_fc1.weight") == "no match");
}

TEST_CASE("NameTemplate: integers are written without leading zeros") {
  CHECK(match("layers.{L}.w", "layers.03.w") == "no match");
  CHECK(match("layers.{L}.w", "layers.00.w") == "no match");
  CHECK(match("layers.{L}.w", "layers.0.w") == "L=0");
  CHECK(match("layers.{L}.w", "layers.10.w") == "L=10");
  // A rest capture takes any text, zeros included.
  CHECK(match("layers.{*rest}", "layers.03.w") == "rest=03.w");
}

TEST_CASE("NameTemplate: rest captures take any non-empty text") {
  CHECK(match("model.visual.{*rest}", "model.visual.blocks.0.attn.qkv.weight") == "rest=blocks.0.attn.qkv.weight");
  CHECK(match("model.visual.{*rest}", "model.visual.") == "no match");
  CHECK(match("{*name}", "lm_head.weight") == "name=lm_head.weight");
  CHECK(match("{*name}", "") == "no match");
  CHECK(match("{*a}.weight", "x.y.weight") == "a=x.y");
}

TEST_CASE("NameTemplate: backtracking between captures") {
  // The first capture tries the longest text first and gives back what the rest needs.
  CHECK(match("a.{*x}.b.{*y}", "a.1.b.2.b.3") == "x=1.b.2 y=3");
  CHECK(match("{*x}.{*y}", "p.q.r") == "x=p.q y=r");
  CHECK(match("{E}{F}", "123") == "E=12 F=3");
  CHECK(match("{E}{F}", "105") == "E=10 F=5");
  CHECK(match("{E}{F}", "1005") == "E=100 F=5");
  // "05" is not an integer as names write them: the first capture backs off to "0".
  CHECK(match("{E}{F}", "05") == "E=0 F=5");
  CHECK(match("{E}{F}", "5") == "no match");
  CHECK(match("{E}0{F}", "1005") == "E=10 F=5");
  CHECK(match("layers.{L}.{*rest}", "layers.3.mlp.experts.2.w") == "L=3 rest=mlp.experts.2.w");
  CHECK(match("{*rest}.experts.{E}.w", "mlp.experts.1.experts.2.w") == "E=2 rest=mlp.experts.1");
}

TEST_CASE("NameTemplate: a capture used twice must match the same text") {
  CHECK(match("a.{i}.b.{i}", "a.1.b.1") == "i=1");
  CHECK(match("a.{i}.b.{i}", "a.1.b.2") == "no match");
  CHECK(match("{*x}-{*x}", "ab-ab") == "x=ab");
  CHECK(match("{*x}-{*x}", "ab-a") == "no match");
}

TEST_CASE("NameTemplate: captures bound before the match") {
  llvm::StringMap<std::string> bound;
  bound["L"] = "3";
  CHECK(match("layers.{L}.w", "layers.3.w", bound) == "L=3");
  CHECK(match("layers.{L}.w", "layers.4.w", bound) == "no match");
  // A failed match leaves the captures as they were.
  llvm::StringMap<std::string> captures;
  captures["L"] = "3";
  CHECK_FALSE(tpl("layers.{L}.{E}.x").match("layers.3.7.y", captures));
  CHECK(captures.size() == 1);
  CHECK(captures["L"] == "3");
}

TEST_CASE("NameTemplate: building, displaying, instantiating") {
  NameTemplate t;
  t.appendLiteral("model.layers.");
  t.appendCapture("L", false);
  t.appendLiteral(".");
  t.appendLiteral("");
  t.appendCapture("rest", true);
  CHECK(t.display() == "model.layers.{L}.{*rest}");
  CHECK_FALSE(t.concrete());
  CHECK(t.hasCapture("L"));
  CHECK(t.hasCapture("rest"));
  CHECK_FALSE(t.hasCapture("E"));

  llvm::StringMap<std::string> some;
  some["L"] = "5";
  NameTemplate partial = t.instantiate(some);
  CHECK(partial.display() == "model.layers.5.{*rest}");
  CHECK_FALSE(partial.concrete());
  some["rest"] = "mlp.w";
  NameTemplate full = t.instantiate(some);
  CHECK(full.concrete());
  CHECK(full.str() == "model.layers.5.mlp.w");
  CHECK(full.display() == "model.layers.5.mlp.w");

  // fromDisplay reads back what display writes.
  for (const char *text : {"a.{L}.b.{*rest}", "{*name}", "plain.name", "x{E}", "{A}{B}"})
    CHECK(tpl(text).display() == text);
  // An unclosed brace is literal text.
  CHECK(tpl("a.{L").concrete());
  CHECK(tpl("a.{L").str() == "a.{L");
}

TEST_CASE("NameTemplate: an index computed from a capture is solved for it") {
  // "mtp.layers.{M}" = "model.layers.{layers + M}" with layers = 4: matching layer 5 gives M = 1.
  CHECK(match("model.layers.{M + 4}.w", "model.layers.5.w") == "M=1");
  CHECK(match("model.layers.{M + 4}.w", "model.layers.4.w") == "M=0");
  // M would be negative: no match.
  CHECK(match("model.layers.{M + 4}.w", "model.layers.3.w") == "no match");
  // {ep_rank * local + E} with ep_rank = 1, local = 4: the global index 6 is local expert 2.
  CHECK(match("experts.{E + 4}", "experts.6") == "E=2");
  CHECK(match("experts.{2 * E + 1}", "experts.7") == "E=3");
  CHECK(match("experts.{2 * E + 1}", "experts.8") == "no match");
  CHECK(match("experts.{2 * E}", "experts.0") == "E=0");
  CHECK(match("experts.{-1 * E + 5}", "experts.2") == "E=3");
  CHECK(match("experts.{-1 * E + 5}", "experts.6") == "no match");
  CHECK(match("layers.{M - 2}.w", "layers.0.w") == "M=2");
  // Leading zeros are no more a number here than anywhere.
  CHECK(match("model.layers.{M + 4}.w", "model.layers.05.w") == "no match");
  // A number past int64 is not a layer.
  CHECK(match("layers.{M + 1}.w", "layers.99999999999999999999.w") == "no match");
}

TEST_CASE("NameTemplate: an index and its capture in one name agree") {
  CHECK(match("a.{M}.b.{M + 1}", "a.3.b.4") == "M=3");
  CHECK(match("a.{M}.b.{M + 1}", "a.3.b.5") == "no match");
  CHECK(match("a.{M + 1}.b.{M}", "a.4.b.3") == "M=3");
  llvm::StringMap<std::string> bound;
  bound["M"] = "2";
  CHECK(match("layers.{M + 10}.w", "layers.12.w", bound) == "M=2");
  CHECK(match("layers.{M + 10}.w", "layers.2.w", bound) == "no match");
}

TEST_CASE("NameTemplate: instantiating and displaying an index") {
  NameTemplate t;
  t.appendLiteral("model.layers.");
  t.appendIndex("M", 1, 4);
  t.appendLiteral(".w");
  CHECK(t.display() == "model.layers.{M + 4}.w");
  llvm::StringMap<std::string> captures;
  captures["M"] = "2";
  CHECK(t.instantiate(captures).str() == "model.layers.6.w");
  CHECK(t.negativeIndex(captures) == "");

  NameTemplate back;
  back.appendIndex("M", 1, -1);
  captures["M"] = "0";
  CHECK(back.display() == "{M - 1}");
  CHECK(back.negativeIndex(captures) == "{M - 1} with M = 0");
  CHECK_FALSE(back.instantiate(captures).concrete());
  captures["M"] = "1";
  CHECK(back.instantiate(captures).str() == "0");

  for (const char *text : {"a.{M + 4}.b", "{2 * E + 1}", "{-3 * E - 2}", "x.{E - 7}", "{2 * E}"})
    CHECK(tpl(text).display() == text);
}
