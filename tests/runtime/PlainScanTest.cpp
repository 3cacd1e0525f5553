// The fast paths of the header and index readers against the strict JSON parser they stand in
// for: on every input the fast path accepts, both read the same; on everything else it
// declines, so the errors are the JSON parser's.
#include "TestUtil.h"

#include "runtime/io/SafetensorsHeader.h"
#include "runtime/io/ShardIndex.h"

#include <filesystem>
#include <random>

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

llvm::ArrayRef<uint8_t> bytesOf(const std::string &s) {
  return {reinterpret_cast<const uint8_t *>(s.data()), s.size()};
}

/// Whether two readings of one header agree in everything a reader uses.
bool sameHeader(const SafetensorsHeader &a, const SafetensorsHeader &b) {
  if (a.dataStart != b.dataStart || a.metadata != b.metadata || a.tensors.size() != b.tensors.size())
    return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const HeaderTensor &x = a.tensors[i], &y = b.tensors[i];
    if (x.meta.name != y.meta.name || x.meta.dtype != y.meta.dtype || x.meta.shape != y.meta.shape ||
        x.begin != y.begin || x.end != y.end)
      return false;
  }
  return true;
}

/// Checks the contract on one file's bytes; returns whether the fast path accepted them.
bool checkHeader(const std::string &file) {
  std::optional<SafetensorsHeader> fast = scanPlainSafetensorsHeader(bytesOf(file));
  llvm::Expected<SafetensorsHeader> strict = parseSafetensorsHeaderJson(bytesOf(file), "f");
  if (!fast) {
    llvm::consumeError(strict.takeError());
    return false;
  }
  REQUIRE_MESSAGE(bool(strict), "the fast path accepted what the JSON parser rejects: " << file.substr(8));
  CHECK_MESSAGE(sameHeader(*fast, *strict), file.substr(8));
  return true;
}

bool checkIndex(const std::string &text) {
  std::optional<ShardIndex> fast = scanPlainShardIndex("i", text);
  llvm::Expected<ShardIndex> strict = parseShardIndexJson("i", text);
  if (!fast) {
    llvm::consumeError(strict.takeError());
    return false;
  }
  REQUIRE_MESSAGE(bool(strict), "the fast path accepted what the JSON parser rejects: " << text);
  CHECK_MESSAGE(fast->weightMap == strict->weightMap, text);
  return true;
}

/// Random edits of `text` with the characters JSON cares about.
std::string mutate(std::string text, std::mt19937 &rng) {
  static const std::string kChars = "{}[],:\"\\ \t\n0123456789.eE-+aFBUI_tnf\x7f\x80\x01";
  std::uniform_int_distribution<int> edits(1, 3), kind(0, 4);
  for (int n = edits(rng); n > 0 && !text.empty(); --n) {
    size_t at = std::uniform_int_distribution<size_t>(0, text.size() - 1)(rng);
    char c = kChars[std::uniform_int_distribution<size_t>(0, kChars.size() - 1)(rng)];
    switch (kind(rng)) {
    case 0: text.erase(at, 1); break;
    case 1: text.insert(text.begin() + long(at), c); break;
    case 2: text[at] = c; break;
    case 3: text.insert(text.begin() + long(at), " \t\n\r"[at % 4]); break; // valid between tokens only
    default: { // repeat a span: duplicate keys and entries
      size_t len = std::uniform_int_distribution<size_t>(1, std::min<size_t>(40, text.size() - at))(rng);
      text.insert(at, text.substr(at, len));
    }
    }
  }
  return text;
}

const std::string kHeader =
    R"({"__metadata__": {"format": "pt"}, "a.weight": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},)"
    R"( "b": {"shape": [], "dtype": "F32", "data_offsets": [12, 16]}, "e": {"dtype": "U8", "shape": [0],)"
    R"( "data_offsets": [16, 16]}, "z.scale": {"data_offsets": [16, 20], "dtype": "F8_E4M3", "shape": [4]}})";

} // namespace

TEST_CASE("plain scan: every fixture header takes the fast path and reads the same") {
  size_t files = 0;
  for (const auto &entry : std::filesystem::recursive_directory_iterator(fixture(""))) {
    if (entry.path().extension() != ".safetensors")
      continue;
    CAPTURE(entry.path().string());
    CHECK(checkHeader(readFile(entry.path())));
    ++files;
  }
  CHECK(files > 20);
}

