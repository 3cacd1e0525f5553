#!/usr/bin/env python3
"""Test vectors for ckptmap's quantization kernels.

An independent torch implementation of the weight quantization formats described in
shared/reference/quant.md and releases.md (ModelOpt NVFP4, ModelOpt FP8 per tensor, DeepSeek FP8
128x128 blocks, MXFP8), written with tensor operations the way the producers of these formats
write them (searchsorted over the e2m1 midpoints, torch's float8_e4m3fn cast), plus the policies
ckptmap documents for the cases the text leaves open (kernels/Quant.h): saturating e4m3 casts
in quantizers, scale 1.0 for all-zero tensors/blocks, value(code 8) = +0, and the NVFP4
dequantization order value * (float(s_fp8) * ws2).

    python3 tools/quant_vectors.py OUTDIR

writes one safetensors file per case into OUTDIR (layout: tests/kernels/VectorsTest.cpp).
Everything runs in float32 on the CPU with a fixed seed, so the output is deterministic.

    python3 tools/quant_vectors.py --dequantize-hub HUB OUT.json

dequantizes every FP8-block weight of the DeepSeek-style checkpoint HUB to BF16 the way
DeepSeek's own weight_dequant does (F32 product fp8 * weight_scale_inv, then one cast) and
writes each result's sha256, dtype and shape to OUT.json (read by tests/e2e/QuantPathsTest.cpp).
"""

import hashlib
import json
import os
import struct
import sys

import torch

E4M3 = getattr(torch, "float8_e4m3fn", None)

E2M1_BOUNDS = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
# Code 8 (negative zero) dequantizes to +0, as ModelOpt's value table has it.
E2M1_VALUES = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, 0, -0.5, -1, -1.5, -2, -3, -4, -6])


def f32(x, like=None):
    """An F32 scalar tensor, on the device of `like` (the format functions run on CPU or GPU)."""
    return torch.tensor(x, dtype=torch.float32, device=None if like is None else like.device)


# ---- e4m3fn ----------------------------------------------------------------------------------


def e4m3_bits(x, saturate):
    """float32 tensor -> e4m3fn bit patterns (uint8), round to nearest even.

    saturate=False is torch's cast: beyond the rounding range (|x| > 464) and +-Inf give NaN.
    saturate=True clamps to +-448 first (what quantizers do)."""
    x = x.float()
    if saturate:
        x = x.clamp(-448.0, 448.0)
    if E4M3 is not None:
        return x.to(E4M3).view(torch.uint8)
    return _e4m3_bits_emulated(x)


def _e4m3_bits_emulated(x):
    """The same conversion for torch builds without float8 types (arithmetic on the values)."""
    sign = torch.signbit(x).to(torch.uint8) << 7
    a = x.abs()
    finite = torch.isfinite(a)
    a_f = torch.where(finite, a, torch.zeros_like(a))
    _, e = torch.frexp(a_f)  # a = m * 2^e, m in [0.5, 1)
    exp = torch.clamp(e - 1, min=-6)  # binade of a, subnormals share 2^-6's quantum
    quantum = torch.ldexp(torch.ones_like(a_f), (exp - 3).to(torch.float32))
    r = torch.round(a_f / quantum)  # exact division by a power of two; round half to even
    v = r * quantum
    _, ve = torch.frexp(v)
    vexp = ve - 1
    normal = v >= 2.0**-6
    mant = torch.where(normal, v / torch.ldexp(torch.ones_like(v), vexp.to(torch.float32)) * 8 - 8, v / 2.0**-9)
    code = torch.where(normal, ((vexp + 7) << 3).to(torch.int32) + mant.to(torch.int32), mant.to(torch.int32))
    code = torch.where(v == 0, torch.zeros_like(code), code)
    code = torch.where((v > 448) | ~finite, torch.full_like(code, 0x7F), code)
    return code.to(torch.uint8) | sign


