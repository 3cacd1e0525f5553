// The expression evaluator: every operator and builtin, short-circuits, the laziness of
// ifelse, and `??` catching missing keys and nothing else.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

const Value kConfig = Value::parse(R"({
  "model_type": "demo",
  "num_hidden_layers": 4,
  "hidden_size": 64,
  "rope_theta": 10000.0,
  "layer_types": ["attention", "mamba", "moe"],
  "pattern": "M*-E",
  "text_config": {"hidden_size": 32, "dtype": "bfloat16", "nothing": null},
  "flag": true
})");

/// Evaluates one expression written as a parameter's value, with `vars` bound.
struct Eval {
  SourceManager sources;
  DiagnosticEngine diags{sources};
  std::unique_ptr<ast::Rulebook> rulebook;
  Env env;

  explicit Eval(const std::string &expr, const std::map<std::string, Value> &vars = {}) {
    rulebook = parseRulebookText("expr.rules", "rulebook t { model_types \"t\" }\nparam x = " + expr + "\n", sources, diags);
    REQUIRE_MESSAGE(!diags.hasErrors(), diags.render());
    REQUIRE(rulebook->params.size() == 1);
    for (const auto &[name, value] : vars)
      env.set(name, value);
  }
  llvm::Expected<Value> value() const { return Evaluator(kConfig).eval(*rulebook->params[0]->value, env); }
};

/// The value as JSON text, or "error: ..." with the position of the error.
std::string eval(const std::string &expr, const std::map<std::string, Value> &vars = {}) {
  Eval e(expr, vars);
  auto v = e.value();
  if (v)
    return v->dump();
  std::string out;
  llvm::handleAllErrors(v.takeError(), [&](const EvalError &err) {
    out = "error at " + e.sources.format(err.range.begin) + " (" + std::to_string(err.range.length) + "): " + err.message +
          (err.missing ? " [missing]" : "");
  });
  return out;
}

} // namespace

TEST_CASE("eval: literals") {
  CHECK(eval("42") == "42");
  CHECK(eval("2.5") == "2.5");
  CHECK(eval("1e3") == "1000.0");
  CHECK(eval("\"text\"") == "\"text\"");
  CHECK(eval("true") == "true");
  CHECK(eval("false") == "false");
  CHECK(eval("null") == "null");
  CHECK(eval("[1, \"a\", [true]]") == "[1,\"a\",[true]]");
  CHECK(eval("[]") == "[]");
  CHECK(eval("BF16") == "\"BF16\"");
  CHECK(eval("F8_E4M3") == "\"F8_E4M3\"");
}

TEST_CASE("eval: arithmetic on integers") {
  CHECK(eval("7 + 3") == "10");
  CHECK(eval("7 - 10") == "-3");
  CHECK(eval("6 * 7") == "42");
  CHECK(eval("12 / 4") == "3");
  CHECK(eval("13 % 5") == "3");
  CHECK(eval("-4") == "-4");
  CHECK(eval("-(2 - 5)") == "3");
  CHECK(eval("2 + 3 * 4") == "14");
  CHECK(eval("(2 + 3) * 4") == "20");
  CHECK(eval("20 - 4 - 3") == "13");
  CHECK(eval("2 * n * d + v", {{"n", 2}, {"d", 8}, {"v", 5}}) == "37");
  CHECK(eval("13 / 4") == "error at expr.rules:2:11 (6): 13 / 4 is not a whole number");
  CHECK(eval("1 / 0") == "error at expr.rules:2:11 (5): division by zero");
  CHECK(eval("1 % 0") == "error at expr.rules:2:11 (5): division by zero");
  CHECK(eval("9223372036854775807 + 1") == "error at expr.rules:2:11 (23): integer overflow");
  CHECK(eval("4611686018427387904 * 2") == "error at expr.rules:2:11 (23): integer overflow");
  CHECK(eval("-9223372036854775807 - 2") == "error at expr.rules:2:11 (24): integer overflow");
}

TEST_CASE("eval: arithmetic with floats") {
  CHECK(eval("1.5 * 2") == "3.0");
  CHECK(eval("3.0 / 2") == "1.5");
  CHECK(eval("3 / 2.0") == "1.5");
  CHECK(eval("0.5 + 1") == "1.5");
  CHECK(eval("5.5 % 2") == "1.5");
  CHECK(eval("-2.5") == "-2.5");
  CHECK(eval("1.0 / 0") == "error at expr.rules:2:11 (7): division by zero");
  CHECK(eval("config.rope_theta / 10") == "1000.0");
}

