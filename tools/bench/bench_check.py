#!/usr/bin/env python3
"""Times `ckptmap check` (header-only verification) on a full-size DeepSeek-V3 checkpoint.

The checkpoint is written by synth.py as sparse files: every shard has its real header and
apparent size, the data are holes, so 1.4 TB take a few MB of disk. Two layouts:
  bf16  the HF BF16 checkpoint: 46,183 tensors (the layout rulebooks/deepseek_v3.rules covers)
  fp8   the released FP8 checkpoint: 91,991 tensors (e4m3 weights + weight_scale_inv) in
        163 shards of ~4.2 GB, as on the hub
Each is checked --repeat times (after one untimed run, so headers are in the page cache);
`ckptmap inspect` (reading and validating the headers only) is timed alongside as the floor.
Prints wall seconds (best and median), CPU seconds, peak memory and the exit status.
Goal: check < 1 s for the full model. With --perf, records the check with `perf` and prints
the functions where the time goes (inclusive and self). --max-shard-size 100TB writes one
file: costs that grow faster than linearly with the tensors per file show up there.
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
import synth  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(cmd):
    """Runs cmd; returns (wall s, cpu s, peak RSS MiB, exit status, output)."""
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        out = log.read().decode(errors="replace")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, p.returncode, out


def perf_report(cmd, tmp):
    """Samples cmd with perf (DWARF call graphs) and prints the heaviest functions."""
    if not shutil.which("perf"):
        print("perf not found; try: valgrind --tool=callgrind " + " ".join(cmd))
        return
    data = os.path.join(tmp, "perf.data")
    subprocess.run(["perf", "record", "-q", "-F", "999", "--call-graph", "dwarf,16384",
                    "-o", data, "--"] + cmd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    for title, mode in (("inclusive (with callees)", "--children"),
                        ("self", "--no-children")):
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", mode, "--sort", "symbol",
                            "-g", "none", "--percent-limit", "2"],
                           capture_output=True, text=True, check=False)
        print(f"\nperf: time by function, {title}:")
        shown = 0
        for line in r.stdout.splitlines():
            parts = line.split()
            if not parts or not parts[0].endswith("%") or "[k]" in parts:
                continue
            pct = parts[:2] if mode == "--children" else parts[:1]
            sym = line.split("[.]", 1)[-1].strip()
            sym = sym.split("  ")[0]
            if sym.startswith(("std::", "0x", "_start", "__libc_start")) or "(inlined)" in sym:
                continue
            print("  " + " ".join(f"{p:>7}" for p in pct) + "  " + sym[:110])
            shown += 1
            if shown >= 30:
                break


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--layout", choices=("bf16", "fp8", "both"), default="both")
    ap.add_argument("--ckptmap", default=os.path.join(ROOT, "build", "ckptmap"))
    ap.add_argument("--rulebook", help="rulebook (default: chosen by ckptmap from config.json)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per layout (default 5)")
    ap.add_argument("--max-shard-size", type=synth.parse_size, default=int(4.25e9),
                    metavar="SIZE", help="shard size (default 4.25GB: 163 FP8 shards)")
    ap.add_argument("--workdir", default=tempfile.gettempdir(),
                    help="where the temporary checkpoint goes (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the generated checkpoints")
    ap.add_argument("--perf", action="store_true", help="profile one check with perf")
    synth.add_model_args(ap)
    a = ap.parse_args()
    if not os.access(a.ckptmap, os.X_OK):
        ap.error(f"{a.ckptmap} not found: build first (cmake --build build)")

    layouts = ["bf16", "fp8"] if a.layout == "both" else [a.layout]
    tmp = tempfile.mkdtemp(prefix="ckptmap-bench-check-", dir=a.workdir)
    rows = []
    try:
        for layout in layouts:
            a.fp8 = layout == "fp8"
            cfg = synth.config_from_args(a)
            d = os.path.join(tmp, layout)
            t0 = time.perf_counter()
            n, total = synth.write_checkpoint(d, cfg, a.max_shard_size, sparse=True)
            gen = time.perf_counter() - t0
            shards = sum(f.endswith(".safetensors") for f in os.listdir(d))
            disk = sum(os.stat(os.path.join(d, f)).st_blocks * 512 for f in os.listdir(d))
            print(f"{layout}: {synth.describe(cfg, a.max_shard_size).splitlines()[0]}")
            print(f"{layout}: {n} tensors, {total / 1e12:.3f} TB apparent in {shards} shards, "
                  f"{disk / 2**20:.1f} MiB on disk, generated in {gen:.1f} s")
            check = [a.ckptmap, "check"] + ([a.rulebook] if a.rulebook else []) + \
                    ["--from", "hf", "--to", "mcore", d]
            for name, cmd in (("inspect", [a.ckptmap, "inspect", d]), ("check", check)):
                first = timed(cmd)  # untimed: warms the page cache
                runs = [timed(cmd) for _ in range(a.repeat)]
                walls = [r[0] for r in runs]
                cpu = statistics.median(r[1] for r in runs)
                rss = max(r[2] for r in runs)
                rc = runs[-1][3]
                rows.append((layout, name, min(walls), statistics.median(walls), cpu, rss, rc))
                if name == "check":
                    lines = first[4].strip().splitlines()
                    print(f"{layout}: check says: " + (lines[0] if lines else "(nothing)"))
                    if rc != 0:
                        for ln in lines[1:6]:
                            print(f"{layout}:   {ln}")
            if a.perf:
                print(f"\n{layout}: profiling: {' '.join(check)}")
                perf_report(check, tmp)
            if not a.keep:
                shutil.rmtree(d)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    print(f"\n{'layout':<7} {'command':<8} {'best s':>7} {'median s':>9} {'cpu s':>6} "
          f"{'peak MiB':>9} {'exit':>5}  goal < 1 s")
    for layout, name, best, med, cpu, rss, rc in rows:
        goal = ("met" if best < 1 else "MISSED") if name == "check" and rc == 0 else ""
        if name == "check" and rc != 0:
            goal = "(check failed)"
        print(f"{layout:<7} {name:<8} {best:7.2f} {med:9.2f} {cpu:6.2f} {rss:9.0f} {rc:5}  {goal}")
    print(f"({a.repeat} timed runs each after a warm-up; cpu = median user+sys; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
