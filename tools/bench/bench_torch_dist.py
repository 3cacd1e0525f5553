#!/usr/bin/env python3
"""Compares converting a Megatron-Core torch_dist checkpoint to HF with `cp -r` of it.

One run generates a DeepSeek-V3 HF checkpoint of --size-gb with random data and real tensor
shapes (synth.py), converts it to torch_dist with ckptmap, and rewrites that as a training
run with tensor parallel size --tp and expert parallel size --ep saves it (synth_torch_dist:
column- and row-parallel weights cut into TP blocks, one chunk per expert, TP x EP .distcp
files). Then it times, alternating, for each cache state:
  cp       cp -r TORCH_DIST OUT
  hf       ckptmap run TORCH_DIST OUT --to hf   (every tensor assembled from its chunks;
           experts unstacked, gated and QKV weights split, written as HF safetensors)
Cache states and the two times per run are those of bench_rename.py (warm / cold; until
exit, and until the output is on disk). Ratio is cp seconds / ckptmap seconds. The HF output
is checked tensor for tensor against the generated HF checkpoint (`ckptmap diff`).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_rename  # noqa: E402
import synth  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--workdir", default=tempfile.gettempdir(),
                    help="where temporary checkpoints go (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median; default 3)")
    ap.add_argument("--cache", default="warm,cold", help="cache states (default warm,cold)")
    ap.add_argument("--tp", type=int, default=4, help="tensor parallel size of the layout (default 4)")
    ap.add_argument("--ep", type=int, default=8, help="expert parallel size of the layout (default 8)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="build directory (default build/)")
    ap.add_argument("-j", "--threads", type=int, help="ckptmap worker threads (default: its own)")
    synth.add_model_args(ap, "model (default: --size-gb 4 of real tensor shapes)")
    ap.set_defaults(size_gb=4.0)
    a = ap.parse_args()
    ckptmap = os.path.join(a.build, "ckptmap")
    reshard = os.path.join(a.build, "synth_torch_dist")
    for exe in (ckptmap, reshard):
        if not os.access(exe, os.X_OK):
            ap.error(f"{exe} not found: build first (cmake --build build)")
    tmp = tempfile.mkdtemp(prefix="ckptmap-bench-torch-dist-", dir=a.workdir)
    try:
        return bench(a, tmp, ckptmap, reshard)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(a, tmp, ckptmap, reshard):
    cfg = synth.config_from_args(a)
    print(synth.describe(cfg, 10**9))
    hf = os.path.join(tmp, "hf")
    synth.write_checkpoint(hf, cfg, 10**9)
    run([ckptmap, "run", "-q", "--from", "hf", "--to", "mcore", hf, os.path.join(tmp, "one-rank")])
    td = os.path.join(tmp, "torch_dist")
    run([reshard, os.path.join(tmp, "one-rank"), td, str(a.tp), str(a.ep)])
    shutil.rmtree(os.path.join(tmp, "one-rank"))
    os.sync()
    td_bytes = sum(os.path.getsize(p) for p in bench_rename.files_under(td))
    files = sum(1 for f in os.listdir(td) if f.endswith(".distcp"))
    print(f"torch_dist: {td_bytes / 1e9:.3f} GB in {files} .distcp files (TP {a.tp}, EP {a.ep})")

    threads = ["-j", str(a.threads)] if a.threads else []
    modes = {
        "cp": lambda out: ["cp", "-r", td, out],
        "hf": lambda out: [ckptmap, "run", "-q", "--to", "hf", td, out] + threads,
    }
    out = os.path.join(tmp, "out")
    results = {}
    for cache in a.cache.split(","):
        for r in range(a.repeat):
            order = list(modes)[r % 2:] + list(modes)[:r % 2]
            for mode in order:
                shutil.rmtree(out, ignore_errors=True)
                os.sync()
                if cache == "warm":
                    bench_rename.warm(td)
                else:
                    method = bench_rename.evict(td)
                exit_s, disk_s, cpu_s = bench_rename.run_timed(modes[mode](out), out)
                results.setdefault((cache, mode), []).append((exit_s, disk_s, cpu_s))
                if mode == "hf" and r == 0 and cache == a.cache.split(",")[0]:
                    diff = subprocess.run([ckptmap, "diff", hf, out], capture_output=True, text=True)
                    last = diff.stdout.strip().splitlines()[-1] if diff.stdout.strip() else diff.stderr
                    print(f"check: ckptmap diff generated-hf output: {last}")
                    if diff.returncode != 0:
                        raise RuntimeError("the HF output differs from the generated checkpoint")
        if cache == "cold":
            print(f"cold cache: evicted with {method}")
    print(f"\n{'cache':6} {'mode':4} {'exit s':>8} {'disk s':>8} {'GB/s':>6} {'cpu s':>7}  ratio cp/ckptmap (exit, disk)")
    for cache in a.cache.split(","):
        cp = [statistics.median(x[i] for x in results[(cache, "cp")]) for i in range(3)]
        for mode in modes:
            m = [statistics.median(x[i] for x in results[(cache, mode)]) for i in range(3)]
            ratio = "" if mode == "cp" else f"  {cp[0] / m[0]:.2f}x, {cp[1] / m[1]:.2f}x"
            print(f"{cache:6} {mode:4} {m[0]:8.2f} {m[1]:8.2f} {td_bytes / 1e9 / m[1]:6.2f} {m[2]:7.2f}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