TEST_CASE("eval: strings") {
  CHECK(eval("\"model.\" + \"layers.\"") == "\"model.layers.\"");
  CHECK(eval("\"layers.{n + 1}.\"", {{"n", 2}}) == "\"layers.3.\"");
  CHECK(eval("\"{p}norm\"", {{"p", "mixer."}}) == "\"mixer.norm\"");
  CHECK(eval("\"a\" + 1") == "error at expr.rules:2:11 (7): '+' needs numbers, got a string and an integer");
  CHECK(eval("\"x{l}\"", {{"l", Value::array({1})}}) ==
        "error at expr.rules:2:13 (3): a name can only interpolate integers and strings, not a list");
}

TEST_CASE("eval: comparisons") {
  CHECK(eval("1 < 2") == "true");
  CHECK(eval("2 < 2") == "false");
  CHECK(eval("2 <= 2") == "true");
  CHECK(eval("3 > 2") == "true");
  CHECK(eval("2 >= 3") == "false");
  CHECK(eval("1.5 < 2") == "true");
  CHECK(eval("2 == 2") == "true");
  CHECK(eval("2 == 2.0") == "true");
  CHECK(eval("2 != 3") == "true");
  CHECK(eval("\"a\" == \"a\"") == "true");
  CHECK(eval("\"a\" != 1") == "true");
  CHECK(eval("[1, 2] == [1, 2]") == "true");
  CHECK(eval("null == null") == "true");
  CHECK(eval("config.text_config.nothing == null") == "true");
  CHECK(eval("\"a\" < \"b\"") == "error at expr.rules:2:11 (9): '<' needs numbers, got a string and a string");
}

TEST_CASE("eval: logic and short-circuits") {
  CHECK(eval("true and false") == "false");
  CHECK(eval("true or false") == "true");
  CHECK(eval("not true") == "false");
  CHECK(eval("not (1 > 2)") == "true");
  // The right side is not evaluated when the left decides.
  CHECK(eval("false and 1 / 0 == 1") == "false");
  CHECK(eval("true or config.missing") == "true");
  CHECK(eval("L < len(kinds) and kinds[L] == \"moe\"", {{"L", 5}, {"kinds", Value::array({"moe"})}}) == "false");
  CHECK(eval("true and 1") == "error at expr.rules:2:20 (1): expected a boolean, got an integer (1)");
  CHECK(eval("0 or true") == "error at expr.rules:2:11 (1): expected a boolean, got an integer (0)");
  CHECK(eval("not 1") == "error at expr.rules:2:15 (1): 'not' needs a boolean, not an integer");
  CHECK(eval("-\"a\"") == "error at expr.rules:2:12 (3): '-' needs a number, not a string");
}

TEST_CASE("eval: members and indexes") {
  CHECK(eval("config.hidden_size") == "64");
  CHECK(eval("config.text_config.hidden_size") == "32");
  CHECK(eval("config[\"hidden_size\"]") == "64");
  CHECK(eval("config.layer_types[1]") == "\"mamba\"");
  CHECK(eval("config.pattern[3]") == "\"E\"");
  CHECK(eval("tc.hidden_size", {{"tc", kConfig["text_config"]}}) == "32");
  CHECK(eval("config.missing") == "error at expr.rules:2:11 (14): config.json has no key 'missing' [missing]");
  CHECK(eval("config.text_config.missing") ==
        "error at expr.rules:2:11 (26): config.json has no key 'text_config.missing' [missing]");
  CHECK(eval("tc.missing", {{"tc", kConfig["text_config"]}}) == "error at expr.rules:2:11 (10): no member 'missing' [missing]");
  CHECK(eval("config[\"missing\"]") == "error at expr.rules:2:11 (17): no key \"missing\" [missing]");
  CHECK(eval("config.layer_types[3]") ==
        "error at expr.rules:2:11 (21): index 3 is out of range (the list has 3 entries) [missing]");
  CHECK(eval("config.layer_types[-1]") ==
        "error at expr.rules:2:11 (22): index -1 is out of range (the list has 3 entries) [missing]");
  CHECK(eval("config.pattern[4]") ==
        "error at expr.rules:2:11 (17): index 4 is out of range (the string has 4 characters) [missing]");
  CHECK(eval("config.layer_types[\"a\"]") == "error at expr.rules:2:30 (3): an index must be an integer, not a string");
  CHECK(eval("config.hidden_size[0]") == "error at expr.rules:2:11 (18): an integer cannot be indexed");
  CHECK(eval("config.hidden_size.x") == "error at expr.rules:2:30 (1): 'x': an integer has no members");
  CHECK(eval("nobody") == "error at expr.rules:2:11 (6): unknown name 'nobody'");
}

