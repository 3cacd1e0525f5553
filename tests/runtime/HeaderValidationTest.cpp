// Every way a safetensors header can be wrong, each with the exact message the reader gives.
#include "TestUtil.h"

#include "runtime/io/Safetensors.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

/// Writes `bytes` as bad.safetensors in a fresh directory and returns the opening error.
struct BadFile {
  TempDir dir;
  std::string path = dir / "bad.safetensors";

  std::string open(const std::string &bytes) {
    writeFile(path, bytes);
    return errorText(openSafetensors(path));
  }
  /// A file with this header and a data section of `dataSize` bytes.
  std::string openHeader(const std::string &header, size_t dataSize = 0) {
    return open(safetensorsBytes(header, dataSize));
  }
};

} // namespace

TEST_CASE("header: file shorter than the length prefix") {
  BadFile f;
  CHECK(f.open("12345") == f.path + ": file is 5 bytes, too short for the 8-byte header length");
  CHECK(f.open("") == f.path + ": file is 0 bytes, too short for the 8-byte header length");
}

TEST_CASE("header: length runs past the end of the file") {
  BadFile f;
  CHECK(f.open(lengthPrefix(100) + std::string(10, ' ')) ==
        f.path + ": header length 100 runs past the end of the file (10 bytes follow the length)");
  CHECK(f.open(lengthPrefix(1)) ==
        f.path + ": header length 1 runs past the end of the file (0 bytes follow the length)");
}

TEST_CASE("header: length above the sanity bound") {
  BadFile f;
  CHECK(f.open(lengthPrefix(200'000'000) + "{}") ==
        f.path + ": header length 200000000 exceeds the limit of 100000000 bytes");
  CHECK(f.open(std::string(8, '\xff') + "{}") ==
        f.path + ": header length 18446744073709551615 exceeds the limit of 100000000 bytes");
}

TEST_CASE("header: a number beyond a double's range is an error, not an abort") {
  BadFile f;
  CHECK(f.openHeader(R"({"w": {"dtype": "U8", "shape": [1e400], "data_offsets": [0, 0]}})") ==
        f.path + ": header is not valid JSON at byte 37: number overflow parsing '1e400'");
  CHECK(f.openHeader(R"({"__metadata__": {"x": -1e999}})") ==
        f.path + ": header is not valid JSON at byte 29: number overflow parsing '-1e999'");
}

TEST_CASE("header: not JSON, or not an object") {
  BadFile f;
  CHECK(f.openHeader(R"({"a": })") ==
        f.path + ": header is not valid JSON at byte 7: syntax error while parsing value - "
                 "unexpected '}'; expected '[', '{', or a literal");
  CHECK(f.openHeader("") == f.path + ": header is not valid JSON at byte 1: syntax error while "
                                     "parsing value - unexpected end of input; expected '[', "
                                     "'{', or a literal");
  CHECK(f.openHeader("[1, 2]") == f.path + ": header is not a JSON object");
  CHECK(f.openHeader("\"w\"") == f.path + ": header is not a JSON object");
}

TEST_CASE("header: entries of the wrong form") {
  BadFile f;
  CHECK(f.openHeader(R"({"w": 5})") == f.path + ": tensor 'w': entry is not an object");
  CHECK(f.openHeader(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4) ==
        f.path + ": tensor 'w': missing 'dtype'");
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4) ==
        f.path + ": tensor 'w': missing 'shape'");
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [1]}})", 4) ==
        f.path + ": tensor 'w': missing 'data_offsets'");
  CHECK(f.openHeader(R"({"w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4) ==
        f.path + ": tensor 'w': 'dtype' is not a string");
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4) ==
        f.path + ": tensor 'w': 'shape' is not an array of integers");
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4) ==
        f.path + ": tensor 'w': 'shape' is not an array of integers");
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", 4) ==
        f.path + ": tensor 'w': 'shape' is not an array of integers");
  const std::string offsetsMsg =
      f.path + ": tensor 'w': 'data_offsets' is not an array of two non-negative integers";
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": 4}})", 4) ==
        offsetsMsg);
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 8) ==
        offsetsMsg);
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4) ==
        offsetsMsg);
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}})", 4) ==
        offsetsMsg);
}

