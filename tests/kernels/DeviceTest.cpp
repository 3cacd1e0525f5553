// GPU kernels against the CPU reference, bit for bit, on random data (large tensors, odd sizes,
// misaligned pointers, experts, NaN inputs), plus a throughput report against device-to-device
// copy bandwidth. Without a GPU every test case is skipped and the program exits with 77, which
// CTest reports as "Skipped".
#define DOCTEST_CONFIG_IMPLEMENT
#include "Helpers.h"

#include "kernels/Cast.h"
#include "kernels/Cuda.h"
#include "kernels/Quant.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#ifdef CKPTMAP_HAVE_CUDA
#include <chrono>
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

void compareQuantize(QuantFormat f, DType in, DType st, size_t experts, size_t rows, size_t cols, uint32_t seed) {
  CAPTURE(quantFormatName(f));
  CAPTURE(dtypeName(in));
  CAPTURE(experts);
  CAPTURE(rows);
  CAPTURE(cols);
  const std::vector<uint8_t> w = randomWeights(in, experts * rows * cols, seed);
  Parts c(f, st, experts, rows, cols), g(f, st, experts, rows, cols);
  QuantOptions opt;
  opt.exec = kAllCores;
  REQUIRE(cpu::quantizeExperts(in, w.data(), experts, rows, cols, {f, c.data.data(), c.scale.data(), st, c.global.data()}, opt).ok());
  REQUIRE(cuda::staged::quantizeExperts(in, w.data(), experts, rows, cols, {f, g.data.data(), g.scale.data(), st, g.global.data()}).ok());
  CHECK(c.data == g.data);
  CHECK(c.scale == g.scale);
  if (f == QuantFormat::Nvfp4)
    CHECK(std::memcmp(c.global.data(), g.global.data(), experts * 4) == 0);

  // Dequantize the CPU's result on both sides, to every output dtype.
  const QuantRef ref{f, c.data.data(), c.scale.data(), st, c.global.data()};
  for (DType out : kInputs) {
    std::vector<uint8_t> dc(experts * rows * cols * dtypeSize(out)), dg(dc.size());
    REQUIRE(cpu::dequantizeExperts(ref, experts, rows, cols, out, dc.data(), kAllCores).ok());
    REQUIRE(cuda::staged::dequantizeExperts(ref, experts, rows, cols, out, dg.data()).ok());
    CHECK(dc == dg);
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
        std::vector<uint8_t> c(n * dtypeSize(to)), g(c.size());
        REQUIRE(cpu::castTensor(from, src.data(), to, c.data(), n, kAllCores).ok());
        REQUIRE(cuda::staged::castTensor(from, src.data(), to, g.data(), n).ok());
        CHECK(c == g);
      }
    }
  }
  const std::vector<uint8_t> e8 = randomBits(DType::F8_E8M0, 4096, 3);
  std::vector<float> c(4096), g(4096);
  REQUIRE(cpu::castTensor(DType::F8_E8M0, e8.data(), DType::F32, c.data(), 4096).ok());
  REQUIRE(cuda::staged::castTensor(DType::F8_E8M0, e8.data(), DType::F32, g.data(), 4096).ok());
  CHECK(std::memcmp(c.data(), g.data(), 4096 * 4) == 0);
  int32_t i = 1;
  float f;
  CHECK(cuda::staged::castTensor(DType::I32, &i, DType::F32, &f, 1).code() == KernelErrc::UnsupportedCast);
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
        REQUIRE(cuda::staged::affineTensor(from, src.data(), to, g.data(), n, scale, shift).ok());
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
      const KernelStatus sg = cuda::staged::quantizeExperts(in, src.data(), experts, rows, cols,
                                                            {f, g.data.data(), g.scale.data(), DType::F32, g.global.data()});
      CAPTURE(sc.message());
      CAPTURE(sg.message());
      CHECK(sc.code() == KernelErrc::NonFinite);
      CHECK(sg.code() == KernelErrc::NonFinite);
      CHECK(sg.index() == sc.index());
      CHECK(sg.message() == sc.message());
    }
  }
}

