// castTensor and affineTensor.
#include "Helpers.h"

#include "kernels/Cast.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace ckptmap;
using ckptmap::test::B;
using ckptmap::test::F;

namespace {

const DType kFloats[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2};

std::vector<float> specials() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 448.0f, 464.0f, 465.0f, 57344.0f, 61440.0f,
                          65504.0f, 65520.0f, 1e30f, -1e30f, INFINITY, -INFINITY, F(0x7FC00000), F(0xFFC00000),
                          F(1), F(0x00800000), F(0x3F808000), F(0x3F818000), 1.0625f, 1.1875f, 0.001953125f,
                          0.0009765625f, 3.0e-5f, 6.0e-8f};
  std::mt19937 gen(3);
  for (int i = 0; i < 2000; ++i)
    v.push_back(F(gen()));
  return v;
}

/// Reference: decode the source element to double (exact for every float dtype), then round.
uint64_t expectBits(DType to, double x) {
  switch (to) {
  case DType::F64: {
    uint64_t u;
    std::memcpy(&u, &x, 8);
    return u;
  }
  case DType::F32: return B(static_cast<float>(x));
  case DType::F16: return fp::f64ToF16(x);
  case DType::BF16: return fp::f64ToBf16(x);
  case DType::F8_E4M3: return fp::f64ToE4m3(x);
  case DType::F8_E5M2: return fp::f64ToE5m2(x);
  default: return 0;
  }
}

double elementAsDouble(DType t, const std::vector<uint8_t>& buf, size_t i) {
  const uint8_t* p = buf.data() + i * dtypeSize(t);
  switch (t) {
  case DType::F64: {
    double d;
    std::memcpy(&d, p, 8);
    return d;
  }
  case DType::F32: {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  case DType::F16: {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp::f16ToF32(h);
  }
  case DType::BF16: {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp::bf16ToF32(h);
  }
  case DType::F8_E4M3: return fp::e4m3ToF32(*p);
  case DType::F8_E5M2: return fp::e5m2ToF32(*p);
  default: return 0;
  }
}

uint64_t elementBits(DType t, const std::vector<uint8_t>& buf, size_t i) {
  uint64_t u = 0;
  std::memcpy(&u, buf.data() + i * dtypeSize(t), dtypeSize(t));
  return u;
}

} // namespace

TEST_CASE("castTensor between all float dtypes rounds once, like the scalar conversions") {
  const std::vector<float> base = specials();
  const size_t n = base.size();
  std::vector<uint8_t> f32(n * 4);
  std::memcpy(f32.data(), base.data(), f32.size());
  for (DType from : kFloats) {
    std::vector<uint8_t> src(n * dtypeSize(from));
    REQUIRE(cpu::castTensor(DType::F32, f32.data(), from, src.data(), n).ok());
    for (DType to : kFloats) {
      CAPTURE(dtypeName(from));
      CAPTURE(dtypeName(to));
      std::vector<uint8_t> dst(n * dtypeSize(to));
      REQUIRE(cpu::castTensor(from, src.data(), to, dst.data(), n).ok());
      for (size_t i = 0; i < n; ++i) {
        const double x = elementAsDouble(from, src, i);
        const uint64_t got = elementBits(to, dst, i);
        if (std::isnan(x)) {
          CHECK(std::isnan(elementAsDouble(to, dst, i)));
          continue;
        }
        CAPTURE(x);
        REQUIRE(got == expectBits(to, x));
      }
    }
  }
}

TEST_CASE("castTensor F64 -> BF16 rounds once, not through F32") {
  const double d[] = {1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30), -(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30))};
  uint16_t out[2];
  REQUIRE(cpu::castTensor(DType::F64, d, DType::BF16, out, 2).ok());
  CHECK(out[0] == 0x3F81);
  CHECK(out[1] == 0xBF81);
}

