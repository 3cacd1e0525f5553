// Scalar conversions: hand-checked cases (ties, subnormals, max, overflow, NaN) and exhaustive
// sweeps over the small formats.
#include "Helpers.h"

#include "kernels/Float.h"

#include <doctest/doctest.h>

#include <cmath>

using namespace ckptmap;
using namespace ckptmap::fp;
using ckptmap::test::B;
using ckptmap::test::D;
using ckptmap::test::F;
using ckptmap::test::pow2;

TEST_CASE("f32 -> bf16 rounds to nearest even") {
  CHECK(f32ToBf16(1.0f) == 0x3F80);
  CHECK(f32ToBf16(-2.0f) == 0xC000);
  CHECK(f32ToBf16(F(0x3F808000)) == 0x3F80); // tie, even stays
  CHECK(f32ToBf16(F(0x3F818000)) == 0x3F82); // tie, odd goes up
  CHECK(f32ToBf16(F(0x3F808001)) == 0x3F81); // above the tie
  CHECK(f32ToBf16(F(0x3F807FFF)) == 0x3F80); // below the tie
  CHECK(f32ToBf16(F(0x7F7F7FFF)) == 0x7F7F); // bf16 max
  CHECK(f32ToBf16(F(0x7F7F8000)) == 0x7F80); // tie at the top rounds to Inf
  CHECK(f32ToBf16(F(0x7F7FFFFF)) == 0x7F80); // FLT_MAX overflows
  CHECK(f32ToBf16(-F(0x7F7FFFFF)) == 0xFF80);
  CHECK(f32ToBf16(INFINITY) == 0x7F80);
  CHECK(f32ToBf16(-INFINITY) == 0xFF80);
  CHECK(f32ToBf16(-0.0f) == 0x8000);
  // Subnormals: bf16 has F32's exponent range, its subnormals are F32's top 7 mantissa bits.
  CHECK(f32ToBf16(F(0x00010000)) == 0x0001);
  CHECK(f32ToBf16(F(0x00008000)) == 0x0000); // tie to even 0
  CHECK(f32ToBf16(F(0x00018000)) == 0x0002); // tie to even 2
  CHECK(f32ToBf16(F(0x00000001)) == 0x0000);
  CHECK(f32ToBf16(F(0x007FFFFF)) == 0x0080); // largest subnormal rounds up to the smallest normal
  // NaN stays NaN, quiet, sign kept.
  CHECK(f32ToBf16(F(0x7FC00000)) == 0x7FC0);
  CHECK(f32ToBf16(F(0xFFC00000)) == 0xFFC0);
  CHECK(f32ToBf16(F(0x7F800001)) == 0x7FC0); // signalling NaN whose payload is all below bf16
  CHECK(f32ToBf16(F(0x7F810000)) == 0x7FC1);
}

TEST_CASE("bf16 -> f32 -> bf16 is the identity on all 65536 patterns; NaN stays NaN") {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16ToF32(static_cast<uint16_t>(b));
    CHECK(B(f) == b << 16);
    const uint16_t back = f32ToBf16(f);
    const bool nan = (b & 0x7F80) == 0x7F80 && (b & 0x7F);
    if (nan) {
      REQUIRE(std::isnan(bf16ToF32(back)));
      REQUIRE((back & 0x8000) == (b & 0x8000));
      REQUIRE((back | 0x40) == (b | 0x40)); // only the quiet bit may change
    } else {
      REQUIRE(back == b);
    }
  }
}

