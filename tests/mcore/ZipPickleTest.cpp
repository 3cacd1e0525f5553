// The restricted unpickler and the zip reader on their own: what they accept, and the exact
// errors for what they refuse.
#include "TestSupport.h"

#include "runtime/mcore/Pickle.h"
#include "runtime/mcore/PickleWriter.h"
#include "runtime/mcore/TorchSave.h"
#include "runtime/mcore/Zip.h"

#include <nlohmann/json.hpp>

#include <set>

using namespace ckptmap;
using namespace ckptmap::mcore;
using namespace ckptmap::mcore::test;

namespace {

std::vector<uint8_t> bytesOf(const std::string &s) { return std::vector<uint8_t>(s.begin(), s.end()); }

/// A string literal with its embedded NULs.
template <size_t N> std::string lit(const char (&s)[N]) { return std::string(s, N - 1); }

std::string parseError(const std::string &pickle) {
  auto p = Pickle::parse(bytesOf(pickle), "x.pkl");
  return errorText(p);
}

std::string reprOf(const std::string &pickle) {
  auto p = Pickle::parse(bytesOf(pickle), "x.pkl");
  REQUIRE_MESSAGE(p, errorText(p.takeError()));
  return pyRepr((*p)->root());
}

} // namespace

TEST_CASE("unpickler: plain values, memo, frames") {
  CHECK(reprOf(lit("\x80\x02]q\x00Na.")) == "[None]");
  CHECK(reprOf(lit("\x80\x02]q\x00}q\x01" "a.")) == "[{}]");
  // protocol 4: frame, memoize, short strings, tuple2, negative and long ints, float
  std::string body = lit("}\x94(\x8c\x01" "a\x94K\x01J\xff\xff\xff\xff\x86\x94"
                         "\x8c\x01" "b\x94\x8a\x05\x00\x00\x00\x00\x01G\x3f\xf8\x00\x00\x00\x00\x00\x00\x86\x94u.");
  std::string p4 = lit("\x80\x04\x95") + char(body.size()) + std::string(7, '\0') + body;
  CHECK(reprOf(p4) == "{'a': (1, -1), 'b': (4294967296, 1.5)}");
  // BINGET of a memoized list appends to the same list
  CHECK(reprOf(lit("\x80\x02]q\x00(K\x01h\x00" "e.")) == "[1, [...]]");
  // a JSON value pickled and read back
  nlohmann::json j = {{"name", "x"}, {"sizes", {1, 2, 300000, -5}}, {"ok", true}, {"none", nullptr}};
  auto p = Pickle::parse(pickleJson(j), "json.pkl");
  REQUIRE(p);
  CHECK(pyRepr((*p)->root()) == "{'name': 'x', 'none': None, 'ok': True, 'sizes': [1, 2, 300000, -5]}");
}

TEST_CASE("unpickler: foreign globals, unknown opcodes and bad calls are refused") {
  CHECK(parseError("c__builtin__\neval\n(S'1'\ntR.") ==
        "x.pkl: pickle offset 0: global '__builtin__.eval' is not allowed (only the classes and functions of "
        "torch checkpoints are)");
  CHECK(parseError("\x80\x02" "cos\nsystem\n.") ==
        "x.pkl: pickle offset 2: global 'os.system' is not allowed (only the classes and functions of torch "
        "checkpoints are)");
  CHECK(parseError(lit("\x80\x04\x8c\x08" "builtins\x94\x8c\x04" "exec\x94\x93.")) ==
        "x.pkl: pickle offset 20: global 'builtins.exec' is not allowed (only the classes and functions of torch "
        "checkpoints are)");
  CHECK(parseError("\x80\x02\xff.") == "x.pkl: pickle offset 2: unknown opcode 0xff");
  CHECK(parseError("\x80\x02(i__main__\nX\n.") == "x.pkl: pickle offset 3: opcode 0x69 'INST' is not accepted");
  CHECK(parseError("\x80\x02" "ctorch\nbfloat16\n)R.") ==
        "x.pkl: pickle offset 19: REDUCE calls 'torch.bfloat16', which is not callable here");
  CHECK(parseError("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n)\x81.") ==
        "x.pkl: pickle offset 36: NEWOBJ of 'torch._utils._rebuild_tensor_v2', which is not an allowed class");
  CHECK(parseError(lit("\x80\x02]q\x00")) == "x.pkl: pickle offset 5: ends without STOP (truncated?)");
  CHECK(parseError("\x80\x02X\xff\x00\x00\x00ab.") == "x.pkl: pickle offset 2: data runs past the end (truncated?)");
  CHECK(parseError("\x80\x02h\x05.") == "x.pkl: pickle offset 2: memo entry 5 was never stored");
  CHECK(parseError("\x80\x02}Na.") == "x.pkl: pickle offset 4: APPEND to a dict, not a list");
  CHECK(parseError(std::string("\x80\x02") + std::string(2000, '(') + ".") ==
        "x.pkl: pickle offset 1026: more than 1024 nested marks");
  PickleLimits small;
  small.maxValues = 3;
  auto p = Pickle::parse(bytesOf("\x80\x02NNNN."), "x.pkl", small);
  CHECK(errorText(p) == "x.pkl: pickle offset 5: more than 3 values");
}

TEST_CASE("every accepted global is listed once") {
  std::set<std::string> seen;
  for (const AllowedGlobal &g : allowedGlobals())
    CHECK(seen.insert(std::string(g.module) + "." + g.name).second);
  CHECK(seen.count("torch.distributed.checkpoint.metadata.Metadata"));
  CHECK(!seen.count("builtins.eval"));
}

