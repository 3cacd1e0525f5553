// Small helpers shared by the kernel tests.
#pragma once

#include "kernels/Float.h"

#include <cstdint>
#include <random>
#include <vector>

namespace ckptmap::test {

inline float F(uint32_t bits) { return fp::floatOf(bits); }
inline uint32_t B(float f) { return fp::bitsOf(f); }
inline double D(uint64_t bits) { return fp::doubleOf(bits); }

/// Exact powers of two.
inline float pow2(int e) {
  if (e >= -126)
    return F(static_cast<uint32_t>(e + 127) << 23);
  return F(1u << (e + 149));
}

/// Seeded normal samples scaled by `sigma`.
inline std::vector<float> normal(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v)
    x = d(gen);
  return v;
}

/// Heavy-tailed samples: student-t with 2 degrees of freedom plus rare large outliers.
inline std::vector<float> heavy(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::student_t_distribution<float> t(2.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) {
    x = t(gen) * 0.02f;
    if (u(gen) < 0.001f)
      x *= 1000.0f;
  }
  return v;
}

inline std::vector<bf16_t> toBf16(const std::vector<float>& v) {
  std::vector<bf16_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = bf16_t{fp::f32ToBf16(v[i])};
  return r;
}

inline std::vector<f16_t> toF16(const std::vector<float>& v) {
  std::vector<f16_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = f16_t{fp::f32ToF16(v[i])};
  return r;
}

} // namespace ckptmap::test
