// Every op composed with its inverse is the identity: for each op, seeded random headers and
// random bytes are written as an hf checkpoint, converted to mcore and back with the same
// tiny rulebook, and the result must equal the input byte for byte. A few hand-checked cases
// also pin what the forward direction computes, against naive index arithmetic written here.
#include "Helpers.h"

#include "runtime/Convert.h"
#include "runtime/io/Safetensors.h"
#include "runtime/io/TempDirs.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"

#include <cstring>
#include <map>
#include <numeric>
#include <random>

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

constexpr int kCases = 50;

/// A fresh directory, removed with its contents at scope exit.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ckptmap-ctest-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { llvm::consumeError(removeTree(path_)); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

struct Tensor {
  TensorMeta meta;
  std::vector<uint8_t> bytes;
};
using Checkpoint = std::map<std::string, Tensor>;

void writeCheckpoint(const std::string &dir, const Checkpoint &ckpt, const Value &config) {
  std::vector<TensorMeta> metas;
  for (const auto &[name, t] : ckpt)
    metas.push_back(t.meta);
  WriteOptions options;
  options.outDir = dir;
  auto writer = requireValue(CheckpointWriter::create(metas, options));
  for (size_t i = 0; i < metas.size(); ++i)
    REQUIRE_FALSE(bool(writer->write(i, ckpt.at(metas[i].name).bytes)));
  writer->addFile("config.json", config.dump(2) + "\n");
  llvm::Error e = writer->finish();
  REQUIRE_MESSAGE(!e, llvm::toString(std::move(e)));
}

Checkpoint readCheckpoint(const std::string &dir) {
  auto source = requireValue(openCheckpoint(dir)).tensors; // torch_dist when written as mcore
  Checkpoint out;
  for (const SourceTensor &t : source->tensors()) {
    TensorBytes bytes = requireValue(source->read(t));
    out[t.meta.name] = Tensor{t.meta, std::vector<uint8_t>(bytes.bytes().begin(), bytes.bytes().end())};
  }
  return out;
}

/// Converts `in` to `out` with the rulebook at `rules`; fails the test on any diagnostic.
void run(const std::string &rules, const std::string &in, const std::string &out, const char *from, const char *to) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  ConvertOptions options;
  options.rulebook = rules;
  options.bind = direction(from, to);
  options.exec.threads = 2;
  auto summary = convert(in, out, options, sources, diags);
  INFO(diags.render());
  if (!summary)
    FAIL(llvm::toString(summary.takeError()));
  CHECK(diags.render() == "");
}

const Value kConfig = Value::parse(R"({"model_type": "prop"})");

std::string rulebookText(const std::string &body) {
  return "rulebook prop { model_types \"prop\" }\nmapping mcore <-> hf {\n" + body + "}\n";
}

/// Writes the rulebook with this mapping body and `input`, converts `from` -> `to` -> `from`,
/// and keeps both results. `mcore` is the way out's result, whichever way that is.
struct ConvertedBothWays {
  TempDir dir;
  Checkpoint mcore, back;

  ConvertedBothWays(const std::string &body, const Checkpoint &input, const char *from = "hf", const char *to = "mcore") {
    writeText(dir / "prop.rules", rulebookText(body));
    writeCheckpoint(dir / "in", input, kConfig);
    run(dir / "prop.rules", dir / "in", dir / "out", from, to);
    run(dir / "prop.rules", dir / "out", dir / "back", to, from);
    mcore = readCheckpoint(dir / "out");
    back = readCheckpoint(dir / "back");
  }
};

/// The way out only: hf -> mcore.
Checkpoint forward(const std::string &body, const Checkpoint &input) {
  TempDir dir;
  writeText(dir / "prop.rules", rulebookText(body));
  writeCheckpoint(dir / "in", input, kConfig);
  run(dir / "prop.rules", dir / "in", dir / "out", "hf", "mcore");
  return readCheckpoint(dir / "out");
}