TEST_CASE("header: unknown dtype") {
  BadFile f;
  CHECK(f.openHeader(R"({"w": {"dtype": "F4", "shape": [1], "data_offsets": [0, 1]}})", 1) ==
        f.path + ": tensor 'w': unknown dtype 'F4'");
  // Names are case-sensitive, as the format defines them.
  CHECK(f.openHeader(R"({"w": {"dtype": "bf16", "shape": [1], "data_offsets": [0, 2]}})", 2) ==
        f.path + ": tensor 'w': unknown dtype 'bf16'");
}

TEST_CASE("header: every dtype name of the format is read, with its element size") {
  // The names and sizes as the safetensors format defines them, written out here rather
  // than taken from the reader's own table.
  const std::pair<const char *, size_t> dtypes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U64", 8},  {"U32", 4},     {"U16", 2},     {"U8", 1},      {"BOOL", 1}};
  std::string header = "{";
  size_t offset = 0;
  for (auto [name, size] : dtypes) {
    // Three elements each, so that a wrong element size shows as a wrong byte range.
    header += std::string(offset ? ", " : "") + "\"t_" + name + "\": {\"dtype\": \"" + name +
              "\", \"shape\": [3], \"data_offsets\": [" + std::to_string(offset) + ", " +
              std::to_string(offset + 3 * size) + "]}";
    offset += 3 * size;
  }
  header += "}";
  TempDir dir;
  std::string path = dir / "all.safetensors";
  writeFile(path, safetensorsBytes(header, offset));
  auto src = requireValue(SafetensorsSource::open(path));
  REQUIRE(src->tensors().size() == 16);
  for (auto [name, size] : dtypes) {
    INFO(name);
    const SourceTensor *t = src->find(std::string("t_") + name);
    REQUIRE(t);
    CHECK(dtypeName(t->meta.dtype) == name);
    CHECK(t->meta.byteSize() == 3 * size);
    CHECK(requireValue(src->read(*t)).size() == 3 * size);
  }
}

TEST_CASE("header: negative and overflowing shapes") {
  BadFile f;
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [4, -1], "data_offsets": [0, 4]}})", 4) ==
        f.path + ": tensor 'w': shape [4, -1] has a negative dimension");
  CHECK(f.openHeader(R"({"w": {"dtype": "BF16", "shape": [4294967296, 4294967296, 16],)"
                     R"( "data_offsets": [0, 4]}})",
                     4) == f.path + ": tensor 'w': shape [4294967296, 4294967296, 16] of BF16 "
                                    "needs more than 2^64 bytes");
  CHECK(f.openHeader(R"({"w": {"dtype": "U8", "shape": [4611686018427387904, 2],)"
                     R"( "data_offsets": [0, 4]}})",
                     4) == f.path + ": tensor 'w': shape [4611686018427387904, 2] has more than "
                                    "2^63-1 elements");
  CHECK(f.openHeader(R"({"w": {"dtype": "U8", "shape": [18446744073709551615],)"
                     R"( "data_offsets": [0, 4]}})",
                     4) == f.path + ": tensor 'w': shape dimension 18446744073709551615 is too "
                                    "large");
}

TEST_CASE("header: byte ranges") {
  BadFile f;
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8) ==
        f.path + ": tensor 'w': data_offsets [8, 4] begin after they end");
  CHECK(f.openHeader(R"({"model.layers.1.mlp.gate.weight": {"dtype": "BF16", "shape": [4, 64],)"
                     R"( "data_offsets": [0, 500]}})",
                     500) == f.path + ": tensor 'model.layers.1.mlp.gate.weight': shape [4, 64] "
                                      "of BF16 needs 512 bytes but data_offsets span 500");
  CHECK(f.openHeader(R"({"w": {"dtype": "BF16", "shape": [256], "data_offsets": [0, 512]}})",
                     500) == f.path + ": tensor 'w': data_offsets [0, 512] run past the end of "
                                      "the data section (500 bytes)");
  CHECK(f.openHeader(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [4, 8]}})", 6) ==
        f.path + ": tensor 'w': data_offsets [4, 8] run past the end of the data section (6 "
                 "bytes)");
}

