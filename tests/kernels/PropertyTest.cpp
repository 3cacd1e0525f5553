// Properties on seeded random shapes and data: dequant(quant(x)) within the format's error
// bound, results independent of the thread count, experts = per-expert calls, requantize =
// dequantize + quantize, and the facts about the reference arithmetic the GPU's shortcuts
// rest on.
#include "Helpers.h"

#include "kernels/Quant.h"
#include "kernels/QuantMath.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace ckptmap;
using ckptmap::test::pow2;

namespace {

/// Owns the parts of a quantized [E, rows, cols] stack.
struct Quantized {
  QuantFormat format;
  DType scaleType;
  std::vector<uint8_t> data, scale;
  std::vector<float> global;

  Quantized(QuantFormat f, size_t experts, size_t rows, size_t cols, DType st = DType::F32)
      : format(f), scaleType(st) {
    QuantShapes sh;
    REQUIRE(quantShapes(f, rows, cols, sh, st).ok());
    data.assign(experts * sh.dataBytes(), 0xAB);
    scale.assign(experts * sh.scaleBytes(), 0xAB);
    global.assign(experts, -1.0f);
  }
  QuantOut out() { return {format, data.data(), scale.data(), scaleType, global.data()}; }
  QuantRef ref() const { return {format, data.data(), scale.data(), scaleType, global.data()}; }
  bool operator==(const Quantized& o) const {
    return data == o.data && scale == o.scale &&
           std::memcmp(global.data(), o.global.data(), global.size() * 4) == 0;
  }
};

struct Shape {
  size_t rows, cols;
};

Shape randomShape(std::mt19937& gen, QuantFormat f) {
  std::uniform_int_distribution<size_t> r(1, 300);
  const size_t group = f == QuantFormat::Nvfp4 ? 16 : f == QuantFormat::Mxfp8 ? 32 : 1;
  std::uniform_int_distribution<size_t> c(1, 400 / group);
  return {r(gen), c(gen) * group};
}

std::vector<float> randomData(std::mt19937& gen, size_t n) {
  switch (gen() % 4) {
  case 0: return ckptmap::test::normal(n, gen(), 0.02f);
  case 1: return ckptmap::test::heavy(n, gen());
  case 2: {
    std::vector<float> v = ckptmap::test::normal(n, gen(), 3.0f);
    for (size_t i = 0; i < n; i += 7)
      v[i] = 0.0f; // zero runs make zero blocks in narrow shapes
    return v;
  }
  default: return ckptmap::test::normal(n, gen(), 1e-20f);
  }
}

/// The bound each format guarantees for |W - dequant(quant(W))| at element i.
struct Bound {
  const Quantized& q;
  size_t rows, cols;
  double operator()(size_t i, float w) const {
    const double a = std::fabs(static_cast<double>(w));
    switch (q.format) {
    case QuantFormat::Nvfp4: {
      // Half the widest e2m1 gap (between 4 and 6) times the block divisor, or the clipping
      // error beyond 6 * d (a subnormal block scale can round down by up to half).
      const double d = fp::e4m3ToF32(q.scale[i / 16]) * static_cast<double>(q.global[0]);
      return std::max(d, a - 6.0 * d) + 1e-30;
    }
    case QuantFormat::Fp8Tensor: {
      float s;
      std::memcpy(&s, q.scale.data(), 4);
      return a * 0.0625 + s * std::ldexp(1.0, -10) + 1e-30;
    }
    case QuantFormat::Fp8Block: {
      const size_t gc = (cols + 127) / 128;
      const size_t si = (i / cols / 128) * gc + (i % cols) / 128;
      double s;
      if (q.scaleType == DType::BF16) {
        uint16_t b;
        std::memcpy(&b, q.scale.data() + si * 2, 2);
        s = fp::bf16ToF32(b);
      } else {
        float f;
        std::memcpy(&f, q.scale.data() + si * 4, 4);
        s = f;
      }
      // A BF16 scale can be below amax / 448, so the largest values may saturate.
      return std::max(a * 0.0625 + s * std::ldexp(1.0, -10), a - 448.0 * s) + 1e-30;
    }
    case QuantFormat::Mxfp8: {
      const double x = fp::e8m0ToF32(q.scale[i / 32]);
      return std::max(a * 0.0625 + x * std::ldexp(1.0, -10), a - 448.0 * x) + 1e-30;
    }
    }
    return 0;
  }
};

const QuantFormat kFormats[] = {QuantFormat::Nvfp4, QuantFormat::Fp8Tensor, QuantFormat::Fp8Block,
                                QuantFormat::Mxfp8};

} // namespace