std::string describe(const TensorMeta &m) { return m.name + " " + std::string(dtypeName(m.dtype)) + " " + formatShape(m.shape); }

/// The same names, dtypes, shapes and bytes.
void checkIdentical(const Checkpoint &actual, const Checkpoint &expected) {
  std::vector<std::string> a, e;
  for (const auto &[name, t] : actual)
    a.push_back(describe(t.meta));
  for (const auto &[name, t] : expected)
    e.push_back(describe(t.meta));
  REQUIRE(a == e);
  for (const auto &[name, t] : expected) {
    CAPTURE(name);
    CHECK(actual.at(name).bytes == t.bytes);
  }
}

class Random {
public:
  explicit Random(uint32_t seed) : gen_(seed) {}
  int64_t range(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen_); } // inclusive
  bool coin() { return range(0, 1) == 1; }
  template <class C> auto pick(const C &c) { return c[size_t(range(0, int64_t(std::size(c)) - 1))]; }
  Shape shape(int rank, int64_t lo = 1, int64_t hi = 5) {
    Shape s;
    for (int i = 0; i < rank; ++i)
      s.push_back(range(lo, hi));
    return s;
  }
  std::vector<uint8_t> bytes(size_t n) {
    std::vector<uint8_t> out(n);
    for (uint8_t &b : out)
      b = uint8_t(gen_());
    return out;
  }
  Tensor tensor(std::string name, DType dtype, Shape shape) {
    TensorMeta meta{std::move(name), dtype, std::move(shape)};
    return Tensor{meta, bytes(meta.byteSize())};
  }
  std::mt19937 &gen() { return gen_; }

private:
  std::mt19937 gen_;
};

const DType kMoveTypes[] = {DType::BF16, DType::F16, DType::F32, DType::F8_E4M3, DType::I32};

std::string list(llvm::ArrayRef<int64_t> v) {
  std::vector<std::string> parts;
  for (int64_t x : v)
    parts.push_back(std::to_string(x));
  return "[" + llvm::join(parts, ", ") + "]";
}

void add(Checkpoint &c, Tensor t) { c[t.meta.name] = std::move(t); }

} // namespace

TEST_CASE("property: split after concat is the identity") {
  Random r(1001);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.pick(kMoveTypes);
    int rank = int(r.range(1, 3));
    int64_t dim = r.range(0, rank - 1);
    Shape base = r.shape(rank);
    int parts = int(r.range(2, 4));
    int unsized = r.coin() ? int(r.range(0, parts - 1)) : -1; // one part may leave its size to the rest
    Checkpoint in;
    std::string args;
    for (int p = 0; p < parts; ++p) {
      Shape s = base;
      s[dim] = r.range(1, 6);
      std::string name = "part." + std::to_string(p);
      args += ", \"" + name + "\"" + (p == unsized ? "" : " : " + std::to_string(s[dim]));
      add(in, r.tensor(name, dtype, s));
    }
    ConvertedBothWays t("  \"fused\" = concat(" + std::to_string(dim) + args + ")\n", in);
    checkIdentical(t.back, in);
  }
}

TEST_CASE("property: split_gated after gated is the identity") {
  Random r(1002);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.pick(kMoveTypes);
    Shape s = r.shape(int(r.range(1, 3)));
    Checkpoint in;
    add(in, r.tensor("gate_proj", dtype, s));
    add(in, r.tensor("up_proj", dtype, s));
    ConvertedBothWays t("  \"linear_fc1\" = gated(\"gate_proj\", \"up_proj\")\n", in);
    checkIdentical(t.back, in);
  }
}

