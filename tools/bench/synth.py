#!/usr/bin/env python3
"""Writes a synthetic HuggingFace DeepSeek-V3 checkpoint with real names and shapes.

The default configuration is the released 671B model (hidden 7168, 61 layers of which the
first 3 are dense, 256 routed experts + 1 shared, MLA with q_lora 1536 / kv_lora 512, one MTP
layer at model.layers.61). Names are those of the HF hub checkpoint (as in
tests/fixtures/hf/deepseek_v3/hub); config.json follows that fixture's fields with the
configuration's values.

Data is either random bytes (a random pool repeated at shifting offsets: incompressible to
anything but a deduplicating file system, and fast) or, with --sparse, holes: every shard has
its correct header and is extended with ftruncate, so a 1.3 TB checkpoint takes a few MB of
disk and serves header-only work such as `ckptmap check`.

Shards are cut like HF's save_pretrained: tensors in module order, a new shard when the next
tensor would exceed --max-shard-size, names sorted inside each file (as safetensors writes
them), model-0000k-of-0000N.safetensors plus model.safetensors.index.json.

Use as a library too: build_config(), tensors(), plan_shards(), write_checkpoint().
"""

import argparse
import json
import math
import os
import re
import struct
import sys
import zlib

DTYPE_BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1}

# The released DeepSeek-V3 (671B) configuration.
REAL = dict(
    hidden_size=7168,
    num_hidden_layers=61,
    first_k_dense_replace=3,
    n_routed_experts=256,
    n_shared_experts=1,
    moe_intermediate_size=2048,
    intermediate_size=18432,
    num_attention_heads=128,
    q_lora_rank=1536,
    kv_lora_rank=512,
    qk_nope_head_dim=128,
    qk_rope_head_dim=64,
    v_head_dim=128,
    vocab_size=129280,
    num_nextn_predict_layers=1,
)

EXPERT_CHOICES = (256, 128, 64, 32, 16, 8)


def parse_size(text):
    """'5GB' -> 5e9, '4GiB' -> 4*2**30, '123' -> 123 (like ckptmap's --max-shard-size)."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    t = text.strip().upper()
    num = t.rstrip("KMGTIB")
    unit = t[len(num):]
    if unit not in units or not num:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 5GB, 512MiB)")
    return int(float(num) * units[unit])


def _round_to(x, m, lo):
    return max(lo, int(round(x / m)) * m)


def scaled_dims(hidden):
    """Dimensions of a model with this hidden size, in the real model's proportions."""
    s = hidden / REAL["hidden_size"]
    d = dict(REAL)
    d["hidden_size"] = hidden
    if hidden == REAL["hidden_size"]:
        return d
    heads = max(1, round(REAL["num_attention_heads"] * s))
    d["num_attention_heads"] = heads if heads < 8 else round(heads / 8) * 8
    d["intermediate_size"] = _round_to(REAL["intermediate_size"] * s, 128, 128)
    d["moe_intermediate_size"] = _round_to(REAL["moe_intermediate_size"] * s, 128, 128)
    d["q_lora_rank"] = _round_to(REAL["q_lora_rank"] * s, 64, 64)
    d["kv_lora_rank"] = min(512, _round_to(REAL["kv_lora_rank"] * s, 64, 64))
    if hidden < 1024:  # keep per-head sizes below the hidden size for toy models
        d["qk_nope_head_dim"], d["qk_rope_head_dim"], d["v_head_dim"] = 32, 16, 32
    return d