TEST_CASE("dequant(quant(x)) stays within the format's error bound (seeded random shapes)") {
  std::mt19937 gen(2024);
  for (QuantFormat f : kFormats) {
    for (int iter = 0; iter < 12; ++iter) {
      const Shape sh = randomShape(gen, f);
      const DType st = (f == QuantFormat::Fp8Block && iter % 2) ? DType::BF16 : DType::F32;
      CAPTURE(quantFormatName(f));
      CAPTURE(sh.rows);
      CAPTURE(sh.cols);
      std::vector<float> w = randomData(gen, sh.rows * sh.cols);
      const bool bf16 = iter % 3 == 0;
      if (bf16)
        for (float& v : w)
          v = fp::bf16ToF32(fp::f32ToBf16(v));
      Quantized q(f, 1, sh.rows, sh.cols, st);
      if (bf16) {
        const std::vector<bf16_t> wb = ckptmap::test::toBf16(w);
        REQUIRE(cpu::quantize(DType::BF16, wb.data(), sh.rows, sh.cols, q.out()).ok());
      } else {
        REQUIRE(cpu::quantize(DType::F32, w.data(), sh.rows, sh.cols, q.out()).ok());
      }
      std::vector<float> back(w.size());
      REQUIRE(cpu::dequantize(q.ref(), sh.rows, sh.cols, DType::F32, back.data()).ok());
      const Bound bound{q, sh.rows, sh.cols};
      for (size_t i = 0; i < w.size(); ++i) {
        CAPTURE(i);
        CAPTURE(w[i]);
        CAPTURE(back[i]);
        REQUIRE(std::fabs(static_cast<double>(w[i]) - back[i]) <= bound(i, w[i]) * (1 + 1e-6));
      }
    }
  }
}

TEST_CASE("quantizer results do not depend on the thread count") {
  std::mt19937 gen(99);
  for (QuantFormat f : kFormats) {
    const size_t rows = 700, cols = 512; // several parallel chunks
    const std::vector<float> w = randomData(gen, rows * cols);
    Quantized a(f, 1, rows, cols), b(f, 1, rows, cols);
    QuantOptions one, many;
    many.exec.threads = 5;
    REQUIRE(cpu::quantize(DType::F32, w.data(), rows, cols, a.out(), one).ok());
    REQUIRE(cpu::quantize(DType::F32, w.data(), rows, cols, b.out(), many).ok());
    CHECK(a == b);
    std::vector<uint16_t> da(w.size()), db(w.size());
    REQUIRE(cpu::dequantize(a.ref(), rows, cols, DType::BF16, da.data(), Exec{1}).ok());
    REQUIRE(cpu::dequantize(a.ref(), rows, cols, DType::BF16, db.data(), Exec{6}).ok());
    CHECK(da == db);
  }
}

TEST_CASE("quantizeExperts = one quantize per expert, with per-expert global scales") {
  std::mt19937 gen(5);
  for (QuantFormat f : kFormats) {
    const size_t experts = 3, rows = 40, cols = 64;
    std::vector<float> w = randomData(gen, experts * rows * cols);
    for (size_t i = rows * cols; i < 2 * rows * cols; ++i)
      w[i] *= 100.0f; // a different global scale for expert 1
    const std::vector<bf16_t> wb = ckptmap::test::toBf16(w);
    Quantized all(f, experts, rows, cols, DType::BF16);
    REQUIRE(cpu::quantizeExperts(DType::BF16, wb.data(), experts, rows, cols, all.out()).ok());
    for (size_t e = 0; e < experts; ++e) {
      Quantized one(f, 1, rows, cols, DType::BF16);
      REQUIRE(cpu::quantize(DType::BF16, wb.data() + e * rows * cols, rows, cols, one.out()).ok());
      CHECK(std::equal(one.data.begin(), one.data.end(), all.data.begin() + e * one.data.size()));
      CHECK(std::equal(one.scale.begin(), one.scale.end(), all.scale.begin() + e * one.scale.size()));
      if (f == QuantFormat::Nvfp4)
        CHECK(one.global[0] == all.global[e]);
      std::vector<float> d1(rows * cols), dall(experts * rows * cols);
      REQUIRE(cpu::dequantize(one.ref(), rows, cols, DType::F32, d1.data()).ok());
      REQUIRE(cpu::dequantizeExperts(all.ref(), experts, rows, cols, DType::F32, dall.data()).ok());
      CHECK(std::memcmp(d1.data(), dall.data() + e * rows * cols, d1.size() * 4) == 0);
    }
    if (f == QuantFormat::Nvfp4)
      CHECK(all.global[1] > 50 * all.global[0]);
    w[2 * rows * cols + 17] = NAN;
    const KernelStatus s = cpu::quantizeExperts(DType::F32, w.data(), experts, rows, cols, all.out());
    CHECK(s.code() == KernelErrc::NonFinite);
    CHECK(s.index() == 17);
    CHECK(s.message().rfind("expert 2: ", 0) == 0);
  }
}