TEST_CASE("property: split_qkv after qkv is the identity, with and without gates") {
  Random r(1003);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.pick(kMoveTypes);
    int64_t groups = r.range(1, 3), perGroup = r.range(1, 3), d = r.range(1, 4);
    bool gate = r.coin();
    Shape rest = r.shape(int(r.range(0, 1)));
    auto rows = [&](int64_t n) {
      Shape s = {n};
      s.append(rest.begin(), rest.end());
      return s;
    };
    Checkpoint in;
    add(in, r.tensor("q_proj", dtype, rows(groups * perGroup * d * (gate ? 2 : 1))));
    add(in, r.tensor("k_proj", dtype, rows(groups * d)));
    add(in, r.tensor("v_proj", dtype, rows(groups * d)));
    ConvertedBothWays t("  \"linear_qkv\" = qkv(\"q_proj\", \"k_proj\", \"v_proj\", heads: " + std::to_string(groups * perGroup) +
                    ", groups: " + std::to_string(groups) + (gate ? ", gate: true" : "") + ")\n",
                in);
    checkIdentical(t.back, in);
  }
}

TEST_CASE("property: unstack after stack is the identity") {
  Random r(1004);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.pick(kMoveTypes);
    int64_t experts = r.range(1, 5);
    Shape s = r.shape(int(r.range(0, 2)));
    Checkpoint in;
    for (int64_t e = 0; e < experts; ++e)
      add(in, r.tensor("experts." + std::to_string(e) + ".w", dtype, s));
    ConvertedBothWays t("  \"experts.w\" = stack(E in 0 .. " + std::to_string(experts) + ", \"experts.{E}.w\")\n", in);
    checkIdentical(t.back, in);
  }
}

TEST_CASE("property: transpose back after transpose is the identity") {
  Random r(1005);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.pick(kMoveTypes);
    int rank = int(r.range(2, 4));
    std::vector<int64_t> perm(static_cast<size_t>(rank), 0);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), r.gen());
    bool explicitPerm = r.coin();
    Checkpoint in;
    add(in, r.tensor("w", dtype, r.shape(rank)));
    ConvertedBothWays t(std::string("  \"w_t\" = transpose(\"w\"") + (explicitPerm ? ", perm: " + list(perm) : "") + ")\n", in);
    checkIdentical(t.back, in);
  }
}

TEST_CASE("property: reshape back after reshape is the identity") {
  Random r(1006);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.pick(kMoveTypes);
    Shape from = r.shape(int(r.range(1, 3)), 1, 6);
    // The target shape: the prime factors of the element count dealt into 1 to 4 dims.
    std::vector<int64_t> factors;
    for (int64_t n = numElements(from), p = 2; n > 1;) {
      if (n % p == 0) {
        factors.push_back(p);
        n /= p;
      } else {
        ++p;
      }
    }
    Shape to(size_t(r.range(1, 4)), 1);
    for (int64_t f : factors)
      to[size_t(r.range(0, int64_t(to.size()) - 1))] *= f;
    Checkpoint in;
    add(in, r.tensor("conv", dtype, from));
    ConvertedBothWays t("  \"conv\" = reshape(\"conv\", to: " + list(to) + ", from: " + list(from) + ")\n", in);
    checkIdentical(t.back, in);
    CHECK(t.mcore.at("conv").meta.shape == to);
  }
}

namespace {

/// Random bits of a finite value of `dtype` (NaN payloads are not preserved by a float
/// cast, and need not be).
std::vector<uint8_t> finiteBytes(Random &r, DType dtype, size_t n) {
  std::vector<uint8_t> out = r.bytes(n * dtypeSize(dtype));
  for (size_t i = 0; i < n; ++i) {
    uint8_t *e = out.data() + i * dtypeSize(dtype);
    switch (dtype) {
    case DType::BF16: // exponent bits 14..7 all ones: inf or NaN
      while (((e[1] & 0x7f) == 0x7f) && (e[0] & 0x80))
        e[1] = uint8_t(r.range(0, 255));
      break;
    case DType::F16: // exponent bits 14..10 all ones
      while ((e[1] & 0x7c) == 0x7c)
        e[1] = uint8_t(r.range(0, 255));
      break;
    case DType::F8_E4M3: // S.1111.111 is NaN, there is no infinity
      while ((e[0] & 0x7f) == 0x7f)
        e[0] = uint8_t(r.range(0, 255));
      break;
    case DType::F8_E5M2: // exponent 11111
      while ((e[0] & 0x7c) == 0x7c)
        e[0] = uint8_t(r.range(0, 255));
      break;
    default:
      break;
    }
  }
  return out;
}

} // namespace

