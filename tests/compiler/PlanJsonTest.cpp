// Plan JSON: planToJson -> planFromJson -> planToJson is the identity on the plans of every
// shipped rulebook; malformed plans are refused with exact messages; verifyPlanTypes catches
// a plan whose declared types were tampered with.
#include "Helpers.h"

#include "compiler/plan/Shapes.h"
#include "runtime/io/Json.h"
#include "runtime/io/Safetensors.h"

using namespace ckptmap;
using namespace ckptmap::test;
using json = nlohmann::json;

namespace {

/// A fixture checkpoint's header and config.
CompileInputs fixtureInputs(const std::string &family) {
  std::string dir = sourcePath("tests/fixtures/hf/" + family + "/hub");
  auto source = requireValue(openSafetensors(dir));
  CompileInputs inputs;
  inputs.config = requireValue(readJsonFile(dir + "/config.json"));
  for (const SourceTensor &t : source->tensors())
    inputs.source.push_back(t.meta);
  return inputs;
}

void checkJsonRoundTrip(const Plan &plan) {
  json once = planToJson(plan);
  Plan back = requireValue(planFromJson(once));
  json twice = planToJson(back);
  CHECK(twice == once);
  CHECK(twice.dump(1) == once.dump(1));
  CHECK_FALSE(bool(verifyPlanTypes(back)));
}

const char *kTiny = R"(rulebook tiny { model_types "tiny" }
mapping mcore <-> hf {
  "linear_fc1.weight" = gated("gate_proj.weight", "up_proj.weight")
}
)";

/// The JSON of a one-step plan: load gate, load up, concat, store.
json tinyPlan() {
  Session s;
  REQUIRE(s.check(kTiny, "tiny.rules"));
  auto plan = s.compile(json{{"model_type", "tiny"}}, {T("gate_proj.weight", {6, 8}), T("up_proj.weight", {6, 8})},
                        direction("hf", "mcore"), "tiny.rules");
  REQUIRE_MESSAGE(plan, s.render());
  return planToJson(*plan);
}

std::string readError(const json &j) { return errorText(planFromJson(j)); }

/// verifyPlanTypes' complaint about a plan read from `j`.
std::string verifyError(const json &j) {
  Plan plan = requireValue(planFromJson(j));
  return errorText(verifyPlanTypes(plan));
}

} // namespace

TEST_CASE("plan JSON: the tiny plan reads as documented") {
  json j = tinyPlan();
  CHECK(j.dump() ==
        R"({"choices":[],"drops":[],"family":"tiny","from":"hf","gaps":[],)"
        R"("inputs":[{"dtype":"BF16","name":"gate_proj.weight","shape":[6,8]},{"dtype":"BF16","name":"up_proj.weight","shape":[6,8]}],)"
        R"("outputs":[{"dtype":"BF16","name":"linear_fc1.weight","shape":[12,8]}],"params":{},"rulebook":"tiny.rules",)"
        R"("steps":[{"instrs":[{"op":"load","out":[0],"tensor":"gate_proj.weight"},{"op":"load","out":[1],"tensor":"up_proj.weight"},)"
        R"({"dim":0,"in":[0,1],"op":"concat","out":[2]},{"in":[2],"op":"store","tensor":"linear_fc1.weight"}],)"
        R"("rule":"tiny.rules:3:3","summary":"gated","values":[["BF16",[6,8]],["BF16",[6,8]],["BF16",[12,8]]]}],)"
        R"("to":"mcore","version":1})");
  checkJsonRoundTrip(requireValue(planFromJson(j)));
}

TEST_CASE("plan JSON: round trip of every shipped rulebook's plans on its fixture") {
  for (const char *family : {"deepseek_v3", "minimax_m3", "nemotron_h", "qwen3_5_moe"}) {
    CAPTURE(family);
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::string path = sourcePath(std::string("rulebooks/") + family + ".rules");
    auto rulebook = loadRulebook(path, sources, diags);
    REQUIRE_MESSAGE(rulebook, diags.render());
    CompileInputs inputs = fixtureInputs(family);
    size_t plans = 0;
    for (const char *to : {"mcore", "hf-mem"}) {
      CAPTURE(to);
      BindOptions options = direction("hf", to);
      auto forward = compilePlan(*rulebook, path, inputs, options, diags);
      REQUIRE_MESSAGE(forward, diags.render());
      checkJsonRoundTrip(*forward);
      RoundTrip trip = checkRoundTrip(*rulebook, path, *forward, inputs, options, diags);
      REQUIRE_MESSAGE(trip.reverse, diags.render());
      CHECK(trip.mismatches == std::vector<std::string>{});
      checkJsonRoundTrip(*trip.reverse);
      plans += 2;
    }
    CHECK(plans == 4);
    CHECK(diags.errorCount() == 0);
  }
}