TEST_CASE("device requantize equals the CPU requantize") {
  const size_t rows = 1000, cols = 1024;
  const std::vector<uint8_t> w = randomWeights(DType::BF16, rows * cols, 9);
  Parts block(QuantFormat::Fp8Block, DType::F32, 1, rows, cols);
  REQUIRE(cpu::quantize(DType::BF16, w.data(), rows, cols, {QuantFormat::Fp8Block, block.data.data(), block.scale.data()}).ok());
  const QuantRef ref{QuantFormat::Fp8Block, block.data.data(), block.scale.data(), DType::F32};
  for (DType via : {DType::F32, DType::BF16}) {
    for (QuantFormat to : kFormats) {
      Parts c(to, DType::F32, 1, rows, cols), g(to, DType::F32, 1, rows, cols);
      REQUIRE(cpu::requantize(ref, rows, cols, {to, c.data.data(), c.scale.data(), DType::F32, c.global.data()}, {}, via).ok());
      REQUIRE(cuda::staged::requantize(ref, rows, cols, {to, g.data.data(), g.scale.data(), DType::F32, g.global.data()}, {}, via).ok());
      CHECK(c.data == g.data);
      CHECK(c.scale == g.scale);
      CHECK(std::memcmp(c.global.data(), g.global.data(), 4) == 0);
    }
  }
}

#ifdef CKPTMAP_HAVE_CUDA
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

TEST_CASE("device kernel throughput against device-to-device copy (report)") {
  const size_t rows = 16384, cols = 8192, n = rows * cols; // 256 MiB of BF16
  void *src = nullptr, *dst = nullptr, *scale = nullptr, *global = nullptr;
  REQUIRE(cudaMalloc(&src, n * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(&dst, n * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(&scale, n / 8) == cudaSuccess);
  REQUIRE(cudaMalloc(&global, 64) == cudaSuccess);
  const std::vector<uint8_t> w = randomWeights(DType::BF16, n, 77);
  REQUIRE(cudaMemcpy(src, w.data(), n * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  auto time = [](auto&& f) {
    f(); // warm-up
    cudaDeviceSynchronize();
    const auto t0 = std::chrono::steady_clock::now();
    const int reps = 5;
    for (int i = 0; i < reps; ++i)
      f();
    cudaDeviceSynchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  // Bytes moved: read + write. The copy reference moves n * 2 bytes each way.
  const double copy = time([&] { cudaMemcpyAsync(dst, src, n * 2, cudaMemcpyDeviceToDevice); });
  const double copyBw = 2.0 * n * 2 / copy;
  auto report = [&](const char* name, double seconds, double bytes) {
    const double bw = bytes / seconds;
    MESSAGE(name << ": " << bw / 1e9 << " GB/s, " << bw / copyBw << " of D2D copy (" << copyBw / 1e9 << " GB/s)");
  };
  QuantOut nv{QuantFormat::Nvfp4, dst, scale, DType::F32, static_cast<float*>(global)};
  report("nvfp4 quantize bf16 (amax + quantize passes)",
         time([&] { REQUIRE(cuda::quantize(DType::BF16, src, rows, cols, nv).ok()); }), n * 2.0 * 2 + n / 2.0 + n / 16.0);
  const QuantRef nvr{QuantFormat::Nvfp4, dst, scale, DType::F32, static_cast<float*>(global)};
  report("nvfp4 dequantize -> bf16",
         time([&] { REQUIRE(cuda::dequantize(nvr, rows, cols, DType::BF16, src).ok()); }), n / 2.0 + n / 16.0 + n * 2.0);
  QuantOut blk{QuantFormat::Fp8Block, dst, scale, DType::F32};
  report("fp8 block quantize bf16",
         time([&] { REQUIRE(cuda::quantize(DType::BF16, src, rows, cols, blk).ok()); }), n * 2.0 + n);
  const QuantRef blkr{QuantFormat::Fp8Block, dst, scale, DType::F32};
  report("fp8 block dequantize -> bf16",
         time([&] { REQUIRE(cuda::dequantize(blkr, rows, cols, DType::BF16, static_cast<char*>(dst) + n).ok()); }),
         n + n * 2.0);
  QuantOut mx{QuantFormat::Mxfp8, dst, scale};
  report("mxfp8 quantize bf16", time([&] { REQUIRE(cuda::quantize(DType::BF16, src, rows, cols, mx).ok()); }),
         n * 2.0 + n + n / 32.0);
  QuantOut f8{QuantFormat::Fp8Tensor, dst, global};
  report("fp8 quantize bf16 (amax + quantize passes)",
         time([&] { REQUIRE(cuda::quantize(DType::BF16, src, rows, cols, f8).ok()); }), n * 2.0 * 2 + n);
  report("cast bf16 -> f32", time([&] { REQUIRE(cuda::castTensor(DType::BF16, src, DType::F32, dst, n).ok()); }),
         n * 2.0 + n * 4.0);
  report("affine bf16 -> bf16", time([&] { REQUIRE(cuda::affineTensor(DType::BF16, src, DType::BF16, dst, n, 1.0, 1.0).ok()); }),
         n * 4.0);
  cudaFree(src);
  cudaFree(dst);
  cudaFree(scale);
  cudaFree(global);
}
#endif
