#!/usr/bin/env python3
"""Compares ckptmap's conversion throughput with `cp -r` on a real-data checkpoint.

One run generates (or reuses, --input) a DeepSeek-V3 HF checkpoint of --size-gb with random
data and real tensor shapes (synth.py), then times, alternating, for each cache state:
  cp       cp -r IN OUT
  mcore    ckptmap run --from hf --to mcore IN OUT   (rulebooks/deepseek_v3.rules: renames,
           gated fuses of the MLPs and experts, MTP copies compared and dropped: byte moves)
  rename   ckptmap run tools/bench/rename.rules ...  (every tensor renamed, nothing else)
Cache states (each repeat rotates the order of the modes):
  warm   the input files are read once before each timed run (in the page cache)
  cold   outputs synced, then the input evicted before each timed run: `echo 3 >
         /proc/sys/vm/drop_caches` where permitted, else posix_fadvise(DONTNEED) on every
         input file (the method used is printed)
Two times per run: until the command exits, and until its output is on disk (the exit time
plus an fsync of every output file; cp leaves its data dirty in the page cache, ckptmap
fsyncs its shards before it renames the output into place, so the second is the fair one).
GB/s is input bytes / seconds; ratio is cp seconds / ckptmap seconds (goal: >= 0.90).
Every output is verified: tensor names, dtypes, shapes and sizes against the compiled plan
(ckptmap compile), every shard's header against its file size, and sampled bytes of every
tensor against the input pieces it was built from (renames and concatenations).
"""

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synth  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DROP_CACHES = "/proc/sys/vm/drop_caches"


# ---- checkpoints ---------------------------------------------------------------------------

