#!/usr/bin/env bash
# Proves that Megatron-Core loads what `ckptmap run --to mcore` writes: each Megatron-written
# fixture (torch_dist, TP2/EP2) is converted to HF by the ckptmap command line, its provenance
# removed as if it came from the hub, converted back to torch_dist (once plain, once in
# Megatron's iter_* save layout), and then loaded by Megatron-Core's dist_checkpointing into
# TP1/EP1 and TP2/EP2 models; every tensor on every rank must equal what Megatron-Core itself
# saved. Needs torch, torchrun and Megatron-Core's source (megatron/core), e.g. on a GPU
# machine. Run from the repository root after building:
#   tools/verify_megatron.sh MEGATRON_LM_DIR MCORE_CKPT_PY [WORK_DIR]
# MCORE_CKPT_PY is the script that made the fixtures (it builds the models and compares).
set -euo pipefail
MEGATRON=$1 SCRIPT=$2 WORK=${3:-/tmp/ckptmap_verify_megatron}
CKPTMAP=${CKPTMAP:-build/ckptmap}
F=tests/fixtures/mcore
rm -rf "$WORK" && mkdir -p "$WORK"
for model in minimax_m3_text deepseek_v3; do
  "$CKPTMAP" run -q --to hf "$F/$model/tp2_ep2/torch_dist" "$WORK/$model-hf" --hf-config "$F/$model/hf_config/config.json"
  rm "$WORK/$model-hf/ckptmap.json"
  "$CKPTMAP" run -q --from hf --to mcore "$WORK/$model-hf" "$WORK/$model-td"
  "$CKPTMAP" run -q --from hf --to mcore --iteration 7 "$WORK/$model-hf" "$WORK/$model-saved"
done
export PYTHONPATH=$MEGATRON PYTHONUNBUFFERED=1
port=29611
run() {
  echo "== torchrun --nproc_per_node $1 verify ${*:2}"
  torchrun --nproc_per_node "$1" --master_port $((port++)) "$SCRIPT" verify "${@:2}" 2>&1 | grep -E "verify rank|Error|Traceback"
}
run 1 "$WORK/minimax_m3_text-td" a 1 1 $F/minimax_m3_text/tp2_ep2/global.safetensors
run 4 "$WORK/minimax_m3_text-td" a 2 2 $F/minimax_m3_text/tp2_ep2/ranks
run 4 "$WORK/minimax_m3_text-saved/iter_0000007" a 2 2 $F/minimax_m3_text/tp2_ep2/ranks
run 1 "$WORK/deepseek_v3-td" deepseek-a 1 1 $F/deepseek_v3/tp2_ep2/global.safetensors
run 4 "$WORK/deepseek_v3-td" deepseek-a 2 2 $F/deepseek_v3/tp2_ep2/ranks
run 4 "$WORK/deepseek_v3-saved/iter_0000007" deepseek-a 2 2 $F/deepseek_v3/tp2_ep2/ranks
