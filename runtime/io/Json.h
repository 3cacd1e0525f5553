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

} // namespace ckptmap
