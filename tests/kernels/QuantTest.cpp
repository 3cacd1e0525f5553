// Quantizers on hand-computed inputs: every e2m1 decision point and its tie rule, zero blocks,
// the 2^-9 floor of the block scale, saturation, partial FP8 blocks, MXFP8 exponents, errors.
#include "Helpers.h"

#include "kernels/Quant.h"

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

using namespace ckptmap;
using ckptmap::test::B;
using ckptmap::test::F;
using ckptmap::test::pow2;

namespace {

struct Nvfp4Result {
  std::vector<uint8_t> packed, scales;
  float ws2 = -1;
  KernelStatus status;
};

template <class T>
Nvfp4Result nvfp4(const std::vector<T>& w, size_t rows, size_t cols, const QuantOptions& opt = {}) {
  Nvfp4Result r;
  r.packed.assign(rows * cols / 2, 0xCC);
  r.scales.assign(rows * cols / 16, 0xCC);
  r.status = cpu::quantizeNvfp4(w.data(), rows, cols, r.packed.data(), r.scales.data(), &r.ws2, opt);
  return r;
}

std::vector<float> dequantNvfp4(const Nvfp4Result& q, size_t rows, size_t cols) {
  std::vector<float> out(rows * cols);
  QuantRef ref{QuantFormat::Nvfp4, q.packed.data(), q.scales.data(), DType::F32, &q.ws2};
  REQUIRE(cpu::dequantize(ref, rows, cols, DType::F32, out.data()).ok());
  return out;
}

} // namespace

TEST_CASE("NVFP4 on hand-computed blocks") {
  // amax 10.5 gives ws2 = 10.5 / 2688 = 2^-8 exactly, so block scales and divisors are exact.
  std::vector<float> w(64, 0.0f);
  // Block 0: amax 6 -> s = 6 / (6 * 2^-8) = 256 (e4m3 0x78), divisor 256 * 2^-8 = 1: x == W.
  const float b0[16] = {0.25f, -0.25f, 0.75f, -0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f,
                        std::nextafter(0.25f, 1.0f), std::nextafter(0.75f, 0.0f), -1.75f, -5.0f, -0.1f, 0.0f};
  // Block 1: amax 10.5 -> s = 448 (0x7E), divisor 1.75.
  const float b1[16] = {10.5f, 1.75f, -3.5f, 0.4375f, 1.3125f, -10.5f, 2.625f, 6.125f,
                        8.75f, 0.0f,  0.0f,  0.0f,    0.0f,    0.0f,   0.0f,   0.0f};
  // Block 2: all zero -> s = 0 -> 1.0 (0x38).
  // Block 3: amax 3 * 2^-19 -> s = 2^-12, clamped to 2^-9 (0x01); divisor 2^-17.
  const float b3[4] = {pow2(-20), -pow2(-20), 3.0f * pow2(-19), pow2(-18)};
  for (int i = 0; i < 16; ++i) {
    w[i] = b0[i];
    w[16 + i] = b1[i];
  }
  for (int i = 0; i < 4; ++i)
    w[48 + i] = b3[i];

  const Nvfp4Result q = nvfp4(w, 1, 64);
  REQUIRE(q.status.ok());
  CHECK(q.ws2 == pow2(-8));
  CHECK(q.scales == std::vector<uint8_t>{0x78, 0x7E, 0x38, 0x01});
  // Block 0 codes: 0 8 2 10 | 2 4 4 6 | 6 7 1 1 | 12 14 8 0
  const std::vector<uint8_t> p0 = {0x80, 0xA2, 0x42, 0x64, 0x76, 0x11, 0xEC, 0x08};
  // Block 1: x = 6 1 -2 .25 | .75 -6 1.5 3.5 | 5 0... -> 7 2 12 0 | 2 15 3 6 | 6 0 ...
  const std::vector<uint8_t> p1 = {0x27, 0x0C, 0xF2, 0x63, 0x06, 0x00, 0x00, 0x00};
  // Block 3: x = .125 -.125 .75 .5 -> 0 8 2 1
  const std::vector<uint8_t> p3 = {0x80, 0x12, 0, 0, 0, 0, 0, 0};
  CHECK(std::vector<uint8_t>(q.packed.begin(), q.packed.begin() + 8) == p0);
  CHECK(std::vector<uint8_t>(q.packed.begin() + 8, q.packed.begin() + 16) == p1);
  CHECK(std::vector<uint8_t>(q.packed.begin() + 16, q.packed.begin() + 24) == std::vector<uint8_t>(8, 0));
  CHECK(std::vector<uint8_t>(q.packed.begin() + 24, q.packed.begin() + 32) == p3);

  const std::vector<float> d = dequantNvfp4(q, 1, 64);
  const float e0[16] = {0, 0, 1, -1, 1, 2, 2, 4, 4, 6, 0.5f, 0.5f, -2, -4, 0, 0};
  for (int i = 0; i < 16; ++i)
    CHECK(d[i] == e0[i]);
  CHECK(B(d[1]) == 0u); // code 8 dequantizes to +0
  CHECK(d[16] == 10.5f);
  CHECK(d[17] == 1.75f);
  CHECK(d[18] == -3.5f);
  CHECK(d[19] == 0.0f);
  CHECK(d[23] == 7.0f);
  CHECK(d[24] == 7.0f);
  for (int i = 32; i < 48; ++i)
    CHECK(d[i] == 0.0f);
  CHECK(d[48] == 0.0f);
  CHECK(d[50] == pow2(-17));
  CHECK(d[51] == pow2(-18));
}

