#!/usr/bin/env bash
# Asks Megatron-Core itself to load torch_dist checkpoints written by this project's writer:
# each fixture's tensors rewritten with one chunk per tensor over 1 or 3 writer ranks, default
# extra state, a common_state with extra keys and an extra bytes entry; then loaded into TP1
# and TP2/EP2 models and compared with the fixture's expectations rank by rank.
# Needs torch, torchrun and Megatron-Core's source (megatron/core) - e.g. on the device
# machine. Run from the repository root after building:
#   tests/mcore/verify_with_megatron.sh MEGATRON_LM_DIR MCORE_CKPT_PY [WORK_DIR]
# MCORE_CKPT_PY is the fixture generator (shared/tools/mcore_ckpt.py).
set -euo pipefail
MEGATRON=$1 SCRIPT=$2 WORK=${3:-/tmp/mcore_verify}
F=tests/fixtures/mcore
rm -rf "$WORK" && mkdir -p "$WORK"
build/tests/mcore/mcore_write_for_megatron $F/minimax_m3_text/tp2_ep2/torch_dist "$WORK/minimax_1rank" 1
build/tests/mcore/mcore_write_for_megatron $F/deepseek_v3/tp2_ep2/torch_dist "$WORK/deepseek_3ranks" 3
export PYTHONPATH=$MEGATRON PYTHONUNBUFFERED=1
run() { echo "== $*"; torchrun --nproc_per_node "$1" --master_port "$2" "$SCRIPT" verify "${@:3}" 2>&1 | grep -E "verify rank|Error|Traceback"; }
run 4 29601 $F/minimax_m3_text/tp2_ep2/torch_dist a 2 2 $F/minimax_m3_text/tp2_ep2/ranks
run 1 29602 "$WORK/minimax_1rank" a 1 1 $F/minimax_m3_text/tp2_ep2/global.safetensors
run 4 29603 "$WORK/minimax_1rank" a 2 2 $F/minimax_m3_text/tp2_ep2/ranks
run 1 29604 "$WORK/deepseek_3ranks" deepseek-a 1 1 $F/deepseek_v3/tp2_ep2/global.safetensors
run 4 29605 "$WORK/deepseek_3ranks" deepseek-a 2 2 $F/deepseek_v3/tp2_ep2/ranks
