// naturalLess orders output names the way people read them ("layers.9" before
// "layers.10"); it fixes the shard layout, so it must be a strict weak order.
#include "Helpers.h"

#include <algorithm>
#include <random>

using namespace ckptmap;

TEST_CASE("naturalLess: digit runs compare as numbers") {
  CHECK(naturalLess("layers.9.w", "layers.10.w"));
  CHECK_FALSE(naturalLess("layers.10.w", "layers.9.w"));
  CHECK(naturalLess("layers.2.experts.10", "layers.10.experts.2"));
  CHECK(naturalLess("layers.10.experts.2", "layers.10.experts.10"));
  CHECK(naturalLess("a2b", "a10a"));
  CHECK(naturalLess("weight1", "weight10"));
  CHECK(naturalLess("x99", "x123456789012345678901234567890"));
  CHECK(naturalLess("x123456789012345678901234567889", "x123456789012345678901234567890"));
  // Keys of numbers of nine digits and more spell their length in full.
  CHECK(naturalKey("x12345678") < naturalKey("x123456789"));
  CHECK(naturalKey("x99") < naturalKey("x123456789012345678901234567890"));
  CHECK(naturalKey("x123456789012345678901234567889") < naturalKey("x123456789012345678901234567890"));
  CHECK(naturalKey("x0000000001a") > naturalKey("x1b"));
}

TEST_CASE("naturalLess: text compares by characters") {
  CHECK(naturalLess("a", "b"));
  CHECK(naturalLess("A", "a"));
  CHECK(naturalLess("layers.1.mlp", "layers.1.self_attn"));
  CHECK(naturalLess("a", "a.b"));
  CHECK_FALSE(naturalLess("a.b", "a"));
  CHECK(naturalLess("", "a"));
  CHECK_FALSE(naturalLess("", ""));
  CHECK_FALSE(naturalLess("same.7", "same.7"));
  // A digit sorts before a letter at the same place, as in plain byte order.
  CHECK(naturalLess("a1", "ab"));
}

TEST_CASE("naturalLess: equal numbers with leading zeros order by length") {
  CHECK(naturalLess("a1", "a01"));
  CHECK_FALSE(naturalLess("a01", "a1"));
  CHECK(naturalLess("a0", "a00"));
  // The tie is broken at the number, before the text after it is looked at.
  CHECK(naturalLess("a1c", "a01b"));
  CHECK_FALSE(naturalLess("a01b", "a1c"));
}

TEST_CASE("naturalLess: sorts model names") {
  std::vector<std::string> names = {"model.layers.10.mlp.w", "model.layers.1.mlp.w", "lm_head.weight",
                                    "model.layers.2.mlp.w", "model.embed_tokens.weight", "model.layers.1.attn.w",
                                    "model.layers.100.mlp.w", "model.norm.weight"};
  std::sort(names.begin(), names.end(), [](const std::string &a, const std::string &b) { return naturalLess(a, b); });
  CHECK(names == std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight", "model.layers.1.attn.w",
                                          "model.layers.1.mlp.w", "model.layers.2.mlp.w", "model.layers.10.mlp.w",
                                          "model.layers.100.mlp.w", "model.norm.weight"});
}

TEST_CASE("naturalLess: a strict total order on random names") {
  std::mt19937 gen(20240601);
  const std::string alphabet = "0019.ab";
  auto randomName = [&] {
    std::string s;
    size_t n = gen() % 7;
    for (size_t i = 0; i < n; ++i)
      s += alphabet[gen() % alphabet.size()];
    return s;
  };
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i)
    names.push_back(randomName());
  for (const std::string &a : names) {
    CHECK_FALSE(naturalLess(a, a));
    for (const std::string &b : names) {
      bool ab = naturalLess(a, b), ba = naturalLess(b, a);
      // Asymmetric, and total: distinct names are never equivalent.
      if (ab && ba)
        FAIL_CHECK("both '" << a << "' < '" << b << "' and the reverse");
      if (a != b && !ab && !ba)
        FAIL_CHECK("'" << a << "' and '" << b << "' are unordered");
    }
  }
  // naturalKey's byte order is the same order.
  for (const std::string &a : names)
    for (const std::string &b : names)
      if ((naturalKey(a) < naturalKey(b)) != naturalLess(a, b))
        FAIL_CHECK("naturalKey orders '" << a << "' and '" << b << "' unlike naturalLess");
  // Transitive on sampled triples.
  for (int i = 0; i < 20000; ++i) {
    const std::string &a = names[gen() % names.size()], &b = names[gen() % names.size()], &c = names[gen() % names.size()];
    if (naturalLess(a, b) && naturalLess(b, c) && !naturalLess(a, c))
      FAIL_CHECK("'" << a << "' < '" << b << "' < '" << c << "' but not '" << a << "' < '" << c << "'");
  }
}
