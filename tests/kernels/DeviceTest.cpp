// GPU kernels and the GPU backend against the CPU reference, bit for bit, on random data
// (tensors of several GB, odd sizes, misaligned pointers, experts, NaN inputs, lanes too small
// for a tensor, many threads at once). Without a GPU every test case is skipped and the program
// exits with 77, which CTest reports as "Skipped". Throughput is measured by
// tools/bench/bench_kernels, not here.
#define DOCTEST_CONFIG_IMPLEMENT
#include "Helpers.h"

#include "kernels/Backend.h"
#include "kernels/Cast.h"
#include "kernels/Cuda.h"
#include "kernels/Layout.h"
#include "kernels/Quant.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#ifdef CKPTMAP_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace ckptmap;

int main(int argc, char** argv) {
  doctest::Context ctx(argc, argv);
  if (!cuda::cudaAvailable()) {
    std::printf("no CUDA device: device tests skipped\n");
    ctx.addFilter("test-case-exclude", "*");
    const int rc = ctx.run();
    return rc ? rc : 77;
  }
  return ctx.run();
}

#ifdef CKPTMAP_HAVE_CUDA
namespace {

const Exec kAllCores{std::max(1u, std::thread::hardware_concurrency())};

const DType kFloats[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2};
const DType kInputs[] = {DType::F32, DType::BF16, DType::F16};
const QuantFormat kFormats[] = {QuantFormat::Nvfp4, QuantFormat::Fp8Tensor, QuantFormat::Fp8Block, QuantFormat::Mxfp8};

/// n random elements of dtype t (random bit patterns for floats, so every rounding path runs).
std::vector<uint8_t> randomBits(DType t, size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n * dtypeSize(t));
  std::mt19937_64 gen(seed);
  for (size_t i = 0; i + 8 <= v.size(); i += 8) {
    const uint64_t r = gen();
    std::memcpy(v.data() + i, &r, 8);
  }
  return v;
}

/// Weights of dtype t: normal, heavy-tailed or tiny, with zero blocks.
std::vector<uint8_t> randomWeights(DType t, size_t n, uint32_t seed) {
  std::vector<float> f = seed % 3 == 0 ? test::heavy(n, seed) : test::normal(n, seed, seed % 3 == 1 ? 0.02f : 1e-25f);
  for (size_t i = 0; i < std::min<size_t>(n, 4096); ++i)
    f[i] = 0.0f;
  std::vector<uint8_t> out(n * dtypeSize(t));
  REQUIRE(cpu::castTensor(DType::F32, f.data(), t, out.data(), n, kAllCores).ok());
  return out;
}

struct Parts {
  std::vector<uint8_t> data, scale;
  std::vector<float> global;
  Parts(QuantFormat f, DType st, size_t experts, size_t rows, size_t cols) {
    QuantShapes sh;
    REQUIRE(quantShapes(f, rows, cols, sh, st).ok());
    data.assign(experts * sh.dataBytes(), 0x5A);
    scale.assign(experts * sh.scaleBytes(), 0x5A);
    global.assign(experts, -1.0f);
  }
};

