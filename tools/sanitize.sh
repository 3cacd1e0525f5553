#!/usr/bin/env bash
# Builds the test suite and the fuzz targets with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer into build-san/ (CPU paths only), runs the suite there, then runs
# each fuzz target for FUZZ_SECONDS (default 60). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
# -O1 keeps the sanitized suite fast; line tables are all a report needs.
cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-16 -DCMAKE_C_COMPILER=clang-16 \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DCKPTMAP_SANITIZE=ON -DCKPTMAP_FUZZ=ON -DCKPTMAP_CUDA=OFF \
  "$@" >/dev/null
# CI builds and runs the library-level suites here (compiler, runtime, mcore, kernels) and the
# fuzz targets; the end-to-end suite, which drives the binary, joins with SANITIZE_E2E=1 (it
# doubles the build on a 2-core CI machine).
targets=(compiler_tests runtime_tests mcore_tests kernels_tests fuzz_safetensors_header fuzz_shard_index fuzz_rulebook)
exclude='device|e2e'
if [ "${SANITIZE_E2E:-}" = 1 ]; then
  targets=(all)
  exclude=device
fi
cmake --build build-san --target "${targets[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-15/bin/llvm-symbolizer}
ctest --test-dir build-san --output-on-failure -j"$(nproc)" -LE "$exclude"
tools/fuzz.sh "${FUZZ_SECONDS:-60}" build-san
