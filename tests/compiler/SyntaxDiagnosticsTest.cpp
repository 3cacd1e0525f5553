// Syntax errors: what the parser reports, with the position, the source line, the caret and
// the summary, exactly as `ckptmap check` prints them.
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

TEST_CASE("syntax: missing closing brace") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a.weight" = "b.weight"
)"),
              R"d(test.rules:4:1: error: syntax error: unexpected end of file: a '{' is not closed
test.rules:2:22: note: the '{' opened here
    2 | mapping mcore <-> hf {
      |                      ^
1 error generated.
)d");
}

TEST_CASE("syntax: a token where another was expected") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param = 3
mapping mcore <-> hf { "a" = "b" }
)"),
              R"d(test.rules:2:7: error: syntax error: missing name at '='
    2 | param = 3
      |       ^
1 error generated.
)d");
}

TEST_CASE("syntax: invalid character") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param width = 4 $ 2
mapping mcore <-> hf { "a" = "b" }
)"),
              R"d(test.rules:2:17: error: syntax error: invalid character '$'
    2 | param width = 4 $ 2
      |                 ^
1 error generated.
)d");
}

TEST_CASE("syntax: misspelt keyword at top level") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mappin mcore <-> hf {
  "a.weight" = "b.weight"
}
)"),
              R"d(test.rules:2:1: error: syntax error: unexpected 'mappin', expecting {<EOF>, 'include', 'block', 'mapping', 'param', 'assert'}
    2 | mappin mcore <-> hf {
      | ^~~~~~
note: did you mean 'mapping'?
1 error generated.
)d");
}

TEST_CASE("syntax: misspelt keyword in a body") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  for L in 0 .. 2 {
    scoep "decoder.layers.{L}." = "model.layers.{L}." {
      "w" = "w"
    }
  }
}
)"),
              R"d(test.rules:4:11: error: syntax error: unexpected '"decoder.layers.{L}."', expecting '='
    4 |     scoep "decoder.layers.{L}." = "model.layers.{L}." {
      |           ^~~~~~~~~~~~~~~~~~~~~
test.rules:4:5: note: did you mean 'scope'?
    4 |     scoep "decoder.layers.{L}." = "model.layers.{L}." {
      |     ^~~~~
test.rules:4:55: error: syntax error: unexpected '{'
    4 |     scoep "decoder.layers.{L}." = "model.layers.{L}." {
      |                                                       ^
test.rules:8:1: error: syntax error: unexpected '}', expecting {<EOF>, 'include', 'block', 'mapping', 'param', 'assert'}
    8 | }
      | ^
3 errors generated.
)d");
}

TEST_CASE("syntax: misspelt header field") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo {
  model_type "demo"
}
mapping mcore <-> hf { "a" = "b" }
)"),
              R"d(test.rules:2:3: error: syntax error: unexpected 'model_type', expecting {'}', 'model_types', 'description', 'layout', 'mcore_layout'}
    2 |   model_type "demo"
      |   ^~~~~~~~~~
note: did you mean 'model_types'?
1 error generated.
)d");
}

TEST_CASE("syntax: unterminated interpolation in a name pattern") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  for L in 0 .. 2 {
    "decoder.layers.{L.weight" = "model.layers.{L}.weight"
  }
}
)"),
              R"d(test.rules:4:21: error: unterminated '{' in name pattern
    4 |     "decoder.layers.{L.weight" = "model.layers.{L}.weight"
      |                     ^
1 error generated.
)d");
}

TEST_CASE("syntax: empty interpolation") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "decoder.{}.weight" = "model.{ }.weight"
}
)"),
              R"d(test.rules:3:12: error: empty '{}' in name pattern
    3 |   "decoder.{}.weight" = "model.{ }.weight"
      |            ^~
test.rules:3:32: error: empty '{}' in name pattern
    3 |   "decoder.{}.weight" = "model.{ }.weight"
      |                                ^~~
2 errors generated.
)d");
}

