// Splitting one CPU kernel call over a few threads. Every element's result is a function of
// its inputs and of values computed before the split (global amax and scales), so results
// never depend on the thread count; reductions combine per-chunk results in chunk order
// with order-independent operations (integer max, min index).
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <utility>
#include <vector>

namespace ckptmap {

/// CPU execution options of one kernel call. The runtime calls kernels from its own worker
/// threads; `threads` > 1 lets a single large tensor use more cores.
struct Exec {
  unsigned threads = 1;
};

/// Number of chunks parallelFor will use for n items of `grain`.
inline size_t chunkCount(size_t n, size_t grain, unsigned threads) {
  if (n == 0)
    return 0;
  const size_t units = (n + grain - 1) / grain;
  return std::max<size_t>(1, std::min<size_t>(units, threads ? threads : 1));
}

/// Calls f(chunk, begin, end) for consecutive ranges covering [0, n); range boundaries are
/// multiples of `grain` (except the end). Chunk 0 runs on the calling thread.
template <class F> void parallelFor(size_t n, size_t grain, unsigned threads, F&& f) {
  const size_t chunks = chunkCount(n, grain, threads);
  if (chunks == 0)
    return;
  const size_t units = (n + grain - 1) / grain;
  auto range = [&](size_t c) {
    const size_t b = units * c / chunks * grain;
    const size_t e = std::min(n, units * (c + 1) / chunks * grain);
    return std::pair<size_t, size_t>{b, e};
  };
  if (chunks == 1) {
    f(size_t{0}, size_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(chunks - 1);
  for (size_t c = 1; c < chunks; ++c) {
    const std::pair<size_t, size_t> r = range(c);
    pool.emplace_back([&f, c, r] { f(c, r.first, r.second); });
  }
  const std::pair<size_t, size_t> r0 = range(0);
  f(size_t{0}, r0.first, r0.second);
  for (auto& t : pool)
    t.join();
}

} // namespace ckptmap