TEST_CASE("eval: ?? takes the default for a missing key or null only") {
  CHECK(eval("config.missing ?? 7") == "7");
  CHECK(eval("config.text_config.nothing ?? 7") == "7");
  CHECK(eval("config.hidden_size ?? 7") == "64");
  CHECK(eval("config.flag ?? 7") == "true");
  CHECK(eval("config.a ?? config.b ?? 3") == "3");
  CHECK(eval("config.a.b.c ?? 3") == "3");
  CHECK(eval("config.layer_types[7] ?? \"none\"") == "\"none\"");
  CHECK(eval("config.missing ?? null") == "null");
  // Errors other than a missing key are not defaults.
  CHECK(eval("1 / 0 ?? 3") == "error at expr.rules:2:11 (5): division by zero");
  CHECK(eval("config.hidden_size.x ?? 3") == "error at expr.rules:2:30 (1): 'x': an integer has no members");
  CHECK(eval("nobody ?? 3") == "error at expr.rules:2:11 (6): unknown name 'nobody'");
  // The default is evaluated only when taken.
  CHECK(eval("config.hidden_size ?? 1 / 0") == "64");
}

TEST_CASE("eval: len, chars, contains, count") {
  CHECK(eval("len(config.layer_types)") == "3");
  CHECK(eval("len(\"M*-E\")") == "4");
  CHECK(eval("len(config.text_config)") == "3");
  CHECK(eval("len([])") == "0");
  CHECK(eval("len(3)") == "error at expr.rules:2:11 (6): len() needs a list, string or object, not an integer");
  CHECK(eval("len(1, 2)") == "error at expr.rules:2:11 (9): len() takes 1 argument, got 2");
  CHECK(eval("chars(config.pattern)") == R"(["M","*","-","E"])");
  CHECK(eval("chars(\"\")") == "[]");
  CHECK(eval("chars([1])") == "error at expr.rules:2:11 (10): chars() needs a string, not a list");
  CHECK(eval("contains(config.layer_types, \"moe\")") == "true");
  CHECK(eval("contains(config.layer_types, \"dense\")") == "false");
  CHECK(eval("contains(\"M*-E\", \"E\")") == "true");
  CHECK(eval("count([1, 2, 1, 1], 1)") == "3");
  CHECK(eval("count(\"MM*M\", \"M\")") == "3");
  CHECK(eval("count(5, 1)") == "error at expr.rules:2:11 (11): count() needs a list first, not an integer");
  CHECK(eval("contains([1])") == "error at expr.rules:2:11 (13): contains() takes 2 arguments, got 1");
}

TEST_CASE("eval: min and max") {
  CHECK(eval("min(3, 1, 2)") == "1");
  CHECK(eval("max(3, 1, 2)") == "3");
  CHECK(eval("max([4, 9, 2])") == "9");
  CHECK(eval("min(2, 1.5)") == "1.5");
  CHECK(eval("max(7)") == "7");
  CHECK(eval("min([])") == "error at expr.rules:2:11 (7): min() of nothing");
  CHECK(eval("max(1, \"a\")") == "error at expr.rules:2:11 (11): max() needs numbers, not a string");
}

TEST_CASE("eval: dtype") {
  CHECK(eval("dtype(\"bfloat16\")") == "\"BF16\"");
  CHECK(eval("dtype(\"torch.float32\")") == "\"F32\"");
  CHECK(eval("dtype(\"half\")") == "\"F16\"");
  CHECK(eval("dtype(\"float8_e4m3fn\")") == "\"F8_E4M3\"");
  CHECK(eval("dtype(\"BF16\")") == "\"BF16\"");
  CHECK(eval("dtype(config.text_config.dtype)") == "\"BF16\"");
  CHECK(eval("dtype(\"bf16\")") == "error at expr.rules:2:11 (13): unknown dtype \"bf16\"");
  CHECK(eval("dtype(16)") == "error at expr.rules:2:11 (9): dtype() needs a string, not an integer");
}