TEST_CASE("header: overlapping ranges") {
  BadFile f;
  CHECK(f.openHeader(R"({"a": {"dtype": "BF16", "shape": [256], "data_offsets": [0, 512]},)"
                     R"( "b": {"dtype": "BF16", "shape": [256], "data_offsets": [256, 768]}})",
                     768) ==
        f.path + ": tensors 'a' and 'b' overlap: data_offsets [0, 512] and [256, 768]");
  // Reported in file order whatever the name order; a range inside another also overlaps.
  CHECK(f.openHeader(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},)"
                     R"( "z": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}})",
                     8) == f.path + ": tensors 'z' and 'a' overlap: data_offsets [0, 8] and [4, 6]");
  CHECK(f.openHeader(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                     R"( "b": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})",
                     4) == f.path + ": tensors 'a' and 'b' overlap: data_offsets [0, 4] and [0, 4]");
}

TEST_CASE("header: duplicate names and keys") {
  BadFile f;
  CHECK(f.openHeader(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                     R"( "w": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
                     8) == f.path + ": duplicate tensor 'w'");
  CHECK(f.openHeader(R"({"w": {"dtype": "U8", "dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})",
                     4) == f.path + ": tensor 'w': duplicate key 'dtype'");
  CHECK(f.openHeader(R"({"__metadata__": {"format": "pt", "format": "np"}})") ==
        f.path + ": __metadata__: duplicate key 'format'");
}

TEST_CASE("header: __metadata__") {
  BadFile f;
  CHECK(f.openHeader(R"({"__metadata__": ["pt"]})") == f.path + ": __metadata__ is not an object");
  CHECK(f.openHeader(R"({"__metadata__": {"format": "pt", "step": 3}})") ==
        f.path + ": __metadata__: 'step' is not a string");
}

TEST_CASE("header: valid corner cases are accepted") {
  TempDir dir;
  std::string path = dir / "ok.safetensors";
  // A scalar, an empty tensor (inside another's range: it shares no bytes), a gap before
  // the last tensor, trailing padding, and metadata.
  writeFile(path, safetensorsBytes(
                      R"({"__metadata__": {"format": "pt", "note": "x"},)"
                      R"( "s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},)"
                      R"( "e": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [2, 2]},)"
                      R"( "g": {"dtype": "I16", "shape": [2], "data_offsets": [8, 12]}}   )",
                      12));
  auto src = requireValue(SafetensorsSource::open(path));
  REQUIRE(src->tensors().size() == 3);
  CHECK(src->tensors()[0].meta.name == "e");
  CHECK(src->tensors()[0].meta.shape == Shape{0, 3});
  CHECK(src->tensors()[1].meta.name == "g");
  CHECK(src->tensors()[2].meta.shape.empty());
  CHECK(src->shards()[0].metadata == std::map<std::string, std::string>{{"format", "pt"},
                                                                          {"note", "x"}});
  TensorBytes g = requireValue(src->read(src->tensors()[1]));
  CHECK(g.bytes() == llvm::ArrayRef<uint8_t>({8, 9, 10, 11}));
  CHECK(requireValue(src->read(src->tensors()[0])).size() == 0);

  writeFile(path, safetensorsBytes("{}", 0));
  CHECK(requireValue(openSafetensors(path))->tensors().empty());
}

TEST_CASE("header: duplicate tensor across files of a directory without index") {
  TempDir dir;
  std::string header = R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})";
  writeFile(dir / "a.safetensors", safetensorsBytes(header, 4));
  writeFile(dir / "b.safetensors", safetensorsBytes(header, 4));
  CHECK(errorText(openSafetensors(dir.path())) ==
        dir / "b.safetensors" + ": tensor 'w' is also in a.safetensors");
}
