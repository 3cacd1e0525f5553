// JSON files of a checkpoint (config.json, the shard index) and the strict parser shared with
// the safetensors header reader. Strict means duplicate object keys are reported instead of
// silently resolved, since a duplicate tensor name must never pass unnoticed.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace ckptmap {

/// Why strict parsing failed: either malformed text or a key repeated in one object.
struct JsonSyntaxError {
  size_t byte;        ///< 1-based index of the last byte read, as nlohmann counts it
  std::string detail; ///< the parser's explanation, without its exception prefix
};
struct JsonDuplicateKey {
  std::vector<std::string> path; ///< keys (or array indices) leading to the object
  std::string key;
};
using JsonParseFailure = std::variant<JsonSyntaxError, JsonDuplicateKey>;

/// Parses `text`; on success `out` holds the value and the result is empty.
std::optional<JsonParseFailure> parseJsonStrict(llvm::StringRef text, nlohmann::json &out);

/// "/a/b" for a duplicate's path; "/" for the top-level object.
std::string formatJsonPath(const std::vector<std::string> &path);

/// Reads and strictly parses a JSON file. Errors name the file; parse errors also the byte.
llvm::Expected<nlohmann::json> readJsonFile(llvm::StringRef path);
/// The bytes of a file, for readers that try PlainJsonScanner first.
llvm::Expected<std::string> readTextFile(llvm::StringRef path);
/// readJsonFile's parse of `text`, read from `path`.
llvm::Expected<nlohmann::json> parseJsonFileText(llvm::StringRef path, llvm::StringRef text);

/// Reads the plain JSON that checkpoint writers emit without building a tree: strings of
/// printable ASCII without escapes, non-negative integers without fraction or exponent,
/// true/false/null, objects without repeated keys, arrays. Every method returns false on
/// anything else (valid JSON or not) and then the reader is done: callers fall back to
/// parseJsonStrict, so every error message comes from one parser. A plain text parses the
/// same either way.
class PlainJsonScanner {
public:
  explicit PlainJsonScanner(llvm::StringRef text) : p_(text.begin()), end_(text.end()) {}

  bool string(llvm::StringRef &out);
  /// At most 19 digits, so every accepted value fits.
  bool integer(uint64_t &out);
  /// `{`, then `member(key)` for each key, positioned at its value, then `}`. The caller
  /// consumes each value (or declines) and guarantees the keys differ.
  template <typename Member> bool object(Member member) {
    if (!open('{'))
      return false;
    if (close('}'))
      return true;
    do {
      llvm::StringRef key;
      if (!string(key) || !punct(':') || !member(key))
        return false;
    } while (punct(','));
    return close('}');
  }
  /// `[`, then `element()` for each element, then `]`.
  template <typename Element> bool array(Element element) {
    if (!open('['))
      return false;
    if (close(']'))
      return true;
    do {
      if (!element())
        return false;
    } while (punct(','));
    return close(']');
  }
  /// Any plain value, checking that its objects repeat no key.
  bool skipValue();
  /// Only white space is left.
  bool atEnd();

private:
  void skipSpace();
  bool punct(char c);
  bool open(char c) { return punct(c); }
  bool close(char c) { return punct(c); }
  bool literal(llvm::StringRef word);

  const char *p_;
  const char *end_;
};

} // namespace ckptmap