TEST_CASE("requantize equals dequantize then quantize") {
  std::mt19937 gen(8);
  const size_t rows = 200, cols = 320;
  const std::vector<float> w = randomData(gen, rows * cols);
  Quantized block(QuantFormat::Fp8Block, 1, rows, cols);
  REQUIRE(cpu::quantize(DType::F32, w.data(), rows, cols, block.out()).ok());
  for (DType via : {DType::F32, DType::BF16}) {
    for (QuantFormat to : kFormats) {
      Quantized one(to, 1, rows, cols), two(to, 1, rows, cols);
      REQUIRE(cpu::requantize(block.ref(), rows, cols, one.out(), {}, via).ok());
      std::vector<uint8_t> tmp(rows * cols * dtypeSize(via));
      REQUIRE(cpu::dequantize(block.ref(), rows, cols, via, tmp.data()).ok());
      REQUIRE(cpu::quantize(via, tmp.data(), rows, cols, two.out()).ok());
      CHECK(one == two);
    }
  }
  // A NaN code in the source is reported by the quantizer.
  block.data[5] = 0x7F;
  Quantized out(QuantFormat::Nvfp4, 1, rows, cols);
  CHECK(cpu::requantize(block.ref(), rows, cols, out.out()).code() == KernelErrc::NonFinite);
}

TEST_CASE("amax is exact and reports the first non-finite element") {
  std::vector<float> w = ckptmap::test::heavy(100000, 3);
  float ref = 0;
  for (float v : w)
    ref = std::max(ref, std::fabs(v));
  float got = 0;
  REQUIRE(cpu::amax(w.data(), w.size(), got, 0, Exec{4}).ok());
  CHECK(got == ref);
  w[77777] = -INFINITY;
  w[99999] = NAN;
  CHECK(cpu::amax(w.data(), w.size(), got, 0, Exec{4}).index() == 77777);
}

namespace {

/// The float k steps from positive finite x (k may be negative).
float stepsFrom(float x, int k) { return fp::floatOf(static_cast<uint32_t>(static_cast<int64_t>(fp::bitsOf(x)) + k)); }

/// Whether every float within `steps` float steps of q > 0 has q's saturating e4m3 code: no
/// e4m3 rounding boundary lies that close.
bool farFromE4m3Boundary(float q, int steps) {
  const uint8_t code = fp::f32ToE4m3Sat(q);
  for (int k = -steps; k <= steps; ++k)
    if (fp::f32ToE4m3Sat(stepsFrom(q, k)) != code)
      return false;
  return true;
}

} // namespace

// The GPU quantizers replace each division by a product with a reciprocal (kernels/cuda/
// QuantCodes.cuh) and rely on these facts about the reference arithmetic, checked here on
// quotients placed near every e4m3 rounding boundary and near underflow.
TEST_CASE("a product with the reciprocal has the quotient's e4m3 code away from boundaries, and zero's") {
  std::mt19937 gen(12);
  std::uniform_real_distribution<float> unit(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-60, 60), offset(-16, 16);
  size_t far = 0, zero = 0;
  for (int trial = 0; trial < 200000; ++trial) {
    const float s = std::ldexp(unit(gen), exponent(gen)), r = 1.0f / s;
    if (!(r >= 0x1p-126f && r < INFINITY))
      continue;
    // A quotient a few float steps from an e4m3 midpoint (or from a representable value).
    const uint8_t code = static_cast<uint8_t>(gen() % 0x7E);
    const float at = gen() % 2 ? (fp::e4m3ToF32(code) + fp::e4m3ToF32(uint8_t(code + 1))) / 2 : fp::e4m3ToF32(code);
    if (at <= 0.0f)
      continue;
    const float w = (gen() % 2 ? 1.0f : -1.0f) * stepsFrom(at * s, offset(gen));
    const float q = w * r;
    if (std::fabs(q) >= 0x1p-6f && farFromE4m3Boundary(std::fabs(q), 8)) {
      ++far;
      CAPTURE(w);
      CAPTURE(s);
      REQUIRE(qmath::fp8Quant(w, s) == fp::f32ToE4m3Sat(q));
      // NVFP4's block scale is the same quotient of a block amax (no clamp applies above 2^-6).
      REQUIRE(qmath::nvfp4BlockScale(std::fabs(w), s) == fp::f32ToE4m3Sat(std::fabs(q)));
    }
    // A product that underflows to zero: the code is a zero of w's sign.
    const float tiny = (gen() % 2 ? 1.0f : -1.0f) * fp::floatOf(1 + static_cast<uint32_t>(gen() % 64));
    if (tiny * r == 0.0f) {
      ++zero;
      CAPTURE(tiny);
      CAPTURE(s);
      REQUIRE(qmath::fp8Quant(tiny, s) == (std::signbit(tiny) ? 0x80 : 0x00));
    }
  }
  // Both claims were exercised, the first also next to boundaries (offsets up to 16 steps).
  CHECK(far > 50000);
  CHECK(zero > 10000);
}
