#include "NaiveSafetensors.h"

#include "runtime/io/Inspect.h"
#include "runtime/io/Safetensors.h"

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

/// Two tiny checkpoints that differ in every way diff can tell.
struct Pair {
  TempDir dir;
  std::string a = dir / "a.safetensors", b = dir / "b.safetensors";
  Pair() {
    writeFile(a, safetensorsBytes(
                     R"({"same": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
                     R"( "bytes": {"dtype": "I16", "shape": [4], "data_offsets": [2, 10]},)"
                     R"( "dt": {"dtype": "F32", "shape": [1], "data_offsets": [10, 14]},)"
                     R"( "sh": {"dtype": "U8", "shape": [2, 1], "data_offsets": [14, 16]},)"
                     R"( "onlyA": {"dtype": "U8", "shape": [], "data_offsets": [16, 17]}})",
                     17));
    // Same data section except bytes 4..5 and 8, i.e. elements 1 and 3 of "bytes".
    std::string bb = safetensorsBytes(
        R"({"same": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
        R"( "bytes": {"dtype": "I16", "shape": [4], "data_offsets": [2, 10]},)"
        R"( "dt": {"dtype": "I32", "shape": [1], "data_offsets": [10, 14]},)"
        R"( "sh": {"dtype": "U8", "shape": [1, 2], "data_offsets": [14, 16]},)"
        R"( "onlyB": {"dtype": "U8", "shape": [], "data_offsets": [16, 17]}})",
        17);
    size_t data = bb.size() - 17;
    bb[data + 4] = 'x';
    bb[data + 5] = 'y';
    bb[data + 8] = 'z';
    writeFile(b, bb);
  }
};

} // namespace

TEST_CASE("describeCheckpoint and its table") {
  auto src = requireValue(openSafetensors(fixture("hf/deepseek_v3/logits.safetensors")));
  nlohmann::json d = describeCheckpoint(*src);
  CHECK(d["count"] == 2);
  CHECK(d["total_bytes"] == 96 + 24576);
  CHECK(d["root"] == fixture("hf/deepseek_v3"));
  CHECK(d["dtypes"] == nlohmann::json::parse(R"({"F32": {"count": 1, "bytes": 24576},
                                                  "I64": {"count": 1, "bytes": 96}})"));
  CHECK(d["tensors"][0] == nlohmann::json::parse(R"({"name": "input_ids", "dtype": "I64",
      "shape": [1, 12], "bytes": 96, "file": "logits.safetensors"})"));

  std::string text;
  llvm::raw_string_ostream os(text);
  printCheckpoint(os, *src);
  CHECK(os.str() == "NAME       DTYPE  SHAPE         BYTES  FILE\n"
                    "input_ids  I64    [1, 12]          96  logits.safetensors\n"
                    "logits     F32    [1, 12, 512]  24576  logits.safetensors\n"
                    "\n"
                    "F32: 1 tensors, 24.00 KiB\n"
                    "I64: 1 tensors, 96 B\n"
                    "total: 2 tensors, 24.09 KiB (24672 bytes)\n");

  auto hub = requireValue(openSafetensors(fixture("hf/deepseek_v3_fp8/hub")));
  nlohmann::json h = describeCheckpoint(*hub);
  CHECK(h["count"] == 121);
  CHECK(h["total_bytes"] == 2311516); // the index's total_size
  CHECK(h["dtypes"]["F8_E4M3"]["count"] == 48);
}

TEST_CASE("formatBytes") {
  CHECK(formatBytes(0) == "0 B");
  CHECK(formatBytes(1023) == "1023 B");
  CHECK(formatBytes(1024) == "1.00 KiB");
  CHECK(formatBytes(1536) == "1.50 KiB");
  CHECK(formatBytes(5'000'000'000ull) == "4.66 GiB");
}

TEST_CASE("diffCheckpoints: every kind of difference") {
  Pair p;
  auto a = requireValue(openSafetensors(p.a));
  auto b = requireValue(openSafetensors(p.b));
  DiffResult diff = requireValue(diffCheckpoints(*a, *b));
  CHECK_FALSE(diff.same());
  CHECK(diff.onlyInA == std::vector<std::string>{"onlyA"});
  CHECK(diff.onlyInB == std::vector<std::string>{"onlyB"});
  CHECK(diff.identical == 1);
  REQUIRE(diff.differences.size() == 3);
  CHECK(diff.differences[0].name == "bytes");
  CHECK(diff.differences[0].kind == TensorDiff::Kind::Bytes);
  CHECK(diff.differences[0].differingElements == 2);
  CHECK(diff.differences[0].firstDifference == 1);
  CHECK(diff.differences[1].kind == TensorDiff::Kind::DType);
  CHECK(diff.differences[2].kind == TensorDiff::Kind::Shape);

  std::string text;
  llvm::raw_string_ostream os(text);
  printDiff(os, diff);
  CHECK(os.str() == "only in A: onlyA\n"
                    "only in B: onlyB\n"
                    "bytes differ: bytes: 2 of 4 elements differ, first at element 1\n"
                    "dtype differs: dt: F32 [1] vs I32 [1]\n"
                    "shape differs: sh: U8 [2, 1] vs U8 [1, 2]\n"
                    "different: 4 tensors in both, 1 identical, 3 different, 1 only in A, "
                    "1 only in B\n");
  CHECK(diffToJson(diff) == nlohmann::json::parse(R"({
    "same": false, "identical": 1, "bytes_compared": true,
    "only_in_a": ["onlyA"], "only_in_b": ["onlyB"],
    "differences": [
      {"name": "bytes", "kind": "bytes", "a": {"dtype": "I16", "shape": [4]},
       "b": {"dtype": "I16", "shape": [4]}, "differing_elements": 2, "first_difference": 1},
      {"name": "dt", "kind": "dtype", "a": {"dtype": "F32", "shape": [1]},
       "b": {"dtype": "I32", "shape": [1]}},
      {"name": "sh", "kind": "shape", "a": {"dtype": "U8", "shape": [2, 1]},
       "b": {"dtype": "U8", "shape": [1, 2]}}]})"));

  DiffResult headersOnly = requireValue(diffCheckpoints(*a, *b, {/*compareBytes=*/false}));
  CHECK(headersOnly.identical == 2);
  CHECK(headersOnly.differences.size() == 2);
  std::string t2;
  llvm::raw_string_ostream os2(t2);
  printDiff(os2, headersOnly);
  CHECK(llvm::StringRef(os2.str()).endswith(
      "different: 4 tensors in both, 2 with equal dtype and shape, 2 different, 1 only in A, "
      "1 only in B (bytes not compared)\n"));
}

TEST_CASE("diffCheckpoints: a checkpoint against itself and its other layout") {
  auto hub = requireValue(openSafetensors(fixture("hf/qwen3_5_moe/hub")));
  auto again = requireValue(openSafetensors(fixture("hf/qwen3_5_moe/hub")));
  DiffResult diff = requireValue(diffCheckpoints(*hub, *again));
  CHECK(diff.same());
  CHECK(diff.identical == 162);
  std::string text;
  llvm::raw_string_ostream os(text);
  printDiff(os, diff);
  CHECK(os.str() == "same: 162 tensors in both, 162 identical, 0 different, 0 only in A, 0 only "
                    "in B\n");
}