/// Device memory, optionally holding a copy of host bytes: for calling the cuda:: entry points.
struct DeviceCopy {
  void* ptr = nullptr;
  size_t bytes;
  explicit DeviceCopy(size_t n, const void* host = nullptr) : bytes(n) {
    REQUIRE(cudaMalloc(&ptr, n ? n : 1) == cudaSuccess);
    if (host && n)
      REQUIRE(cudaMemcpy(ptr, host, n, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  DeviceCopy(const DeviceCopy&) = delete;
  ~DeviceCopy() { cudaFree(ptr); }
  template <class T> T* as() const { return static_cast<T*>(ptr); }
  void read(void* host) const {
    if (bytes)
      REQUIRE(cudaMemcpy(host, ptr, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  }
};

/// The GPU backend as the runtime uses it (every call on the GPU), and one whose lanes are too
/// small for most tensors here, so calls are split into row blocks.
KernelBackend& gpu() {
  static std::unique_ptr<KernelBackend> b = [] {
    KernelStatus s;
    auto r = makeCudaBackend({}, s);
    REQUIRE_MESSAGE(r, s.message());
    return r;
  }();
  return *b;
}
KernelBackend& smallLanes() {
  static std::unique_ptr<KernelBackend> b = [] {
    CudaBackendOptions o;
    o.maxGpuMemory = 2 << 20;
    o.lanes = 2;
    KernelStatus s;
    auto r = makeCudaBackend(o, s);
    REQUIRE_MESSAGE(r, s.message());
    return r;
  }();
  return *b;
}

/// An expert's parts within a stack.
QuantOut expertOut(QuantFormat f, DType st, Parts& p, size_t e, const QuantShapes& sh) {
  return {f, p.data.data() + e * sh.dataBytes(), p.scale.data() + e * sh.scaleBytes(), st, p.global.data() + e};
}
QuantRef expertRef(QuantFormat f, DType st, const Parts& p, size_t e, const QuantShapes& sh) {
  return {f, p.data.data() + e * sh.dataBytes(), p.scale.data() + e * sh.scaleBytes(), st, p.global.data() + e};
}

void compareQuantize(QuantFormat f, DType in, DType st, size_t experts, size_t rows, size_t cols, uint32_t seed) {
  CAPTURE(quantFormatName(f));
  CAPTURE(dtypeName(in));
  CAPTURE(experts);
  CAPTURE(rows);
  CAPTURE(cols);
  const std::vector<uint8_t> w = randomWeights(in, experts * rows * cols, seed);
  QuantShapes sh;
  REQUIRE(quantShapes(f, rows, cols, sh, st).ok());
  const size_t matrixBytes = rows * cols * dtypeSize(in);
  Parts c(f, st, experts, rows, cols), g(f, st, experts, rows, cols);
  QuantOptions opt;
  opt.exec = kAllCores;
  REQUIRE(cpu::quantizeExperts(in, w.data(), experts, rows, cols, {f, c.data.data(), c.scale.data(), st, c.global.data()}, opt).ok());
  {
    DeviceCopy din(w.size(), w.data()), dd(g.data.size()), ds(g.scale.size()), dg(experts * 4);
    REQUIRE(cuda::quantizeExperts(in, din.ptr, experts, rows, cols, {f, dd.ptr, ds.ptr, st, dg.as<float>()}).ok());
    dd.read(g.data.data());
    ds.read(g.scale.data());
    dg.read(g.global.data());
  }
  CHECK(c.data == g.data);
  CHECK(c.scale == g.scale);
  if (f == QuantFormat::Nvfp4)
    CHECK(std::memcmp(c.global.data(), g.global.data(), experts * 4) == 0);
  // The backend, matrix by matrix as the runtime calls it, whole and in row blocks.
  for (KernelBackend* b : {&gpu(), &smallLanes()}) {
    Parts p(f, st, experts, rows, cols);
    for (size_t e = 0; e < experts; ++e)
      REQUIRE(b->quantize(in, w.data() + e * matrixBytes, rows, cols, expertOut(f, st, p, e, sh), {}).ok());
    CHECK(c.data == p.data);
    CHECK(c.scale == p.scale);
    if (f == QuantFormat::Nvfp4)
      CHECK(std::memcmp(c.global.data(), p.global.data(), experts * 4) == 0);
  }

  // Dequantize the CPU's result on both sides, to every output dtype.
  const QuantRef ref{f, c.data.data(), c.scale.data(), st, c.global.data()};
  for (DType out : kInputs) {
    CAPTURE(dtypeName(out));
    std::vector<uint8_t> dc(experts * rows * cols * dtypeSize(out)), dg(dc.size());
    REQUIRE(cpu::dequantizeExperts(ref, experts, rows, cols, out, dc.data(), kAllCores).ok());
    {
      DeviceCopy dd(c.data.size(), c.data.data()), ds(c.scale.size(), c.scale.data()),
          dgl(experts * 4, c.global.data()), dout(dg.size());
      const QuantRef dref{f, dd.ptr, ds.ptr, st, f == QuantFormat::Nvfp4 ? dgl.as<float>() : nullptr};
      REQUIRE(cuda::dequantizeExperts(dref, experts, rows, cols, out, dout.ptr).ok());
      dout.read(dg.data());
    }
    CHECK(dc == dg);
    const size_t outBytes = rows * cols * dtypeSize(out);
    for (KernelBackend* b : {&gpu(), &smallLanes()}) {
      std::vector<uint8_t> db(dc.size());
      for (size_t e = 0; e < experts; ++e)
        REQUIRE(b->dequantize(expertRef(f, st, c, e, sh), rows, cols, out, db.data() + e * outBytes).ok());
      CHECK(dc == db);
    }
  }
}

} // namespace

TEST_CASE("device casts equal the CPU casts for all float pairs") {
  for (size_t n : {size_t{1}, size_t{7}, size_t{1000003}, size_t{1} << 22}) {
    for (DType from : kFloats) {
      const std::vector<uint8_t> src = randomBits(from, n, static_cast<uint32_t>(n) ^ static_cast<uint32_t>(from));
      for (DType to : kFloats) {
        if (from == to)
          continue;
        CAPTURE(n);
        CAPTURE(dtypeName(from));
        CAPTURE(dtypeName(to));
        std::vector<uint8_t> c(n * dtypeSize(to)), g(c.size()), h(c.size());
        REQUIRE(cpu::castTensor(from, src.data(), to, c.data(), n, kAllCores).ok());
        REQUIRE(gpu().castTensor(from, src.data(), to, g.data(), n).ok());
        CHECK(c == g);
        REQUIRE(smallLanes().castTensor(from, src.data(), to, h.data(), n).ok());
        CHECK(c == h);
      }
    }
  }
  const std::vector<uint8_t> e8 = randomBits(DType::F8_E8M0, 4096, 3);
  std::vector<float> c(4096), g(4096);
  REQUIRE(cpu::castTensor(DType::F8_E8M0, e8.data(), DType::F32, c.data(), 4096).ok());
  REQUIRE(gpu().castTensor(DType::F8_E8M0, e8.data(), DType::F32, g.data(), 4096).ok());
  CHECK(std::memcmp(c.data(), g.data(), 4096 * 4) == 0);
  // Integer casts have no device kernel: the backend runs them on the CPU, with its results.
  DeviceCopy di(4), df(4);
  CHECK(cuda::castTensor(DType::I32, di.ptr, DType::F32, df.ptr, 1).code() == KernelErrc::UnsupportedCast);
  const int32_t ints[3] = {-7, 0, 1 << 30};
  float fc[3], fg[3];
  REQUIRE(cpu::castTensor(DType::I32, ints, DType::F32, fc, 3).ok());
  REQUIRE(gpu().castTensor(DType::I32, ints, DType::F32, fg, 3).ok());
  CHECK(std::memcmp(fc, fg, sizeof fc) == 0);
}

TEST_CASE("device affine equals the CPU affine") {
  const DType types[] = {DType::F64, DType::F32, DType::F16, DType::BF16};
  const size_t n = 1000001;
  for (DType from : types) {
    const std::vector<uint8_t> src = randomWeights(from, n, 11);
    for (DType to : types) {
      for (auto [scale, shift] : {std::pair{1.0, 1.0}, std::pair{1.0, -1.0}, std::pair{0.3, 0.7}}) {
        CAPTURE(dtypeName(from));
        CAPTURE(dtypeName(to));
        std::vector<uint8_t> c(n * dtypeSize(to)), g(c.size());
        REQUIRE(cpu::affineTensor(from, src.data(), to, c.data(), n, scale, shift, kAllCores).ok());
        REQUIRE(gpu().affineTensor(from, src.data(), to, g.data(), n, scale, shift).ok());
        CHECK(c == g);
        std::fill(g.begin(), g.end(), uint8_t{0});
        REQUIRE(smallLanes().affineTensor(from, src.data(), to, g.data(), n, scale, shift).ok());
        CHECK(c == g);
      }
    }
  }
}

TEST_CASE("device quantizers equal the CPU reference: small, odd and partial shapes") {
  uint32_t seed = 1;
  for (QuantFormat f : kFormats) {
    for (DType in : kInputs) {
      const size_t group = f == QuantFormat::Mxfp8 ? 32 : 16;
      compareQuantize(f, in, DType::F32, 1, 1, group, seed++);
      compareQuantize(f, in, DType::F32, 1, 3, 3 * group, seed++);
      compareQuantize(f, in, DType::F32, 1, 200, f == QuantFormat::Fp8Block || f == QuantFormat::Fp8Tensor ? 300 : 320, seed++);
      compareQuantize(f, in, DType::F32, 1, 257, 129 * group / 16 * 16, seed++);
      compareQuantize(f, in, DType::F32, 5, 130, 96, seed++);
      if (f == QuantFormat::Fp8Block) {
        compareQuantize(f, in, DType::BF16, 1, 200, 300, seed++);
        compareQuantize(f, in, DType::BF16, 3, 129, 257, seed++);
        compareQuantize(f, in, DType::F32, 1, 1000, 1, seed++);
      }
      if (f == QuantFormat::Fp8Tensor)
        compareQuantize(f, in, DType::F32, 3, 7, 13, seed++);
    }
  }
}

TEST_CASE("device quantizers equal the CPU reference: large tensors") {
  // 12288 x 8192 BF16 is 192 MiB of input.
  uint32_t seed = 100;
  for (QuantFormat f : kFormats)
    compareQuantize(f, DType::BF16, DType::F32, 1, 12288, 8192, seed++);
  compareQuantize(QuantFormat::Nvfp4, DType::F32, DType::F32, 1, 4096, 7168, seed++);
  compareQuantize(QuantFormat::Nvfp4, DType::BF16, DType::F32, 16, 1024, 2048, seed++);
  compareQuantize(QuantFormat::Fp8Block, DType::BF16, DType::BF16, 1, 7168, 18432 / 2, seed++);
}

TEST_CASE("device quantizers report NaN/Inf like the CPU") {
  for (QuantFormat f : kFormats) {
    for (DType in : kInputs) {
      const size_t experts = 3, rows = 64, cols = 256;
      std::vector<float> w = test::normal(experts * rows * cols, 4);
      w[rows * cols + 1000] = NAN;
      w[2 * rows * cols + 5] = -INFINITY;
      std::vector<uint8_t> src(w.size() * dtypeSize(in));
      REQUIRE(cpu::castTensor(DType::F32, w.data(), in, src.data(), w.size()).ok());
      Parts c(f, DType::F32, experts, rows, cols), g(f, DType::F32, experts, rows, cols);
      const KernelStatus sc = cpu::quantizeExperts(in, src.data(), experts, rows, cols,
                                                   {f, c.data.data(), c.scale.data(), DType::F32, c.global.data()});
      KernelStatus sg;
      {
        DeviceCopy din(src.size(), src.data()), dd(g.data.size()), ds(g.scale.size()), dg(experts * 4);
        sg = cuda::quantizeExperts(in, din.ptr, experts, rows, cols, {f, dd.ptr, ds.ptr, DType::F32, dg.as<float>()});
        // Matrix 0 is finite: the next call reuses the words the failed one flagged, and must pass.
        CHECK(cuda::quantize(in, din.ptr, rows, cols, {f, dd.ptr, ds.ptr, DType::F32, dg.as<float>()}).ok());
      }
      CAPTURE(sc.message());
      CAPTURE(sg.message());
      CHECK(sc.code() == KernelErrc::NonFinite);
      CHECK(sg.code() == KernelErrc::NonFinite);
      CHECK(sg.index() == sc.index());
      CHECK(sg.message() == sc.message());
      // The backend reports a matrix's first NaN/Inf exactly as the CPU does, chunked or not.
      QuantShapes sh;
      REQUIRE(quantShapes(f, rows, cols, sh).ok());
      const size_t matrixBytes = rows * cols * dtypeSize(in);
      for (size_t e : {size_t{1}, size_t{2}}) {
        Parts p(f, DType::F32, experts, rows, cols);
        const KernelStatus cm = cpu::quantize(in, src.data() + e * matrixBytes, rows, cols,
                                              expertOut(f, DType::F32, p, e, sh));
        for (KernelBackend* b : {&gpu(), &smallLanes()}) {
          const KernelStatus bm = b->quantize(in, src.data() + e * matrixBytes, rows, cols,
                                              expertOut(f, DType::F32, p, e, sh), {});
          CHECK(bm.code() == KernelErrc::NonFinite);
          CHECK(bm.message() == cm.message());
        }
      }
    }
  }
}

TEST_CASE("device requantize equals the CPU requantize") {
  // Values quantized before hold many zeros (NVFP4 codes of small weights) and few distinct
  // significands, unlike weights.
  const size_t rows = 1000, cols = 1024;
  const std::vector<uint8_t> w = randomWeights(DType::BF16, rows * cols, 9);
  for (QuantFormat from : {QuantFormat::Fp8Block, QuantFormat::Nvfp4}) {
    CAPTURE(quantFormatName(from));
    Parts src(from, DType::F32, 1, rows, cols);
    REQUIRE(cpu::quantize(DType::BF16, w.data(), rows, cols,
                          {from, src.data.data(), src.scale.data(), DType::F32, src.global.data()})
                .ok());
    const QuantRef ref{from, src.data.data(), src.scale.data(), DType::F32, src.global.data()};
    for (DType via : {DType::F32, DType::BF16}) {
      for (QuantFormat to : kFormats) {
        CAPTURE(quantFormatName(to));
        Parts c(to, DType::F32, 1, rows, cols), g(to, DType::F32, 1, rows, cols);
        REQUIRE(cpu::requantize(ref, rows, cols, {to, c.data.data(), c.scale.data(), DType::F32, c.global.data()}, {}, via).ok());
        {
          DeviceCopy sd(src.data.size(), src.data.data()), ss(src.scale.size(), src.scale.data()), sg(4, src.global.data()),
              dd(g.data.size()), ds(g.scale.size()), dg(4);
          const QuantRef dref{from, sd.ptr, ss.ptr, DType::F32, sg.as<float>()};
          REQUIRE(cuda::requantize(dref, rows, cols, {to, dd.ptr, ds.ptr, DType::F32, dg.as<float>()}, {}, via).ok());
          dd.read(g.data.data());
          ds.read(g.scale.data());
          if (to == QuantFormat::Nvfp4) // the only format with a global scale output
            dg.read(g.global.data());
        }
        CHECK(c.data == g.data);
        CHECK(c.scale == g.scale);
        CHECK(std::memcmp(c.global.data(), g.global.data(), 4) == 0);
      }
    }
  }
}

namespace {

/// A device copy of `host` placed `offset` bytes past a 256-byte boundary.
struct Misaligned {
  void* base = nullptr;
  void* ptr = nullptr;
  Misaligned(const void* host, size_t bytes, size_t offset) {
    REQUIRE(cudaMalloc(&base, bytes + offset + 16) == cudaSuccess);
    ptr = static_cast<char*>(base) + offset;
    if (host)
      REQUIRE(cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~Misaligned() { cudaFree(base); }
  std::vector<uint8_t> read(size_t bytes) const {
    std::vector<uint8_t> v(bytes);
    REQUIRE(cudaMemcpy(v.data(), ptr, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

} // namespace

TEST_CASE("device kernels on misaligned pointers (scalar paths)") {
  const size_t n = 100003;
  const std::vector<uint8_t> src = randomBits(DType::F32, n, 5);
  for (size_t off : {size_t{4}, size_t{8}}) {
    Misaligned in(src.data(), n * 4, off), out(nullptr, n * 2, 2);
    REQUIRE(cuda::castTensor(DType::F32, in.ptr, DType::BF16, out.ptr, n).ok());
    std::vector<uint8_t> c(n * 2);
    REQUIRE(cpu::castTensor(DType::F32, src.data(), DType::BF16, c.data(), n).ok());
    CHECK(out.read(n * 2) == c);
  }
  const size_t rows = 130, cols = 320;
  const std::vector<uint8_t> w = randomWeights(DType::BF16, rows * cols, 6);
  for (QuantFormat f : kFormats) {
    CAPTURE(quantFormatName(f));
    QuantShapes sh;
    REQUIRE(quantShapes(f, rows, cols, sh).ok());
    Misaligned in(w.data(), w.size(), 2), data(nullptr, sh.dataBytes(), 1), scale(nullptr, sh.scaleBytes(), 4),
        global(nullptr, 4, 0);
    REQUIRE(cuda::quantize(DType::BF16, in.ptr, rows, cols,
                           {f, data.ptr, scale.ptr, DType::F32, static_cast<float*>(global.ptr)}).ok());
    Parts c(f, DType::F32, 1, rows, cols);
    REQUIRE(cpu::quantize(DType::BF16, w.data(), rows, cols, {f, c.data.data(), c.scale.data(), DType::F32, c.global.data()}).ok());
    CHECK(data.read(sh.dataBytes()) == c.data);
    CHECK(scale.read(sh.scaleBytes()) == c.scale);
    Misaligned deq(nullptr, rows * cols * 4, 4);
    REQUIRE(cuda::dequantize({f, data.ptr, scale.ptr, DType::F32, static_cast<const float*>(global.ptr)}, rows, cols,
                             DType::F32, deq.ptr).ok());
    std::vector<uint8_t> dc(rows * cols * 4);
    REQUIRE(cpu::dequantize({f, c.data.data(), c.scale.data(), DType::F32, c.global.data()}, rows, cols, DType::F32,
                            dc.data()).ok());
    CHECK(deq.read(dc.size()) == dc);
  }
}
TEST_CASE("device transpose equals the CPU transpose") {
  struct Case {
    std::vector<int64_t> shape, perm;
  };
  // Swaps of the last two dims (2-D, and batched: 3-D, 4-D) go through tiles; edges of partial
  // tiles, a single row and a single column among them.
  const Case cases[] = {{{1}, {0}},
                        {{37, 91}, {1, 0}},
                        {{3, 5, 7}, {2, 0, 1}},
                        {{4, 1, 6, 2}, {3, 2, 1, 0}},
                        {{2048, 1536}, {1, 0}},
                        {{2, 3, 4, 5, 6}, {4, 2, 0, 3, 1}},
                        {{1, 77}, {1, 0}},
                        {{65, 1}, {1, 0}},
                        {{5, 33, 70}, {0, 2, 1}},
                        {{2, 3, 32, 31}, {0, 1, 3, 2}},
                        // Shapes the word tiles take (rows and cols multiples of 4): full
                        // tiles, partial ones in either dim, a batch, a single word of rows.
                        {{256, 128}, {1, 0}},
                        {{132, 200}, {1, 0}},
                        {{3, 68, 260}, {0, 2, 1}},
                        {{4, 516}, {1, 0}},
                        {{2, 2, 64, 6}, {0, 1, 3, 2}}};
  for (const Case& c : cases) {
    for (size_t elem : {size_t{1}, size_t{2}, size_t{4}, size_t{8}, size_t{3}}) {
      CAPTURE(elem);
      size_t n = 1;
      for (int64_t d : c.shape)
        n *= size_t(d);
      const std::vector<uint8_t> src = randomBits(DType::U8, n * elem + 8, uint32_t(n + elem));
      std::vector<uint8_t> want(n * elem), got(n * elem), chunked(n * elem);
      REQUIRE(cpu::transpose(src.data(), want.data(), c.shape.data(), c.perm.data(), c.shape.size(), elem).ok());
      REQUIRE(gpu().transpose(src.data(), got.data(), c.shape.data(), c.perm.data(), c.shape.size(), elem).ok());
      CHECK(want == got);
      // A tensor larger than a lane is transposed on the CPU, with the same result.
      REQUIRE(smallLanes().transpose(src.data(), chunked.data(), c.shape.data(), c.perm.data(), c.shape.size(), elem).ok());
      CHECK(want == chunked);
    }
  }
}

TEST_CASE("the GPU backend from many threads at once equals the CPU") {
  // More threads than lanes: calls wait for a lane and run concurrently on the others.
  const size_t rows = 512, cols = 2048, threads = 12;
  std::vector<std::vector<uint8_t>> inputs;
  for (size_t t = 0; t < threads; ++t)
    inputs.push_back(randomWeights(DType::BF16, rows * cols, uint32_t(500 + t)));
  for (QuantFormat f : kFormats) {
    CAPTURE(quantFormatName(f));
    QuantShapes sh;
    REQUIRE(quantShapes(f, rows, cols, sh).ok());
    std::vector<Parts> want, got;
    for (size_t t = 0; t < threads; ++t) {
      want.emplace_back(f, DType::F32, 1, rows, cols);
      got.emplace_back(f, DType::F32, 1, rows, cols);
      REQUIRE(cpu::quantize(DType::BF16, inputs[t].data(), rows, cols, expertOut(f, DType::F32, want[t], 0, sh)).ok());
    }
    std::vector<KernelStatus> status(threads);
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        KernelBackend& b = t % 2 ? gpu() : smallLanes();
        status[t] = b.quantize(DType::BF16, inputs[t].data(), rows, cols, expertOut(f, DType::F32, got[t], 0, sh), {});
      });
    for (std::thread& t : pool)
      t.join();
    for (size_t t = 0; t < threads; ++t) {
      CHECK(status[t].ok());
      CHECK(want[t].data == got[t].data);
      CHECK(want[t].scale == got[t].scale);
      CHECK(std::memcmp(want[t].global.data(), got[t].global.data(), 4) == 0);
    }
  }
}

TEST_CASE("the GPU backend on tensors of several GB equals the CPU") {
  // 3 GiB of BF16: larger than a lane of the default backend (8 GiB over 4 lanes), so NVFP4
  // and FP8 take the amax pass first and every format runs in row blocks.
  const size_t rows = 49152, cols = 32768;
  // Finite BF16 of magnitudes 2^-15 .. 2^-1 from a fast generator (1.6G elements).
  std::vector<uint8_t> w(rows * cols * 2);
  uint64_t state = 4242;
  for (size_t i = 0; i < rows * cols; ++i) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9ull;
    z ^= z >> 27;
    const uint16_t bits = uint16_t((z & 0x807F) | ((0x70 + (z >> 40) % 15) << 7));
    std::memcpy(w.data() + 2 * i, &bits, 2);
  }
  for (QuantFormat f : {QuantFormat::Nvfp4, QuantFormat::Fp8Block, QuantFormat::Fp8Tensor}) {
    CAPTURE(quantFormatName(f));
    QuantShapes sh;
    REQUIRE(quantShapes(f, rows, cols, sh).ok());
    Parts c(f, DType::F32, 1, rows, cols), g(f, DType::F32, 1, rows, cols);
    QuantOptions opt;
    opt.exec = kAllCores;
    REQUIRE(cpu::quantize(DType::BF16, w.data(), rows, cols, expertOut(f, DType::F32, c, 0, sh), opt).ok());
    REQUIRE(gpu().quantize(DType::BF16, w.data(), rows, cols, expertOut(f, DType::F32, g, 0, sh), {}).ok());
    CHECK(c.data == g.data);
    CHECK(c.scale == g.scale);
    CHECK(std::memcmp(c.global.data(), g.global.data(), 4) == 0);
    if (f == QuantFormat::Nvfp4) {
      std::vector<uint8_t> dc(rows * cols * 2), dg(dc.size());
      REQUIRE(cpu::dequantize(expertRef(f, DType::F32, c, 0, sh), rows, cols, DType::BF16, dc.data(), kAllCores).ok());
      REQUIRE(gpu().dequantize(expertRef(f, DType::F32, c, 0, sh), rows, cols, DType::BF16, dg.data()).ok());
      CHECK(dc == dg);
    }
  }
}
TEST_CASE("device conversions from F32 equal the CPU's on every F32 bit pattern") {
  // The GPU's conversion instructions (BF16, F16, e4m3 satfinite) against encode().
  const size_t chunk = size_t(1) << 28;
  std::vector<uint32_t> in(chunk);
  for (DType to : {DType::BF16, DType::F16, DType::F8_E4M3}) {
    CAPTURE(dtypeName(to));
    std::vector<uint8_t> c(chunk * dtypeSize(to)), g(c.size());
    size_t mismatched = 0;
    for (uint64_t base = 0; base < (uint64_t(1) << 32); base += chunk) {
      for (size_t i = 0; i < chunk; ++i)
        in[i] = uint32_t(base + i);
      REQUIRE(cpu::castTensor(DType::F32, in.data(), to, c.data(), chunk, kAllCores).ok());
      REQUIRE(gpu().castTensor(DType::F32, in.data(), to, g.data(), chunk).ok());
      mismatched += c != g;
    }
    CHECK(mismatched == 0);
  }
}

TEST_CASE("device dequantization of every code, NaN codes and scales included, equals the CPU") {
  // Random bytes as data and scales: every e4m3 / e2m1 / E8M0 code, NaNs among them.
  const size_t rows = 256, cols = 512;
  for (QuantFormat f : kFormats) {
    CAPTURE(quantFormatName(f));
    QuantShapes sh;
    REQUIRE(quantShapes(f, rows, cols, sh).ok());
    const std::vector<uint8_t> data = randomBits(DType::U8, sh.dataBytes(), 61);
    std::vector<uint8_t> scale = randomBits(DType::U8, sh.scaleBytes(), 62);
    std::vector<float> global = {0.37f};
    if (f == QuantFormat::Fp8Tensor || f == QuantFormat::Fp8Block) // F32 scales: a few NaNs, the rest finite
      for (size_t i = 0; i < scale.size() / 4; ++i) {
        const float v = i % 7 == 3 ? NAN : 0.001f * float(i % 97 + 1);
        std::memcpy(scale.data() + 4 * i, &v, 4);
      }
    const QuantRef ref{f, data.data(), scale.data(), DType::F32, global.data()};
    for (DType out : kInputs) {
      std::vector<uint8_t> c(rows * cols * dtypeSize(out)), g(c.size());
      REQUIRE(cpu::dequantize(ref, rows, cols, out, c.data()).ok());
      REQUIRE(gpu().dequantize(ref, rows, cols, out, g.data()).ok());
      CHECK(c == g);
    }
  }
}

TEST_CASE("device affine on NaN and Inf inputs equals the CPU") {
  const size_t n = 1 << 20;
  for (DType from : {DType::F32, DType::BF16, DType::F16}) {
    const std::vector<uint8_t> src = randomBits(from, n, 71);
    std::vector<uint8_t> c(n * 2), g(n * 2);
    REQUIRE(cpu::affineTensor(from, src.data(), DType::BF16, c.data(), n, 1.0, -1.0).ok());
    REQUIRE(gpu().affineTensor(from, src.data(), DType::BF16, g.data(), n, 1.0, -1.0).ok());
    CHECK(c == g);
  }
}

namespace {

/// The float `steps` representable values away from f, towards +Inf for steps > 0 (f > 0).
float stepped(float f, int steps) { return fp::floatOf(static_cast<uint32_t>(static_cast<int64_t>(fp::bitsOf(f)) + steps)); }

/// Weights of type `in` quantized on both sides with `opt`; CHECKs the device's parts equal
/// the CPU's.
void compareAt(QuantFormat f, DType in, const void* w, size_t rows, size_t cols, const QuantOptions& opt) {
  CAPTURE(quantFormatName(f));
  CAPTURE(dtypeName(in));
  QuantShapes sh;
  REQUIRE(quantShapes(f, rows, cols, sh).ok());
  Parts c(f, DType::F32, 1, rows, cols), g(f, DType::F32, 1, rows, cols);
  REQUIRE(cpu::quantize(in, w, rows, cols, expertOut(f, DType::F32, c, 0, sh), opt).ok());
  {
    DeviceCopy din(rows * cols * dtypeSize(in), w), dd(g.data.size()), ds(g.scale.size()), dg(4);
    REQUIRE(cuda::quantize(in, din.ptr, rows, cols, {f, dd.ptr, ds.ptr, DType::F32, dg.as<float>()}, opt).ok());
    dd.read(g.data.data());
    ds.read(g.scale.data());
  }
  size_t differ = 0;
  for (size_t i = 0; i < c.data.size(); ++i)
    differ += c.data[i] != g.data[i];
  CHECK(differ == 0);
  CHECK(c.scale == g.scale);
}
void compareAt(QuantFormat f, const std::vector<float>& w, size_t rows, size_t cols, const QuantOptions& opt) {
  REQUIRE(w.size() == rows * cols);
  compareAt(f, DType::F32, w.data(), rows, cols, opt);
}

/// The BF16 `steps` representable values away from x rounded down to BF16 (x > 0).
uint16_t steppedBf16(float x, int steps) { return static_cast<uint16_t>(int(fp::bitsOf(x) >> 16) + steps); }

} // namespace

TEST_CASE("device quantizers on and around every rounding boundary equal the CPU") {
  // The device finds codes without dividing each element; these quotients sit on the format's
  // rounding boundaries and a few float steps either side.
  SUBCASE("FP8, a given scale: every e4m3 midpoint") {
    for (float scale : {0.011f, 3.0e-39f, 1.0e-39f, 1.7e30f, 1.0f}) {
      CAPTURE(scale);
      std::vector<float> w;
      for (uint32_t code = 0; code < 0x7E; ++code) {
        const float mid = (fp::e4m3ToF32(uint8_t(code)) + fp::e4m3ToF32(uint8_t(code + 1))) / 2; // exact
        const float at = mid * scale;
        for (int k = -12; k <= 12; ++k)
          for (float sign : {1.0f, -1.0f})
            if (at > 0.0f)
              w.push_back(sign * stepped(at, k));
      }
      w.push_back(-0.0f);
      w.push_back(0.0f);
      w.resize((w.size() + 63) / 64 * 64, 0.0f);
      QuantOptions opt;
      opt.globalScale = scale;
      compareAt(QuantFormat::Fp8Tensor, w, w.size() / 64, 64, opt);
      // FP8 blocks: a first element of 448 * scale makes the tile's scale that scale, or a
      // float step from it, so the quotients stay within the steps tried.
      std::vector<float> tile{448.0f * scale};
      tile.insert(tile.end(), w.begin(), w.end());
      tile.resize(128 * ((tile.size() + 127) / 128), 0.0f);
      compareAt(QuantFormat::Fp8Block, tile, tile.size() / 128, 128, {});
    }
  }
  SUBCASE("NVFP4, a given global scale: every e2m1 boundary, and negatives that round to -0") {
    for (float g : {3.0e-5f, 2.0f, 1.0e-38f}) {
      CAPTURE(g);
      // Each block of 16 starts with 6 * g, which makes its scale 1.0 and its divisor g.
      std::vector<float> values;
      for (float t : {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f})
        for (int k = -8; k <= 8; ++k)
          for (float sign : {1.0f, -1.0f})
            values.push_back(sign * stepped(t * g, k));
      for (int k = 1; k <= 6; ++k)
        values.push_back(-fp::floatOf(uint32_t(k))); // -k * 2^-149: -0 once |w| / d <= 2^-150
      values.push_back(-0.0f);
      std::vector<float> w;
      for (size_t i = 0; i < values.size(); i += 15) {
        w.push_back(fp::mul(6.0f, g));
        for (size_t j = i; j < i + 15; ++j)
          w.push_back(j < values.size() ? values[j] : 0.0f);
      }
      w.resize((w.size() + 63) / 64 * 64, 0.0f);
      QuantOptions opt;
      opt.globalScale = g;
      compareAt(QuantFormat::Nvfp4, w, w.size() / 64, 64, opt);
    }
  }
  SUBCASE("BF16 inputs: every e2m1 and e4m3 boundary, and negatives that round to -0") {
    // The device compares BF16 pairs with thresholds rounded to BF16.
    for (float g : {3.0e-5f, 2.0f, 1.0e-38f, 131072.0f, 0.37f}) {
      CAPTURE(g);
      std::vector<uint16_t> values;
      for (float t : {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f})
        for (int k = -6; k <= 6; ++k)
          for (uint16_t sign : {0, 0x8000})
            values.push_back(steppedBf16(t * g, k) | sign);
      for (uint16_t k = 1; k <= 4; ++k)
        values.push_back(0x8000 | k); // -k * 2^-133: -0 once |w| / d <= 2^-150
      values.push_back(0x8000);
      values.push_back(0);
      std::vector<uint16_t> w; // blocks of 16 that start with 6 * g: scale 1.0, divisor g
      for (size_t i = 0; i < values.size(); i += 15) {
        w.push_back(fp::f32ToBf16(fp::mul(6.0f, g)));
        for (size_t j = i; j < i + 15; ++j)
          w.push_back(j < values.size() ? values[j] : 0);
      }
      w.resize((w.size() + 127) / 128 * 128, 0);
      QuantOptions opt;
      opt.globalScale = fp::bf16ToF32(w[0]) / 6.0f;
      compareAt(QuantFormat::Nvfp4, DType::BF16, w.data(), w.size() / 64, 64, opt);
      compareAt(QuantFormat::Nvfp4, DType::BF16, w.data(), w.size() / 64, 64, {});
      opt.globalScale = g;
      compareAt(QuantFormat::Fp8Tensor, DType::BF16, w.data(), w.size() / 64, 64, opt);
      compareAt(QuantFormat::Fp8Block, DType::BF16, w.data(), w.size() / 128, 128, {});
    }
    // Every e4m3 midpoint at a scale of 1 in BF16 (e4m3's midpoints have 5 significant bits).
    std::vector<uint16_t> w;
    for (uint32_t code = 0; code < 0x7E; ++code) {
      const float mid = (fp::e4m3ToF32(uint8_t(code)) + fp::e4m3ToF32(uint8_t(code + 1))) / 2;
      for (int k = -3; k <= 3; ++k)
        for (uint16_t sign : {0, 0x8000})
          w.push_back(steppedBf16(mid, k) | sign);
    }
    w.resize((w.size() + 127) / 128 * 128, 0);
    QuantOptions one;
    one.globalScale = 1.0f;
    compareAt(QuantFormat::Fp8Tensor, DType::BF16, w.data(), w.size() / 64, 64, one);
    // BF16 weights against a power-of-two scale (a tile amax of 1.75 * 2^-3, so 2^-11): every
    // quotient is exact and one in sixteen is a tie.
    const size_t rows = 128, cols = 256;
    std::vector<uint16_t> tied(rows * cols);
    const std::vector<uint8_t> bytes = randomWeights(DType::BF16, tied.size(), 91);
    std::memcpy(tied.data(), bytes.data(), bytes.size());
    tied[0] = tied[128] = fp::f32ToBf16(0.21875f);
    compareAt(QuantFormat::Fp8Block, DType::BF16, tied.data(), rows, cols, {});
    QuantOptions pow2;
    pow2.globalScale = 0x1p-11f;
    compareAt(QuantFormat::Fp8Tensor, DType::BF16, tied.data(), rows, cols, pow2);
  }
}

TEST_CASE("device FP8 and NVFP4 quantizers take a given per-matrix scale as the CPU does") {
  const size_t rows = 300, cols = 512;
  const std::vector<uint8_t> w = randomWeights(DType::BF16, rows * cols, 81);
  for (QuantFormat f : {QuantFormat::Fp8Tensor, QuantFormat::Nvfp4}) {
    CAPTURE(quantFormatName(f));
    QuantShapes sh;
    REQUIRE(quantShapes(f, rows, cols, sh).ok());
    QuantOptions opt;
    opt.globalScale = f == QuantFormat::Nvfp4 ? 3.0e-5f : 0.011f;
    Parts c(f, DType::F32, 1, rows, cols);
    REQUIRE(cpu::quantize(DType::BF16, w.data(), rows, cols, expertOut(f, DType::F32, c, 0, sh), opt).ok());
    for (KernelBackend* b : {&gpu(), &smallLanes()}) {
      Parts g(f, DType::F32, 1, rows, cols);
      REQUIRE(b->quantize(DType::BF16, w.data(), rows, cols, expertOut(f, DType::F32, g, 0, sh), opt).ok());
      CHECK(c.data == g.data);
      CHECK(c.scale == g.scale);
      CHECK(std::memcmp(c.global.data(), g.global.data(), 4) == 0);
    }
  }
}
#endif
