// Helpers shared by the compiler tests: compiling rulebook text held in memory against
// hand-made headers and configs, and reading or refreshing golden files.
#pragma once

#include "compiler/Compiler.h"
#include "compiler/parse/Parser.h"

#include "llvm/Support/Error.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap::test {

inline std::string sourcePath(const std::string &relative) { return std::string(CKPTMAP_SOURCE_DIR) + "/" + relative; }

/// A tensor of a hand-made header.
inline TensorMeta T(std::string name, DType dtype, std::initializer_list<int64_t> shape) {
  return TensorMeta{std::move(name), dtype, Shape(shape)};
}
inline TensorMeta T(std::string name, std::initializer_list<int64_t> shape) {
  return T(std::move(name), DType::BF16, shape);
}

/// One compilation of rulebook text: every phase reports into `diags`.
struct Session {
  SourceManager sources;
  DiagnosticEngine diags{sources};
  std::unique_ptr<CheckedRulebook> rulebook;

  /// Parses and checks `text` as file `name`; false when there were errors.
  bool check(const std::string &text, const std::string &name = "test.rules") {
    auto ast = parseRulebookText(name, text, sources, diags);
    if (!ast || diags.hasErrors())
      return false;
    rulebook = checkRulebook(std::move(ast), diags);
    return rulebook != nullptr;
  }

  std::optional<Binding> bind(const Value &config, const std::vector<TensorMeta> &header, BindOptions options) {
    REQUIRE(rulebook);
    return bindRulebook(*rulebook, config, header, options, diags);
  }

  std::optional<Plan> compile(const Value &config, const std::vector<TensorMeta> &header, BindOptions options,
                              const std::string &path = "test.rules") {
    REQUIRE(rulebook);
    CompileInputs inputs;
    inputs.config = config;
    inputs.source = header;
    return compilePlan(*rulebook, path, inputs, options, diags);
  }

  std::string render() const { return diags.render(); }
};

inline BindOptions direction(std::string from, std::string to) {
  BindOptions o;
  o.from = std::move(from);
  o.to = std::move(to);
  return o;
}

/// What parsing and checking `text` reports.
inline std::string checkDiagnostics(const std::string &text) {
  Session s;
  s.check(text);
  return s.render();
}

/// What compiling `text` (which must check cleanly) from `from` to `to` reports.
inline std::string compileDiagnostics(const std::string &text, const Value &config, const std::vector<TensorMeta> &header,
                                      BindOptions options) {
  Session s;
  if (!s.check(text))
    return "check failed:\n" + s.render();
  auto plan = s.compile(config, header, std::move(options));
  CHECK_MESSAGE(!plan.has_value() == s.diags.hasErrors(), "a plan comes back exactly when there are no errors");
  return s.render();
}

inline std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good())
    return {};
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void writeText(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out.good());
  out << text;
  REQUIRE(out.good());
}

/// Compares `actual` with tests/compiler/golden/NAME; any difference fails. With
/// CKPTMAP_UPDATE_GOLDEN=1 in the environment the file is rewritten instead.
inline void checkGolden(const std::string &name, const std::string &actual) {
  std::string path = sourcePath("tests/compiler/golden/" + name);
  std::string expected = readText(path);
  const char *update = std::getenv("CKPTMAP_UPDATE_GOLDEN");
  if (update && std::string(update) == "1" && expected != actual) {
    writeText(path, actual);
    MESSAGE("updated golden file " << path);
    return;
  }
  INFO("golden file " << path << " (regenerate with CKPTMAP_UPDATE_GOLDEN=1)");
  CHECK_MESSAGE(!expected.empty(), "missing golden file");
  CHECK(actual == expected);
}

inline std::string errorText(llvm::Error e) {
  REQUIRE_MESSAGE(bool(e), "expected an error");
  return llvm::toString(std::move(e));
}

template <class T> std::string errorText(llvm::Expected<T> value) {
  REQUIRE_MESSAGE(!value, "expected an error");
  return llvm::toString(value.takeError());
}

template <class T> T requireValue(llvm::Expected<T> value) {
  if (!value)
    FAIL(llvm::toString(value.takeError()));
  return std::move(*value);
}

} // namespace ckptmap::test

namespace ckptmap::test {

/// Compares rendered diagnostics; on a difference prints both texts whole, which reads
/// better than one escaped line.
inline void checkDiagnosticsText(const std::string &actual, const std::string &expected, const char *file, int line) {
  if (actual == expected) {
    CHECK(true);
    return;
  }
  ADD_FAIL_CHECK_AT(file, line, "diagnostics differ\n---- actual ----\n" << actual << "---- expected ----\n" << expected
                                                                         << "---- end ----");
}

} // namespace ckptmap::test

#define CHECK_DIAGS(actual, expected) ::ckptmap::test::checkDiagnosticsText((actual), (expected), __FILE__, __LINE__)