def e4m3_to_f32(bits):
    if E4M3 is not None:
        return bits.view(E4M3).float()
    b = bits.to(torch.int32)
    sign = torch.where(b >= 128, -1.0, 1.0)
    e = (b >> 3) & 0xF
    m = (b & 7).float()
    val = torch.where(e == 0, m * 2.0**-9, (1 + m / 8) * torch.ldexp(torch.ones_like(m), (e - 7).float()))
    val = torch.where((b & 0x7F) == 0x7F, torch.full_like(val, float("nan")), val)
    return sign * val


def bf16_bits(x):
    return x.to(torch.bfloat16).view(torch.int16)


# ---- formats ----------------------------------------------------------------------------------


def nvfp4_quantize(w):
    """ModelOpt NVFP4 of one [r, c] matrix: (packed uint8 [r, c/2], scale bits [r, c/16], ws2)."""
    w = w.float()
    r, c = w.shape
    ws2 = w.abs().amax() / f32(6.0 * 448.0, w)  # 6 * 448 = 2688, exact
    blocks = w.reshape(r, c // 16, 16)
    s = blocks.abs().amax(dim=-1) / (f32(6.0, w) * ws2)
    s = torch.where((s == 0) | torch.isnan(s), f32(1.0, w), s)  # 0/0 only for an all-zero tensor
    s = torch.clamp(s, min=2.0**-9)
    s_bits = e4m3_bits(s, saturate=True)
    d = e4m3_to_f32(s_bits) * ws2
    x = blocks / d.unsqueeze(-1)
    x = torch.where(d.unsqueeze(-1) == 0, torch.zeros_like(x), x)
    a = x.abs().contiguous()
    ordinal = torch.searchsorted(E2M1_BOUNDS.to(a.device), a)
    # Exact midpoints 0.75, 1.75 and 3.5 (odd positions) round up; the others round down.
    up = (a == 0.75) | (a == 1.75) | (a == 3.5)
    codes = ((x < 0).to(torch.int64) << 3) + ordinal + up.to(torch.int64)
    codes = codes.reshape(r, c).to(torch.uint8)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    return packed, s_bits, ws2


def nvfp4_dequantize(packed, s_bits, ws2):
    r = packed.shape[0]
    codes = torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(r, -1).to(torch.int64)
    values = E2M1_VALUES.to(codes.device)[codes].reshape(r, -1, 16)
    d = e4m3_to_f32(s_bits) * ws2  # the block divisor first, then one product
    return (values * d.unsqueeze(-1)).reshape(r, -1)


def fp8_scale(amax):
    s = amax / f32(448.0, amax)
    return torch.where(s == 0, f32(1.0, amax), s)


def fp8_quantize(w):
    w = w.float()
    scale = fp8_scale(w.abs().amax())
    return e4m3_bits(w / scale, saturate=True), scale


def fp8_dequantize(q, scale):
    return e4m3_to_f32(q) * scale


def fp8_block_quantize(w, scale_dtype):
    """DeepSeek FP8 128x128 blocks: (fp8 bits [r, c], weight_scale_inv [ceil(r/128), ceil(c/128)])."""
    w = w.float()
    r, c = w.shape
    gr, gc = (r + 127) // 128, (c + 127) // 128
    padded = torch.zeros(gr * 128, gc * 128, device=w.device)
    padded[:r, :c] = w  # zeros never raise a block's amax
    amax = padded.reshape(gr, 128, gc, 128).abs().amax(dim=(1, 3))
    scale = amax / f32(448.0, w)
    if scale_dtype == torch.bfloat16:
        scale = scale.to(torch.bfloat16).float()
    scale = torch.where(scale == 0, f32(1.0, w), scale)
    full = scale.repeat_interleave(128, 0).repeat_interleave(128, 1)[:r, :c]
    q = e4m3_bits(w / full, saturate=True)
    return q, scale.to(scale_dtype)


def fp8_block_dequantize(q, scale_inv):
    r, c = q.shape
    s = scale_inv.float().repeat_interleave(128, 0).repeat_interleave(128, 1)[:r, :c]
    return e4m3_to_f32(q) * s  # DeepSeek's weight_dequant: F32 product, then the output cast


def e8m0_to_f32(e):
    e = e.to(torch.int32)
    bits = torch.where(e == 0, torch.full_like(e, 0x00400000), e << 23)  # 2^-127 is a subnormal
    bits = torch.where(e == 255, torch.full_like(e, 0x7FC00000), bits)
    return bits.view(torch.float32)


def mxfp8_quantize(w):
    """OCP MX with e4m3 elements: shared exponent floor(log2(amax)) - emax(e4m3) (8)."""
    w = w.float()
    r, c = w.shape
    blocks = w.reshape(r, c // 32, 32)
    amax = blocks.abs().amax(dim=-1)
    _, e = torch.frexp(amax)
    exponent = torch.clamp(e - 1 - 8 + 127, 0, 254)
    exponent = torch.where(amax == 0, torch.zeros_like(exponent), exponent).to(torch.uint8)
    x = e8m0_to_f32(exponent)
    q = e4m3_bits(blocks / x.unsqueeze(-1), saturate=True).reshape(r, c)
    return q, exponent


def mxfp8_dequantize(q, exponent):
    r, c = q.shape
    return (e4m3_to_f32(q).reshape(r, c // 32, 32) * e8m0_to_f32(exponent).unsqueeze(-1)).reshape(r, c)


# ---- inputs -----------------------------------------------------------------------------------


def normal(shape, sigma=0.02):
    return torch.randn(shape) * sigma


def heavy(shape):
    t = torch.distributions.StudentT(torch.tensor(2.0)).sample(shape) * 0.02
    outliers = torch.rand(shape) < 0.002
    return torch.where(outliers, t * 1000, t)


def neighbour(x, dtype, direction):
    """The next value of `dtype` after x (all elements nonzero) away from (+1) or towards (-1) zero."""
    if dtype == torch.float32:
        return torch.nextafter(x, x * (2.0 if direction > 0 else 0.0))
    bits = x.to(dtype).view(torch.int16)
    return (bits + direction).view(dtype).float()


def midpoints(rows, cols, dtype):
    """NVFP4 input whose scaled values sit exactly on the e2m1 midpoints and their neighbours.

    The tensor amax is 10.5, so ws2 = 10.5 / 2688 = 2^-8. A block whose amax is 6 * 2^-k has
    s = 2^(8-k) (exact in e4m3) and divisor 2^-k, so W / d is exactly the chosen point."""
    mids = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    w = torch.zeros(rows, cols // 16, 16)
    for i in range(rows):
        for j in range(cols // 16):
            k = (i + j) % 4
            pick = mids[torch.randint(0, 7, (16,))]
            kind = torch.randint(0, 3, (16,))
            pick = torch.where(kind == 1, neighbour(pick, dtype, +1), pick)
            pick = torch.where(kind == 2, neighbour(pick, dtype, -1), pick)
            pick = pick * torch.where(torch.rand(16) < 0.5, -1.0, 1.0)
            pick[0] = 6.0 * (1 if torch.rand(()) < 0.5 else -1)  # the block amax
            pick[1] = 0.0
            w[i, j] = pick * 2.0**-k
    w = w.reshape(rows, cols)
    w[rows // 2, 5] = 10.5  # the tensor amax; its block's divisor becomes 1.75
    return w.to(dtype)


def zero_and_tiny_blocks(rows, cols):
    w = torch.randn(rows, cols)
    blocks = w.reshape(rows, cols // 16, 16)
    blocks[:, 0::3] = 0.0  # all-zero blocks
    blocks[:, 1::3] *= 1e-6  # tiny blocks: s = amax_b / (6 * ws2) falls below 2^-9
    return w


# ---- cases ------------------------------------------------------------------------------------


def stack_experts(quantize, w):
    """Quantizes each [r, c] of a [E, r, c] stack; returns the per-expert outputs stacked."""
    parts = [quantize(w[e]) for e in range(w.shape[0])]
    return [torch.stack([p[i] for p in parts]) for i in range(len(parts[0]))]


def nvfp4_case(w):
    dt = "BF16" if w.dtype == torch.bfloat16 else "F32"
    mats = w if w.dim() == 3 else w.unsqueeze(0)
    packed, s_bits, ws2 = stack_experts(nvfp4_quantize, mats)
    deq = torch.stack([nvfp4_dequantize(packed[e], s_bits[e], ws2[e]) for e in range(mats.shape[0])])
    if w.dim() == 2:
        packed, s_bits, ws2, deq = packed[0], s_bits[0], ws2[0], deq[0]
    t = {"input": (dt, w), "weight": ("U8", packed), "weight_scale": ("F8_E4M3", s_bits), "weight_scale_2": ("F32", ws2)}
    t.update({"dequant": ("F32", deq), "dequant_bf16": ("BF16", deq.to(torch.bfloat16))})
    return "nvfp4", t


def fp8_case(w):
    dt = "BF16" if w.dtype == torch.bfloat16 else "F32"
    mats = w if w.dim() == 3 else w.unsqueeze(0)
    q, scale = stack_experts(fp8_quantize, mats)
    deq = torch.stack([fp8_dequantize(q[e], scale[e]) for e in range(mats.shape[0])])
    if w.dim() == 2:
        q, scale, deq = q[0], scale[0], deq[0]
    t = {"input": (dt, w), "weight": ("F8_E4M3", q), "weight_scale": ("F32", scale)}
    t.update({"dequant": ("F32", deq), "dequant_bf16": ("BF16", deq.to(torch.bfloat16))})
    return "fp8", t


def fp8_block_case(w, scale_dtype=torch.float32):
    dt = "BF16" if w.dtype == torch.bfloat16 else "F32"
    mats = w if w.dim() == 3 else w.unsqueeze(0)
    q, scale = stack_experts(lambda m: fp8_block_quantize(m, scale_dtype), mats)
    deq = torch.stack([fp8_block_dequantize(q[e], scale[e]) for e in range(mats.shape[0])])
    if w.dim() == 2:
        q, scale, deq = q[0], scale[0], deq[0]
    st = "BF16" if scale_dtype == torch.bfloat16 else "F32"
    t = {"input": (dt, w), "weight": ("F8_E4M3", q), "weight_scale_inv": (st, scale)}
    t.update({"dequant": ("F32", deq), "dequant_bf16": ("BF16", deq.to(torch.bfloat16))})
    return "fp8_block", t


def mxfp8_case(w):
    dt = "BF16" if w.dtype == torch.bfloat16 else "F32"
    mats = w if w.dim() == 3 else w.unsqueeze(0)
    q, e = stack_experts(mxfp8_quantize, mats)
    deq = torch.stack([mxfp8_dequantize(q[i], e[i]) for i in range(mats.shape[0])])
    if w.dim() == 2:
        q, e, deq = q[0], e[0], deq[0]
    t = {"input": (dt, w), "weight": ("F8_E4M3", q), "weight_scale_inv": ("U8", e)}
    t.update({"dequant": ("F32", deq), "dequant_bf16": ("BF16", deq.to(torch.bfloat16))})
    return "mxfp8", t


def cast_case():
    specials = [0.0, -0.0, 1.0, -1.0, 448.0, 464.0, 465.0, 480.0, 57344.0, 61440.0, 65504.0, 65520.0, 1e30, -1e30,
                float("inf"), float("-inf"), float("nan"), 2.0**-6, 7.5 * 2.0**-9, 2.0**-10, 3 * 2.0**-10, 2.0**-24,
                2.0**-25, 1.0625, 1.1875, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8]
    x = torch.tensor(specials, dtype=torch.float32)
    x = torch.cat([x, torch.nextafter(x, torch.full_like(x, float("inf")))])
    rand_bits = torch.randint(-(2**31), 2**31 - 1, (6000,), dtype=torch.int64).to(torch.int32).view(torch.float32)
    rand_bits = torch.where(torch.isnan(rand_bits), torch.zeros_like(rand_bits), rand_bits)
    scaled = torch.randn(6000) * torch.pow(2.0, torch.randint(-30, 20, (6000,)).float())
    x = torch.cat([x, rand_bits, scaled]).contiguous()
    t = {
        "f32": ("F32", x),
        "bf16": ("BF16", x.to(torch.bfloat16)),
        "f16": ("F16", x.to(torch.float16)),
        "e4m3": ("F8_E4M3", e4m3_bits(x, saturate=False)),
        "e4m3_sat": ("F8_E4M3", e4m3_bits(x, saturate=True)),
    }
    e5m2 = getattr(torch, "float8_e5m2", None)
    if e5m2 is not None:
        t["e5m2"] = ("F8_E5M2", x.to(e5m2).view(torch.uint8))
    all_codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    t["e4m3_all"] = ("F8_E4M3", all_codes)
    t["e4m3_all_f32"] = ("F32", e4m3_to_f32(all_codes))
    return "cast", t


def cases():
    torch.manual_seed(20240607)
    yield "nvfp4_normal_bf16", nvfp4_case(normal((32, 256)).to(torch.bfloat16))
    yield "nvfp4_heavy_f32", nvfp4_case(heavy((24, 256)))
    yield "nvfp4_midpoints_f32", nvfp4_case(midpoints(16, 128, torch.float32))
    yield "nvfp4_midpoints_bf16", nvfp4_case(midpoints(16, 128, torch.bfloat16))
    yield "nvfp4_zero_tiny_blocks_f32", nvfp4_case(zero_and_tiny_blocks(16, 192))
    yield "nvfp4_experts_bf16", nvfp4_case((normal((3, 16, 128)) * torch.tensor([1.0, 50.0, 0.01]).view(3, 1, 1)).to(torch.bfloat16))
    yield "nvfp4_all_zero_f32", nvfp4_case(torch.zeros(4, 32))
    yield "fp8_normal_bf16", fp8_case(normal((32, 200)).to(torch.bfloat16))
    yield "fp8_heavy_f32", fp8_case(heavy((33, 77)))
    yield "fp8_experts_bf16", fp8_case((normal((3, 16, 48)) * torch.tensor([1.0, 3.0, 1e-3]).view(3, 1, 1)).to(torch.bfloat16))
    yield "fp8_all_zero_f32", fp8_case(torch.zeros(8, 8))
    yield "fp8_block_200x300_bf16", fp8_block_case(heavy((200, 300)).to(torch.bfloat16))
    yield "fp8_block_150x140_f32_bf16scale", fp8_block_case(normal((150, 140)), torch.bfloat16)
    w = heavy((130, 136))
    w[:128, :128] = 0.0  # an all-zero block
    yield "fp8_block_zero_block_f32", fp8_block_case(w)
    yield "fp8_block_experts_bf16", fp8_block_case((normal((2, 130, 70)) * torch.tensor([1.0, 20.0]).view(2, 1, 1)).to(torch.bfloat16))
    yield "mxfp8_normal_bf16", mxfp8_case(normal((32, 256)).to(torch.bfloat16))
    yield "mxfp8_heavy_f32", mxfp8_case(heavy((40, 96)))
    tiny = normal((8, 128), 1.0)
    tiny[:, :32] = 0.0
    tiny[:, 32:64] *= 2.0**-130  # subnormal amax: the exponent clamps to 0
    tiny[:, 64:96] *= 2.0**100
    yield "mxfp8_zero_tiny_huge_f32", mxfp8_case(tiny)
    yield "mxfp8_experts_bf16", mxfp8_case(normal((3, 8, 64)).to(torch.bfloat16))
    yield "cast_f32", cast_case()


# ---- writing ----------------------------------------------------------------------------------

_VIEW = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "U8": torch.uint8,
         "F8_E4M3": torch.uint8, "F8_E5M2": torch.uint8}


def _raw(dtype, t):
    t = t.to(_VIEW[dtype]).contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.numpy().tobytes() if t.numel() else b""


def write_safetensors(path, tensors, metadata):
    """safetensors.torch.save_file where float8 tensors exist; else the same format by hand."""
    native = E4M3 is not None
    if native:
        try:
            from safetensors.torch import save_file
        except ImportError:
            native = False
    if native:
        views = {"F8_E4M3": E4M3, "F8_E5M2": getattr(torch, "float8_e5m2", None)}
        out = {}
        for name, (dtype, t) in tensors.items():
            t = t.to(_VIEW[dtype]).contiguous().clone()  # own storage: views of stacks are not shared
            out[name] = t.view(views[dtype]) if dtype in views else t
        save_file(out, path, metadata=metadata)
        return
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        dtype, t = tensors[name]
        raw = _raw(dtype, t)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def check_emulation():
    """Where torch has float8, checks the fallback e4m3 emulation against it on every 256th F32."""
    if E4M3 is None:
        return
    bits = torch.arange(0, 2**32, 256, dtype=torch.int64)
    x = torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32).view(torch.float32)
    x = x[~torch.isnan(x)]
    for sat in (False, True):
        y = x.clamp(-448.0, 448.0) if sat else x
        native, emulated = y.to(E4M3).view(torch.uint8), _e4m3_bits_emulated(y)
        bad = (native != emulated).nonzero()
        if bad.numel():
            i = bad[0].item()
            raise SystemExit(f"e4m3 emulation differs from torch at {x[i].item()!r}: {emulated[i]} vs {native[i]}")


# ---- reference dequantization of a checkpoint --------------------------------------------------

_TORCH_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "U8": torch.uint8,
                 "I64": torch.int64, "I32": torch.int32, "F8_E4M3": torch.uint8}


def read_safetensors(path):
    """name -> (dtype, tensor) for one file, read with the format's own layout (F8_E4M3 as its bits)."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header.pop("__metadata__", None)
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = entry["dtype"]
        if dtype not in _TORCH_DTYPES:
            continue  # not a weight or a scale
        data = bytearray(raw[8 + length + begin : 8 + length + end])
        t = torch.frombuffer(data, dtype=_TORCH_DTYPES[dtype]) if data else torch.empty(0, dtype=_TORCH_DTYPES[dtype])
        out[name] = (dtype, t.reshape(entry["shape"]))
    return out


def dequantize_hub(hub, out_path):
    """sha256 of the BF16 dequantization of every FP8-block weight (X.weight with X.weight_scale_inv)."""
    tensors = {}
    for name in sorted(os.listdir(hub)):
        if name.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(hub, name)))
    result = {}
    for name, (dtype, w) in sorted(tensors.items()):
        if dtype != "F8_E4M3" or name + "_scale_inv" not in tensors:
            continue
        _, scale_inv = tensors[name + "_scale_inv"]
        r, c = w.shape
        if tuple(scale_inv.shape) != ((r + 127) // 128, (c + 127) // 128):
            raise SystemExit(f"{name}_scale_inv has shape {list(scale_inv.shape)}, not the 128x128 grid of {[r, c]}")
        s = scale_inv.float().repeat_interleave(128, 0).repeat_interleave(128, 1)[:r, :c]
        bf16 = (e4m3_to_f32(w) * s).to(torch.bfloat16)
        digest = hashlib.sha256(bf16.contiguous().view(torch.int16).numpy().tobytes()).hexdigest()
        result[name] = {"dtype": "BF16", "shape": [r, c], "sha256": digest}
    if not result:
        raise SystemExit(f"{hub}: no FP8 block weights (X.weight F8_E4M3 with X.weight_scale_inv)")
    doc = {
        "generator": "tools/quant_vectors.py --dequantize-hub",
        "torch": torch.__version__,
        "float8": "native" if E4M3 is not None else "emulated",
        "tensors": result,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{out_path}: {len(result)} tensors dequantized by torch {torch.__version__} ({doc['float8']} float8)")


def main(argv):
    if len(argv) == 4 and argv[1] == "--dequantize-hub":
        check_emulation()
        dequantize_hub(argv[2], argv[3])
        return 0
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    outdir = argv[1]
    check_emulation()
    os.makedirs(outdir, exist_ok=True)
    total = 0
    for name, (fmt, tensors) in cases():
        path = os.path.join(outdir, name + ".safetensors")
        write_safetensors(path, tensors, {"format": fmt, "generator": "tools/quant_vectors.py"})
        total += os.path.getsize(path)
        print(f"{path}: {os.path.getsize(path)} bytes")
    print(f"total {total} bytes{'' if E4M3 is not None else ' (float8 cast emulated: this torch has no float8 dtypes)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
