// The diagnostic engine itself: ordering, carets, summaries, and the typo matcher behind
// every "did you mean".
#include "Helpers.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

SourceRange at(uint32_t file, uint32_t line, uint32_t col, uint32_t length = 1) {
  return SourceRange{SourceLoc{file, line, col}, length};
}

} // namespace

TEST_CASE("closestMatch: typos within a third of the name") {
  std::vector<std::string> ops = opNames();
  CHECK(closestMatch("gatde", ops) == "gated");    // two letters swapped
  CHECK(closestMatch("conact", ops) == "concat");  // two letters swapped
  CHECK(closestMatch("stak", ops) == "stack");     // one missing
  CHECK(closestMatch("reshap", ops) == "reshape"); // one missing
  CHECK(closestMatch("transpsoe", ops) == "transpose");
  CHECK(closestMatch("rename", ops) == "");
  CHECK(closestMatch("split", ops) == "");
  CHECK(closestMatch("layrs", {"layers", "heads"}) == "layers");
  CHECK(closestMatch("hedas", {"layers", "heads"}) == "heads");
  CHECK(closestMatch("groups", {"groups"}) == "groups");
  CHECK(closestMatch("anything", {}) == "");
  // The closest wins; among equals, the first listed.
  CHECK(closestMatch("hf-meme", {"mcore", "hf", "hf-mem"}) == "hf-mem");
  CHECK(closestMatch("ab", {"ax", "ay"}) == "ax");
}

TEST_CASE("render: sorted by position, unlocated last, notes under their diagnostic") {
  SourceManager sources;
  uint32_t a = sources.add("a.rules", "first line\nsecond line\nthird line\n");
  uint32_t b = sources.add("b.rules", "only line\n");
  DiagnosticEngine diags(sources);
  diags.error({}, "an unlocated error").note("with an unlocated note");
  diags.warning(at(b, 1, 6, 4), "in the second file");
  diags.error(at(a, 3, 1, 5), "third line").note("pointing back", at(a, 1, 7, 4));
  diags.error({}, "another unlocated error");
  diags.error(at(a, 2, 8, 4), "second line");
  CHECK(diags.errorCount() == 4);
  CHECK(diags.warningCount() == 1);
  CHECK_DIAGS(diags.render(), R"d(a.rules:2:8: error: second line
    2 | second line
      |        ^~~~
a.rules:3:1: error: third line
    3 | third line
      | ^~~~~
a.rules:1:7: note: pointing back
    1 | first line
      |       ^~~~
b.rules:1:6: warning: in the second file
    1 | only line
      |      ^~~~
error: an unlocated error
note: with an unlocated note
error: another unlocated error
4 errors and 1 warning generated.
)d");
  diags.clear();
  CHECK(diags.render() == "");
  CHECK_FALSE(diags.hasErrors());
}

TEST_CASE("render: summaries") {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  CHECK(diags.render() == "");
  diags.warning({}, "w");
  CHECK(diags.render() == "warning: w\n1 warning generated.\n");
  diags.warning({}, "v");
  CHECK(diags.render() == "warning: w\nwarning: v\n2 warnings generated.\n");
  diags.error({}, "e");
  CHECK(diags.render() == "warning: w\nwarning: v\nerror: e\n1 error and 2 warnings generated.\n");
}

TEST_CASE("render: carets under tabs, wide line numbers, ranges past the end of the line") {
  SourceManager sources;
  std::string text;
  for (int i = 1; i < 123; ++i)
    text += "\n";
  text += "\tkey\t= \"value\"\n";
  uint32_t f = sources.add("t.rules", text);
  DiagnosticEngine diags(sources);
  diags.error(at(f, 123, 6, 1), "after two tabs");
  diags.error(at(f, 123, 8, 100), "runs past the end");
  diags.error(at(f, 123, 20, 3), "starts past the end");
  diags.error(at(f, 500, 1, 3), "a line the file does not have");
  CHECK_DIAGS(diags.render(), "t.rules:123:6: error: after two tabs\n"
                              "  123 | \tkey\t= \"value\"\n"
                              "      | \t   \t^\n"
                              "t.rules:123:8: error: runs past the end\n"
                              "  123 | \tkey\t= \"value\"\n"
                              "      | \t   \t  ^~~~~~~\n"
                              "t.rules:123:20: error: starts past the end\n"
                              "  123 | \tkey\t= \"value\"\n"
                              "      | \t   \t         ^\n"
                              "t.rules:500:1: error: a line the file does not have\n"
                              "4 errors generated.\n");
}

TEST_CASE("SourceManager: lines and positions") {
  SourceManager sources;
  uint32_t f = sources.add("s.rules", "a\r\nbb\n\nlast");
  CHECK(sources.line(f, 1) == "a");
  CHECK(sources.line(f, 2) == "bb");
  CHECK(sources.line(f, 3) == "");
  CHECK(sources.line(f, 4) == "last");
  CHECK(sources.line(f, 5) == "");
  CHECK(sources.line(f, 0) == "");
  CHECK(sources.line(0, 1) == "");
  CHECK(sources.format(SourceLoc{f, 2, 3}) == "s.rules:2:3");
  CHECK(sources.format(SourceLoc{}) == "<unknown>");
  auto missing = sources.load("/no/such/dir/x.rules");
  REQUIRE_FALSE(bool(missing));
  CHECK(llvm::toString(missing.takeError()) == "cannot read rulebook '/no/such/dir/x.rules': No such file or directory");
}