TEST_CASE("plain scan: every fixture index takes the fast path and reads the same") {
  size_t files = 0;
  for (const auto &entry : std::filesystem::recursive_directory_iterator(fixture(""))) {
    if (entry.path().filename() != "model.safetensors.index.json")
      continue;
    CAPTURE(entry.path().string());
    CHECK(checkIndex(readFile(entry.path())));
    ++files;
  }
  CHECK(files >= 5);
}

TEST_CASE("plain scan: forms the fast path leaves to the JSON parser") {
  auto file = [](const std::string &header, size_t data = 20) { return safetensorsBytes(header, data); };
  CHECK(checkHeader(file(kHeader)));
  CHECK(checkHeader(file(" \n\t" + kHeader + " \r\n  ")));
  // Valid but not plain: an escape, non-ASCII, an exponent, an extra key, non-string metadata.
  for (const std::string &header :
       {std::string(R"({"a\u0062": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})"),
        std::string("{\"\xc3\xa9\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}}"),
        std::string(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4e0]}})"),
        std::string(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4], "x": 1}})"),
        std::string(R"({"__metadata__": {"n": 1}})")}) {
    CAPTURE(header);
    CHECK_FALSE(scanPlainSafetensorsHeader(bytesOf(file(header))));
  }
  const std::string escaped = file(R"({"a\u0062": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})");
  CHECK(requireValue(parseSafetensorsHeader(bytesOf(escaped), "f")).tensors[0].meta.name == "ab");
  // Plain but not valid: each is declined, and the JSON parser says what is wrong.
  for (const std::string &header :
       {std::string(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "a": )"
                    R"({"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})"),
        std::string(R"({"a": {"dtype": "U8", "dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})"),
        std::string(R"({"a": {"dtype": "F4", "shape": [4], "data_offsets": [0, 4]}})"),
        std::string(R"({"a": {"dtype": "U8", "shape": [5], "data_offsets": [0, 4]}})"),
        std::string(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": )"
                    R"({"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})"),
        std::string(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 400]}})"),
        std::string(R"({"a": {"dtype": "U8", "shape": [04], "data_offsets": [0, 4]}})"),
        std::string(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}} x)")}) {
    CAPTURE(header);
    CHECK_FALSE(scanPlainSafetensorsHeader(bytesOf(file(header))));
    CHECK_FALSE(checkHeader(file(header)));
  }
}

TEST_CASE("plain scan: random edits of a header never read differently") {
  std::mt19937 rng(20240607);
  size_t accepted = 0;
  const size_t kRuns = 4000;
  for (size_t i = 0; i < kRuns; ++i) {
    std::string header = mutate(kHeader, rng);
    std::uniform_int_distribution<size_t> data(16, 24);
    accepted += checkHeader(safetensorsBytes(header, data(rng)));
  }
  // Edits inside names and white space keep a header plain and valid: both paths are used.
  CHECK(accepted > kRuns / 40);
  CHECK(accepted < kRuns / 2);
}

TEST_CASE("plain scan: random edits of an index never read differently") {
  const std::string index = R"({"metadata": {"total_size": 20, "note": [1, true, null, {"k": "v"}]},)"
                            R"( "weight_map": {"a.weight": "model-00001-of-00002.safetensors",)"
                            R"( "b": "model-00002-of-00002.safetensors", "c": "sub/x.safetensors"}})";
  CHECK(checkIndex(index));
  CHECK_FALSE(checkIndex(R"({"weight_map": {"a": "../x.safetensors"}})"));
  CHECK_FALSE(checkIndex(R"({"weight_map": {"a": "x.safetensors"}, "weight_map": {}})"));
  CHECK_FALSE(checkIndex(R"({"metadata": {"n": 1.5}, "weight_map": {"a": "x.safetensors"}})"));
  CHECK_FALSE(checkIndex(R"({"metadata": {"k": 1, "k": 2}, "weight_map": {"a": "x.safetensors"}})"));
  std::mt19937 rng(7);
  size_t accepted = 0;
  const size_t kRuns = 3000;
  for (size_t i = 0; i < kRuns; ++i)
    accepted += checkIndex(mutate(index, rng));
  CHECK(accepted > kRuns / 50);
}
