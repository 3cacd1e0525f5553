// The sharded writer: layout, exact bytes, round trips through the reader, determinism,
// overwrite protection and cleanup.
#include "NaiveSafetensors.h"

#include "runtime/io/CheckpointWriter.h"
#include "runtime/io/Safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <thread>

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

TensorMeta meta(const std::string &name, DType dtype, Shape shape) {
  return {name, dtype, std::move(shape)};
}

std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> names;
  DIR *d = ::opendir(dir.c_str());
  REQUIRE(d);
  while (struct dirent *e = ::readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
      names.push_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = uint8_t(i * 7 + seed);
  return v;
}

/// Writes every tensor of `src` through a writer with the given options, in `order`
/// (indices into src->tensors()), from `threads` threads.
void copyCheckpoint(const TensorSource &src, WriteOptions options, size_t threads = 1,
                    bool reverse = false) {
  std::vector<TensorMeta> metas;
  for (const SourceTensor &t : src.tensors())
    metas.push_back(t.meta);
  auto w = requireValue(CheckpointWriter::create(metas, std::move(options)));
  std::atomic<size_t> next{0};
  std::atomic<bool> ok{true};
  auto worker = [&] {
    for (size_t k; (k = next++) < metas.size();) {
      size_t i = reverse ? metas.size() - 1 - k : k;
      llvm::Expected<TensorBytes> b = src.read(src.tensors()[i]);
      if (!b) {
        llvm::consumeError(b.takeError());
        ok = false;
        continue;
      }
      if (llvm::Error e = w->write(i, b->bytes())) {
        llvm::consumeError(std::move(e));
        ok = false;
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back(worker);
  for (std::thread &t : pool)
    t.join();
  REQUIRE(ok);
  requireOk(w->finish());
}

} // namespace

TEST_CASE("layout: HF sharding rule") {
  std::vector<TensorMeta> ts = {meta("t0", DType::U8, {100}), meta("t1", DType::U8, {100}),
                                meta("t2", DType::U8, {100}), meta("t3", DType::U8, {250}),
                                meta("t4", DType::U8, {50}),  meta("t5", DType::BF16, {75})};
  ShardLayout layout = requireValue(ShardLayout::plan(ts, 200, {}));
  REQUIRE(layout.shards.size() == 4);
  CHECK(layout.shards[0].tensors == std::vector<size_t>{0, 1}); // exactly full
  CHECK(layout.shards[1].tensors == std::vector<size_t>{2});    // 100 + 250 would not fit
  CHECK(layout.shards[2].tensors == std::vector<size_t>{3});    // too big: alone
  CHECK(layout.shards[3].tensors == std::vector<size_t>{4, 5}); // 50 + 150
  CHECK(layout.shards[0].fileName == "model-00001-of-00004.safetensors");
  CHECK(layout.shards[3].fileName == "model-00004-of-00004.safetensors");
  CHECK(layout.totalSize == 750);
  CHECK(layout.placements[5].shard == 3);
  CHECK(layout.placements[5].size == 150);
  CHECK(layout.placements[5].offset == layout.shards[3].header.size() + 50);

  ShardLayout one = requireValue(ShardLayout::plan(ts, 5'000'000'000, {}));
  REQUIRE(one.shards.size() == 1);
  CHECK(one.shards[0].fileName == "model.safetensors");

  CHECK(errorText(ShardLayout::plan(ts, 0, {})) == "the maximum shard size must be positive");
  ts.push_back(meta("t0", DType::U8, {1}));
  CHECK(errorText(ShardLayout::plan(ts, 200, {})) == "output tensor 't0' is listed twice");
  CHECK(errorText(ShardLayout::plan({meta("", DType::U8, {1})}, 200, {})) ==
        "an output tensor has an empty name");
  CHECK(errorText(ShardLayout::plan({meta("__metadata__", DType::U8, {1})}, 200, {})) ==
        "output tensor name '__metadata__' is reserved by the safetensors format");
  CHECK(errorText(ShardLayout::plan({meta("n", DType::U8, {2, -1})}, 200, {})) ==
        "output tensor 'n' has shape [2, -1] with a negative dimension");
  CHECK(errorText(ShardLayout::plan({meta("n", DType::F64, {1ll << 40, 1ll << 30})}, 200, {})) ==
        "output tensor 'n' has shape [1099511627776, 1073741824] too large to store");
}

TEST_CASE("layout: header bytes and index text") {
  ShardLayout layout = requireValue(ShardLayout::plan(
      {meta("w", DType::F32, {2}), meta("b", DType::BF16, {1, 3})}, 8, {{"step", "17"}}));
  REQUIRE(layout.shards.size() == 2);
  std::string json = R"({"__metadata__":{"format":"pt","step":"17"},)"
                     R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  REQUIRE(json.size() == 97);
  CHECK(layout.shards[0].header == lengthPrefix(104) + json + std::string(7, ' '));
  CHECK(layout.shards[0].fileSize == 8 + 104 + 8);
  CHECK(layout.indexJson() == "{\n"
                              "  \"metadata\": {\n"
                              "    \"total_size\": 14\n"
                              "  },\n"
                              "  \"weight_map\": {\n"
                              "    \"b\": \"model-00002-of-00002.safetensors\",\n"
                              "    \"w\": \"model-00001-of-00002.safetensors\"\n"
                              "  }\n"
                              "}\n");
  // "format" in the options replaces the default value.
  ShardLayout np = requireValue(ShardLayout::plan({}, 8, {{"format", "np"}}));
  CHECK(np.shards[0].header.substr(8) == R"({"__metadata__":{"format":"np"}})");
}

TEST_CASE("writer: reproduces reference shards byte for byte") {
  // The fixtures were written by the reference implementation; given the same tensors in
  // file order, one shard of ours must be the same file.
  for (const char *shard : {"deepseek_v3/hub/model-00004-of-00004.safetensors",
                            "deepseek_v3_fp8/hub/model-00003-of-00013.safetensors",
                            "qwen3_5_moe/hub/model-00002-of-00005.safetensors"}) {
    CAPTURE(shard);
    auto src = requireValue(SafetensorsSource::open(fixture(std::string("hf/") + shard)));
    std::vector<const SourceTensor *> inFileOrder;
    for (const SourceTensor &t : src->tensors())
      inFileOrder.push_back(&t);
    std::sort(inFileOrder.begin(), inFileOrder.end(), [&](auto *a, auto *b) {
      return src->location(*a)->offset < src->location(*b)->offset;
    });
    std::vector<TensorMeta> metas;
    for (const SourceTensor *t : inFileOrder)
      metas.push_back(t->meta);
    TempDir dir;
    WriteOptions options;
    options.outDir = dir / "out";
    auto w = requireValue(CheckpointWriter::create(metas, options));
    for (size_t i = 0; i < inFileOrder.size(); ++i)
      requireOk(w->write(i, requireValue(src->read(*inFileOrder[i])).bytes()));
    requireOk(w->finish());
    CHECK(listDir(dir / "out") == std::vector<std::string>{"model.safetensors"});
    CHECK(readFile(dir / "out/model.safetensors") == readFile(fixture(std::string("hf/") + shard)));
  }
}

TEST_CASE("writer: sharded round trip of a hub checkpoint, with carried files") {
  std::string hub = fixture("hf/qwen3_5_moe/hub");
  auto src = requireValue(openSafetensors(hub));
  TempDir dir;
  WriteOptions options;
  options.outDir = dir / "out";
  options.maxShardSize = 200'000;
  options.copyFilesFrom = hub;
  options.metadata = {{"producer", "ckptmap"}};
  copyCheckpoint(*src, options, 4);

  // Independently computed expectation of the shard count.
  size_t expectedShards = 0;
  uint64_t current = 0;
  for (const SourceTensor &t : src->tensors()) {
    uint64_t size = t.meta.byteSize();
    if (expectedShards == 0 || current + size > 200'000) {
      ++expectedShards;
      current = 0;
    }
    current += size;
  }
  CHECK(expectedShards == 5);
  std::vector<std::string> expectedFiles = {"config.json", "generation_config.json"};
  for (size_t i = 1; i <= expectedShards; ++i)
    expectedFiles.push_back("model-0000" + std::to_string(i) + "-of-00005.safetensors");
  expectedFiles.push_back("model.safetensors.index.json");
  CHECK(listDir(dir / "out") == expectedFiles);
  CHECK(listDir(dir.path()) == std::vector<std::string>{"out"}); // no temporary left
  CHECK(readFile(dir / "out/config.json") == readFile(hub + "/config.json"));

  nlohmann::json index = nlohmann::json::parse(readFile(dir / "out/model.safetensors.index.json"));
  CHECK(index["metadata"] == nlohmann::json{{"total_size", 881040}});
  CHECK(index["weight_map"].size() == 162);
  CHECK(index["weight_map"]["lm_head.weight"] == "model-00001-of-00005.safetensors");

  auto back = requireValue(SafetensorsSource::open(dir / "out"));
  REQUIRE(back->tensors().size() == src->tensors().size());
  for (size_t i = 0; i < src->tensors().size(); ++i) {
    const SourceTensor &a = src->tensors()[i], &b = back->tensors()[i];
    CHECK(a.meta.name == b.meta.name);
    CHECK(a.meta.dtype == b.meta.dtype);
    CHECK(a.meta.shape == b.meta.shape);
    CHECK(requireValue(src->read(a)).bytes() == requireValue(back->read(b)).bytes());
  }
  for (const SafetensorsShard &shard : back->shards()) {
    CHECK(shard.metadata ==
          std::map<std::string, std::string>{{"format", "pt"}, {"producer", "ckptmap"}});
    CHECK(shard.dataStart % 8 == 0);
    // Every byte of the file is header or tensor: no gaps, nothing trailing.
    NaiveFile naive = naiveParse(shard.path);
    uint64_t bytes = shard.dataStart;
    for (const auto &[name, t] : naive.tensors)
      bytes += t.bytes.size();
    CHECK(bytes == shard.file->size());
  }
}

TEST_CASE("writer: deterministic whatever the write order and thread count") {
  auto src = requireValue(openSafetensors(fixture("hf/deepseek_v3_fp8/hub")));
  TempDir dir;
  WriteOptions a, b;
  a.outDir = dir / "a";
  b.outDir = dir / "b";
  a.maxShardSize = b.maxShardSize = 300'000;
  copyCheckpoint(*src, a, 1, false);
  copyCheckpoint(*src, b, 3, true);
  std::vector<std::string> files = listDir(dir / "a");
  CHECK(files.size() == 11); // 10 shards + index
  CHECK(files == listDir(dir / "b"));
  for (const std::string &f : files)
    CHECK_MESSAGE(readFile(dir / "a/" + f) == readFile(dir / "b/" + f), f);
}

TEST_CASE("writer: parts past the writeback threshold, from several threads, land byte for byte") {
  // Two shards of 80 MiB, each crossing WritebackPacer::kBytes once, written in 4 MiB parts
  // that three threads take in turn.
  constexpr size_t kTensor = 80u << 20, kPart = 4u << 20;
  static_assert(kTensor > WritebackPacer::kBytes);
  TempDir dir;
  WriteOptions options;
  options.outDir = dir / "out";
  options.maxShardSize = kTensor + (1u << 20);
  auto w = requireValue(CheckpointWriter::create({meta("a", DType::U8, {kTensor}), meta("b", DType::U8, {kTensor})}, options));
  const std::vector<uint8_t> a = pattern(kTensor, 3), b = pattern(kTensor, 5);
  std::atomic<size_t> next{0};
  std::atomic<bool> ok{true};
  auto worker = [&] {
    for (size_t k; (k = next++) < 2 * kTensor / kPart;) {
      const size_t tensor = k % 2, offset = k / 2 * kPart;
      const std::vector<uint8_t> &bytes = tensor ? b : a;
      if (llvm::Error e = w->writePart(tensor, offset, llvm::ArrayRef<uint8_t>(bytes).slice(offset, kPart))) {
        llvm::consumeError(std::move(e));
        ok = false;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < 3; ++t)
    pool.emplace_back(worker);
  for (std::thread &t : pool)
    t.join();
  REQUIRE(ok);
  requireOk(w->finish());
  CHECK(listDir(dir / "out").size() == 3); // two shards and the index
  auto back = requireValue(openSafetensors(dir / "out"));
  REQUIRE(back->tensors().size() == 2);
  CHECK(requireValue(back->read(back->tensors()[0])).bytes() == llvm::ArrayRef<uint8_t>(a));
  CHECK(requireValue(back->read(back->tensors()[1])).bytes() == llvm::ArrayRef<uint8_t>(b));
}

TEST_CASE("writer: single shard is model.safetensors without index; addFile overrides") {
  TempDir dir;
  WriteOptions options;
  options.outDir = dir / "out/"; // a trailing slash names the same directory
  options.copyFilesFrom = fixture("hf/deepseek_v3/hub");
  auto w = requireValue(CheckpointWriter::create(
      {meta("a", DType::I32, {2}), meta("z", DType::U8, {0})}, options));
  CHECK(w->outDir() == dir / "out");
  CHECK(w->tempDir() == dir.path() + "/.out.ckptmap-tmp." + std::to_string(::getpid()));
  CHECK(exists(w->tempDir()));
  CHECK_FALSE(exists(dir / "out"));
  w->addFile("config.json", "{\"rewritten\": true}\n");
  w->addFile("hf_quant_config.json", "{}\n");
  std::vector<uint8_t> a = pattern(8, 1);
  requireOk(w->write(0, a));
  requireOk(w->write(1, {}));
  requireOk(w->finish());
  CHECK_FALSE(exists(w->tempDir()));
  CHECK(listDir(dir / "out") == std::vector<std::string>{"config.json", "generation_config.json",
                                                         "hf_quant_config.json",
                                                         "model.safetensors"});
  CHECK(readFile(dir / "out/config.json") == "{\"rewritten\": true}\n");
  auto back = requireValue(openSafetensors(dir / "out"));
  REQUIRE(back->tensors().size() == 2);
  CHECK(requireValue(back->read(back->tensors()[0])).bytes() == llvm::ArrayRef<uint8_t>(a));
  CHECK(back->tensors()[1].meta.shape == Shape{0});
  CHECK(errorText(w->finish()) == dir / "out" + ": finish() called twice");
}

TEST_CASE("writer: write errors") {
  TempDir dir;
  WriteOptions options;
  options.outDir = dir / "out";
  auto w = requireValue(CheckpointWriter::create(
      {meta("a", DType::BF16, {4, 64}), meta("b", DType::U8, {10}), meta("e", DType::U8, {0})},
      options));
  std::string out = dir / "out";
  CHECK(errorText(w->write(0, pattern(500, 0))) ==
        out + ": tensor 'a': got 500 bytes but its layout needs 512");
  CHECK(errorText(w->write(3, {})) == out + ": tensor index 3 is out of range (the layout has 3 "
                                            "tensors)");
  requireOk(w->write(0, pattern(512, 0)));
  CHECK(errorText(w->write(0, pattern(512, 0))) == out + ": tensor 'a' is written twice");
  requireOk(w->write(2, {}));
  CHECK(errorText(w->write(2, {})) == out + ": tensor 'e' is written twice");

  // Pieces, out of order; overlaps and overruns refused.
  std::vector<uint8_t> b = pattern(10, 3);
  llvm::ArrayRef<uint8_t> bytes(b);
  requireOk(w->writePart(1, 6, bytes.slice(6)));
  CHECK(errorText(w->writePart(1, 4, bytes.slice(4, 3))) ==
        out + ": tensor 'b': bytes [4, 7) overlap bytes already written");
  CHECK(errorText(w->writePart(1, 8, bytes.slice(0, 4))) ==
        out + ": tensor 'b': bytes [8, 12) fall outside its 10 bytes");
  CHECK(errorText(w->finish()) == out + ": 1 of 3 tensors were not written: 'b'");
  requireOk(w->writePart(1, 0, bytes.slice(0, 6)));
  CHECK(errorText(w->write(1, bytes)) == out + ": tensor 'b' is written twice");
  requireOk(w->finish());
  auto back = requireValue(openSafetensors(out));
  CHECK(requireValue(back->read(*back->find("b"))).bytes() == bytes);
  CHECK(errorText(w->write(1, bytes)) == out + ": tensor 'b' written after finish()");
}

TEST_CASE("writer: refuses an existing output unless forced, then replaces it") {
  TempDir dir;
  std::string out = dir / "out";
  ::mkdir(out.c_str(), 0755);
  writeFile(out + "/old.txt", "old");
  WriteOptions options;
  options.outDir = out;
  CHECK(errorText(CheckpointWriter::create({meta("a", DType::U8, {1})}, options)) ==
        out + ": already exists; use --force to replace it");
  CHECK(listDir(dir.path()) == std::vector<std::string>{"out"});

  options.force = true;
  auto w = requireValue(CheckpointWriter::create({meta("a", DType::U8, {1})}, options));
  requireOk(w->write(0, pattern(1, 9)));
  requireOk(w->finish());
  CHECK(listDir(out) == std::vector<std::string>{"model.safetensors"});
  CHECK(listDir(dir.path()) == std::vector<std::string>{"out"});

  // The output appearing while a writer works is still refused at the end without force.
  options.force = false;
  std::string out2 = dir / "out2";
  options.outDir = out2;
  auto w2 = requireValue(CheckpointWriter::create({meta("a", DType::U8, {1})}, options));
  requireOk(w2->write(0, pattern(1, 9)));
  ::mkdir(out2.c_str(), 0755);
  CHECK(errorText(w2->finish()) == out2 + ": already exists; use --force to replace it");
  w2.reset();
  CHECK(listDir(dir.path()) == std::vector<std::string>{"out", "out2"});
  CHECK(listDir(out2).empty());
}

TEST_CASE("writer: nothing is left behind when a writer is abandoned or fails") {
  TempDir dir;
  WriteOptions options;
  options.outDir = dir / "out";
  options.maxShardSize = 16;
  std::string temp;
  {
    auto w = requireValue(CheckpointWriter::create(
        {meta("a", DType::U8, {16}), meta("b", DType::U8, {16}), meta("c", DType::U8, {4})},
        options));
    temp = w->tempDir();
    CHECK(listDir(temp) == std::vector<std::string>{"model-00001-of-00003.safetensors",
                                                    "model-00002-of-00003.safetensors",
                                                    "model-00003-of-00003.safetensors"});
    requireOk(w->write(1, pattern(16, 0)));
    CHECK(errorText(w->finish()) == dir / "out" + ": 2 of 3 tensors were not written: 'a', 'c'");
  }
  CHECK_FALSE(exists(temp));
  CHECK(listDir(dir.path()).empty());

  // A bad extra file name fails finish() and still cleans up.
  {
    auto w = requireValue(CheckpointWriter::create({meta("a", DType::U8, {1})}, options));
    requireOk(w->write(0, pattern(1, 0)));
    w->addFile("model.safetensors", "x");
    CHECK(errorText(w->finish()) ==
          dir / "out" + ": cannot add file 'model.safetensors': the checkpoint writer writes it");
  }
  {
    auto w = requireValue(CheckpointWriter::create({meta("a", DType::U8, {1})}, options));
    requireOk(w->write(0, pattern(1, 0)));
    w->addFile("sub/config.json", "x");
    CHECK(errorText(w->finish()) ==
          dir / "out" + ": cannot add file 'sub/config.json': not a plain file name");
  }
  CHECK(listDir(dir.path()).empty());

  // Many tensors: the error lists the first ten.
  std::vector<TensorMeta> many;
  for (int i = 0; i < 13; ++i)
    many.push_back(meta("t" + std::to_string(i), DType::U8, {1}));
  auto w = requireValue(CheckpointWriter::create(many, options));
  CHECK(errorText(w->finish()) ==
        dir / "out" + ": 13 of 13 tensors were not written: 't0', 't1', 't2', 't3', 't4', 't5', "
                      "'t6', 't7', 't8', 't9', and 3 more");
}

TEST_CASE("writer: option errors") {
  TempDir dir;
  WriteOptions options;
  CHECK(errorText(CheckpointWriter::create({}, options)) == "no output directory given");
  options.outDir = dir / "missing/out";
  CHECK(errorText(CheckpointWriter::create({}, options)) ==
        dir / "missing" + ": cannot create 'out' in it: No such file or directory");
  options.outDir = dir / "out";
  options.copyFilesFrom = dir / "nowhere";
  CHECK(errorText(CheckpointWriter::create({}, options)) ==
        dir / "nowhere" + ": cannot open: No such file or directory");
  options.copyFilesFrom = fixture("hf/deepseek_v3/logits.safetensors");
  CHECK(errorText(CheckpointWriter::create({}, options)) ==
        options.copyFilesFrom + ": not a directory");
  options.copyFilesFrom.clear();
  options.maxShardSize = 0;
  CHECK(errorText(CheckpointWriter::create({}, options)) ==
        "the maximum shard size must be positive");
  CHECK(listDir(dir.path()).empty());
}

TEST_CASE("writer: parts that lie in an input file are copied file to file, else from memory") {
  TempDir dir;
  std::vector<uint8_t> a = pattern(300'000, 1), b = pattern(70'000, 2);
  std::string input = std::string(100, 'x') + asString(a) + asString(b);
  writeFile(dir / "in.bin", input);
  int fd = ::open((dir / "in.bin").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  WriteOptions options;
  options.outDir = dir / "out";
  auto w = requireValue(CheckpointWriter::create(
      {meta("a", DType::U8, {int64_t(a.size())}), meta("b", DType::U8, {int64_t(b.size())})}, options));
  // "a" in two pieces from the file; "b" with a descriptor the kernel refuses, so from memory.
  requireOk(w->writePart(0, 0, llvm::ArrayRef<uint8_t>(a).take_front(1000), TensorBytes::FileSpan{fd, 100}));
  requireOk(w->writePart(0, 1000, llvm::ArrayRef<uint8_t>(a).drop_front(1000), TensorBytes::FileSpan{fd, 1100}));
  requireOk(w->writePart(1, 0, b, TensorBytes::FileSpan{-1, 0}));
  requireOk(w->finish());
  ::close(fd);
  auto out = requireValue(SafetensorsSource::open(dir / "out"));
  CHECK(requireValue(out->read(*out->find("a"))).bytes() == llvm::ArrayRef<uint8_t>(a));
  CHECK(requireValue(out->read(*out->find("b"))).bytes() == llvm::ArrayRef<uint8_t>(b));
}
