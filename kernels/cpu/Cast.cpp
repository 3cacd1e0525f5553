#include "kernels/Cast.h"

#include "kernels/Errors.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace ckptmap::cpu {
namespace {

constexpr size_t kGrain = 1 << 16;

/// Runs out[i] = op(in[i]) in parallel; op sets ok = false on a failing element. Returns the
/// first failing index, or KernelStatus::kNoIndex.
template <class In, class Out, class Op>
size_t mapElements(const In* in, Out* out, size_t n, const Exec& exec, Op op) {
  std::vector<size_t> firstBad(chunkCount(n, kGrain, exec.threads), KernelStatus::kNoIndex);
  parallelFor(n, kGrain, exec.threads, [&](size_t chunk, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      bool ok = true;
      out[i] = op(in[i], ok);
      if (!ok && firstBad[chunk] == KernelStatus::kNoIndex)
        firstBad[chunk] = i;
    }
  });
  return firstBad.empty() ? KernelStatus::kNoIndex : *std::min_element(firstBad.begin(), firstBad.end());
}

} // namespace

KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n, const Exec& exec) {
  if (!castSupported(from, to))
    return errors::unsupportedCast(from, to);
  if (from == to) {
    if (n)
      std::memmove(dst, src, n * dtypeSize(from));
    return {};
  }
  size_t bad = KernelStatus::kNoIndex;
  visitDType(from, [&](auto inTag) {
    visitDType(to, [&](auto outTag) {
      using In = typename decltype(inTag)::type;
      using Out = typename decltype(outTag)::type;
      if constexpr (conv::kCastable<In, Out> && !std::is_same_v<In, Out>) {
        bad = mapElements(static_cast<const In*>(src), static_cast<Out*>(dst), n, exec,
                          [](In v, bool& ok) { return conv::convert<Out>(v, ok); });
      }
    });
  });
  if (bad != KernelStatus::kNoIndex)
    return errors::outOfRange(to, bad);
  return {};
}

KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n, double scale,
                          double shift, const Exec& exec) {
  if (!affineSupported(from, to))
    return errors::unsupportedAffine(from, to);
  visitDType(from, [&](auto inTag) {
    visitDType(to, [&](auto outTag) {
      using In = typename decltype(inTag)::type;
      using Out = typename decltype(outTag)::type;
      if constexpr (conv::kIsAffineType<In> && conv::kIsAffineType<Out>) {
        const auto f = conv::makeAffine<Out, In>(scale, shift);
        mapElements(static_cast<const In*>(src), static_cast<Out*>(dst), n, exec,
                    [f](In v, bool&) { return f(v); });
      }
    });
  });
  return {};
}

} // namespace ckptmap::cpu
