// The reader on the real fixture checkpoints, checked against fixed facts and against the
// naive parser.
#include "NaiveSafetensors.h"

#include "runtime/io/Safetensors.h"

#include <thread>

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

const char *kFamilies[] = {"deepseek_v3", "deepseek_v3_fp8", "minimax_m3", "nemotron_h",
                           "qwen3_5_moe"};

std::string hub(const std::string &family) { return fixture("hf/" + family + "/hub"); }

std::vector<int64_t> dims(const TensorMeta &m) { return {m.shape.begin(), m.shape.end()}; }

/// Every tensor of `src` agrees with the naive parse of its file, and nothing is missing.
void checkAgainstNaive(const SafetensorsSource &src) {
  size_t naiveCount = 0;
  for (const SafetensorsShard &shard : src.shards()) {
    NaiveFile naive = naiveParse(shard.path);
    naiveCount += naive.tensors.size();
    CHECK(shard.metadata == naive.metadata);
    for (const auto &[name, t] : naive.tensors) {
      const SourceTensor *mine = src.find(name);
      REQUIRE_MESSAGE(mine, name);
      CHECK(mine->file == shard.name);
      CHECK(dtypeName(mine->meta.dtype) == t.dtype);
      CHECK(dims(mine->meta) == t.shape);
      CHECK(src.location(*mine)->offset == t.fileOffset);
      TensorBytes bytes = requireValue(src.read(*mine));
      CHECK(bytes.size() == mine->meta.byteSize());
      CHECK(asString(bytes.bytes()) == t.bytes);
    }
  }
  CHECK(src.tensors().size() == naiveCount);
}

} // namespace

TEST_CASE("reader: every hub fixture agrees with its index and the naive parse") {
  for (const char *family : kFamilies) {
    CAPTURE(family);
    auto src = requireValue(SafetensorsSource::open(hub(family)));
    CHECK(src->root() == hub(family));
    CHECK(src->indexPath() == hub(family) + "/model.safetensors.index.json");
    std::map<std::string, std::string> weightMap = naiveWeightMap(hub(family));
    REQUIRE(src->tensors().size() == weightMap.size());
    for (const SourceTensor &t : src->tensors())
      CHECK(weightMap[t.meta.name] == t.file);
    CHECK(std::is_sorted(src->tensors().begin(), src->tensors().end(),
                         [](const SourceTensor &a, const SourceTensor &b) {
                           return a.meta.name < b.meta.name;
                         }));
    for (const SafetensorsShard &shard : src->shards())
      CHECK(shard.metadata == std::map<std::string, std::string>{{"format", "pt"}});
    checkAgainstNaive(*src);
  }
}

TEST_CASE("reader: fixed facts of the fixtures") {
  auto ds = requireValue(SafetensorsSource::open(hub("deepseek_v3")));
  CHECK(ds->tensors().size() == 99);
  CHECK(ds->shards().size() == 4);
  const SourceTensor *lmHead = ds->find("lm_head.weight");
  REQUIRE(lmHead);
  CHECK(lmHead->meta.dtype == DType::BF16);
  CHECK(lmHead->meta.shape == Shape{512, 64});
  CHECK(lmHead->file == "model-00001-of-00004.safetensors");
  CHECK(ds->location(*lmHead)->offset == 1704);
  TensorBytes head = requireValue(ds->read(*lmHead));
  CHECK(head.bytes().take_front(4) == llvm::ArrayRef<uint8_t>({0xa7, 0x3b, 0xa5, 0xbc}));
  const SourceTensor *norm = ds->find("model.norm.weight");
  REQUIRE(norm);
  CHECK(norm->file == "model-00004-of-00004.safetensors");
  CHECK(requireValue(ds->read(*norm)).bytes().take_front(4) ==
        llvm::ArrayRef<uint8_t>({0x80, 0x3f, 0x80, 0x3f}));

  auto fp8 = requireValue(SafetensorsSource::open(hub("deepseek_v3_fp8")));
  CHECK(fp8->tensors().size() == 121);
  CHECK(fp8->shards().size() == 13);
  std::map<DType, int> counts;
  for (const SourceTensor &t : fp8->tensors())
    ++counts[t.meta.dtype];
  CHECK(counts == std::map<DType, int>{{DType::BF16, 25}, {DType::F32, 48}, {DType::F8_E4M3, 48}});
  const SourceTensor *down = fp8->find("model.layers.0.mlp.down_proj.weight");
  REQUIRE(down);
  CHECK(down->meta.dtype == DType::F8_E4M3);
  CHECK(down->meta.shape == Shape{192, 320});
  CHECK(requireValue(fp8->read(*down)).bytes().take_front(4) ==
        llvm::ArrayRef<uint8_t>({0xef, 0xf2, 0x63, 0xe3}));
  const SourceTensor *scale = fp8->find("model.layers.0.mlp.down_proj.weight_scale_inv");
  REQUIRE(scale);
  CHECK(scale->meta.dtype == DType::F32);
  CHECK(scale->meta.shape == Shape{2, 3});

  auto nemo = requireValue(SafetensorsSource::open(hub("nemotron_h")));
  CHECK(nemo->tensors().size() == 77);
  const SourceTensor *aLog = nemo->find("backbone.layers.0.mixer.A_log");
  REQUIRE(aLog);
  CHECK(aLog->meta.shape == Shape{8});
  CHECK(requireValue(nemo->read(*aLog)).bytes().take_front(4) ==
        llvm::ArrayRef<uint8_t>({0x00, 0x00, 0x31, 0x3f}));

  CHECK(requireValue(openSafetensors(hub("minimax_m3")))->tensors().size() == 95);
  CHECK(requireValue(openSafetensors(hub("qwen3_5_moe")))->tensors().size() == 162);
}