TEST_CASE("zip: torch.save archives are written as torch writes them and read back") {
  const std::vector<uint8_t> data{1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<uint8_t> out;
  auto size = writeTensorArchive(
      [&](llvm::ArrayRef<uint8_t> b) {
        out.insert(out.end(), b.begin(), b.end());
        return llvm::Error::success();
      },
      DType::BF16, {2, 2}, data);
  REQUIRE(size);
  CHECK(*size == out.size());
  auto zip = ZipArchive::parse(out, "t.pt");
  REQUIRE(zip);
  std::vector<std::string> names;
  for (const ZipEntry &e : zip->entries()) {
    names.push_back(e.name);
    CHECK(e.dataOffset % 64 == 0);
  }
  CHECK(names == std::vector<std::string>{"archive/data.pkl", "archive/.format_version", "archive/.storage_alignment",
                                          "archive/byteorder", "archive/data/0", "archive/version",
                                          "archive/.data/serialization_id"});
  auto archive = TorchSaveArchive::open(out, "t.pt");
  REQUIRE(archive);
  auto t = storedTensor((*archive)->pickle().root(), "t.pt");
  REQUIRE(t);
  CHECK(t->dtype == DType::BF16);
  CHECK(t->size == Shape{2, 2});
  CHECK(t->stride == Shape{2, 1});
  auto storage = (*archive)->storage(*t, true);
  REQUIRE(storage);
  CHECK(std::vector<uint8_t>(storage->begin(), storage->end()) == data);

  // float8 goes through _rebuild_tensor_v3 with an untyped storage, as torch.save does
  std::vector<uint8_t> fp8;
  REQUIRE(writeTensorArchive(
      [&](llvm::ArrayRef<uint8_t> b) {
        fp8.insert(fp8.end(), b.begin(), b.end());
        return llvm::Error::success();
      },
      DType::F8_E4M3, {8}, data));
  auto fp8Archive = TorchSaveArchive::open(fp8, "f8.pt");
  REQUIRE(fp8Archive);
  CHECK(pyRepr((*fp8Archive)->pickle().root()) ==
        "torch._utils._rebuild_tensor_v3(persistent_id(('storage', torch.UntypedStorage, '0', 'cpu', 8)), 0, (8,), "
        "(1,), False, OrderedDict({}), torch.float8_e4m3fn)");
  auto f8 = storedTensor((*fp8Archive)->pickle().root(), "f8.pt");
  REQUIRE(f8);
  CHECK(f8->dtype == DType::F8_E4M3);
  CHECK(f8->storageBytes == 8);
}

TEST_CASE("zip: damaged archives") {
  std::vector<uint8_t> good = objectArchive(std::vector<uint8_t>{0x80, 0x02, 'N', '.'});
  auto truncated = std::vector<uint8_t>(good.begin(), good.end() - 30);
  CHECK(errorText(ZipArchive::parse(truncated, "a.pt").takeError()) ==
        "a.pt: not a valid zip archive: no end-of-central-directory record (truncated?)");
  auto compressed = good;
  compressed[8] = 8; // the first local header's method; the central directory is what counts
  size_t cd = 0;
  for (size_t i = 0; i + 4 <= good.size(); ++i)
    if (good[i] == 'P' && good[i + 1] == 'K' && good[i + 2] == 1 && good[i + 3] == 2) {
      cd = i;
      break;
    }
  compressed = good;
  compressed[cd + 10] = 8;
  CHECK(errorText(ZipArchive::parse(compressed, "a.pt").takeError()) ==
        "a.pt: entry 'archive/data.pkl' is compressed (method 8); torch.save archives store every entry uncompressed");
  auto corrupt = good;
  auto zip = ZipArchive::parse(corrupt, "a.pt");
  REQUIRE(zip);
  corrupt[zip->entries()[0].dataOffset + 2] ^= 0xff;
  auto reparsed = ZipArchive::parse(corrupt, "a.pt");
  REQUIRE(reparsed);
  CHECK(errorText(reparsed->checkedData(reparsed->entries()[0]).takeError()).rfind(
            "a.pt: entry 'archive/data.pkl' is corrupt: CRC-32 ", 0) == 0);
}

TEST_CASE("zip: ZIP64 sizes and offsets (as torch writes past 4 GiB) are read") {
  std::vector<uint8_t> out;
  TorchArchiveWriter w(
      [&](llvm::ArrayRef<uint8_t> b) {
        out.insert(out.end(), b.begin(), b.end());
        return llvm::Error::success();
      },
      "big");
  w.setZip64Threshold(0); // every entry gets ZIP64 fields
  const std::vector<uint8_t> pkl{0x80, 0x02, 'N', '.'}, data(100, 7);
  REQUIRE(!w.addRecord("data.pkl", pkl));
  REQUIRE(!w.addRecord("data/0", data));
  REQUIRE(!w.finish());
  auto zip = ZipArchive::parse(out, "big.pt");
  REQUIRE_MESSAGE(zip, errorText(zip.takeError()));
  REQUIRE(zip->entries().size() == 4);
  const ZipEntry *e = zip->find("big/data/0");
  REQUIRE(e);
  CHECK(e->size == 100);
  CHECK(e->dataOffset % 64 == 0);
  auto bytes = zip->checkedData(*e);
  REQUIRE(bytes);
  CHECK(std::vector<uint8_t>(bytes->begin(), bytes->end()) == data);
}
