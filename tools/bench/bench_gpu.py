#!/usr/bin/env python3
"""GPU benchmarks of ckptmap, each printed as a ratio against a baseline measured in the same run.

Needs an NVIDIA GPU, torch and safetensors, and a ckptmap build with CUDA (build/ckptmap and
build/bench_kernels). Parts:

  kernels  each quantize/dequantize kernel's throughput (bytes read + written) as a fraction of
           the device-to-device copy bandwidth (goal >= 0.7), and against the same algorithm in
           torch ops on the same GPU (tools/quant_vectors.py's torch implementation; goal >= 30x)
  nvfp4    `ckptmap quantize --format nvfp4 --device cuda` of a multi-GB sharded BF16 checkpoint
           against `cp -r` of the input (goal >= 0.8x) and against the torch pipeline users run
           (safetensors load_file to the GPU, NVFP4 in torch ops, save_file; goal >= 2x), with
           the page cache warm and cold; `--device cpu` alongside for reference
  fp8      DeepSeek-style FP8-block -> BF16 (`ckptmap dequantize --device cuda`) of the FP8
           release layout, against the same two baselines

    tools/bench/bench_gpu.py                          # every part
    tools/bench/bench_gpu.py --parts kernels
    tools/bench/bench_gpu.py --parts nvfp4,fp8 --size-gb 8 --cache warm,cold --repeat 3

Checkpoints are made by synth.py (DeepSeek-V3 names and real tensor shapes) under --workdir and
deleted at the end. Seconds are until the command exits and until its output is on disk (an
fsync of every output file after it exits); ratios use the second, as the fair one between
tools that fsync (ckptmap) and tools that do not (cp, safetensors).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import bench_rename  # noqa: E402  (page cache and timing helpers)
import synth  # noqa: E402

# Bytes each kernel reads and writes for an [r, c] BF16 input, as bench_kernels counts them.
KERNEL_BYTES = {
    "nvfp4 quantize bf16": lambda n: 2 * n + n / 2 + n / 16,
    "nvfp4 dequantize bf16": lambda n: n / 2 + n / 16 + 2 * n,
    "fp8 quantize bf16": lambda n: 2 * n + n,
    "fp8 dequantize bf16": lambda n: n + 2 * n,
    "fp8-block quantize bf16": lambda n: 2 * n + n,
    "fp8-block dequantize bf16": lambda n: n + 2 * n,
    "mxfp8 quantize bf16": lambda n: 2 * n + n + n / 32,
    "mxfp8 dequantize bf16": lambda n: n + n / 32 + 2 * n,
    "cast bf16 -> f32": lambda n: 2 * n + 4 * n,
    "affine bf16 (w + 1)": lambda n: 4 * n,
    "transpose bf16": lambda n: 4 * n,
}


# ---- kernels ----------------------------------------------------------------------------------

def torch_kernels(rows, cols, reps):
    """Seconds per call of each op in torch ops on the GPU, on the same input shape."""
    import torch
    import quant_vectors as qv

    torch.manual_seed(7)
    w = (torch.randn(rows, cols, device="cuda") * 0.02).to(torch.bfloat16)
    packed, s_bits, ws2 = qv.nvfp4_quantize(w)
    q8, scale8 = qv.fp8_quantize(w)
    qb, sb = qv.fp8_block_quantize(w, torch.float32)
    qm, em = qv.mxfp8_quantize(w)
    ops = {
        "nvfp4 quantize bf16": lambda: qv.nvfp4_quantize(w),
        "nvfp4 dequantize bf16": lambda: qv.nvfp4_dequantize(packed, s_bits, ws2).to(torch.bfloat16),
        "fp8 quantize bf16": lambda: qv.fp8_quantize(w),
        "fp8 dequantize bf16": lambda: qv.fp8_dequantize(q8, scale8).to(torch.bfloat16),
        "fp8-block quantize bf16": lambda: qv.fp8_block_quantize(w, torch.float32),
        "fp8-block dequantize bf16": lambda: qv.fp8_block_dequantize(qb, sb).to(torch.bfloat16),
        "mxfp8 quantize bf16": lambda: qv.mxfp8_quantize(w),
        "mxfp8 dequantize bf16": lambda: qv.mxfp8_dequantize(qm, em).to(torch.bfloat16),
        "cast bf16 -> f32": lambda: w.to(torch.float32),
        "affine bf16 (w + 1)": lambda: w + 1,
        "transpose bf16": lambda: w.t().contiguous(),
    }
    out = {}
    for name, f in ops.items():
        f()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        torch.cuda.synchronize()
        out[name] = (time.perf_counter() - t0) / reps
    return out


def bench_kernels(a):
    exe = os.path.join(a.build, "bench_kernels")
    r = subprocess.run([exe, "--rows", str(a.rows), "--cols", str(a.cols), "--reps", "10"],
                       capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"{exe} failed ({r.returncode})")
    ours = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    torch_s = torch_kernels(a.rows, a.cols, 3)
    n = a.rows * a.cols
    print(f"\n== kernels: [{a.rows}, {a.cols}] BF16, bytes read + written")
    # The ceilings: no pass moves bytes faster than the copy, so a row that reads its input twice
    # stays under bytes / (bytes + reread) of it, and no kernel beats torch by more than the copy
    # bandwidth over torch's rate.
    print(f"{'op':44} {'GB/s':>9} {'x d2d copy':>11} {'ceiling':>8} {'torch GB/s':>11} {'x torch':>9} {'ceiling':>8}")
    results = []
    for k in ours:
        copy_ceiling = k["bytes"] / (k["bytes"] + k["reread"])
        if k["kind"] != "kernel":
            print(f"{k['op']:44} {k['gbps']:9.1f} {k['ratio']:11.3f} {copy_ceiling:8.3f}   x {k['reference']}")
            continue
        t = torch_s.get(k["op"])
        tg = KERNEL_BYTES[k["op"]](n) / t / 1e9 if t else float("nan")
        speedup = t / k["seconds"] if t else float("nan")
        torch_ceiling = k["reference_gbps"] / tg
        results.append(dict(k, torch_gbps=tg, vs_torch=speedup, copy_ceiling=copy_ceiling, torch_ceiling=torch_ceiling))
        print(f"{k['op']:44} {k['gbps']:9.1f} {k['ratio']:11.3f} {copy_ceiling:8.3f} {tg:11.1f} {speedup:9.1f} "
              f"{torch_ceiling:8.1f}")
    quant = [x for x in results if "quantize" in x["op"]]
    print(f"quantize/dequantize kernels: lowest {min(x['ratio'] for x in quant):.3f} x d2d copy (goal >= 0.7), "
          f"lowest {min(x['vs_torch'] for x in quant):.1f} x torch (goal >= 30)")
    for x in quant:
        for what, value, goal, ceiling in (("x d2d copy", x["ratio"], 0.7, x["copy_ceiling"]),
                                           ("x torch", x["vs_torch"], 30, x["torch_ceiling"])):
            if value < goal and ceiling < goal:
                print(f"  {x['op']}: {value:.3f} {what}; no program reaches {goal} here (ceiling {ceiling:.3f})")
    return results


# ---- end to end -------------------------------------------------------------------------------

def torch_pipeline(fmt, inp, out, names_file):
    """What users run today: load_file to the GPU, the format in torch ops, save_file."""
    import torch
    from safetensors.torch import load_file, save_file
    import quant_vectors as qv

    names = set(json.load(open(names_file))) if names_file else set()
    os.makedirs(out)
    weight_map = {}
    for shard in sorted(f for f in os.listdir(inp) if f.endswith(".safetensors")):
        tensors = load_file(os.path.join(inp, shard), device="cuda")
        result = {}
        for name, t in tensors.items():
            if fmt == "nvfp4" and name.endswith(".weight") and name[:-7] in names:
                packed, s_bits, ws2 = qv.nvfp4_quantize(t)
                result[name] = packed.cpu()
                result[name + "_scale"] = s_bits.view(torch.float8_e4m3fn).cpu()
                result[name + "_scale_2"] = ws2.cpu()
            elif fmt == "fp8" and name + "_scale_inv" in tensors:
                deq = qv.fp8_block_dequantize(t.view(torch.uint8), tensors[name + "_scale_inv"])
                result[name] = deq.to(torch.bfloat16).cpu()
            elif fmt == "fp8" and name.endswith("_scale_inv") and name[:-10] in tensors:
                continue
            else:
                result[name] = t.cpu()
        save_file(result, os.path.join(out, shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in result})
        del tensors, result
    total = sum(os.path.getsize(os.path.join(out, s)) for s in set(weight_map.values()))
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    for extra in ("config.json", "generation_config.json"):
        if os.path.exists(os.path.join(inp, extra)):
            shutil.copy(os.path.join(inp, extra), out)


def quantized_bases(out_dir):
    """Module names ckptmap quantized (those with a weight_scale_2), for the torch pipeline."""
    names = bench_rename.read_headers(out_dir)
    return sorted(k[: -len(".weight_scale_2")] for k in names if k.endswith(".weight_scale_2"))


def same_tensors(a, b):
    """Fraction of tensors (by name) whose bytes are equal in checkpoints a and b."""
    ha, hb = bench_rename.read_headers(a), bench_rename.read_headers(b)
    if set(ha) != set(hb):
        return 0.0, f"names differ: {len(set(ha) ^ set(hb))}"
    equal = 0
    for name, (dtype_a, shape_a, path_a, start_a, size_a) in ha.items():
        dtype_b, shape_b, path_b, start_b, size_b = hb[name]
        if (dtype_a, list(shape_a), size_a) != (dtype_b, list(shape_b), size_b):
            continue
        with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
            fa.seek(start_a)
            fb.seek(start_b)
            equal += fa.read(size_a) == fb.read(size_b)
    return equal / len(ha), f"{equal} of {len(ha)} tensors byte-identical"


def written_summary(in_bytes, out_bytes, ckptmap_s, cp_s, cache):
    """The output's size is not the input's (NVFP4 writes less, BF16 from FP8 more): the rates
    of bytes written, and of bytes read + written, against cp's."""
    ck_w, cp_w = out_bytes / ckptmap_s, in_bytes / cp_s
    ck_rw, cp_rw = (in_bytes + out_bytes) / ckptmap_s, 2 * in_bytes / cp_s
    text = (f"  output {out_bytes / 1e9:.2f} GB: written at {ck_w / 1e9:.2f} GB/s, {ck_w / cp_w:.2f} x cp -r; "
            f"read + written {ck_rw / 1e9:.2f} GB/s, {ck_rw / cp_rw:.2f} x cp -r")
    if out_bytes > in_bytes and cache == "warm":
        # With the input in the page cache cp's time is its writing; writing more at its rate
        # takes longer by out / in.
        text += (f"\n  a program writing {out_bytes / in_bytes:.2f}x the input at cp's rate of bytes written "
                 f"gets {in_bytes / out_bytes:.2f} x cp -r")
    return text


