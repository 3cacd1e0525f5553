// Diagnostics across included files: each error names the file it is in, and library
// blocks are checked where they are used.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

/// Loads tests/compiler/rules/NAME and renders what it reports, paths relative to rules/.
std::string loadDiagnostics(const std::string &name) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::string dir = sourcePath("tests/compiler/rules/");
  auto rulebook = loadRulebook(dir + name, sources, diags);
  CHECK(bool(rulebook) == !diags.hasErrors());
  std::string text = diags.render();
  for (size_t at = text.find(dir); at != std::string::npos; at = text.find(dir, at))
    text.erase(at, dir.size());
  return text;
}

} // namespace

TEST_CASE("include: an error in a library block is reported in the library, where it is used") {
  CHECK_DIAGS(loadDiagnostics("uses_library.rules"), R"d(lib/attention.rules:3:25: error: op 'qkv' takes 3 tensor parts, got 2
    3 |   "linear_qkv.weight" = qkv("q_proj.weight", "k_proj.weight", heads: heads, groups: groups)
      |                         ^~~
1 error generated.
)d");
}

TEST_CASE("include: an included file cannot have a header") {
  CHECK_DIAGS(loadDiagnostics("includes_header.rules"), R"d(lib/with_header.rules:1:1: error: an included file cannot have a rulebook header
    1 | rulebook lib { model_types "lib" }
      | ^~~~~~~~
1 error generated.
)d");
}

TEST_CASE("include: a cycle of includes") {
  CHECK_DIAGS(loadDiagnostics("includes_cycle.rules"), R"d(lib/cycle_b.rules:1:9: error: include cycle: 'cycle_a.rules' is already being included
    1 | include "cycle_a.rules"
      |         ^~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("include: a syntax error in an included file") {
  CHECK_DIAGS(loadDiagnostics("includes_syntax_error.rules"), R"d(lib/syntax_error.rules:2:9: error: syntax error: unexpected '='
    2 |   "x" = = "y"
      |         ^
1 error generated.
)d");
}

TEST_CASE("include: a file with syntax errors does not read its includes") {
  CHECK_DIAGS(loadDiagnostics("has_syntax_error.rules"), R"d(has_syntax_error.rules:4:30: error: syntax error: unexpected '='
    4 | mapping mcore <-> hf { "a" = = "b" }
      |                              ^
1 error generated.
)d");
}

TEST_CASE("include: a file that does not exist") {
  CHECK_DIAGS(loadDiagnostics("includes_missing.rules"), R"d(includes_missing.rules:2:9: error: cannot include 'lib/no_such_file.rules': lib/no_such_file.rules: No such file or directory
    2 | include "lib/no_such_file.rules"
      |         ^~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("include: a rulebook file that does not exist") {
  CHECK_DIAGS(loadDiagnostics("no_such_rulebook.rules"), R"d(error: cannot read rulebook 'no_such_rulebook.rules': No such file or directory
1 error generated.
)d");
}
