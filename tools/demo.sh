#!/usr/bin/env bash
# Installs dependencies, builds ckptmap, and converts a shipped example checkpoint
# (a tiny DeepSeek-V3 saved by transformers) HF -> Megatron-Core torch_dist -> HF, and a
# torch_dist checkpoint saved by Megatron-Core to HF, showing each step.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
ckpt=tests/fixtures/hf/deepseek_v3/hub
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
set -x
build/ckptmap check deepseek_v3 --from hf --to mcore "$ckpt"
build/ckptmap run deepseek_v3 --from hf --to mcore "$ckpt" "$out/mcore"
build/ckptmap inspect "$out/mcore" | head -n 12
build/ckptmap run "$out/mcore" "$out/hf"
build/ckptmap diff "$ckpt" "$out/hf"
# A checkpoint Megatron-Core itself saved (torch_dist, TP2/EP2) to HF, with no Python or torch.
megatron=tests/fixtures/mcore/deepseek_v3
build/ckptmap run "$megatron/tp2_ep2/torch_dist" "$out/from-megatron" --to hf --hf-config "$megatron/hf_config/config.json"
