// Directory layouts and model.safetensors.index.json: the shard set must agree with the
// index exactly; each disagreement is reported with the index, the shard and the tensor.
#include "TestUtil.h"

#include "runtime/io/Safetensors.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

const char *kShardA = "model-00001-of-00002.safetensors";
const char *kShardB = "model-00002-of-00002.safetensors";

/// Shard A holds 'a' and 'b', shard B holds 'c'; the index is written per test.
struct Sharded {
  TempDir dir;
  std::string index = dir / "model.safetensors.index.json";

  Sharded() {
    writeFile(dir / kShardA,
              safetensorsBytes(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
                               R"( "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}})",
                               4));
    writeFile(dir / kShardB, safetensorsBytes(
                                 R"({"c": {"dtype": "I16", "shape": [1], "data_offsets": [0, 2]}})",
                                 2));
  }
  std::string open(const std::string &indexText) {
    writeFile(index, indexText);
    return errorText(openSafetensors(dir.path()));
  }
};

std::string weightMap(const std::string &entries) {
  return R"({"metadata": {"total_size": 6}, "weight_map": {)" + entries + "}}";
}

const std::string kGood = std::string(R"("a": ")") + kShardA + R"(", "b": ")" + kShardA +
                          R"(", "c": ")" + kShardB + R"(")";

} // namespace

TEST_CASE("index: a consistent index opens, unlisted files are ignored") {
  Sharded s;
  writeFile(s.index, weightMap(kGood));
  writeFile(s.dir / "stray.safetensors", "not a safetensors file");
  auto src = requireValue(SafetensorsSource::open(s.dir.path()));
  CHECK(src->indexPath() == s.index);
  REQUIRE(src->shards().size() == 2);
  CHECK(src->shards()[0].name == kShardA);
  CHECK(src->shards()[1].path == s.dir / kShardB);
  REQUIRE(src->tensors().size() == 3);
  CHECK(src->tensors()[2].file == kShardB);
  CHECK(src->tensors()[2].meta.dtype == DType::I16);
  const SafetensorsSource::Location *loc = src->location(src->tensors()[1]);
  REQUIRE(loc);
  CHECK(loc->shard == 0);
  CHECK(loc->size == 2);
  CHECK(requireValue(src->read(src->tensors()[1])).bytes() == llvm::ArrayRef<uint8_t>({2, 3}));
}

TEST_CASE("index: malformed index files") {
  Sharded s;
  CHECK(s.open("{\"weight_map\": {") ==
        s.index + ": not valid JSON at byte 17: syntax error while parsing object key - "
                  "unexpected end of input; expected string literal");
  CHECK(s.open("[]") == s.index + ": not a JSON object");
  CHECK(s.open(R"({"metadata": {}})") == s.index + ": no 'weight_map' object");
  CHECK(s.open(R"({"weight_map": ["a"]})") == s.index + ": no 'weight_map' object");
  CHECK(s.open(weightMap(R"("a": 1)")) == s.index + ": weight_map entry 'a' is not a string");
  CHECK(s.open(weightMap(kGood + R"(, "a": "x.safetensors")")) ==
        s.index + ": duplicate key 'a' in /weight_map");
  CHECK(s.open(weightMap(R"("a": "../x.safetensors")")) ==
        s.index + ": weight_map entry 'a' names shard '../x.safetensors' outside the checkpoint "
                  "directory");
  CHECK(s.open(weightMap(R"("a": "/etc/x.safetensors")")) ==
        s.index + ": weight_map entry 'a' names shard '/etc/x.safetensors' outside the "
                  "checkpoint directory");
  // A NUL would end the name the file system sees early; the message shows it escaped.
  CHECK(s.open(weightMap(R"("a": "..\u0000/x.safetensors")")) ==
        s.index + ": weight_map entry 'a' names shard '..\\00/x.safetensors' outside the checkpoint "
                  "directory");
  CHECK(s.open(R"({"metadata": {"total_size": 1e400}, "weight_map": {}})") ==
        s.index + ": not valid JSON at byte 33: number overflow parsing '1e400'");
}

