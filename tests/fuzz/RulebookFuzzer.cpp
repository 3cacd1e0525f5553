// libFuzzer target: rulebook text through the parser and the checker, and a rulebook that
// checks through binding and planning against a shipped fixture's config and header (both
// directions of every mapping). Diagnostics are rendered, as the command line would print them.
#include "compiler/Compiler.h"
#include "compiler/parse/Parser.h"
#include "runtime/io/Json.h"
#include "runtime/io/Safetensors.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace ckptmap;

namespace {

struct Fixture {
  Value config;
  std::vector<TensorMeta> tensors;
};

/// The hub fixtures by family name, loaded once.
std::map<std::string, Fixture> &fixtures() {
  static std::map<std::string, Fixture> all;
  return all;
}

void loadFixtures() {
  for (const char *family : {"deepseek_v3", "minimax_m3", "nemotron_h", "qwen3_5_moe"}) {
    std::string hub = std::string(CKPTMAP_SOURCE_DIR) + "/tests/fixtures/hf/" + family + "/hub";
    auto config = readJsonFile(hub + "/config.json");
    auto source = openSafetensors(hub);
    if (!config || !source) {
      llvm::errs() << "cannot load fixture " << hub << "\n";
      std::abort();
    }
    Fixture &f = fixtures()[family];
    f.config = std::move(*config);
    for (const SourceTensor &t : (*source)->tensors())
      f.tensors.push_back(t.meta);
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  loadFixtures();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  // Named as a shipped rulebook, so its includes ("common/moe.rules") resolve.
  std::string name = std::string(CKPTMAP_SOURCE_DIR) + "/rulebooks/fuzz.rules";
  auto ast = parseRulebookText(name, std::string(reinterpret_cast<const char *>(data), size), sources, diags);
  std::unique_ptr<CheckedRulebook> checked;
  if (ast && !diags.hasErrors())
    checked = checkRulebook(std::move(ast), diags);
  if (!checked) {
    if (!diags.hasErrors())
      std::abort(); // refused without saying why
    (void)diags.render();
    return 0;
  }
  auto fixture = fixtures().find(checked->ast().name);
  const Fixture &f = fixture != fixtures().end() ? fixture->second : fixtures().begin()->second;
  for (const auto &mapping : checked->ast().mappings)
    for (bool forward : {true, false}) {
      DiagnosticEngine bindDiags(sources);
      BindOptions options;
      options.from = forward ? mapping->left : mapping->right;
      options.to = forward ? mapping->right : mapping->left;
      options.anyModelType = true;
      CompileInputs inputs;
      inputs.config = f.config;
      inputs.source = f.tensors;
      auto plan = compilePlan(*checked, name, inputs, options, bindDiags);
      if (plan.has_value() == bindDiags.hasErrors())
        std::abort(); // a plan comes back exactly when there are no errors
      (void)bindDiags.render();
    }
  (void)diags.render();
  return 0;
}