TEST_CASE("f32 <-> f16 with subnormals and Inf") {
  CHECK(f32ToF16(1.0f) == 0x3C00);
  CHECK(f32ToF16(65504.0f) == 0x7BFF);
  CHECK(f32ToF16(65519.996f) == 0x7BFF);
  CHECK(f32ToF16(65520.0f) == 0x7C00); // tie above the max: to even, which is Inf
  CHECK(f32ToF16(-1e6f) == 0xFC00);
  CHECK(f32ToF16(pow2(-14)) == 0x0400);
  CHECK(f32ToF16(pow2(-24)) == 0x0001);
  CHECK(f32ToF16(pow2(-25)) == 0x0000);                 // tie to even 0
  CHECK(f32ToF16(1.5f * pow2(-25)) == 0x0001);
  CHECK(f32ToF16(3.0f * pow2(-25)) == 0x0002);          // 1.5 quanta: tie to even 2
  CHECK(f32ToF16(F(0x3F801000)) == 0x3C00);             // 1 + 2^-11: tie, even
  CHECK(f32ToF16(F(0x3F803000)) == 0x3C02);             // 1 + 3*2^-11: tie, odd up
  CHECK(f32ToF16(F(0x7FC00000)) == 0x7E00);
  CHECK(f32ToF16(F(0xFFC00000)) == 0xFE00);
  CHECK(f16ToF32(0x0001) == pow2(-24));
  CHECK(f16ToF32(0x03FF) == 1023.0f * pow2(-24));
  CHECK(f16ToF32(0x7BFF) == 65504.0f);
  CHECK(f16ToF32(0x7C00) == INFINITY);
  CHECK(f16ToF32(0xFC00) == -INFINITY);
  CHECK(std::isnan(f16ToF32(0x7E00)));
  CHECK(B(f16ToF32(0x8000)) == 0x80000000u);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f))
      continue;
    REQUIRE(f32ToF16(f) == h);
    REQUIRE(f64ToF16(static_cast<double>(f)) == h);
  }
}

TEST_CASE("f32 -> e4m3fn: ties, subnormals, 448, overflow to NaN") {
  CHECK(f32ToE4m3(1.0f) == 0x38);
  CHECK(f32ToE4m3(1.0625f) == 0x38); // tie, even
  CHECK(f32ToE4m3(1.1875f) == 0x3A); // tie, odd up
  CHECK(f32ToE4m3(-2.0f) == 0xC0);
  CHECK(f32ToE4m3(448.0f) == 0x7E);
  CHECK(f32ToE4m3(464.0f) == 0x7E); // tie between 448 and the NaN slot: even 448
  CHECK(f32ToE4m3(std::nextafter(464.0f, 1000.0f)) == 0x7F);
  CHECK(f32ToE4m3(-std::nextafter(464.0f, 1000.0f)) == 0xFF);
  CHECK(f32ToE4m3(480.0f) == 0x7F);
  CHECK(f32ToE4m3(1e30f) == 0x7F);
  CHECK(f32ToE4m3(INFINITY) == 0x7F);
  CHECK(f32ToE4m3(-INFINITY) == 0xFF);
  CHECK(f32ToE4m3(F(0x7FC00000)) == 0x7F);
  CHECK(f32ToE4m3(F(0xFFC00000)) == 0xFF);
  CHECK(f32ToE4m3(pow2(-6)) == 0x08);           // smallest normal
  CHECK(f32ToE4m3(7.0f * pow2(-9)) == 0x07);    // largest subnormal
  CHECK(f32ToE4m3(7.5f * pow2(-9)) == 0x08);    // tie between them: even is the normal
  CHECK(f32ToE4m3(pow2(-9)) == 0x01);
  CHECK(f32ToE4m3(pow2(-10)) == 0x00);          // tie to even 0
  CHECK(f32ToE4m3(-pow2(-10)) == 0x80);
  CHECK(f32ToE4m3(1.5f * pow2(-10)) == 0x01);
  CHECK(f32ToE4m3(3.0f * pow2(-10)) == 0x02);   // 1.5 quanta: tie to even 2
  CHECK(f32ToE4m3(F(1)) == 0x00);
  // Saturating variant.
  CHECK(f32ToE4m3Sat(448.0f) == 0x7E);
  CHECK(f32ToE4m3Sat(464.0f) == 0x7E);
  CHECK(f32ToE4m3Sat(std::nextafter(464.0f, 1000.0f)) == 0x7E);
  CHECK(f32ToE4m3Sat(-1e30f) == 0xFE);
  CHECK(f32ToE4m3Sat(INFINITY) == 0x7E);
  CHECK(f32ToE4m3Sat(-INFINITY) == 0xFE);
  CHECK(f32ToE4m3Sat(F(0x7FC00000)) == 0x7F);
  CHECK(f32ToE4m3Sat(1.0f) == 0x38);
}