def bench_e2e(a, part, tmp):
    ckptmap = os.path.join(a.build, "ckptmap")
    inp = os.path.join(tmp, f"in-{part}")
    cfg = synth.config_from_args(argparse.Namespace(
        hidden=None, layers=None, dense=None, experts=None, vocab=None, mtp=None,
        size_gb=a.size_gb, fp8=(part == "fp8")))
    t0 = time.perf_counter()
    synth.write_checkpoint(inp, cfg, max_shard=a.max_shard_size, seed=1, finite=True)
    in_bytes = sum(os.path.getsize(p) for p in bench_rename.files_under(inp))
    print(f"\n== {part}: {in_bytes / 1e9:.2f} GB input in "
          f"{len([f for f in os.listdir(inp) if f.endswith('.safetensors')])} shards "
          f"(written in {time.perf_counter() - t0:.0f} s)")
    job = ["quantize", "--format", "nvfp4"] if part == "nvfp4" else ["dequantize"]
    names_file = os.path.join(tmp, "names.json")
    modes = {
        "cp -r": lambda out: ["cp", "-r", inp, out],
        "ckptmap cuda": lambda out: [ckptmap] + job + ["--device", "cuda", "-q", inp, out],
        "ckptmap cpu": lambda out: [ckptmap] + job + ["--device", "cpu", "-q", inp, out],
        "torch": lambda out: [sys.executable, os.path.abspath(__file__), "--torch-pipeline", part, inp, out,
                              "--names", names_file],
    }
    # One untimed ckptmap run tells the torch pipeline which weights to quantize, and gives the
    # output that the torch pipeline's is compared with.
    reference = os.path.join(tmp, "reference")
    subprocess.run(modes["ckptmap cuda"](reference), check=True)
    json.dump(quantized_bases(reference) if part == "nvfp4" else [], open(names_file, "w"))
    check = os.path.join(tmp, "torch-check")
    subprocess.run(modes["torch"](check), check=True)
    frac, text = same_tensors(reference, check)
    print(f"torch pipeline output against ckptmap's: {text}")
    out_bytes = sum(os.path.getsize(p) for p in bench_rename.files_under(reference))
    shutil.rmtree(check)
    shutil.rmtree(reference)

    results = {}
    for cache in a.cache.split(","):
        for r in range(a.repeat):
            for mode in list(modes)[r % len(modes):] + list(modes)[: r % len(modes)]:
                out = os.path.join(tmp, "out")
                if cache == "cold":
                    method = bench_rename.evict(inp)
                else:
                    bench_rename.warm(inp)
                    method = "warm"
                exit_s, disk_s, cpu_s = bench_rename.run_timed(modes[mode](out), out)
                results.setdefault((cache, mode), []).append((exit_s, disk_s, cpu_s, method))
                shutil.rmtree(out)
    print(f"{'cache':6} {'command':14} {'exit s':>8} {'disk s':>8} {'GB/s in':>8} {'x cp':>7} {'x torch':>8}")
    summary = {}
    for cache in a.cache.split(","):
        med = {m: statistics.median(x[1] for x in results[(cache, m)]) for m in modes}
        for m in modes:
            runs = results[(cache, m)]
            ex = statistics.median(x[0] for x in runs)
            print(f"{cache:6} {m:14} {ex:8.2f} {med[m]:8.2f} {in_bytes / med[m] / 1e9:8.2f} "
                  f"{med['cp -r'] / med[m]:7.2f} {med['torch'] / med[m]:8.2f}")
        summary[cache] = {"vs_cp": med["cp -r"] / med["ckptmap cuda"], "vs_torch": med["torch"] / med["ckptmap cuda"]}
        print(f"{cache}: ckptmap --device cuda {summary[cache]['vs_cp']:.2f} x cp -r (goal >= 0.8), "
              f"{summary[cache]['vs_torch']:.2f} x torch (goal >= 2); cache method: {results[(cache, 'cp -r')][0][3]}")
        print(written_summary(in_bytes, out_bytes, med["ckptmap cuda"], med["cp -r"], cache))
    shutil.rmtree(inp)
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--parts", default="kernels,nvfp4,fp8")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the CUDA build (default build/)")
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--cols", type=int, default=8192)
    ap.add_argument("--size-gb", type=float, default=8.0, help="end-to-end input size (default 8)")
    ap.add_argument("--max-shard-size", type=synth.parse_size, default=5 * 10**9, metavar="SIZE")
    ap.add_argument("--cache", default="warm,cold")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--torch-pipeline", nargs=3, metavar=("FORMAT", "IN", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--names", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_pipeline:
        torch_pipeline(*a.torch_pipeline, a.names)
        return 0
    tmp = tempfile.mkdtemp(prefix="ckptmap-bench-gpu-", dir=a.workdir)
    try:
        for part in a.parts.split(","):
            if part == "kernels":
                bench_kernels(a)
            elif part in ("nvfp4", "fp8"):
                bench_e2e(a, part, tmp)
            else:
                raise SystemExit(f"unknown part '{part}'")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
