// Same input, rulebook and options give byte-identical output files, whatever the number of
// worker threads.

#include "E2e.h"

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

/// Every file of `a` and `b` (names and bytes) is the same.
void requireSameFiles(const std::string &a, const std::string &b) {
  std::vector<std::string> fa = listFiles(a), fb = listFiles(b);
  REQUIRE(fa == fb);
  REQUIRE_FALSE(fa.empty());
  for (const std::string &f : fa)
    CHECK_MESSAGE(readFile(a + "/" + f) == readFile(b + "/" + f), f << " differs between " << a << " and " << b);
}

ConvertOptions withThreads(ConvertOptions o, unsigned threads) {
  o.exec.threads = threads;
  o.write.maxShardSize = 150'000; // several shards, so shard boundaries are exercised too
  return o;
}

} // namespace

TEST_CASE("converting twice gives byte-identical files, with 1 or 4 threads") {
  for (const std::string &family : families()) {
    CAPTURE(family);
    TempDir tmp;
    for (const std::string to : {"mcore", "hf-mem"}) {
      CAPTURE(to);
      convertOk(hubDir(family), tmp / (to + "-1"), withThreads(options(family, "hf", to), 1));
      convertOk(hubDir(family), tmp / (to + "-4"), withThreads(options(family, "hf", to), 4));
      convertOk(hubDir(family), tmp / (to + "-4b"), withThreads(options(family, "hf", to), 4));
      CHECK(listFiles(tmp / (to + "-1")).size() > 3); // shards, index, config, ckptmap.json
      requireSameFiles(tmp / (to + "-1"), tmp / (to + "-4"));
      requireSameFiles(tmp / (to + "-4"), tmp / (to + "-4b"));
    }
    // The way back, too.
    ConvertOptions back = options(family, "mcore", "hf");
    if (isVl(family))
      back.hfBase = hubDir(family);
    convertOk(tmp / "mcore-1", tmp / "hf-1", withThreads(back, 1));
    convertOk(tmp / "mcore-4", tmp / "hf-4", withThreads(back, 4));
    requireSameFiles(tmp / "hf-1", tmp / "hf-4");
  }
}