TEST_CASE("NVFP4 from BF16 and F16 equals NVFP4 from the same values in F32") {
  const std::vector<float> w = ckptmap::test::normal(32 * 64, 21, 0.02f);
  std::vector<float> wr(w.size());
  const std::vector<bf16_t> wb = ckptmap::test::toBf16(w);
  for (size_t i = 0; i < w.size(); ++i)
    wr[i] = fp::bf16ToF32(wb[i].bits);
  const Nvfp4Result a = nvfp4(wb, 32, 64), b = nvfp4(wr, 32, 64);
  REQUIRE(a.status.ok());
  CHECK(a.packed == b.packed);
  CHECK(a.scales == b.scales);
  CHECK(B(a.ws2) == B(b.ws2));
  const std::vector<f16_t> wh = ckptmap::test::toF16(w);
  for (size_t i = 0; i < w.size(); ++i)
    wr[i] = fp::f16ToF32(wh[i].bits);
  const Nvfp4Result c = nvfp4(wh, 32, 64), e = nvfp4(wr, 32, 64);
  CHECK(c.packed == e.packed);
  CHECK(c.scales == e.scales);
}

TEST_CASE("NVFP4 global scale is amax / 2688 in F32, block scale amax_b / (6 * ws2)") {
  const std::vector<float> w = ckptmap::test::heavy(16 * 48, 4);
  const Nvfp4Result q = nvfp4(w, 16, 48);
  REQUIRE(q.status.ok());
  float amax = 0;
  for (float v : w)
    amax = std::max(amax, std::fabs(v));
  const float ws2 = amax / 2688.0f;
  CHECK(B(q.ws2) == B(ws2));
  for (size_t blk = 0; blk < w.size() / 16; ++blk) {
    float a = 0;
    for (size_t j = 0; j < 16; ++j)
      a = std::max(a, std::fabs(w[blk * 16 + j]));
    float s = a / (6.0f * ws2);
    if (s == 0)
      s = 1;
    s = std::max(s, pow2(-9));
    REQUIRE(q.scales[blk] == fp::f32ToE4m3(s)); // never beyond 448 here, so torch's cast agrees
    const float dv = fp::e4m3ToF32(q.scales[blk]) * ws2;
    for (size_t j = 0; j < 16; j += 2) {
      const uint8_t lo = fp::e2m1Encode(w[blk * 16 + j] / dv), hi = fp::e2m1Encode(w[blk * 16 + j + 1] / dv);
      REQUIRE(q.packed[blk * 8 + j / 2] == (lo | hi << 4));
    }
  }
}