TEST_CASE("property: a widening cast and its narrowing inverse are the identity") {
  // Only widening casts are exact: every value of the narrow type is a value of the wide one,
  // so narrowing it back (round to nearest even) finds the same value. Subnormals and signed
  // zeros included; NaN payloads are not promised.
  Random r(1007);
  const std::pair<DType, DType> pairs[] = {{DType::BF16, DType::F32},    {DType::F16, DType::F32},
                                           {DType::F8_E4M3, DType::BF16}, {DType::F8_E4M3, DType::F32},
                                           {DType::F8_E5M2, DType::F16},  {DType::BF16, DType::F64}};
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    auto [narrow, wide] = r.pick(pairs);
    CAPTURE(dtypeName(narrow));
    CAPTURE(dtypeName(wide));
    Shape s = r.shape(int(r.range(1, 3)), 1, 7);
    Checkpoint in;
    in["bias"] = Tensor{TensorMeta{"bias", narrow, s}, finiteBytes(r, narrow, size_t(numElements(s)))};
    ConvertedBothWays t("  \"bias\" = cast(\"bias\", from: " + std::string(dtypeName(narrow)) + ", to: " + std::string(dtypeName(wide)) +
                    ")\n",
                in);
    CHECK(t.mcore.at("bias").meta.dtype == wide);
    checkIdentical(t.back, in);
  }
}

namespace {

/// Random F32 values in [lo, hi).
std::vector<float> uniformFloats(Random &r, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> out(n);
  for (float &f : out)
    f = d(r.gen());
  return out;
}

std::vector<uint8_t> asBytes(const std::vector<float> &v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtypeSize(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    if (dtype == DType::F32) {
      std::memcpy(out.data() + 4 * i, &bits, 4);
    } else { // BF16: truncate to a value BF16 holds exactly
      uint16_t top = uint16_t(bits >> 16);
      std::memcpy(out.data() + 2 * i, &top, 2);
    }
  }
  return out;
}

} // namespace

TEST_CASE("property: affine and its inverse are the identity where the arithmetic is exact") {
  // affine(x, shift: -1) computes x - 1 in F32; going back computes (x - 1) + 1. For x in
  // [0.5, 2] the subtraction is exact (Sterbenz: x and 1 are within a factor of two), and so
  // is adding 1 back, since the exact sum is x itself. In BF16 the difference, a multiple of
  // x's ulp below 1 in magnitude, also fits BF16's 8 significant bits. A power-of-two scale
  // only moves the exponent, so it is exact away from overflow and underflow.
  Random r(1008);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.coin() ? DType::F32 : DType::BF16;
    Shape s = r.shape(int(r.range(1, 2)), 1, 9);
    size_t n = size_t(numElements(s));
    bool shift = r.coin();
    std::vector<float> values = shift ? uniformFloats(r, n, 0.5f, 2.0f) : uniformFloats(r, n, -1000.0f, 1000.0f);
    if (shift) {
      values[0] = 0.5f;
      values[n - 1] = 2.0f;
    }
    Checkpoint in;
    in["norm"] = Tensor{TensorMeta{"norm", dtype, s}, asBytes(values, dtype)};
    ConvertedBothWays t(std::string("  \"norm\" = affine(\"norm\", ") + (shift ? "shift: -1" : "scale: 4") + ")\n", in);
    checkIdentical(t.back, in);
  }
}