def default_dense(layers):
    """first_k_dense_replace for a reduced layer count (3 of 61 in the real model)."""
    if layers >= 4:
        return min(3, layers // 4)
    return min(1, layers - 1)


HIDDEN_LADDER = (7168, 5120, 4096, 3072, 2048, 1024, 512, 256)


def build_config(hidden=None, layers=None, experts=None, vocab=None, dense=None, mtp=None,
                 size=None, fp8=False):
    """Model dimensions (dict of config.json names). Unset counts come from the real model,
    or, with size (bytes), are reduced until the checkpoint fits: vocabulary first (the
    embeddings, output heads and their MTP copies take at most ~10%), then layers and routed
    experts, keeping every tensor's shape real; the hidden size shrinks (with the widths
    that follow it) only when two layers of the real width do not fit."""
    if size is None:
        cfg = _base(hidden or REAL["hidden_size"], vocab, mtp, fp8)
        L = layers if layers is not None else REAL["num_hidden_layers"]
        E = experts if experts is not None else REAL["n_routed_experts"]
        d = dense if dense is not None else (
            REAL["first_k_dense_replace"] if L == REAL["num_hidden_layers"] else default_dense(L))
        return _counts(cfg, L, E, d)
    best = None
    for h in [hidden] if hidden else HIDDEN_LADDER:
        cfg = _base(h, vocab, mtp, fp8)
        if vocab is None:
            row = (2 + 2 * cfg["num_nextn_predict_layers"]) * h * 2
            cfg["vocab_size"] = max(256, min(REAL["vocab_size"], int(0.1 * size / row) // 128 * 128))
        best = _fit_counts(cfg, size, layers, experts, dense)
        if total_bytes(best) <= size:
            break
    return best


def _base(hidden, vocab, mtp, fp8):
    cfg = scaled_dims(hidden)
    cfg["fp8"] = fp8
    if mtp is not None:
        cfg["num_nextn_predict_layers"] = mtp
    if vocab is not None:
        cfg["vocab_size"] = vocab
    return cfg


def _counts(cfg, L, E, dense=None):
    c = dict(cfg, num_hidden_layers=L, n_routed_experts=E)
    c["first_k_dense_replace"] = default_dense(L) if dense is None else dense
    return finish(c)


def _fit_counts(cfg, size, layers, experts, dense):
    """The most layers (at least 4), for the most experts of EXPERT_CHOICES, that fit; else
    two layers with as many experts as fit (at least one)."""
    for E in [experts] if experts else EXPERT_CHOICES:
        for L in [layers] if layers else range(REAL["num_hidden_layers"], 3, -1):
            c = _counts(cfg, L, E, dense)
            if total_bytes(c) <= size:
                return c
    L = layers or 2
    best = _counts(cfg, L, 1, dense)
    for E in range(2, (experts or REAL["n_routed_experts"]) + 1):
        c = _counts(cfg, L, E, dense)
        if total_bytes(c) > size:
            break
        best = c
    return best


def finish(c):
    """Derived config fields that must agree with the counts."""
    E = c["n_routed_experts"]
    c["n_group"] = math.gcd(8, E)
    c["topk_group"] = min(4, c["n_group"])
    c["num_experts_per_tok"] = min(8, E)
    return c


def config_json(c):
    """config.json with the fields of the fixture's (transformers 5.x save_pretrained)."""
    j = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dtype": "bfloat16",
        "eos_token_id": 1,
        "first_k_dense_replace": c["first_k_dense_replace"],
        "head_dim": c["qk_rope_head_dim"],
        "hidden_act": "silu",
        "hidden_size": c["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": c["intermediate_size"],
        "kv_lora_rank": c["kv_lora_rank"],
        "max_position_embeddings": 163840,
        "model_type": "deepseek_v3",
        "moe_intermediate_size": c["moe_intermediate_size"],
        "n_group": c["n_group"],
        "n_routed_experts": c["n_routed_experts"],
        "n_shared_experts": c["n_shared_experts"],
        "norm_topk_prob": True,
        "num_attention_heads": c["num_attention_heads"],
        "num_experts_per_tok": c["num_experts_per_tok"],
        "num_hidden_layers": c["num_hidden_layers"],
        "num_key_value_heads": c["num_attention_heads"],
        "num_nextn_predict_layers": c["num_nextn_predict_layers"],
        "pad_token_id": None,
        "pretraining_tp": 1,
        "q_lora_rank": c["q_lora_rank"],
        "qk_head_dim": c["qk_nope_head_dim"] + c["qk_rope_head_dim"],
        "qk_nope_head_dim": c["qk_nope_head_dim"],
        "qk_rope_head_dim": c["qk_rope_head_dim"],
        "rms_norm_eps": 1e-06,
        "rope_interleave": True,
        "rope_parameters": {
            "beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
            "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
            "rope_theta": 10000.0, "rope_type": "yarn",
        },
        "routed_scaling_factor": 2.5,
        "tie_word_embeddings": False,
        "topk_group": c["topk_group"],
        "transformers_version": "5.17.0",
        "use_cache": True,
        "v_head_dim": c["v_head_dim"],
        "vocab_size": c["vocab_size"],
    }
    if c["fp8"]:
        j["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                    "quant_method": "fp8", "weight_block_size": [128, 128]}
    return j


GENERATION_CONFIG = {
    "_from_model_config": True, "bos_token_id": 0, "eos_token_id": 1,
    "output_attentions": False, "output_hidden_states": False,
    "transformers_version": "5.17.0", "use_cache": True,
}


def tensors(c):
    """(name, dtype, shape, data_key) in module order. data_key names the bytes: the MTP
    layer's embedding and head are copies of the main ones, as in the released model."""
    h, V = c["hidden_size"], c["vocab_size"]
    heads, nope, rope, vd = (c["num_attention_heads"], c["qk_nope_head_dim"],
                             c["qk_rope_head_dim"], c["v_head_dim"])
    qlr, kvl = c["q_lora_rank"], c["kv_lora_rank"]
    out = []

    def t(name, shape, dtype="BF16", key=None):
        out.append((name, dtype, list(shape), key or name))

    def linear(name, rows, cols):
        # The FP8 release stores every projection as e4m3 with a 128x128 block scale.
        if c["fp8"]:
            t(name + ".weight", (rows, cols), "F8_E4M3")
            t(name + ".weight_scale_inv", (-(-rows // 128), -(-cols // 128)), "F32")
        else:
            t(name + ".weight", (rows, cols))

    def layer(L):
        p = f"model.layers.{L}."
        if qlr > 0:
            linear(p + "self_attn.q_a_proj", qlr, h)
            t(p + "self_attn.q_a_layernorm.weight", (qlr,))
            linear(p + "self_attn.q_b_proj", heads * (nope + rope), qlr)
        else:
            linear(p + "self_attn.q_proj", heads * (nope + rope), h)
        linear(p + "self_attn.kv_a_proj_with_mqa", kvl + rope, h)
        t(p + "self_attn.kv_a_layernorm.weight", (kvl,))
        linear(p + "self_attn.kv_b_proj", heads * (nope + vd), kvl)
        linear(p + "self_attn.o_proj", h, heads * vd)
        if L < c["first_k_dense_replace"]:
            inter = c["intermediate_size"]
            linear(p + "mlp.gate_proj", inter, h)
            linear(p + "mlp.up_proj", inter, h)
            linear(p + "mlp.down_proj", h, inter)
        else:
            mi, E = c["moe_intermediate_size"], c["n_routed_experts"]
            t(p + "mlp.gate.weight", (E, h))
            t(p + "mlp.gate.e_score_correction_bias", (E,))
            for e in range(E):
                linear(p + f"mlp.experts.{e}.gate_proj", mi, h)
                linear(p + f"mlp.experts.{e}.up_proj", mi, h)
                linear(p + f"mlp.experts.{e}.down_proj", h, mi)
            if c["n_shared_experts"]:
                si = mi * c["n_shared_experts"]
                linear(p + "mlp.shared_experts.gate_proj", si, h)
                linear(p + "mlp.shared_experts.up_proj", si, h)
                linear(p + "mlp.shared_experts.down_proj", h, si)
        t(p + "input_layernorm.weight", (h,))
        t(p + "post_attention_layernorm.weight", (h,))

    t("model.embed_tokens.weight", (V, h))
    for L in range(c["num_hidden_layers"]):
        layer(L)
    for M in range(c["num_nextn_predict_layers"]):
        L = c["num_hidden_layers"] + M
        p = f"model.layers.{L}."
        t(p + "embed_tokens.weight", (V, h), key="model.embed_tokens.weight")
        t(p + "enorm.weight", (h,))
        t(p + "hnorm.weight", (h,))
        t(p + "eh_proj.weight", (h, 2 * h))
        layer(L)
        t(p + "shared_head.norm.weight", (h,))
        t(p + "shared_head.head.weight", (V, h), key="lm_head.weight")
    t("model.norm.weight", (h,))
    t("lm_head.weight", (V, h))
    return out


def nbytes(dtype, shape):
    return DTYPE_BYTES[dtype] * math.prod(shape)


def total_bytes(c):
    """Size of tensors(c) without listing every expert of every layer."""
    probe = dict(c, num_hidden_layers=2, first_k_dense_replace=1)
    per = {}
    for name, dt, sh, _ in tensors(probe):
        m = re.match(r"model\.layers\.(\d+)\.", name)
        k = int(m.group(1)) if m else "rest"
        per[k] = per.get(k, 0) + nbytes(dt, sh)
    dense = min(c["first_k_dense_replace"], c["num_hidden_layers"])
    moe = c["num_hidden_layers"] - dense
    mtp = c["num_nextn_predict_layers"]
    return (per["rest"] + dense * per[0] + moe * per[1]
            + mtp * (per[2] if mtp else 0))


def plan_shards(tlist, max_shard):
    """Groups tensors into shards the way save_pretrained does (module order, a new shard
    when the next tensor would overflow one that is not empty)."""
    shards, cur, size = [], [], 0
    for t in tlist:
        b = nbytes(t[1], t[2])
        if cur and size + b > max_shard:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += b
    if cur:
        shards.append(cur)
    return shards


def header_bytes(shard):
    """The safetensors header of one shard and the data layout: tensors sorted as
    safetensors sorts them (wider dtypes first, then by name)."""
    order = sorted(shard, key=lambda t: (-DTYPE_BYTES[t[1]], t[0]))
    hdr = {"__metadata__": {"format": "pt"}}
    layout, off = [], 0
    for name, dtype, shape, key in order:
        b = nbytes(dtype, shape)
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + b]}
        layout.append((key, b))
        off += b
    raw = json.dumps(hdr, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, layout, off


class Pool:
    """Random bytes for tensor data: a random pool read cyclically from an offset that
    depends on the tensor's data key, so equal keys give equal bytes.

    finite=True keeps every byte in 0x30..0x3F, so that any run of bytes read as BF16, F32 or
    F8_E4M3 (at any alignment) is a finite positive number (BF16 between 2^-31 and 2, e4m3
    between 0.5 and 2): data that quantizers and dequantizers accept."""

    def __init__(self, size=64 << 20, seed=None, finite=False):
        if seed is None:
            self.buf = os.urandom(size)
        else:
            import random
            self.buf = random.Random(seed).randbytes(size)
        if finite:
            self.buf = self.buf.translate(bytes(0x30 | (b & 0x0F) for b in range(256)))
        self.view = memoryview(self.buf)

    def write(self, f, key, n, block=16 << 20):
        P = len(self.buf)
        pos = (zlib.crc32(key.encode()) * 4099) % P
        while n > 0:
            k = min(n, block, P - pos)
            f.write(self.view[pos:pos + k])
            n -= k
            pos = (pos + k) % P


def write_checkpoint(out, c, max_shard=5 * 10**9, sparse=False, seed=None, progress=None, finite=False):
    """Writes the checkpoint into directory out (created). Returns (tensor count, bytes)."""
    os.makedirs(out, exist_ok=True)
    tl = tensors(c)
    shards = plan_shards(tl, max_shard)
    n = len(shards)
    pool = None if sparse else Pool(seed=seed, finite=finite)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        head, layout, data = header_bytes(shard)
        with open(os.path.join(out, fname), "wb") as f:
            f.write(head)
            if sparse:
                f.truncate(len(head) + data)
            else:
                for key, b in layout:
                    pool.write(f, key, b)
        for t in shard:
            weight_map[t[0]] = fname
        total += data
        if progress:
            progress(i + 1, n)
    index = {"metadata": {"total_size": total},
             "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json(c), f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(GENERATION_CONFIG, f, indent=2)
    return len(tl), total


def describe(c, max_shard):
    tl = tensors(c)
    total = sum(nbytes(t[1], t[2]) for t in tl)
    shards = len(plan_shards(tl, max_shard))
    keys = ("hidden_size", "num_hidden_layers", "first_k_dense_replace", "n_routed_experts",
            "moe_intermediate_size", "intermediate_size", "num_attention_heads",
            "q_lora_rank", "kv_lora_rank", "vocab_size", "num_nextn_predict_layers")
    dims = " ".join(f"{k}={c[k]}" for k in keys)
    kind = "FP8 (e4m3 + 128x128 scales)" if c["fp8"] else "BF16"
    return (f"deepseek_v3 {kind}: {dims}\n"
            f"{len(tl)} tensors, {total / 1e9:.2f} GB in {shards} shard(s)")


def add_model_args(ap, title="model (default: the real 671B configuration)"):
    g = ap.add_argument_group(title)
    g.add_argument("--hidden", type=int, help="hidden size; other widths scale with it")
    g.add_argument("--layers", type=int, help="decoder layers (num_hidden_layers)")
    g.add_argument("--dense", type=int, help="first_k_dense_replace")
    g.add_argument("--experts", type=int, help="routed experts per MoE layer")
    g.add_argument("--vocab", type=int, help="vocabulary size")
    g.add_argument("--mtp", type=int, help="MTP layers (num_nextn_predict_layers)")
    g.add_argument("--size-gb", type=float,
                   help="target size in GB (1e9 bytes): reduce vocab, layers and experts to fit")
    g.add_argument("--fp8", action="store_true",
                   help="the FP8 release's layout: e4m3 projections with weight_scale_inv")


def config_from_args(a):
    return build_config(hidden=a.hidden, layers=a.layers, experts=a.experts, vocab=a.vocab,
                        dense=a.dense, mtp=a.mtp, fp8=a.fp8,
                        size=None if a.size_gb is None else int(a.size_gb * 1e9))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example: synth.py /tmp/dsv3 --size-gb 4\n"
                                        "         synth.py /tmp/dsv3-full --sparse")
    ap.add_argument("out", nargs="?", help="output directory (created)")
    add_model_args(ap)
    ap.add_argument("--sparse", action="store_true",
                    help="headers only; data regions are holes (ftruncate)")
    ap.add_argument("--max-shard-size", type=parse_size, default=5 * 10**9, metavar="SIZE",
                    help="largest shard (default 5GB, as save_pretrained)")
    ap.add_argument("--seed", type=int, help="seed for the data (default: os.urandom)")
    ap.add_argument("--finite", action="store_true",
                    help="finite positive values only (for benchmarks that quantize or dequantize)")
    ap.add_argument("--dry-run", action="store_true", help="print the configuration only")
    ap.add_argument("-f", "--force", action="store_true", help="write into a non-empty OUT")
    a = ap.parse_args()
    c = config_from_args(a)
    print(describe(c, a.max_shard_size))
    if a.dry_run:
        return 0
    if not a.out:
        ap.error("OUT is required (or --dry-run)")
    if os.path.isdir(a.out) and os.listdir(a.out) and not a.force:
        ap.error(f"{a.out} is not empty (use --force)")
    tty = sys.stderr.isatty()

    def progress(i, n):
        if tty:
            print(f"\rshard {i}/{n}", end="" if i < n else "\n", file=sys.stderr)

    n, total = write_checkpoint(a.out, c, a.max_shard_size, a.sparse, a.seed, progress, a.finite)
    print(f"wrote {a.out}: {n} tensors, {total / 1e9:.2f} GB" + (" (sparse)" if a.sparse else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