TEST_CASE("plan JSON: malformed plans are refused with the place and the reason") {
  const json good = tinyPlan();
  CHECK_FALSE(bool(verifyPlanTypes(requireValue(planFromJson(good)))));

  CHECK(readError(json::array()) == "plan: top: not a JSON object");
  {
    json j = good;
    j["version"] = 2;
    CHECK(readError(j) == "plan: version: plan version 2 is not supported (this build reads 1)");
  }
  {
    json j = good;
    j.erase("version");
    CHECK(readError(j) == "plan: top: missing 'version'");
  }
  {
    json j = good;
    j["version"] = "1";
    CHECK(readError(j) == "plan: top: 'version' has the wrong type");
  }
  {
    json j = good;
    j.erase("from");
    CHECK(readError(j) == "plan: top: missing 'from'");
  }
  {
    json j = good;
    j["steps"] = json::object();
    CHECK(readError(j) == "plan: steps: missing or not a list");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2]["op"] = "concatenate";
    CHECK(readError(j) == "plan: steps[0].instrs[2]: unknown op 'concatenate'");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2].erase("op");
    CHECK(readError(j) == "plan: steps[0].instrs[2]: missing 'op'");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2]["in"] = {0, 3};
    CHECK(readError(j) == "plan: steps[0].instrs[2]: value 3 does not exist");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][0]["out"] = {7};
    CHECK(readError(j) == "plan: steps[0].instrs[0]: value 7 does not exist");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2]["dim"] = "0";
    CHECK(readError(j) == "plan: steps[0].instrs[2]: 'dim' has the wrong type");
  }
  {
    json j = good;
    j["steps"][0]["values"][1][0] = "BF17";
    CHECK(readError(j) == "plan: steps[0].values: unknown dtype 'BF17'");
  }
  {
    json j = good;
    j["steps"][0]["values"][1] = {"BF16"};
    CHECK(readError(j) == "plan: steps[0].values: each value is [dtype, shape] or [dtype, shape, quantization]");
  }
  {
    json j = good;
    j["steps"][0]["values"][1][1] = {6, -8};
    CHECK(readError(j) == "plan: steps[0].values: shape entries must be non-negative integers");
  }
  {
    json j = good;
    j["steps"][0].erase("values");
    CHECK(readError(j) == "plan: steps[0]: needs 'values' and 'instrs' lists");
  }
  {
    json j = good;
    j["inputs"][1]["dtype"] = "bfloat16";
    CHECK(readError(j) == "plan: inputs[1]: unknown dtype 'bfloat16'");
  }
  {
    json j = good;
    j["outputs"][0].erase("shape");
    CHECK(readError(j) == "plan: outputs[0]: expected {\"name\", \"dtype\", \"shape\"}");
  }
  {
    json j = good;
    j["outputs"][0]["shape"] = {12.5, 8};
    CHECK(readError(j) == "plan: outputs[0]: shape entries must be non-negative integers");
  }
  // Numbers of the wrong kind are refused, not converted (a float to an int, a negative to an
  // unsigned), and entries of the wrong type are errors, not exceptions.
  {
    json j = good;
    j["steps"][0]["instrs"][2]["dim"] = 0.5;
    CHECK(readError(j) == "plan: steps[0].instrs[2]: 'dim' has the wrong type");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2]["in"] = {-1, 1};
    CHECK(readError(j) == "plan: steps[0].instrs[2]: 'in' has the wrong type");
  }
  {
    json j = good;
    j["choices"] = {"norms"};
    CHECK(readError(j) == "plan: choices[0]: not an object");
  }
  {
    json j = good;
    j["drops"] = {{{"tensor", "x"}, {"reason", 5}}};
    CHECK(readError(j) == "plan: drops[0]: 'reason' has the wrong type");
  }
  {
    json j = good;
    j["gaps"] = json::object();
    CHECK(readError(j) == "plan: gaps: not a list");
  }
  {
    json j = good;
    j["outputs"][0]["quant"] = {{"format", "nvfp4"}, {"naming", 3}};
    CHECK(readError(j) == "plan: outputs[0]: naming must be \"modelopt\" or \"compressed-tensors\"");
    j["outputs"][0]["quant"] = {{"format", "nvfp4"}, {"input_scale", "yes"}};
    CHECK(readError(j) == "plan: outputs[0]: input_scale must be true or false");
  }
}

TEST_CASE("plan JSON: verifyPlanTypes catches tampered types") {
  const json good = tinyPlan();
  {
    // The concat's declared result disagrees with its parts.
    json j = good;
    j["steps"][0]["values"][2][1] = {13, 8};
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: concat gives BF16 [12, 8], the plan says BF16 [13, 8]");
  }
  {
    json j = good;
    j["steps"][0]["values"][2][0] = "F32";
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: concat gives BF16 [12, 8], the plan says F32 [12, 8]");
  }
  {
    // The parts no longer agree off the joined dim.
    json j = good;
    j["steps"][0]["values"][1][1] = {6, 4};
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: concat: parts differ in dim 1: [6, 8] and [6, 4]");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2]["dim"] = 2;
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: concat: dim 2 is out of range for BF16 [6, 8]");
  }
  {
    // A value read before the instruction that defines it.
    json j = good;
    std::swap(j["steps"][0]["instrs"][0], j["steps"][0]["instrs"][2]);
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: value 0 is used before it is defined");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][1]["out"] = {0};
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: value 0 is defined twice");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2]["op"] = "split";
    j["steps"][0]["instrs"][2]["sizes"] = {6, 6};
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: split: gives one output per size");
  }
  {
    json j = good;
    j["steps"][0]["instrs"][2]["op"] = "transpose";
    j["steps"][0]["instrs"][2]["in"] = {0};
    j["steps"][0]["instrs"][2]["perm"] = {0, 0};
    CHECK(verifyError(j) == "plan step tiny.rules:3:3: transpose: perm is not a permutation");
  }
}