TEST_CASE("property: a dropped copy comes back exactly, kept aside when it differs") {
  Random r(1009);
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    DType dtype = r.pick(kMoveTypes);
    Shape s = r.shape(2);
    bool same = r.coin();
    Checkpoint in;
    add(in, r.tensor("model.embed_tokens.weight", dtype, s));
    in["mtp.embed_tokens.weight"] = same ? Tensor{TensorMeta{"mtp.embed_tokens.weight", dtype, s}, in["model.embed_tokens.weight"].bytes}
                                         : r.tensor("mtp.embed_tokens.weight", dtype, s);
    ConvertedBothWays t(R"(  "embedding.word_embeddings.weight" = "model.embed_tokens.weight"
  drop hf "mtp.embed_tokens.weight" because "MTP shares the embedding" restore copy "model.embed_tokens.weight"
)",
                in);
    CHECK(t.mcore.size() == 1);
    CHECK(llvm::sys::fs::exists(t.dir / "out/ckptmap-stash") == !same);
    checkIdentical(t.back, in);
  }
}

TEST_CASE("property: a fill restores a dropped tensor that holds the stated value") {
  // mcore -> hf drops the bias; hf -> mcore fills it. The identity holds exactly when the
  // bias held the value the rule states, which is what the drop claims.
  Random r(1010);
  struct Filled {
    const char *value;
    uint32_t f32;
    uint16_t bf16, f16;
  };
  const Filled values[] = {{"0", 0x00000000, 0x0000, 0x0000},
                           {"1", 0x3f800000, 0x3f80, 0x3c00},
                           {"-2.5", 0xc0200000, 0xc020, 0xc100},
                           {"0.125", 0x3e000000, 0x3e00, 0x3000}};
  for (int i = 0; i < kCases; ++i) {
    CAPTURE(i);
    Filled v = r.pick(values);
    DType dtype = r.pick(std::vector<DType>{DType::F32, DType::BF16, DType::F16});
    int64_t n = r.range(1, 12);
    std::vector<uint8_t> bytes;
    for (int64_t k = 0; k < n; ++k) {
      uint8_t raw[4];
      if (dtype == DType::F32)
        std::memcpy(raw, &v.f32, 4);
      else
        std::memcpy(raw, dtype == DType::BF16 ? &v.bf16 : &v.f16, 2);
      bytes.insert(bytes.end(), raw, raw + dtypeSize(dtype));
    }
    Checkpoint in;
    add(in, r.tensor("output_layer.weight", r.pick(kMoveTypes), r.shape(2)));
    in["output_layer.bias"] = Tensor{TensorMeta{"output_layer.bias", dtype, {n}}, bytes};
    ConvertedBothWays t("  \"output_layer.weight\" = \"lm_head.weight\"\n"
                "  drop mcore \"output_layer.bias\" because \"HF's lm_head has no bias\" restore fill(" +
                    std::string(v.value) + ", [" + std::to_string(n) + "], " + std::string(dtypeName(dtype)) + ")\n",
                in, "mcore", "hf");
    CHECK(t.mcore.size() == 1);
    checkIdentical(t.back, in);
  }
}

namespace {

/// An I32 tensor whose elements count up from `base`, so every value says where it came from.
Tensor ids(std::string name, Shape shape, int32_t base = 0) {
  TensorMeta meta{std::move(name), DType::I32, std::move(shape)};
  std::vector<uint8_t> bytes(meta.byteSize());
  for (int64_t k = 0; k < meta.numel(); ++k) {
    int32_t v = base + int32_t(k);
    std::memcpy(bytes.data() + 4 * k, &v, 4);
  }
  return Tensor{meta, bytes};
}

std::vector<int32_t> values(const Tensor &t) {
  std::vector<int32_t> out(t.bytes.size() / 4);
  std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  return out;
}

std::vector<int32_t> rowsOf(const std::vector<int32_t> &v, int64_t cols, int64_t first, int64_t count) {
  return std::vector<int32_t>(v.begin() + first * cols, v.begin() + (first + count) * cols);
}

void append(std::vector<int32_t> &to, const std::vector<int32_t> &more) { to.insert(to.end(), more.begin(), more.end()); }

} // namespace

