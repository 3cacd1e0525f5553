// GPU kernel throughput against the device-to-device copy bandwidth measured in the same run,
// and the GPU backend's host-memory throughput (pinned staging, several lanes) against the
// host-to-device copy bandwidth. One JSON object per line on stdout, for bench_gpu.py (which
// adds the torch comparison); a table on stderr.
//
//   bench_kernels [--rows R] [--cols C] [--reps N]
#include "kernels/Backend.h"
#include "kernels/Cast.h"
#include "kernels/Cuda.h"
#include "kernels/Quant.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace ckptmap;

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bench_kernels: %s failed\n", what);
    std::exit(1);
  }
}
void require(const KernelStatus& s, const char* what) {
  if (!s) {
    std::fprintf(stderr, "bench_kernels: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

/// Mean seconds of `reps` calls after one warm-up, synchronised around the batch.
double timeDevice(int reps, const std::function<void()>& f) {
  f();
  cudaDeviceSynchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i)
    f();
  cudaDeviceSynchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

double timeHost(int reps, const std::function<void()>& f) {
  f();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i)
    f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

/// `reread`: bytes read again by a second pass (an amax pass reads the input once more), which
/// `bytes` does not count; the ratio can then not pass bytes / (bytes + reread).
void report(const char* kind, const std::string& op, double seconds, double bytes, double reference,
            const char* referenceName, double reread = 0) {
  const double bw = bytes / seconds;
  std::printf("{\"kind\": \"%s\", \"op\": \"%s\", \"seconds\": %.9f, \"bytes\": %.0f, \"reread\": %.0f, "
              "\"gbps\": %.3f, \"reference\": \"%s\", \"reference_gbps\": %.3f, \"ratio\": %.4f}\n",
              kind, op.c_str(), seconds, bytes, reread, bw / 1e9, referenceName, reference / 1e9, bw / reference);
  std::fprintf(stderr, "  %-44s %9.1f GB/s  %6.3f x %s\n", op.c_str(), bw / 1e9, bw / reference, referenceName);
  std::fflush(stdout);
}

/// Normal weights (sigma 0.02) as BF16, on the host.
std::vector<uint8_t> weights(size_t n) {
  std::vector<float> f(n);
  std::mt19937 gen(7);
  std::normal_distribution<float> d(0.0f, 0.02f);
  for (float& x : f)
    x = d(gen);
  std::vector<uint8_t> out(n * 2);
  require(cpu::castTensor(DType::F32, f.data(), DType::BF16, out.data(), n, Exec{std::max(1u, std::thread::hardware_concurrency())}),
          "cast");
  return out;
}

} // namespace

int main(int argc, char** argv) {
  size_t rows = 16384, cols = 8192;
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rows"))
      rows = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--cols"))
      cols = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--reps"))
      reps = std::atoi(argv[i + 1]);
  }
  if (!cuda::cudaAvailable()) {
    std::fprintf(stderr, "bench_kernels: no CUDA device\n");
    return 77;
  }
  const size_t n = rows * cols;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::fprintf(stderr, "%s, %d SMs; [%zu, %zu] BF16 (%.0f MiB)\n", prop.name, prop.multiProcessorCount, rows, cols,
               n * 2 / 1048576.0);

  void *src = nullptr, *dst = nullptr, *scale = nullptr, *global = nullptr;
  require(cudaMalloc(&src, n * 4) == cudaSuccess, "cudaMalloc");
  require(cudaMalloc(&dst, n * 4) == cudaSuccess, "cudaMalloc");
  require(cudaMalloc(&scale, n / 8 + 64) == cudaSuccess, "cudaMalloc");
  require(cudaMalloc(&global, 64) == cudaSuccess, "cudaMalloc");
  const std::vector<uint8_t> w = weights(n);
  require(cudaMemcpy(src, w.data(), n * 2, cudaMemcpyHostToDevice) == cudaSuccess, "upload");

  // Reference: a device-to-device copy of the BF16 input, counting bytes read and written.
  const double copy = timeDevice(reps, [&] { cudaMemcpyAsync(dst, src, n * 2, cudaMemcpyDeviceToDevice); });
  const double copyBw = 2.0 * n * 2 / copy;
  std::fprintf(stderr, "device-to-device copy: %.1f GB/s (read + write)\n", copyBw / 1e9);
  // A row of `kind`: a whole call ("kernel", compared with torch by bench_gpu.py) or one of a
  // call's passes ("pass").
  auto timed = [&](const char* kind) {
    return [&, kind](const std::string& op, double bytes, const std::function<void()>& f, double reread = 0) {
      report(kind, op, timeDevice(reps, f), bytes, copyBw, "d2d copy", reread);
    };
  };
  const auto kernel = timed("kernel"), pass = timed("pass");

  const double in = n * 2.0;
  const QuantOut nv{QuantFormat::Nvfp4, dst, scale, DType::F32, static_cast<float*>(global)};
  // A per-matrix scale needs the amax of the whole matrix first: these rows read the input
  // twice (the amax pass, then the quantizer).
  kernel("nvfp4 quantize bf16", in + n / 2.0 + n / 16.0,
         [&] { require(cuda::quantize(DType::BF16, src, rows, cols, nv), "nvfp4 quantize"); }, in);
  const QuantRef nvr{QuantFormat::Nvfp4, dst, scale, DType::F32, static_cast<float*>(global)};
  // Dequantized values go beside the codes, never over the input: every quantizer below reads
  // the same random weights (values quantized before are not like weights: many zeros, few
  // distinct significands).
  kernel("nvfp4 dequantize bf16", n / 2.0 + n / 16.0 + in, [&] {
    require(cuda::dequantize(nvr, rows, cols, DType::BF16, static_cast<char*>(dst) + n), "nvfp4 dequantize");
  });
  // The two passes apart; the second alone is a quantization with the scale given
  // (QuantOptions::globalScale, e.g. a calibrated one).
  float amaxValue = 0;
  pass("amax bf16", in, [&] { require(cuda::amax(DType::BF16, src, n, amaxValue), "amax"); });
  QuantOptions given;
  given.globalScale = amaxValue / 2688.0f;
  pass("nvfp4 quantize bf16, global scale given", in + n / 2.0 + n / 16.0,
       [&] { require(cuda::quantize(DType::BF16, src, rows, cols, nv, given), "nvfp4 quantize, scale given"); });
  given.globalScale = amaxValue / 448.0f;
  const QuantOut f8{QuantFormat::Fp8Tensor, dst, global};
  pass("fp8 quantize bf16, scale given", in + n,
       [&] { require(cuda::quantize(DType::BF16, src, rows, cols, f8, given), "fp8 quantize, scale given"); });
  kernel("fp8 quantize bf16", in + n, [&] { require(cuda::quantize(DType::BF16, src, rows, cols, f8), "fp8 quantize"); },
         in);
  const QuantRef f8r{QuantFormat::Fp8Tensor, dst, global};
  kernel("fp8 dequantize bf16", n + in, [&] {
    require(cuda::dequantize(f8r, rows, cols, DType::BF16, static_cast<char*>(dst) + n), "fp8 dequantize");
  });
  const QuantOut blk{QuantFormat::Fp8Block, dst, scale, DType::F32};
  kernel("fp8-block quantize bf16", in + n,
         [&] { require(cuda::quantize(DType::BF16, src, rows, cols, blk), "fp8-block quantize"); });
  const QuantRef blkr{QuantFormat::Fp8Block, dst, scale, DType::F32};
  kernel("fp8-block dequantize bf16", n + in, [&] {
    require(cuda::dequantize(blkr, rows, cols, DType::BF16, static_cast<char*>(dst) + n), "fp8-block dequantize");
  });
  const QuantOut mx{QuantFormat::Mxfp8, dst, scale};
  kernel("mxfp8 quantize bf16", in + n + n / 32.0,
         [&] { require(cuda::quantize(DType::BF16, src, rows, cols, mx), "mxfp8 quantize"); });
  const QuantRef mxr{QuantFormat::Mxfp8, dst, scale};
  kernel("mxfp8 dequantize bf16", n + n / 32.0 + in,
         [&] { require(cuda::dequantize(mxr, rows, cols, DType::BF16, static_cast<char*>(dst) + n), "mxfp8 dequantize"); });
  // Requantization: values NVFP4 held (quantized, then dequantized to BF16), about one
  // in fifteen of them zero.
  require(cuda::quantize(DType::BF16, src, rows, cols, nv), "nvfp4 quantize");
  void* requant = static_cast<char*>(dst) + n;
  require(cuda::dequantize(nvr, rows, cols, DType::BF16, requant), "nvfp4 dequantize");
  pass("fp8 quantize bf16 of NVFP4 values", in + n,
       [&] { require(cuda::quantize(DType::BF16, requant, rows, cols, f8), "fp8 quantize, NVFP4 values"); }, in);
  float requantAmax = 0;
  require(cuda::amax(DType::BF16, requant, n, requantAmax), "amax");
  given.globalScale = requantAmax / 448.0f;
  pass("fp8 quantize bf16 of NVFP4 values, scale given", in + n,
       [&] { require(cuda::quantize(DType::BF16, requant, rows, cols, f8, given), "fp8 quantize, NVFP4 values"); });
  kernel("cast bf16 -> f32", in + n * 4.0,
         [&] { require(cuda::castTensor(DType::BF16, src, DType::F32, dst, n), "cast"); });
  kernel("affine bf16 (w + 1)", 2 * in,
         [&] { require(cuda::affineTensor(DType::BF16, src, DType::BF16, dst, n, 1.0, 1.0), "affine"); });
  const int64_t shape[2] = {int64_t(rows), int64_t(cols)}, perm[2] = {1, 0};
  kernel("transpose bf16", 2 * in, [&] { require(cuda::transpose(src, dst, shape, perm, 2, 2), "transpose"); });

  // The backend on host memory, as the runtime calls it: several threads, one tensor each.
  void* pinned = nullptr;
  require(cudaMallocHost(&pinned, n * 2) == cudaSuccess, "cudaMallocHost");
  const double h2d = timeDevice(reps, [&] { cudaMemcpyAsync(src, pinned, n * 2, cudaMemcpyHostToDevice); });
  const double h2dBw = n * 2.0 / h2d;
  std::fprintf(stderr, "pinned host-to-device copy: %.1f GB/s\n", h2dBw / 1e9);
  KernelStatus st;
  std::unique_ptr<KernelBackend> backend = makeCudaBackend({}, st);
  require(st, "backend");
  const unsigned threads = 4;
  std::vector<std::vector<uint8_t>> packed(threads, std::vector<uint8_t>(n / 2)), scales(threads, std::vector<uint8_t>(n / 16));
  std::vector<float> globals(threads);
  const double seconds = timeHost(3, [&] {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        require(backend->quantize(DType::BF16, w.data(), rows, cols,
                                  {QuantFormat::Nvfp4, packed[t].data(), scales[t].data(), DType::F32, &globals[t]}, {}),
                "backend quantize");
      });
    for (std::thread& t : pool)
      t.join();
  });
  report("backend", "nvfp4 quantize bf16, host memory, 4 threads", seconds, threads * (in + n / 2.0 + n / 16.0), h2dBw,
         "pinned h2d copy");
  cudaFreeHost(pinned);
  cudaFree(src);
  cudaFree(dst);
  cudaFree(scale);
  cudaFree(global);
  return 0;
}
