// The GPU backend end to end: every conversion that computes (quantize into each format,
// dequantize, requantize, the affine and cast rules of the families, quantized weights through
// hf-mem's stacked experts) gives byte-identical checkpoints with --device cuda and
// --device cpu. Without a GPU every test case is skipped and the program exits with 77
// (CTest: "Skipped").
#define DOCTEST_CONFIG_IMPLEMENT
#include "E2e.h"

#include "kernels/Cuda.h"
#include "runtime/exec/Progress.h"

namespace ckptmap::e2e {
namespace {

ConvertOptions on(ConvertOptions o, DeviceChoice device) {
  o.device.device = device;
  return o;
}

ConvertOptions identity(QuantKind quantize, bool dequantize = false) {
  ConvertOptions o;
  o.identity = true;
  o.bind.from = o.bind.to = "hf";
  o.quant.quantize.kind = quantize;
  o.quant.dequantize = dequantize;
  o.write.maxShardSize = 200'000;
  return o;
}

/// Converts `in` on both backends and requires identical outputs; returns the GPU run's summary.
ConvertSummary sameOnBoth(const std::string &in, const ConvertOptions &o) {
  TempDir tmp;
  convertOk(in, tmp / "cpu", on(o, DeviceChoice::Cpu));
  ConvertSummary gpu = convertOk(in, tmp / "cuda", on(o, DeviceChoice::Cuda));
  CHECK(gpu.device == "cuda");
  const DiffResult d = diffPaths(tmp / "cpu", tmp / "cuda");
  CHECK_MESSAGE(d.same(), diffText(d));
  for (const std::string &f : listFiles(tmp / "cpu"))
    if (!endsWith(f, ".safetensors"))
      CHECK_MESSAGE(readFile(tmp / "cpu/" + f) == readFile(tmp / "cuda/" + f), f);
  return gpu;
}

} // namespace

TEST_CASE("--device cuda quantizes every family into every format as the CPU does") {
  for (const std::string &family : families()) {
    for (QuantKind kind : {QuantKind::Nvfp4, QuantKind::Fp8Tensor, QuantKind::Mxfp8}) {
      CAPTURE(family);
      CAPTURE(describe(QuantType{kind}));
      ConvertSummary s = sameOnBoth(hubDir(family), identity(kind));
      CHECK(s.kernels.deviceOps > 0);
    }
  }
  sameOnBoth(hubDir("deepseek_v3_fp8"), identity(QuantKind::Fp8Block));
}

TEST_CASE("--device cuda dequantizes and requantizes the DeepSeek FP8 release as the CPU does") {
  ConvertSummary s = sameOnBoth(hubDir("deepseek_v3_fp8"), identity(QuantKind::None, true));
  CHECK(s.kernels.deviceOps > 0);
  for (QuantKind kind : {QuantKind::Nvfp4, QuantKind::Fp8Tensor, QuantKind::Mxfp8})
    sameOnBoth(hubDir("deepseek_v3_fp8"), identity(kind));
}

TEST_CASE("--device cuda converts every family hf -> mcore and hf -> hf-mem as the CPU does") {
  for (const std::string &family : families()) {
    CAPTURE(family);
    sameOnBoth(hubDir(family), options(family, "hf", "mcore"));
    sameOnBoth(hubDir(family), options(family, "hf", "hf-mem"));
    // Quantized on the way, through every split, fuse and stack of the rulebook.
    ConvertOptions q = options(family, "hf", "hf-mem");
    q.quant.quantize.kind = QuantKind::Nvfp4;
    sameOnBoth(hubDir(family), q);
  }
}

} // namespace ckptmap::e2e

int main(int argc, char **argv) {
  ckptmap::ProgressDisplay::setQuiet(true);
  doctest::Context ctx(argc, argv);
  if (!ckptmap::cuda::cudaAvailable()) {
    std::printf("no CUDA device: device tests skipped\n");
    ctx.addFilter("test-case-exclude", "*");
    const int rc = ctx.run();
    return rc ? rc : 77;
  }
  return ctx.run();
}
