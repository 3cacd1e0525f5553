#!/usr/bin/env python3
"""Proves converted checkpoints are the same model: loads each with transformers' from_pretrained
and compares its logits with the fixture's reference logits, bit for bit.

Needs torch and transformers (5.17, the version that saved the fixtures). For every fixture family
it runs, with the ckptmap binary,
    hf -> mcore -> hf            ckptmap run --from hf --to mcore HUB M; ckptmap run M HF
and loads both the original hub directory (a control: the harness must reproduce the reference)
and the round-tripped one. Further directories to load are given as NAME=DIR:FAMILY (e.g. an
official-layout output made by ckptmap from FAMILY's fixture). The logits are computed the way
the fixtures' generator computed them: weights loaded as BF16, then the model in FP32 on the CPU,
on the fixture's input_ids.

    python3 tools/device_logits.py [--ckptmap build/ckptmap] [--fixtures tests/fixtures/hf]
                                   [--work DIR] [NAME=DIR:FAMILY ...]

Prints one line per checkpoint loaded; exits 1 when any logits differ or any step fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file

FAMILIES = ["nemotron_h", "qwen3_5_moe", "deepseek_v3", "minimax_m3"]


def logits_of(directory, input_ids):
    with open(os.path.join(directory, "config.json")) as f:
        architecture = json.load(f)["architectures"][0]
    cls = getattr(transformers, architecture)
    model = cls.from_pretrained(directory, dtype=torch.bfloat16).eval().float()
    with torch.no_grad():
        return model(input_ids=input_ids).logits.float()


def compare(label, directory, reference):
    try:
        got = logits_of(directory, reference["input_ids"])
    except Exception as e:  # report the failure and go on with the others
        print(f"{label}: FAILED to load: {e!r}"[:600])
        return False
    want = reference["logits"]
    if got.shape == want.shape and torch.equal(got, want):
        print(f"{label}: logits {list(got.shape)} bit-equal to the reference")
        return True
    detail = f"shape {list(got.shape)} vs {list(want.shape)}"
    if got.shape == want.shape:
        diff = (got - want).abs()
        detail = f"{int((got != want).sum())} of {got.numel()} differ, max |diff| {diff.max().item():.3g}"
    print(f"{label}: logits DIFFER ({detail})")
    return False


def ckptmap(binary, *args):
    done = subprocess.run([binary, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ckptmap {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckptmap", default="build/ckptmap")
    parser.add_argument("--fixtures", default="tests/fixtures/hf")
    parser.add_argument("--work", default=None, help="where the conversions go (default: a temporary directory)")
    parser.add_argument("extra", nargs="*", metavar="NAME=DIR:FAMILY")
    args = parser.parse_args(argv[1:])
    work = args.work or tempfile.mkdtemp(prefix="ckptmap-logits-")
    torch.manual_seed(0)
    ok = True
    cases = []
    for family in FAMILIES:
        hub = os.path.join(args.fixtures, family, "hub")
        cases.append((f"{family} fixture (control)", hub, family))
        mcore, back = os.path.join(work, family, "mcore"), os.path.join(work, family, "hf")
        os.makedirs(os.path.join(work, family), exist_ok=True)  # ckptmap creates OUT, not its parents
        try:
            ckptmap(args.ckptmap, "run", "-q", "--force", "--from", "hf", "--to", "mcore", hub, mcore)
            ckptmap(args.ckptmap, "run", "-q", "--force", mcore, back, "--hf-base", hub)
        except RuntimeError as e:
            print(f"{family} hf -> mcore -> hf: FAILED: {e}")
            ok = False
            continue
        cases.append((f"{family} hf -> mcore -> hf", back, family))
    for spec in args.extra:
        name, _, rest = spec.partition("=")
        directory, _, family = rest.rpartition(":")
        if not name or not directory or family not in FAMILIES:
            parser.error(f"{spec}: expected NAME=DIR:FAMILY with FAMILY one of {', '.join(FAMILIES)}")
        cases.append((name, directory, family))
    for label, directory, family in cases:
        reference = load_file(os.path.join(args.fixtures, family, "logits.safetensors"))
        ok &= compare(label, directory, reference)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: "
          f"{'all logits bit-equal' if ok else 'FAILURES above'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
