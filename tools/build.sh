#!/usr/bin/env bash
# Configures and builds ckptmap into build/ (binary: build/ckptmap). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja "$@" >/dev/null
cmake --build build