TEST_CASE("castTensor integers") {
  SUBCASE("int -> float rounds once") {
    const int64_t v[] = {(1ll << 24) + 1, (1ll << 24) + 3, -((1ll << 24) + 3), std::numeric_limits<int64_t>::min(),
                         257, 0};
    float f[6];
    REQUIRE(cpu::castTensor(DType::I64, v, DType::F32, f, 6).ok());
    CHECK(f[0] == 16777216.0f);
    CHECK(f[1] == 16777220.0f);
    CHECK(f[2] == -16777220.0f);
    CHECK(f[3] == -9223372036854775808.0f);
    uint16_t b[6];
    REQUIRE(cpu::castTensor(DType::I64, v, DType::BF16, b, 6).ok());
    CHECK(b[4] == 0x4380); // 257 -> 256 (tie to even)
    CHECK(b[5] == 0x0000);
    CHECK(b[3] == 0xDF00);
    const uint64_t big[] = {~0ull};
    double dd;
    REQUIRE(cpu::castTensor(DType::U64, big, DType::F64, &dd, 1).ok());
    CHECK(dd == 18446744073709551616.0);
    uint8_t e;
    const int32_t k[] = {500};
    REQUIRE(cpu::castTensor(DType::I32, k, DType::F8_E4M3, &e, 1).ok());
    CHECK(e == 0x7F); // overflow to NaN, as torch's cast
  }
  SUBCASE("int -> int checks the range") {
    const int64_t v[] = {1, -128, 127, 128};
    int8_t o[4];
    KernelStatus s = cpu::castTensor(DType::I64, v, DType::I8, o, 4);
    CHECK(s.code() == KernelErrc::OutOfRange);
    CHECK(s.index() == 3);
    REQUIRE(cpu::castTensor(DType::I64, v, DType::I8, o, 3).ok());
    CHECK(o[1] == -128);
    const int32_t neg[] = {5, -1};
    uint32_t u[2];
    CHECK(cpu::castTensor(DType::I32, neg, DType::U32, u, 2).index() == 1);
    const uint8_t bools[] = {0, 1, 1};
    int64_t wide[3];
    REQUIRE(cpu::castTensor(DType::BOOL, bools, DType::I64, wide, 3).ok());
    CHECK(wide[2] == 1);
    const int16_t two[] = {0, 2};
    uint8_t bo[2];
    CHECK(cpu::castTensor(DType::I16, two, DType::BOOL, bo, 2).code() == KernelErrc::OutOfRange);
    const uint64_t top[] = {~0ull >> 1};
    int64_t t;
    REQUIRE(cpu::castTensor(DType::U64, top, DType::I64, &t, 1).ok());
    CHECK(t == std::numeric_limits<int64_t>::max());
  }
  SUBCASE("unsupported pairs are errors") {
    float f = 1.0f;
    int32_t i;
    CHECK(cpu::castTensor(DType::F32, &f, DType::I32, &i, 1).code() == KernelErrc::UnsupportedCast);
    uint8_t e;
    CHECK(cpu::castTensor(DType::F32, &f, DType::F8_E8M0, &e, 1).code() == KernelErrc::UnsupportedCast);
    CHECK(!castSupported(DType::BF16, DType::U8));
    CHECK(castSupported(DType::U8, DType::U8));
    CHECK(castSupported(DType::F8_E8M0, DType::F32));
  }
  SUBCASE("E8M0 -> float") {
    const uint8_t e[] = {127, 0, 255, 254};
    float f[4];
    REQUIRE(cpu::castTensor(DType::F8_E8M0, e, DType::F32, f, 4).ok());
    CHECK(f[0] == 1.0f);
    CHECK(B(f[1]) == 0x00400000u);
    CHECK(std::isnan(f[2]));
    CHECK(f[3] == std::ldexp(1.0f, 127));
  }
}

