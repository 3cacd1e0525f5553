// cpu::transpose against an index-by-index reference on random shapes and permutations.
#include "kernels/Layout.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

using namespace ckptmap;

namespace {

/// out[j] for output multi-index j is src at the input index whose dim perm[d] is j[d].
std::vector<uint8_t> reference(const std::vector<uint8_t>& src, const std::vector<int64_t>& shape,
                               const std::vector<int64_t>& perm, size_t elem) {
  const size_t rank = shape.size();
  std::vector<int64_t> outShape(rank), stride(rank, 1);
  for (size_t d = rank; d-- > 1;)
    stride[d - 1] = stride[d] * shape[d];
  for (size_t d = 0; d < rank; ++d)
    outShape[d] = shape[perm[d]];
  std::vector<uint8_t> out(src.size());
  std::vector<int64_t> j(rank, 0);
  for (size_t i = 0; i * elem < out.size(); ++i) {
    int64_t from = 0;
    for (size_t d = 0; d < rank; ++d)
      from += j[d] * stride[perm[d]];
    std::memcpy(out.data() + i * elem, src.data() + size_t(from) * elem, elem);
    for (size_t d = rank; d-- > 0;) {
      if (++j[d] < outShape[d])
        break;
      j[d] = 0;
    }
  }
  return out;
}

} // namespace

TEST_CASE("transpose permutes dims as the index formula says") {
  std::mt19937 gen(12);
  for (int round = 0; round < 300; ++round) {
    const size_t rank = gen() % 6;
    std::vector<int64_t> shape(rank), perm(rank);
    size_t n = 1;
    for (int64_t& d : shape) {
      d = 1 + gen() % 6;
      n *= size_t(d);
    }
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), gen);
    const size_t elem = std::vector<size_t>{1, 2, 3, 4, 8}[gen() % 5];
    std::vector<uint8_t> src(n * elem);
    for (uint8_t& b : src)
      b = uint8_t(gen());
    std::vector<uint8_t> got(src.size());
    REQUIRE(cpu::transpose(src.data(), got.data(), shape.data(), perm.data(), rank, elem).ok());
    CHECK(got == reference(src, shape, perm, elem));
  }
}

TEST_CASE("transpose of a matrix swaps rows and columns") {
  const int64_t shape[2] = {2, 3}, perm[2] = {1, 0};
  const uint16_t src[6] = {1, 2, 3, 4, 5, 6};
  uint16_t out[6];
  REQUIRE(cpu::transpose(src, out, shape, perm, 2, 2).ok());
  const uint16_t want[6] = {1, 4, 2, 5, 3, 6};
  CHECK(std::memcmp(out, want, sizeof want) == 0);
  CHECK(cpu::transpose(src, out, shape, perm, 9, 2).message() == "transpose takes at most 8 dims");
}