def read_headers(d):
    """{name: (dtype, shape, path, absolute data offset, nbytes)} of every shard in d, with
    each shard's header checked against its file size and the index against the shards."""
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    out = {}
    for f in files:
        p = os.path.join(d, f)
        with open(p, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            hdr = json.loads(fh.read(n))
        hdr.pop("__metadata__", None)
        end = 0
        for name, t in hdr.items():
            b, e = t["data_offsets"]
            if e - b != synth.DTYPE_BYTES.get(t["dtype"], 0) * _prod(t["shape"]):
                raise AssertionError(f"{p}: {name}: size does not match dtype and shape")
            if name in out:
                raise AssertionError(f"{name} in two shards")
            out[name] = (t["dtype"], t["shape"], p, 8 + n + b, e - b)
            end = max(end, e)
        if os.path.getsize(p) != 8 + n + end:
            raise AssertionError(f"{p}: {os.path.getsize(p)} bytes, header says {8 + n + end}")
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as fh:
            wm = json.load(fh)["weight_map"]
        if set(wm) != set(out) or any(os.path.basename(out[k][2]) != v for k, v in wm.items()):
            raise AssertionError(f"{idx} does not match the shards")
    return out


def _prod(shape):
    r = 1
    for s in shape:
        r *= s
    return r


def byte_sources(plan):
    """{output tensor: [(input tensor, nbytes), ...]} for the steps that only move bytes:
    rename (load, store) and concatenation along dim 0 (gated fuses)."""
    res = {}
    for step in plan["steps"]:
        vals = {}
        for ins in step["instrs"]:
            op = ins["op"]
            if op == "load":
                vals[ins["out"][0]] = [ins["tensor"]]
            elif op == "concat" and ins.get("dim") == 0:
                vals[ins["out"][0]] = [t for i in ins["in"] for t in vals.get(i, [None])]
            elif op == "store" and None not in vals.get(ins["in"][0], [None]):
                res[ins["tensor"]] = vals[ins["in"][0]]
    return res


def verify(out_dir, inp, expected, sources, window=4096):
    """Checks out_dir against the expected {name: (dtype, shape)} and compares sampled bytes
    (start, middle, end of every piece) with the input. Returns a one-line summary."""
    got = read_headers(out_dir)
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    if missing or extra:
        raise AssertionError(f"{out_dir}: {len(missing)} tensors missing "
                             f"(e.g. {sorted(missing)[:3]}), {len(extra)} unexpected "
                             f"(e.g. {sorted(extra)[:3]})")
    for name, (dt, sh) in expected.items():
        if (got[name][0], list(got[name][1])) != (dt, list(sh)):
            raise AssertionError(f"{name}: {got[name][0]} {got[name][1]}, plan says {dt} {sh}")
    checked = sampled = 0
    handles = {}

    def pread(path, off, n):
        if path not in handles:
            handles[path] = os.open(path, os.O_RDONLY)
        return os.pread(handles[path], n, off)

    try:
        for name, pieces in sources.items():
            o = got[name]
            at = o[3]
            total = 0
            for src in pieces:
                i = inp[src]
                n = i[4]
                for rel in {0, max(0, n // 2 - window // 2), max(0, n - window)}:
                    k = min(window, n - rel)
                    if pread(i[2], i[3] + rel, k) != pread(o[2], at + rel, k):
                        raise AssertionError(f"{name}: bytes at {rel} of piece {src} differ")
                    sampled += k
                at += n
                total += n
            if total != o[4]:
                raise AssertionError(f"{name}: {o[4]} bytes, its pieces have {total}")
            checked += 1
    finally:
        for fd in handles.values():
            os.close(fd)
    nbytes = sum(t[4] for t in got.values())
    return (f"{len(got)} tensors, {nbytes / 1e9:.3f} GB as planned; {checked} byte-checked "
            f"({sampled / 2**20:.1f} MiB sampled)")


# ---- page cache and timing -----------------------------------------------------------------

def files_under(d):
    for root, _, fs in os.walk(d):
        for f in fs:
            yield os.path.join(root, f)


def fsync_tree(d):
    for p in files_under(d):
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)


def warm(d):
    for p in files_under(d):
        with open(p, "rb", buffering=0) as f:
            while f.read(1 << 24):
                pass


def evict(d):
    """Drops d's files from the page cache; returns the method used."""
    os.sync()
    for p in files_under(d):
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    try:
        with open(DROP_CACHES, "w") as f:
            f.write("3\n")
        return "drop_caches"
    except OSError:
        return "fadvise"


def run_timed(cmd, out):
    """Runs cmd; returns (seconds to exit, seconds until OUT is on disk, CPU seconds)."""
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read().decode(errors='replace')}")
    fsync_tree(out)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0, ru.ru_utime + ru.ru_stime


# ---- main ----------------------------------------------------------------------------------

# Safetensors shards, which the verification reads (MCore's default output is torch_dist).
CONVERSION = ["--from", "hf", "--to", "mcore", "--mcore-format", "safetensors"]


def compile_plan(ckptmap, rulebook, inp, path):
    cmd = [ckptmap, "compile"] + ([rulebook] if rulebook else []) + CONVERSION + [inp, "-o", path, "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    with open(path) as f:
        return json.load(f)


def run_command(ckptmap, rulebook, inp, opts):
    """OUT -> the ckptmap run command line."""
    rb = [rulebook] if rulebook else []
    return lambda out: [ckptmap, "run"] + rb + CONVERSION + [inp, out] + opts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--input", help="reuse this HF DeepSeek-V3 checkpoint (kept)")
    ap.add_argument("--workdir", default=tempfile.gettempdir(),
                    help="where temporary checkpoints go (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median; default 3)")
    ap.add_argument("--cache", default="warm,cold", help="cache states (default warm,cold)")
    ap.add_argument("--modes", default="cp,mcore,rename", help="default cp,mcore,rename")
    ap.add_argument("--ckptmap", default=os.path.join(ROOT, "build", "ckptmap"))
    ap.add_argument("--max-shard-size", type=synth.parse_size, default=10**9, metavar="SIZE",
                    help="shard size of the input and of ckptmap's output (default 1GB)")
    ap.add_argument("-j", "--threads", type=int, help="ckptmap worker threads (default: its own)")
    synth.add_model_args(ap, "input model (default: --size-gb 4 of real tensor shapes)")
    ap.set_defaults(size_gb=4.0)
    a = ap.parse_args()
    if not os.access(a.ckptmap, os.X_OK):
        ap.error(f"{a.ckptmap} not found: build first (cmake --build build)")

    tmp = tempfile.mkdtemp(prefix="ckptmap-bench-rename-", dir=a.workdir)
    try:
        return bench(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(a, tmp):
    if a.input:
        inp = os.path.abspath(a.input)
    else:
        cfg = synth.config_from_args(a)
        print(synth.describe(cfg, a.max_shard_size))
        inp = os.path.join(tmp, "in")
        t0 = time.perf_counter()
        synth.write_checkpoint(inp, cfg, a.max_shard_size)
        os.sync()
        print(f"generated {inp} in {time.perf_counter() - t0:.1f} s")
    in_tensors = read_headers(inp)
    in_bytes = sum(os.path.getsize(p) for p in files_under(inp))
    print(f"input: {len(in_tensors)} tensors, {in_bytes / 1e9:.3f} GB in "
          f"{sum(p.endswith('.safetensors') for p in files_under(inp))} files")

    run_opts = ["--max-shard-size", str(a.max_shard_size), "--no-progress", "-q"]
    if a.threads:
        run_opts += ["-j", str(a.threads)]
    modes = {}
    identity = {n: (t[0], t[1]) for n, t in in_tensors.items()}
    modes["cp"] = ("cp -r", lambda o: ["cp", "-r", inp, o], identity,
                   {n: [n] for n in in_tensors})
    for key, label, rb in (("mcore", "ckptmap hf->mcore", None),
                           ("rename", "ckptmap rename-only", os.path.join(HERE, "rename.rules"))):
        plan = compile_plan(a.ckptmap, rb, inp, os.path.join(tmp, key + ".plan.json"))
        exp = {t["name"]: (t["dtype"], t["shape"]) for t in plan["outputs"]}
        steps = {}
        for s in plan["steps"]:
            steps[s["summary"]] = steps.get(s["summary"], 0) + 1
        print(f"{key}: plan {len(plan['inputs'])} -> {len(plan['outputs'])} tensors, steps "
              + ", ".join(f"{k} {v}" for k, v in sorted(steps.items())))
        modes[key] = (label, run_command(a.ckptmap, rb, inp, run_opts), exp, byte_sources(plan))
    selected = [m for m in a.modes.split(",") if m]
    for m in selected:
        if m not in modes:
            raise SystemExit(f"unknown mode {m}")

    results = {}
    methods = set()
    out = os.path.join(tmp, "out")
    for cache in [c for c in a.cache.split(",") if c]:
        for r in range(a.repeat):
            # Rotate the order so that no mode always runs right after the same other one.
            for m in selected[r % len(selected):] + selected[:r % len(selected)]:
                label, cmd, exp, sources = modes[m]
                shutil.rmtree(out, ignore_errors=True)
                os.sync()
                if cache == "warm":
                    warm(inp)
                elif cache == "cold":
                    methods.add(evict(inp))
                else:
                    raise SystemExit(f"unknown cache state {cache}")
                t_exit, t_disk, cpu = run_timed(cmd(out), out)
                summary = verify(out, in_tensors, exp, sources)
                if r == 0 and cache == a.cache.split(",")[0]:
                    print(f"{m}: output verified: {summary}")
                if os.path.exists(os.path.join(out, "ckptmap-stash")):
                    print(f"{m}: note: output has a ckptmap-stash directory")
                results.setdefault((cache, m), []).append((t_exit, t_disk, cpu))
                shutil.rmtree(out)
                os.sync()

    print()
    if methods:
        print("cold cache: input evicted with " + " + ".join(sorted(methods))
              + " (after a sync) before each timed run")
    print(f"input {in_bytes / 1e9:.2f} GB; median of {a.repeat} runs; ratio = cp s / ckptmap s"
          f" (goal >= 0.90); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'cache':<5} {'mode':<20} | {'to exit s':>9} {'GB/s':>6} {'ratio':>6} | "
          f"{'on disk s':>9} {'GB/s':>6} {'ratio':>6} | {'cpu s':>6}")
    for cache in [c for c in a.cache.split(",") if c]:
        base = results.get((cache, "cp"))
        for m in selected:
            rs = results[(cache, m)]
            te = statistics.median(x[0] for x in rs)
            td = statistics.median(x[1] for x in rs)
            cpu = statistics.median(x[2] for x in rs)
            if base:
                be = statistics.median(x[0] for x in base)
                bd = statistics.median(x[1] for x in base)
                re_, rd = f"{be / te:6.2f}", f"{bd / td:6.2f}"
            else:
                re_ = rd = "     -"
            print(f"{cache:<5} {modes[m][0]:<20} | {te:9.2f} {in_bytes / te / 1e9:6.2f} {re_} | "
                  f"{td:9.2f} {in_bytes / td / 1e9:6.2f} {rd} | {cpu:6.2f}")
    print("each run, seconds to exit / on disk:")
    for cache in [c for c in a.cache.split(",") if c]:
        for m in selected:
            runs = " ".join(f"{x[0]:.2f}/{x[1]:.2f}" for x in results[(cache, m)])
            print(f"  {cache:<5} {m:<7} {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