TEST_CASE("affineTensor: two IEEE operations in F32, one rounding to the output") {
  // x * scale is rounded before the add; an FMA would keep 2^-46.
  const float x = F(0x3F800001); // 1 + 2^-23
  float y;
  REQUIRE(cpu::affineTensor(DType::F32, &x, DType::F32, &y, 1, 1.0 + std::ldexp(1.0, -23), -1.0).ok());
  CHECK(y == std::ldexp(1.0f, -22));

  // Zero-centred norm: bf16 w + 1 and back.
  const std::vector<float> w = ckptmap::test::normal(4096, 5, 0.05f);
  const std::vector<bf16_t> wb = ckptmap::test::toBf16(w);
  std::vector<bf16_t> plus(w.size()), back(w.size());
  REQUIRE(cpu::affineTensor(DType::BF16, wb.data(), DType::BF16, plus.data(), w.size(), 1.0, 1.0).ok());
  REQUIRE(cpu::affineTensor(DType::BF16, plus.data(), DType::BF16, back.data(), w.size(), 1.0, -1.0).ok());
  for (size_t i = 0; i < w.size(); ++i) {
    const float v = fp::bf16ToF32(wb[i].bits);
    REQUIRE(plus[i].bits == fp::f32ToBf16(v + 1.0f));
    REQUIRE(back[i].bits == fp::f32ToBf16(fp::bf16ToF32(plus[i].bits) - 1.0f));
  }

  // F64 computes in F64.
  const double xd = 1.0 + std::ldexp(1.0, -40);
  double yd;
  REQUIRE(cpu::affineTensor(DType::F64, &xd, DType::F64, &yd, 1, 1.0, -1.0).ok());
  CHECK(yd == std::ldexp(1.0, -40));
  float yf;
  REQUIRE(cpu::affineTensor(DType::F64, &xd, DType::F32, &yf, 1, 2.0, 0.0).ok());
  CHECK(yf == 2.0f);

  int32_t bad = 0;
  CHECK(cpu::affineTensor(DType::I32, &bad, DType::F32, &yf, 1, 1.0, 0.0).code() == KernelErrc::UnsupportedDType);
}

TEST_CASE("cast and affine results do not depend on the thread count") {
  const std::vector<float> w = ckptmap::test::heavy(300007, 9);
  std::vector<uint16_t> a(w.size()), b(w.size());
  REQUIRE(cpu::castTensor(DType::F32, w.data(), DType::BF16, a.data(), w.size(), Exec{1}).ok());
  REQUIRE(cpu::castTensor(DType::F32, w.data(), DType::BF16, b.data(), w.size(), Exec{7}).ok());
  CHECK(a == b);
  REQUIRE(cpu::affineTensor(DType::F32, w.data(), DType::F16, a.data(), w.size(), 0.5, 1.0, Exec{1}).ok());
  REQUIRE(cpu::affineTensor(DType::F32, w.data(), DType::F16, b.data(), w.size(), 0.5, 1.0, Exec{3}).ok());
  CHECK(a == b);
}

TEST_CASE("castTensor BF16 -> F32 -> BF16 is the identity on all 65536 patterns; NaN stays NaN") {
  std::vector<uint16_t> all(65536), back(65536);
  for (uint32_t i = 0; i < 65536; ++i)
    all[i] = static_cast<uint16_t>(i);
  std::vector<float> wide(65536);
  REQUIRE(cpu::castTensor(DType::BF16, all.data(), DType::F32, wide.data(), all.size()).ok());
  REQUIRE(cpu::castTensor(DType::F32, wide.data(), DType::BF16, back.data(), all.size(), Exec{3}).ok());
  for (uint32_t i = 0; i < 65536; ++i) {
    REQUIRE(B(wide[i]) == i << 16);
    if (std::isnan(wide[i]))
      REQUIRE(std::isnan(fp::bf16ToF32(back[i])));
    else
      REQUIRE(back[i] == i);
  }
  // F16 and the 8-bit formats round-trip through F32 and F64 too.
  std::vector<uint16_t> h2(65536);
  std::vector<double> d(65536);
  REQUIRE(cpu::castTensor(DType::F16, all.data(), DType::F64, d.data(), all.size()).ok());
  REQUIRE(cpu::castTensor(DType::F64, d.data(), DType::F16, h2.data(), all.size()).ok());
  for (uint32_t i = 0; i < 65536; ++i)
    if (!std::isnan(d[i]))
      REQUIRE(h2[i] == i);
}
