#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora from the shipped fixtures and rulebooks.

make_seeds.py SOURCE_DIR OUT_DIR creates OUT_DIR/{safetensors_header,shard_index,rulebook}/.
A header seed is what fuzz_safetensors_header reads: the size of the data section (4 bytes,
little-endian) and the file up to the end of its header.
"""
import hashlib
import json
import pathlib
import struct
import sys

MAX_PRETENDED_DATA = 1 << 20  # as in SafetensorsHeaderFuzzer.cpp


def write(out: pathlib.Path, data: bytes) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


def safetensors_seed(tensors: dict) -> bytes:
    """A header seed for tensors given as name -> (dtype, shape), laid out one after another."""
    sizes = {"U8": 1, "F8_E4M3": 1, "F8_E8M0": 1, "BF16": 2, "F32": 4}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    return struct.pack("<I", offset) + struct.pack("<Q", len(text)) + text


# Quantized bundles in every naming the reader groups: NVFP4 (ModelOpt and compressed-tensors,
# a 2-D weight and stacked experts), FP8 per tensor, FP8 128x128 blocks, MXFP8.
QUANTIZED = [
    {"m.q.weight": ("U8", [32, 16]), "m.q.weight_scale": ("F8_E4M3", [32, 2]),
     "m.q.weight_scale_2": ("F32", []), "m.q.input_scale": ("F32", [])},
    {"m.q.weight_packed": ("U8", [32, 16]), "m.q.weight_scale": ("F8_E4M3", [32, 2]),
     "m.q.weight_global_scale": ("F32", [1])},
    {"m.experts.gate_up_proj": ("U8", [4, 64, 16]), "m.experts.gate_up_proj_weight_scale": ("F8_E4M3", [4, 64, 2]),
     "m.experts.gate_up_proj_weight_scale_2": ("F32", [4])},
    {"m.o.weight": ("F8_E4M3", [32, 32]), "m.o.weight_scale": ("F32", [])},
    {"m.o.weight": ("F8_E4M3", [200, 130]), "m.o.weight_scale_inv": ("F32", [2, 2])},
    {"m.o.weight": ("F8_E4M3", [32, 64]), "m.o.weight_scale": ("F8_E8M0", [32, 2])},
]


def main() -> None:
    source, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    fixtures = source / "tests" / "fixtures"
    for path in sorted(fixtures.rglob("*.safetensors")):
        raw = path.read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        data = len(raw) - 8 - length
        if 0 <= data <= MAX_PRETENDED_DATA:
            write(out / "safetensors_header", struct.pack("<I", data) + raw[: 8 + length])
    for tensors in QUANTIZED:
        write(out / "safetensors_header", safetensors_seed(tensors))
    for path in sorted(fixtures.rglob("*.index.json")):
        write(out / "shard_index", path.read_bytes())
    for root in (source / "rulebooks", source / "tests" / "compiler" / "rules"):
        for path in sorted(root.rglob("*.rules")):
            write(out / "rulebook", path.read_bytes())
    for corpus in ("safetensors_header", "shard_index", "rulebook"):
        if not (out / corpus).is_dir():
            sys.exit(f"make_seeds.py: no seeds for {corpus} under {source}")


if __name__ == "__main__":
    main()