TEST_CASE("NVFP4 degenerate and invalid inputs") {
  SUBCASE("all-zero tensor: ws2 = 0, scales 1.0, codes 0, dequantizes to zeros") {
    const std::vector<float> w(2 * 32, 0.0f);
    const Nvfp4Result q = nvfp4(w, 2, 32);
    REQUIRE(q.status.ok());
    CHECK(q.ws2 == 0.0f);
    CHECK(q.scales == std::vector<uint8_t>(4, 0x38));
    CHECK(q.packed == std::vector<uint8_t>(32, 0));
    for (float v : dequantNvfp4(q, 2, 32))
      CHECK(B(v) == 0u);
  }
  SUBCASE("negative zeros and tiny negatives") {
    std::vector<float> w(16, -0.0f);
    w[0] = 6.0f;
    w[1] = -0.01f; // x = -0.01 * 448 / 6 ... rounds to zero with the sign bit
    const Nvfp4Result q = nvfp4(w, 1, 16);
    REQUIRE(q.status.ok());
    CHECK((q.packed[0] & 0xF) == 7);
    CHECK((q.packed[0] >> 4) == 8);
    CHECK(q.packed[1] == 0);
  }
  SUBCASE("cols not divisible by 16") {
    const std::vector<float> w(40, 1.0f);
    std::vector<uint8_t> p(20), s(3);
    float g;
    CHECK(cpu::quantizeNvfp4(w.data(), 1, 40, p.data(), s.data(), &g).code() == KernelErrc::BadShape);
  }
  SUBCASE("NaN and Inf are errors naming the element") {
    std::vector<float> w(64, 1.0f);
    w[37] = NAN;
    w[50] = INFINITY;
    Nvfp4Result q = nvfp4(w, 2, 32);
    CHECK(q.status.code() == KernelErrc::NonFinite);
    CHECK(q.status.index() == 37);
    CHECK(q.status.message().find("row 1, col 5") != std::string::npos);
    w[37] = 1.0f;
    q = nvfp4(w, 2, 32);
    CHECK(q.status.index() == 50);
    CHECK(q.status.message().find("+Inf") != std::string::npos);
    std::vector<bf16_t> wb(32, bf16_t{0x3F80});
    wb[3].bits = 0xFF80; // -Inf
    CHECK(nvfp4(wb, 1, 32).status.index() == 3);
  }
  SUBCASE("a given global scale saturates block scales at 448 and codes at 6") {
    std::vector<float> w(16, 0.0f);
    w[0] = 10.5f;
    w[1] = -1.0f;
    QuantOptions opt;
    opt.globalScale = pow2(-12);
    const Nvfp4Result q = nvfp4(w, 1, 16, opt);
    REQUIRE(q.status.ok());
    CHECK(q.ws2 == pow2(-12));
    CHECK(q.scales[0] == 0x7E); // 10.5 / (6 * 2^-12) = 7168 -> 448
    // divisor 448 * 2^-12 = 0.109375: 10.5 -> 96 -> 6 (code 7); -1 -> -9.14 -> -6 (code 15)
    CHECK(q.packed[0] == 0xF7);
  }
}

TEST_CASE("NVFP4 dequantize of NaN scales and the output dtypes") {
  const uint8_t packed[8] = {0x21, 0x43, 0x65, 0x87, 0xA9, 0xCB, 0xED, 0x0F};
  const uint8_t scales[1] = {0x7F};
  const float ws2 = 1.0f;
  float out[16];
  QuantRef ref{QuantFormat::Nvfp4, packed, scales, DType::F32, &ws2};
  REQUIRE(cpu::dequantize(ref, 1, 16, DType::F32, out).ok());
  for (float v : out)
    CHECK(std::isnan(v));
  const uint8_t s2[1] = {0x38}; // 1.0
  const float g = 0.1f;
  ref.scale = s2;
  ref.globalScale = &g;
  uint16_t bf[16], hf[16];
  REQUIRE(cpu::dequantize(ref, 1, 16, DType::F32, out).ok());
  REQUIRE(cpu::dequantize(ref, 1, 16, DType::BF16, bf).ok());
  REQUIRE(cpu::dequantize(ref, 1, 16, DType::F16, hf).ok());
  const float vals[16] = {0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6, 0};
  for (int i = 0; i < 16; ++i) {
    CHECK(out[i] == vals[i] * 0.1f);
    CHECK(bf[i] == fp::f32ToBf16(out[i]));
    CHECK(hf[i] == fp::f32ToF16(out[i]));
  }
  CHECK(cpu::dequantize(ref, 1, 16, DType::I32, out).code() == KernelErrc::UnsupportedDType);
}

