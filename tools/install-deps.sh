#!/usr/bin/env bash
# Installs the Debian packages ckptmap builds with. Idempotent; needs root (or sudo).
# --sanitize adds clang and its sanitizer and libFuzzer runtimes (tools/sanitize.sh).
set -euo pipefail
# openmpi-bin: the tests run partitioned conversions as mpirun's ranks. libjemalloc-dev: the
# tool's allocator (linked statically).
packages=(build-essential cmake ninja-build default-jre-headless antlr4 libantlr4-runtime-dev
          llvm-15-dev nlohmann-json3-dev doctest-dev python3 openmpi-bin libjemalloc-dev)
if [ "${1:-}" = --sanitize ]; then
  packages+=(clang-16 libclang-rt-16-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
