// castTensor and affineTensor on the device: one grid-stride kernel per dtype pair, 16-byte
// vector memory operations when the pointers allow it.
#include "kernels/Convert.h"
#include "kernels/Cuda.h"
#include "kernels/Errors.h"
#include "kernels/cuda/Common.cuh"

#include <type_traits>

namespace ckptmap::cuda {
namespace {

using namespace detail;

template <class In, class Out> struct CastOp {
  __device__ __forceinline__ Out operator()(In v) const {
    bool ok = true;
    return conv::convert<Out>(v, ok);
  }
};

template <class In, class Out> struct AffineOp {
  conv::Affine<Out, In> f;
  __device__ __forceinline__ Out operator()(In v) const { return f(v); }
};

template <int V, class In, class Out, class Op>
__global__ void __launch_bounds__(kThreads) mapKernel(const In* __restrict__ in, Out* __restrict__ out, size_t n, Op op) {
  const size_t packs = n / V;
  for (size_t i = globalThread(); i < packs; i += gridThreads()) {
    const Pack<In, V> a = loadPack<In, V>(in + i * V);
    Pack<Out, V> b;
#pragma unroll
    for (int j = 0; j < V; ++j)
      b.v[j] = op(a.v[j]);
    storePack<Out, V>(out + i * V, b);
  }
  for (size_t i = packs * V + globalThread(); i < n; i += gridThreads())
    out[i] = op(in[i]);
}

template <class In, class Out, class Op>
KernelStatus launchMap(const In* in, Out* out, size_t n, Op op, cudaStream_t stream) {
  if (n == 0)
    return {};
  constexpr int V = static_cast<int>(16 / (sizeof(In) < sizeof(Out) ? sizeof(In) : sizeof(Out)));
  if (aligned(in, alignof(Pack<In, V>)) && aligned(out, alignof(Pack<Out, V>)))
    mapKernel<V><<<gridFor(n / V + 1), kThreads, 0, stream>>>(in, out, n, op);
  else
    mapKernel<1><<<gridFor(n), kThreads, 0, stream>>>(in, out, n, op);
  CKPTMAP_CUDA_CHECK_LAUNCH();
  return {};
}

template <class T>
inline constexpr bool kDeviceFloatSource = conv::kIsF32Exact<T> || std::is_same_v<T, double>;

} // namespace

KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n, void* stream) {
  if (!cudaAvailable())
    return errors::noDevice();
  if (!castSupported(from, to))
    return errors::unsupportedCast(from, to);
  const auto s = static_cast<cudaStream_t>(stream);
  if (from == to) {
    if (n)
      CKPTMAP_CUDA_TRY(cudaMemcpyAsync(dst, src, n * dtypeSize(from), cudaMemcpyDeviceToDevice, s));
    return {};
  }
  KernelStatus status = KernelStatus::error(
      KernelErrc::UnsupportedCast, "cannot cast " + std::string(dtypeName(from)) + " to " +
                                       std::string(dtypeName(to)) + " on the device (integer casts run on the CPU)");
  visitDType(from, [&](auto inTag) {
    visitDType(to, [&](auto outTag) {
      using In = typename decltype(inTag)::type;
      using Out = typename decltype(outTag)::type;
      if constexpr (kDeviceFloatSource<In> && conv::kIsFloatTarget<Out> && !std::is_same_v<In, Out>)
        status = launchMap(static_cast<const In*>(src), static_cast<Out*>(dst), n, CastOp<In, Out>{}, s);
    });
  });
  return status;
}

KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n, double scale, double shift,
                          void* stream) {
  if (!cudaAvailable())
    return errors::noDevice();
  if (!affineSupported(from, to))
    return errors::unsupportedAffine(from, to);
  KernelStatus status;
  visitDType(from, [&](auto inTag) {
    visitDType(to, [&](auto outTag) {
      using In = typename decltype(inTag)::type;
      using Out = typename decltype(outTag)::type;
      if constexpr (conv::kIsAffineType<In> && conv::kIsAffineType<Out>)
        status = launchMap(static_cast<const In*>(src), static_cast<Out*>(dst), n,
                           AffineOp<In, Out>{conv::makeAffine<Out, In>(scale, shift)},
                           static_cast<cudaStream_t>(stream));
    });
  });
  return status;
}

} // namespace ckptmap::cuda