TEST_CASE("FP8 per tensor") {
  std::vector<float> w = {448.0f, -224.0f, 1.0f, 0.5f, 465.0f * 0.0f, 300.0f, -0.001f, 1e-6f};
  std::vector<uint8_t> q(w.size());
  float scale = -1;
  REQUIRE(cpu::quantizeFp8(w.data(), w.size(), q.data(), &scale).ok());
  CHECK(scale == 1.0f);
  CHECK(q == std::vector<uint8_t>{0x7E, 0xF6, 0x38, 0x30, 0x00, fp::f32ToE4m3(300.0f), fp::f32ToE4m3(-0.001f), 0x00});
  w[0] = 896.0f;
  w[2] = 3.0f;
  REQUIRE(cpu::quantizeFp8(w.data(), w.size(), q.data(), &scale).ok());
  CHECK(scale == 2.0f);
  CHECK(q[0] == 0x7E);
  CHECK(q[2] == 0x3C); // 1.5
  std::vector<float> zero(5, 0.0f);
  REQUIRE(cpu::quantizeFp8(zero.data(), zero.size(), q.data(), &scale).ok());
  CHECK(scale == 1.0f);
  std::vector<float> bad = {1.0f, NAN};
  CHECK(cpu::quantizeFp8(bad.data(), 2, q.data(), &scale).index() == 1);
  // Dequantize: F32 product, then one rounding.
  const uint8_t codes[3] = {0x7E, 0x39, 0xFF};
  const float s = 0.3f;
  float out[3];
  QuantRef ref{QuantFormat::Fp8Tensor, codes, &s};
  REQUIRE(cpu::dequantize(ref, 1, 3, DType::F32, out).ok());
  CHECK(out[0] == 448.0f * 0.3f);
  CHECK(out[1] == 1.125f * 0.3f);
  CHECK(std::isnan(out[2]));
}

TEST_CASE("FP8 128x128 blocks with partial edge blocks (200 x 300)") {
  const size_t rows = 200, cols = 300, gr = 2, gc = 3;
  std::vector<float> w = ckptmap::test::heavy(rows * cols, 17);
  // One all-zero block (rows 128.., cols 256..) and one tiny block.
  for (size_t r = 128; r < rows; ++r)
    for (size_t c = 256; c < cols; ++c)
      w[r * cols + c] = 0.0f;
  for (size_t r = 0; r < 128; ++r)
    for (size_t c = 128; c < 256; ++c)
      w[r * cols + c] *= 1e-30f;
  for (DType st : {DType::F32, DType::BF16}) {
    CAPTURE(dtypeName(st));
    std::vector<uint8_t> q(rows * cols);
    std::vector<float> sf(gr * gc);
    std::vector<uint16_t> sb(gr * gc);
    void* scale = st == DType::F32 ? static_cast<void*>(sf.data()) : static_cast<void*>(sb.data());
    REQUIRE(cpu::quantizeFp8Block(w.data(), rows, cols, q.data(), st, scale).ok());
    // Element-wise reference.
    std::vector<float> amax(gr * gc, 0.0f);
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) {
        float& a = amax[(r / 128) * gc + c / 128];
        a = std::max(a, std::fabs(w[r * cols + c]));
      }
    std::vector<float> scales(gr * gc);
    for (size_t i = 0; i < gr * gc; ++i) {
      float s = amax[i] / 448.0f;
      if (st == DType::BF16)
        s = fp::bf16ToF32(fp::f32ToBf16(s));
      if (s == 0)
        s = 1.0f;
      scales[i] = s;
      if (st == DType::F32)
        CHECK(B(sf[i]) == B(s));
      else
        CHECK(sb[i] == fp::f32ToBf16(s));
    }
    CHECK(scales[gc + 2] == 1.0f);
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) {
        const float s = scales[(r / 128) * gc + c / 128];
        REQUIRE(q[r * cols + c] == fp::f32ToE4m3Sat(w[r * cols + c] / s));
      }
    // Dequantize as DeepSeek's weight_dequant: F32 product, then BF16.
    std::vector<uint16_t> out(rows * cols);
    QuantRef ref{QuantFormat::Fp8Block, q.data(), scale, st};
    REQUIRE(cpu::dequantize(ref, rows, cols, DType::BF16, out.data()).ok());
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) {
        const float s = scales[(r / 128) * gc + c / 128];
        REQUIRE(out[r * cols + c] == fp::f32ToBf16(fp::e4m3ToF32(q[r * cols + c]) * s));
      }
  }
  std::vector<uint8_t> q(rows * cols);
  std::vector<float> sf(gr * gc);
  CHECK(cpu::quantizeFp8Block(w.data(), rows, cols, q.data(), DType::F16, sf.data()).code() ==
        KernelErrc::UnsupportedDType);
  w[250 * 0 + 299] = -INFINITY;
  CHECK(cpu::quantizeFp8Block(w.data(), rows, cols, q.data(), DType::F32, sf.data()).index() == 299);
}