TEST_CASE("eval: ifelse evaluates only the branch it takes") {
  CHECK(eval("ifelse(true, 1, 2)") == "1");
  CHECK(eval("ifelse(false, 1, 2)") == "2");
  CHECK(eval("ifelse(true, 1, config.missing)") == "1");
  CHECK(eval("ifelse(false, 1 / 0, \"b\")") == "\"b\"");
  CHECK(eval("ifelse(config.flag, config.text_config, config).hidden_size") == "32");
  CHECK(eval("ifelse(1, 2, 3)") == "error at expr.rules:2:18 (1): expected a boolean, got an integer (1)");
  CHECK(eval("ifelse(true, 2)") == "error at expr.rules:2:11 (15): ifelse() takes 3 arguments, got 2");
  CHECK(eval("ifelse(false, 2, config.missing)") ==
        "error at expr.rules:2:28 (14): config.json has no key 'missing' [missing]");
}

TEST_CASE("eval: typed accessors") {
  Eval four("4.0");
  CHECK(requireValue(Evaluator(kConfig).evalInt(*four.rulebook->params[0]->value, four.env)) == 4);
  Eval half("4.5");
  CHECK(errorText(Evaluator(kConfig).evalInt(*half.rulebook->params[0]->value, half.env)) ==
        "expected an integer, got a number (4.5)");
  Eval text("\"x\"");
  CHECK(errorText(Evaluator(kConfig).evalBool(*text.rulebook->params[0]->value, text.env)) ==
        "expected a boolean, got a string (\"x\")");
  Eval number("3");
  CHECK(errorText(Evaluator(kConfig).evalString(*number.rulebook->params[0]->value, number.env)) ==
        "expected a string, got an integer (3)");
}

TEST_CASE("formatValue and normalizeDTypeName") {
  CHECK(formatValue(Value("conv")) == "\"conv\"");
  CHECK(formatValue(Value(nullptr)) == "null");
  CHECK(formatValue(Value(3)) == "3");
  CHECK(formatValue(Value::parse("[1, \"a\"]")) == "[1,\"a\"]");
  CHECK(normalizeDTypeName("bfloat16") == "BF16");
  CHECK(normalizeDTypeName("torch.bfloat16") == "BF16");
  CHECK(normalizeDTypeName("F8_E4M3") == "F8_E4M3");
  CHECK(normalizeDTypeName("float8_e8m0fnu") == "F8_E8M0");
  CHECK(normalizeDTypeName("bf16") == "");
  CHECK(normalizeDTypeName("f32") == "");
}

TEST_CASE("parseOverride: JSON when it parses, else a string") {
  CHECK(parseOverride("64") == Value(64));
  CHECK(parseOverride("true") == Value(true));
  CHECK(parseOverride("[1,2]") == Value::parse("[1,2]"));
  CHECK(parseOverride("\"x\"") == Value("x"));
  CHECK(parseOverride("mamba") == Value("mamba"));
  CHECK(parseOverride("") == Value(""));
}

TEST_CASE("eval: a capture has no value outside a name pattern") {
  // The checker refuses this in a rulebook; the evaluator still says what is wrong.
  CHECK(eval("\"a.{*rest}\"") == "error at expr.rules:2:14 (7): capture 'rest' has no value here");
}

TEST_CASE("eval: shape() needs a checkpoint") {
  CHECK(eval("shape(\"w\")") == "error at expr.rules:2:11 (10): shape(): no checkpoint is being read here");
  std::vector<TensorMeta> tensors = {T("model.embed_tokens.weight", {16, 4}), T("lm_head.weight", {16, 4})};
  TensorTable table(tensors);
  Eval e("shape(\"lm_head.weight\")[0] * 2");
  auto v = Evaluator(kConfig, &table).eval(*e.rulebook->params[0]->value, e.env);
  REQUIRE(v);
  CHECK(*v == 32);
  Eval missing("shape(\"lm_head.weigth\")");
  auto m = Evaluator(kConfig, &table).eval(*missing.rulebook->params[0]->value, missing.env);
  REQUIRE_FALSE(m);
  llvm::handleAllErrors(m.takeError(), [&](const EvalError &err) {
    CHECK(err.message == "shape(): the checkpoint has no tensor 'lm_head.weigth'");
    CHECK(err.missing);
    CHECK(err.notes == std::vector<std::string>{"did you mean 'lm_head.weight'?"});
  });
}

TEST_CASE("eval: a missing key suggests the closest one the object has") {
  Eval e("config.text_config.hiden_size");
  auto v = e.value();
  REQUIRE_FALSE(v);
  llvm::handleAllErrors(v.takeError(), [&](const EvalError &err) {
    CHECK(err.message == "config.json has no key 'text_config.hiden_size'");
    CHECK(err.notes == std::vector<std::string>{"did you mean 'hidden_size'?"});
  });
}