TEST_CASE("index: shards disagreeing with the index") {
  Sharded s;
  // A shard that is not there, named with the first tensor mapped to it.
  CHECK(s.open(weightMap(kGood + R"(, "d": "model-00003.safetensors", "e": )"
                                 R"("model-00003.safetensors")")) ==
        s.index + ": shard 'model-00003.safetensors' does not exist (tensor 'd' is mapped to it)");
  // A tensor the index places in a shard that lacks it.
  CHECK(s.open(weightMap(kGood + R"(, "d": ")" + kShardB + R"(")")) ==
        s.index + ": tensor 'd' is mapped to shard '" + kShardB + "', which does not contain it");
  // A tensor of a shard that the index omits.
  CHECK(s.open(weightMap(std::string(R"("a": ")") + kShardA + R"(", "c": ")" + kShardB +
                         R"(")")) ==
        s.index + ": shard '" + kShardA + "' contains tensor 'b', which weight_map does not list");
  // A tensor the index places in another shard.
  CHECK(s.open(weightMap(std::string(R"("a": ")") + kShardA + R"(", "b": ")" + kShardB +
                         R"(", "c": ")" + kShardB + R"(")")) ==
        s.index + ": shard '" + kShardA + "' contains tensor 'b', which weight_map maps to '" +
            kShardB + "'");
}

TEST_CASE("index: a tensor in two listed shards") {
  Sharded s;
  writeFile(s.dir / kShardB,
            safetensorsBytes(R"({"b": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
                             R"( "c": {"dtype": "I16", "shape": [1], "data_offsets": [2, 4]}})",
                             4));
  CHECK(s.open(weightMap(kGood)) == s.dir / kShardB + ": tensor 'b' is also in " + kShardA);
}

TEST_CASE("index: errors inside a listed shard name that shard") {
  Sharded s;
  writeFile(s.dir / kShardB, safetensorsBytes(R"({"c": {"dtype": "I16", "shape": [1],)"
                                              R"( "data_offsets": [0, 4]}})",
                                              4));
  CHECK(s.open(weightMap(kGood)) == s.dir / kShardB +
                                        ": tensor 'c': shape [1] of I16 needs 2 bytes but "
                                        "data_offsets span 4");
  ::unlink((s.dir / kShardB).c_str());
  ::mkdir((s.dir / kShardB).c_str(), 0755);
  CHECK(s.open(weightMap(kGood)) == s.dir / kShardB + ": not a regular file");
}

TEST_CASE("directory layouts without an index") {
  TempDir dir;
  CHECK(errorText(openSafetensors(dir.path())) ==
        dir.path() + ": no model.safetensors.index.json, model.safetensors or other "
                     ".safetensors file");
  CHECK(errorText(openSafetensors(dir / "missing")) ==
        dir / "missing" + ": cannot open: No such file or directory");

  // model.safetensors wins over other files.
  std::string one = R"({"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})";
  writeFile(dir / "model.safetensors", safetensorsBytes(one, 1));
  writeFile(dir / "junk.safetensors", "junk");
  auto src = requireValue(openSafetensors(dir.path()));
  REQUIRE(src->tensors().size() == 1);
  CHECK(src->tensors()[0].file == "model.safetensors");
  CHECK(src->root() == dir.path());

  // Without it, every *.safetensors file is read.
  ::unlink((dir / "model.safetensors").c_str());
  CHECK(errorText(openSafetensors(dir.path())) ==
        dir / "junk.safetensors" + ": file is 4 bytes, too short for the 8-byte header length");
  writeFile(dir / "junk.safetensors", safetensorsBytes(one, 1));
  writeFile(dir / "more.safetensors",
            safetensorsBytes(R"({"y": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})", 1));
  src = requireValue(openSafetensors(dir.path()));
  REQUIRE(src->tensors().size() == 2);
  CHECK(src->tensors()[0].file == "junk.safetensors");
  CHECK(src->tensors()[1].file == "more.safetensors");
}