TEST_CASE("MXFP8 shared exponents") {
  std::vector<float> w(4 * 32, 0.0f);
  w[0] = 1.0f;   // block 0: amax 1 -> e = 0 - 8 + 127 = 119, X = 2^-8
  w[1] = -0.5f;
  w[32] = 1.9f;  // block 1: amax 1.9 -> X = 2^-8 too; 1.9 * 256 = 486.4 saturates at 448
  w[33] = 1.0f;
  w[64 + 5] = pow2(-130); // block 2: subnormal amax -> e clamps to 0 (X = 2^-127)
  // block 3: all zero -> e = 0
  std::vector<uint8_t> q(w.size()), s(4);
  REQUIRE(cpu::quantizeMxfp8(w.data(), 4, 32, q.data(), s.data()).ok());
  CHECK(s == std::vector<uint8_t>{119, 119, 0, 0});
  CHECK(q[0] == 0x78);  // 256
  CHECK(q[1] == 0xF0);  // -128
  CHECK(q[32] == 0x7E); // 448 (saturated)
  CHECK(q[33] == 0x78);
  CHECK(q[69] == 0x20); // 2^-130 / 2^-127 = 2^-3
  std::vector<float> huge(32, 0.0f);
  huge[7] = pow2(127);
  std::vector<uint8_t> hq(32), hs(1);
  REQUIRE(cpu::quantizeMxfp8(huge.data(), 1, 32, hq.data(), hs.data()).ok());
  CHECK(hs[0] == 246);
  CHECK(hq[7] == 0x78);
  // Dequantize: fp8 * 2^(e-127); NaN exponent gives NaN.
  std::vector<float> out(w.size());
  QuantRef ref{QuantFormat::Mxfp8, q.data(), s.data()};
  REQUIRE(cpu::dequantize(ref, 4, 32, DType::F32, out.data()).ok());
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == -0.5f);
  CHECK(out[32] == 1.75f);
  CHECK(out[69] == pow2(-130));
  s[0] = 0xFF;
  REQUIRE(cpu::dequantize(ref, 4, 32, DType::F32, out.data()).ok());
  CHECK(std::isnan(out[0]));
  CHECK(std::isnan(out[5])); // 0 * NaN
  CHECK(cpu::quantizeMxfp8(w.data(), 2, 48, q.data(), s.data()).code() == KernelErrc::BadShape);
}

TEST_CASE("quantShapes") {
  QuantShapes sh;
  REQUIRE(quantShapes(QuantFormat::Nvfp4, 10, 64, sh).ok());
  CHECK(sh.dataType == DType::U8);
  CHECK(sh.dataBytes() == 320);
  CHECK(sh.scaleCount() == 40);
  CHECK(sh.hasGlobalScale);
  REQUIRE(quantShapes(QuantFormat::Fp8Block, 200, 300, sh).ok());
  CHECK(sh.scaleRows == 2);
  CHECK(sh.scaleCols == 3);
  CHECK(sh.scaleBytes() == 24);
  REQUIRE(quantShapes(QuantFormat::Fp8Block, 200, 300, sh, DType::BF16).ok());
  CHECK(sh.scaleBytes() == 12);
  CHECK(quantShapes(QuantFormat::Fp8Block, 200, 300, sh, DType::F16).code() == KernelErrc::UnsupportedDType);
  REQUIRE(quantShapes(QuantFormat::Mxfp8, 3, 64, sh).ok());
  CHECK(sh.scaleCount() == 6);
  REQUIRE(quantShapes(QuantFormat::Fp8Tensor, 3, 5, sh).ok());
  CHECK(sh.scaleCount() == 1);
  CHECK(quantShapes(QuantFormat::Nvfp4, 1, 8, sh).code() == KernelErrc::BadShape);
}

TEST_CASE("compressed-tensors global scales") {
  CHECK(invertGlobalScale(0.25f) == 4.0f);
  CHECK(globalScaleRoundTrips(pow2(-8)));
  CHECK(globalScaleRoundTrips(3.0f) == (1.0f / (1.0f / 3.0f) == 3.0f));
  // Where 1/(1/x) != x, no float g has 1/g == x: the nearest float to 1/x is the only candidate
  // (checked here over a slice of realistic weight_scale_2 values, exhaustively offline).
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> amax(1e-3f, 50.0f);
  int trips = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float ws2 = amax(gen) / 2688.0f;
    const float g = invertGlobalScale(ws2);
    if (globalScaleRoundTrips(ws2)) {
      ++trips;
      continue;
    }
    for (int d = -3; d <= 3; ++d)
      REQUIRE(invertGlobalScale(test::F(B(g) + static_cast<uint32_t>(d))) != ws2);
  }
  MESSAGE("1/(1/x) == x for " << trips << " of " << n << " weight_scale_2 values");
  CHECK(trips > n * 3 / 4);
  CHECK(trips < n);
}