TEST_CASE("forward: qkv interleaves per group its query heads, key head, value head") {
  SUBCASE("one row per head, written out") {
    Checkpoint in;
    add(in, ids("q", {2}, 0));   // heads 0, 1
    add(in, ids("k", {2}, 10));  // groups 0, 1
    add(in, ids("v", {2}, 20));
    Checkpoint out = forward("  \"qkv\" = qkv(\"q\", \"k\", \"v\", heads: 2, groups: 2)\n", in);
    CHECK(values(out.at("qkv")) == std::vector<int32_t>{0, 10, 20, 1, 11, 21});
  }
  SUBCASE("gated, written out: per group its queries, then their gates") {
    Checkpoint in;
    add(in, ids("q", {4}, 0)); // HF: q0 g0 q1 g1
    add(in, ids("k", {1}, 10));
    add(in, ids("v", {1}, 20));
    Checkpoint out = forward("  \"qkv\" = qkv(\"q\", \"k\", \"v\", heads: 2, groups: 1, gate: true)\n", in);
    CHECK(values(out.at("qkv")) == std::vector<int32_t>{0, 2, 1, 3, 10, 20});
  }
  SUBCASE("against the layout computed row by row") {
    for (bool gate : {false, true}) {
      CAPTURE(gate);
      const int64_t groups = 3, perGroup = 2, d = 2, cols = 3, heads = groups * perGroup;
      Checkpoint in;
      add(in, ids("q", {heads * d * (gate ? 2 : 1), cols}, 0));
      add(in, ids("k", {groups * d, cols}, 1000));
      add(in, ids("v", {groups * d, cols}, 2000));
      Checkpoint out = forward("  \"qkv\" = qkv(\"q\", \"k\", \"v\", heads: 6, groups: 3" + std::string(gate ? ", gate: true" : "") + ")\n", in);
      std::vector<int32_t> q = values(in["q"]), k = values(in["k"]), v = values(in["v"]), expected;
      int64_t qStride = gate ? 2 * d : d;
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t h = g * perGroup; h < (g + 1) * perGroup; ++h)
          append(expected, rowsOf(q, cols, h * qStride, d));
        if (gate)
          for (int64_t h = g * perGroup; h < (g + 1) * perGroup; ++h)
            append(expected, rowsOf(q, cols, h * qStride + d, d));
        append(expected, rowsOf(k, cols, g * d, d));
        append(expected, rowsOf(v, cols, g * d, d));
      }
      CHECK(out.at("qkv").meta.shape == Shape{(heads * (gate ? 2 : 1) + 2 * groups) * d, cols});
      CHECK(values(out.at("qkv")) == expected);
    }
  }
}

TEST_CASE("forward: gated is [gate; up]") {
  Checkpoint in;
  add(in, ids("gate_proj", {2, 2}, 0));
  add(in, ids("up_proj", {2, 2}, 10));
  Checkpoint out = forward("  \"linear_fc1\" = gated(\"gate_proj\", \"up_proj\")\n", in);
  CHECK(out.at("linear_fc1").meta.shape == Shape{4, 2});
  CHECK(values(out.at("linear_fc1")) == std::vector<int32_t>{0, 1, 2, 3, 10, 11, 12, 13});
}

TEST_CASE("forward: concat along dim 1 joins rows side by side") {
  Checkpoint in;
  add(in, ids("a", {2, 2}, 0));
  add(in, ids("b", {2, 1}, 10));
  add(in, ids("c", {2, 3}, 20));
  Checkpoint out = forward("  \"abc\" = concat(1, \"a\" : 2, \"b\", \"c\" : 3)\n", in);
  CHECK(out.at("abc").meta.shape == Shape{2, 6});
  CHECK(values(out.at("abc")) == std::vector<int32_t>{0, 1, 10, 20, 21, 22, 2, 3, 11, 23, 24, 25});
}