TEST_CASE("e4m3fn -> f32 and round trip of all 256 codes") {
  CHECK(e4m3ToF32(0x7E) == 448.0f);
  CHECK(e4m3ToF32(0xFE) == -448.0f);
  CHECK(e4m3ToF32(0x01) == pow2(-9));
  CHECK(e4m3ToF32(0x07) == 7.0f * pow2(-9));
  CHECK(e4m3ToF32(0x08) == pow2(-6));
  CHECK(e4m3ToF32(0x38) == 1.0f);
  CHECK(e4m3ToF32(0x78) == 256.0f);
  CHECK(std::isnan(e4m3ToF32(0x7F)));
  CHECK(std::isnan(e4m3ToF32(0xFF)));
  CHECK(B(e4m3ToF32(0x80)) == 0x80000000u);
  int nans = 0;
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = e4m3ToF32(static_cast<uint8_t>(c));
    if (std::isnan(f)) {
      ++nans;
      CHECK(f32ToE4m3(f) == (c & 0x80 ? 0xFF : 0x7F));
      continue;
    }
    REQUIRE(f32ToE4m3(f) == c);
    REQUIRE(f32ToE4m3Sat(f) == c);
    REQUIRE(f64ToE4m3(static_cast<double>(f)) == c);
    // Midpoint to the next code rounds to the even one of the two.
    if ((c & 0x7F) < 0x7E) {
      const float next = e4m3ToF32(static_cast<uint8_t>(c + 1));
      const float mid = (f + next) / 2; // exact in F32
      const uint32_t even = (c & 1) ? c + 1 : c;
      REQUIRE(f32ToE4m3(mid) == even);
    }
  }
  CHECK(nans == 2);
}

TEST_CASE("f32 <-> e5m2") {
  CHECK(f32ToE5m2(1.0f) == 0x3C);
  CHECK(f32ToE5m2(57344.0f) == 0x7B);
  CHECK(f32ToE5m2(61439.0f) == 0x7B);
  CHECK(f32ToE5m2(61440.0f) == 0x7C); // tie to even: Inf
  CHECK(f32ToE5m2(-1e9f) == 0xFC);
  CHECK(f32ToE5m2(INFINITY) == 0x7C);
  CHECK(f32ToE5m2(F(0x7FC00000)) == 0x7F);
  CHECK(f32ToE5m2(F(0xFFC00000)) == 0xFF);
  CHECK(f32ToE5m2(pow2(-16)) == 0x01);
  CHECK(f32ToE5m2(pow2(-17)) == 0x00);
  CHECK(f32ToE5m2(1.125f) == 0x3C); // tie, even
  CHECK(f32ToE5m2(1.375f) == 0x3E); // tie, odd up
  CHECK(e5m2ToF32(0x7B) == 57344.0f);
  CHECK(e5m2ToF32(0x7C) == INFINITY);
  CHECK(std::isnan(e5m2ToF32(0x7D)));
  CHECK(e5m2ToF32(0x01) == pow2(-16));
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = e5m2ToF32(static_cast<uint8_t>(c));
    if (!std::isnan(f))
      REQUIRE(f32ToE5m2(f) == c);
  }
}

TEST_CASE("e8m0") {
  CHECK(e8m0ToF32(127) == 1.0f);
  CHECK(e8m0ToF32(128) == 2.0f);
  CHECK(e8m0ToF32(0) == pow2(-127));
  CHECK(B(e8m0ToF32(0)) == 0x00400000u);
  CHECK(e8m0ToF32(1) == pow2(-126));
  CHECK(e8m0ToF32(254) == pow2(127));
  CHECK(std::isnan(e8m0ToF32(255)));
}

TEST_CASE("f64 conversions round once") {
  // 1 + 2^-8 + 2^-30: via F32 it would become the tie 1 + 2^-8 and round to even 0x3F80.
  const double d = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  CHECK(f64ToBf16(d) == 0x3F81);
  CHECK(f32ToBf16(static_cast<float>(d)) == 0x3F80);
  CHECK(f64ToBf16(1.0 + std::ldexp(1.0, -8)) == 0x3F80); // the real tie
  CHECK(f64ToF16(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)) == 0x3C01);
  CHECK(f64ToE4m3(464.0) == 0x7E);
  CHECK(f64ToE4m3(464.0 + 1e-9) == 0x7F);
  CHECK(f64ToE4m3(1.0625 + 1e-12) == 0x39);
  CHECK(f64ToF16(65520.0) == 0x7C00);
  CHECK(f64ToF16(1e-300) == 0x0000);
  CHECK(f64ToF16(-1e-300) == 0x8000);
  CHECK(f64ToBf16(1e300) == 0x7F80);
  CHECK(f64ToBf16(D(0x7FF8000000000000ull)) == 0x7FC0);
  CHECK(f64ToBf16(D(0x0000000000000001ull)) == 0x0000);
  CHECK(f64ToBf16(std::ldexp(1.0, -133)) == 0x0001); // bf16's smallest subnormal
  CHECK(f64ToF32(1.0 + std::ldexp(1.0, -24)) == 1.0f);
  CHECK(f64ToF32(1.0 + std::ldexp(1.0, -24) + std::ldexp(1.0, -50)) == std::nextafter(1.0f, 2.0f));
  CHECK(f64ToE5m2(61440.0) == 0x7C);
}