TEST_CASE("syntax: an error inside an interpolation points into the string") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param layers = 2
mapping mcore <-> hf {
  "decoder.layers.{layers +}.weight" = "model.layers.{layers}.weight"
}
)"),
              R"d(test.rules:4:28: error: syntax error: incomplete expression before '}'
    4 |   "decoder.layers.{layers +}.weight" = "model.layers.{layers}.weight"
      |                            ^
1 error generated.
)d");
}

TEST_CASE("syntax: an invalid character inside an interpolation") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a.{i#}.w" = "b.{i}.w"
}
)"),
              R"d(test.rules:3:8: error: syntax error: invalid character '#'
    3 |   "a.{i#}.w" = "b.{i}.w"
      |        ^
test.rules:3:7: note: did you mean 'in'?
    3 |   "a.{i#}.w" = "b.{i}.w"
      |       ^
1 error generated.
)d");
}

TEST_CASE("syntax: unterminated string") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
mapping mcore <-> hf {
  "a.weight = "b.weight"
}
)"),
              R"d(test.rules:3:16: error: syntax error: missing '=' at 'b'
    3 |   "a.weight = "b.weight"
      |                ^
test.rules:3:24: error: syntax error: unterminated string
    3 |   "a.weight = "b.weight"
      |                        ^
2 errors generated.
)d");
}

TEST_CASE("syntax: errors in several places are all reported, in order") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param a = 1 +
param b = 2
mapping mcore <-> hf {
  "x" = = "y"
}
)"),
              R"d(test.rules:3:1: error: syntax error: unexpected 'param'
    3 | param b = 2
      | ^~~~~
test.rules:3:9: error: syntax error: unexpected '=', expecting {<EOF>, 'include', 'block', 'mapping', 'param', 'assert'}
    3 | param b = 2
      |         ^
test.rules:5:9: error: syntax error: unexpected '='
    5 |   "x" = = "y"
      |         ^
3 errors generated.
)d");
}

TEST_CASE("syntax: missing header") {
  CHECK_DIAGS(checkDiagnostics(R"(param layers = 2
mapping mcore <-> hf {
  "a" = "b"
}
)"),
              R"d(test.rules:1:1: error: a rulebook must start with its header: rulebook NAME { model_types "..." }
    1 | param layers = 2
      | ^~~~~
1 error generated.
)d");
}

TEST_CASE("syntax: empty file") {
  CHECK_DIAGS(checkDiagnostics(""), R"d(test.rules:1:1: error: a rulebook must start with its header: rulebook NAME { model_types "..." }
1 error generated.
)d");
}

TEST_CASE("syntax: integer literal too large") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
param big = 123456789012345678901234567890
mapping mcore <-> hf { "a.{big}" = "b.{big}" }
)"),
              R"d(test.rules:2:13: error: integer literal 123456789012345678901234567890 is too large
    2 | param big = 123456789012345678901234567890
      |             ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("syntax: an include that cannot be read") {
  CHECK_DIAGS(checkDiagnostics(R"(rulebook demo { model_types "demo" }
include "no/such/file.rules"
mapping mcore <-> hf { "a" = "b" }
)"),
              R"d(test.rules:2:9: error: cannot include 'no/such/file.rules': no/such/file.rules: No such file or directory
    2 | include "no/such/file.rules"
      |         ^~~~~~~~~~~~~~~~~~~~
1 error generated.
)d");
}

TEST_CASE("syntax: bytes that are not UTF-8") {
  // A Latin-1 "é" in a comment, then a lone continuation byte: the first is reported, where it
  // sits (columns count characters, "ü" is one).
  CHECK_DIAGS(checkDiagnostics("rulebook demo { model_types \"demo\" } // \xc3\xbc\n"
                               "// caf\xe9\n"
                               "mapping mcore <-> hf { \"a\" = \"b\" }\n"),
              "test.rules:2:7: error: the file is not valid UTF-8 here\n"
              "    2 | // caf\xe9\n"
              "      |       ^\n"
              "1 error generated.\n");
  CHECK_DIAGS(checkDiagnostics("rulebook demo { model_types \"de\x80mo\" }\n"),
              "test.rules:1:32: error: the file is not valid UTF-8 here\n"
              "    1 | rulebook demo { model_types \"de\x80mo\" }\n"
              "      |                                ^\n"
              "1 error generated.\n");
}