TEST_CASE("forward: stack puts E = lo first") {
  Checkpoint in;
  for (int e = 0; e < 3; ++e)
    add(in, ids("experts." + std::to_string(e) + ".w", {2}, 10 * e));
  // Names sort experts.10 before experts.2 as text; the stack follows E, not the name order.
  for (int e = 10; e < 12; ++e)
    add(in, ids("experts." + std::to_string(e) + ".w", {2}, 10 * e));
  Checkpoint out = forward("  \"low\" = stack(E in 0 .. 3, \"experts.{E}.w\")\n"
                           "  \"high\" = stack(E in 10 .. 12, \"experts.{E}.w\")\n",
                           in);
  CHECK(out.at("low").meta.shape == Shape{3, 2});
  CHECK(values(out.at("low")) == std::vector<int32_t>{0, 1, 10, 11, 20, 21});
  CHECK(values(out.at("high")) == std::vector<int32_t>{100, 101, 110, 111});
}

TEST_CASE("forward: transpose") {
  Checkpoint in;
  add(in, ids("m", {2, 3}));
  add(in, ids("t", {2, 3, 4}));
  Checkpoint out = forward("  \"m_t\" = transpose(\"m\")\n  \"t_p\" = transpose(\"t\", perm: [2, 0, 1])\n", in);
  CHECK(out.at("m_t").meta.shape == Shape{3, 2});
  CHECK(values(out.at("m_t")) == std::vector<int32_t>{0, 3, 1, 4, 2, 5});
  // out[a][b][c] = in[b][c][a]
  CHECK(out.at("t_p").meta.shape == Shape{4, 2, 3});
  std::vector<int32_t> expected;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 3; ++c)
        expected.push_back(b * 12 + c * 4 + a);
  CHECK(values(out.at("t_p")) == expected);
}

TEST_CASE("forward: reshape keeps the bytes") {
  Checkpoint in;
  add(in, ids("conv", {8, 4}));
  Checkpoint out = forward("  \"conv\" = reshape(\"conv\", to: [8, 1, 4], from: [8, 4])\n", in);
  CHECK(out.at("conv").meta.shape == Shape{8, 1, 4});
  CHECK(out.at("conv").bytes == in["conv"].bytes);
}

TEST_CASE("forward: cast and affine values") {
  Checkpoint in;
  const uint16_t bf16[] = {0x3f80, 0xc040, 0x0001, 0x8000}; // 1, -3, the least subnormal, -0
  in["b"] = Tensor{TensorMeta{"b", DType::BF16, {4}}, std::vector<uint8_t>((const uint8_t *)bf16, (const uint8_t *)bf16 + 8)};
  const float f32[] = {1.0f, 2.0f, 0.5f, 0.0f};
  in["n"] = Tensor{TensorMeta{"n", DType::F32, {4}}, std::vector<uint8_t>((const uint8_t *)f32, (const uint8_t *)f32 + 16)};
  in["s"] = in["n"];
  in["s"].meta.name = "s";
  Checkpoint out = forward("  \"b\" = cast(\"b\", from: BF16, to: F32)\n"
                           "  \"n\" = affine(\"n\", shift: -1)\n"
                           "  \"s\" = affine(\"s\", scale: 2, shift: 1)\n",
                           in);
  auto floats = [](const Tensor &t) {
    std::vector<uint32_t> bits(t.bytes.size() / 4);
    std::memcpy(bits.data(), t.bytes.data(), t.bytes.size());
    return bits;
  };
  CHECK(out.at("b").meta.dtype == DType::F32);
  CHECK(floats(out.at("b")) == std::vector<uint32_t>{0x3f800000, 0xc0400000, 0x00010000, 0x80000000});
  std::vector<float> n(4), s(4);
  std::memcpy(n.data(), out.at("n").bytes.data(), 16);
  std::memcpy(s.data(), out.at("s").bytes.data(), 16);
  CHECK(n == std::vector<float>{0.0f, 1.0f, -0.5f, -1.0f});
  CHECK(s == std::vector<float>{3.0f, 5.0f, 2.0f, 1.0f});
}