TEST_CASE("f32 -> f16/e4m3/e5m2 agrees with the f64 path for random floats") {
  std::mt19937 gen(7);
  for (int i = 0; i < 200000; ++i) {
    const float f = F(gen());
    if (std::isnan(f))
      continue;
    const double d = f;
    REQUIRE(f32ToBf16(f) == f64ToBf16(d));
    REQUIRE(f32ToF16(f) == f64ToF16(d));
    REQUIRE(f32ToE4m3(f) == f64ToE4m3(d));
    REQUIRE(f32ToE5m2(f) == f64ToE5m2(d));
  }
}

TEST_CASE("f32 -> bf16 matches the classic rounding-bias formula on random bits") {
  std::mt19937 gen(11);
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t u = gen();
    if (std::isnan(F(u)))
      continue;
    const uint32_t expect = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    REQUIRE(f32ToBf16(F(u)) == expect);
  }
}

TEST_CASE("e2m1 decision points and their tie rules") {
  CHECK(e2m1Encode(0.0f) == 0);
  CHECK(e2m1Encode(-0.0f) == 0); // -0 is not < 0
  CHECK(e2m1Encode(0.25f) == 0); // tie down
  CHECK(e2m1Encode(std::nextafter(0.25f, 1.0f)) == 1);
  CHECK(e2m1Encode(0.5f) == 1);
  CHECK(e2m1Encode(std::nextafter(0.75f, 0.0f)) == 1);
  CHECK(e2m1Encode(0.75f) == 2); // tie up (to even index 2 = 1.0)
  CHECK(e2m1Encode(1.25f) == 2); // tie down
  CHECK(e2m1Encode(std::nextafter(1.25f, 2.0f)) == 3);
  CHECK(e2m1Encode(1.75f) == 4); // tie up
  CHECK(e2m1Encode(std::nextafter(1.75f, 0.0f)) == 3);
  CHECK(e2m1Encode(2.5f) == 4);  // tie down
  CHECK(e2m1Encode(std::nextafter(2.5f, 3.0f)) == 5);
  CHECK(e2m1Encode(3.5f) == 6);  // tie up
  CHECK(e2m1Encode(std::nextafter(3.5f, 0.0f)) == 5);
  CHECK(e2m1Encode(5.0f) == 6);  // tie down
  CHECK(e2m1Encode(std::nextafter(5.0f, 6.0f)) == 7);
  CHECK(e2m1Encode(6.0f) == 7);
  CHECK(e2m1Encode(100.0f) == 7); // saturates
  CHECK(e2m1Encode(INFINITY) == 7);
  CHECK(e2m1Encode(-0.1f) == 8); // negative rounding to zero keeps the sign bit
  CHECK(e2m1Encode(-0.75f) == 10);
  CHECK(e2m1Encode(-3.5f) == 14);
  CHECK(e2m1Encode(-7.0f) == 15);
  const float values[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (uint32_t c = 0; c < 16; ++c) {
    CHECK(e2m1Value(c) == values[c]);
    if (c != 8)
      CHECK(e2m1Encode(values[c]) == c);
  }
  CHECK(B(e2m1Value(8)) == 0u); // +0, as ModelOpt's table
}

TEST_CASE("floorLog2") {
  CHECK(floorLog2(1.0f) == 0);
  CHECK(floorLog2(1.99f) == 0);
  CHECK(floorLog2(-2.0f) == 1);
  CHECK(floorLog2(448.0f) == 8);
  CHECK(floorLog2(pow2(-126)) == -126);
  CHECK(floorLog2(F(1)) == -149);
  CHECK(floorLog2(F(0x00400000)) == -127);
}