TEST_CASE("reader: single files") {
  for (const char *family : {"deepseek_v3", "minimax_m3", "nemotron_h", "qwen3_5_moe"}) {
    CAPTURE(family);
    std::string dir = fixture(std::string("hf/") + family);
    auto inmem = requireValue(SafetensorsSource::open(dir + "/inmem.safetensors"));
    CHECK(inmem->root() == dir);
    CHECK(inmem->indexPath().empty());
    REQUIRE(inmem->shards().size() == 1);
    CHECK(inmem->shards()[0].name == "inmem.safetensors");
    CHECK(inmem->shards()[0].metadata.empty());
    checkAgainstNaive(*inmem);

    auto logits = requireValue(SafetensorsSource::open(dir + "/logits.safetensors"));
    REQUIRE(logits->tensors().size() == 2);
    CHECK(logits->tensors()[0].meta.name == "input_ids");
    CHECK(logits->tensors()[0].meta.dtype == DType::I64);
    CHECK(logits->tensors()[0].meta.shape == Shape{1, 12});
    CHECK(logits->tensors()[1].meta.name == "logits");
    CHECK(logits->tensors()[1].meta.dtype == DType::F32);
    CHECK(logits->tensors()[1].meta.shape == Shape{1, 12, 512});
    checkAgainstNaive(*logits);
  }
  std::map<std::string, size_t> inmemCounts = {
      {"deepseek_v3", 47}, {"minimax_m3", 72}, {"nemotron_h", 43}, {"qwen3_5_moe", 93}};
  for (const auto &[family, count] : inmemCounts)
    CHECK(requireValue(openSafetensors(fixture("hf/" + family + "/inmem.safetensors")))
              ->tensors()
              .size() == count);
}

TEST_CASE("reader: views outlive the source; lookups by name; unknown tensors") {
  std::string dir = hub("qwen3_5_moe");
  auto src = requireValue(openSafetensors(dir));
  const SourceTensor *t = src->find("lm_head.weight");
  REQUIRE(t);
  TensorBytes bytes = requireValue(src->read(*t));
  SourceTensor copy = *t; // not an entry of the source: found by name
  CHECK(requireValue(src->read(copy)).data() == bytes.data());
  copy.meta.name = "no.such.tensor";
  CHECK(errorText(src->read(copy)) == dir + ": no tensor 'no.such.tensor'");
  src.reset();
  NaiveFile naive = naiveParse(dir + "/model-00001-of-00005.safetensors");
  CHECK(asString(bytes.bytes()) == naive.tensors["lm_head.weight"].bytes);
}

TEST_CASE("reader: concurrent reads agree") {
  auto src = requireValue(openSafetensors(hub("deepseek_v3_fp8")));
  auto checksum = [&](size_t stride, size_t start) {
    uint64_t sum = 0;
    llvm::ArrayRef<SourceTensor> all = src->tensors();
    for (size_t i = start; i < all.size(); i += stride) {
      llvm::Expected<TensorBytes> b = src->read(all[i]);
      if (!b) {
        llvm::consumeError(b.takeError());
        return uint64_t(0);
      }
      for (uint8_t x : b->bytes())
        sum = sum * 31 + x;
    }
    return sum;
  };
  std::vector<uint64_t> expected, got(8);
  for (size_t k = 0; k < 8; ++k)
    expected.push_back(checksum(8, k));
  std::vector<std::thread> threads;
  for (size_t k = 0; k < 8; ++k)
    threads.emplace_back([&, k] { got[k] = checksum(8, k); });
  for (std::thread &th : threads)
    th.join();
  CHECK(got == expected);
  CHECK(expected[0] != 0);
}
