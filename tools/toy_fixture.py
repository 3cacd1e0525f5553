#!/usr/bin/env python3
"""The toy_llama checkpoint of docs/authoring.md: a family no shipped rulebook knows.

A Llama-style decoder (hidden 64, 4 query heads in 2 groups, head dim 16, qk-norm, a SwiGLU
MLP of 96) with two layers and one DeepSeek-style multi-token-prediction layer numbered after
them (`model.layers.2.*` with `enorm`, `hnorm`, `eh_proj`), plus the rotary `inv_freq` buffer
some exporters save. Its weights are real BF16 tensors of the minimax_m3 fixture's dense text
layer, copied into place byte for byte, so conversions of the toy are checked on real data.

    python3 tools/toy_fixture.py [tests/fixtures/hf/minimax_m3/hub] [tests/fixtures/hf/toy_llama/hub]

Standard library only; the output is the same on every run.
"""

import json
import os
import struct
import sys

SRC = "tests/fixtures/hf/minimax_m3/hub"
DST = "tests/fixtures/hf/toy_llama/hub"


def read_tensors(hub):
    """name -> (dtype, shape, bytes) for every tensor of a sharded safetensors directory."""
    out = {}
    for name in sorted(os.listdir(hub)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(hub, name), "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            out[key] = (entry["dtype"], entry["shape"], data[8 + n + begin : 8 + n + end])
    return out


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes), written in that order."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, _, raw in tensors:
            f.write(raw)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else SRC
    dst = sys.argv[2] if len(sys.argv) > 2 else DST
    t = read_tensors(src)
    lm = "language_model.model."
    layer0 = lm + "layers.0."

    def take(name):
        return t[name]

    layer = {
        "input_layernorm.weight": take(layer0 + "input_layernorm.weight"),
        "self_attn.q_proj.weight": take(layer0 + "self_attn.q_proj.weight"),
        "self_attn.k_proj.weight": take(layer0 + "self_attn.k_proj.weight"),
        "self_attn.v_proj.weight": take(layer0 + "self_attn.v_proj.weight"),
        "self_attn.o_proj.weight": take(layer0 + "self_attn.o_proj.weight"),
        "self_attn.q_norm.weight": take(layer0 + "self_attn.q_norm.weight"),
        "self_attn.k_norm.weight": take(layer0 + "self_attn.k_norm.weight"),
        "post_attention_layernorm.weight": take(layer0 + "post_attention_layernorm.weight"),
        "mlp.gate_proj.weight": take(layer0 + "block_sparse_moe.gate_proj.weight"),
        "mlp.up_proj.weight": take(layer0 + "block_sparse_moe.up_proj.weight"),
        "mlp.down_proj.weight": take(layer0 + "block_sparse_moe.down_proj.weight"),
    }
    out = [("model.embed_tokens.weight",) + take(lm + "embed_tokens.weight")]
    for index in range(3):
        for name, value in layer.items():
            out.append((f"model.layers.{index}.{name}",) + value)
    # The MTP layer's own modules: norms of the embedding and of the hidden state, and the
    # projection of their concatenation [64, 128] (the first 128 columns of a [64, 256] weight).
    dtype, shape, raw = take("patch_merge_mlp.linear_1.weight")
    row = shape[1] * 2
    eh = b"".join(raw[r * row : r * row + 128 * 2] for r in range(shape[0]))
    out.append(("model.layers.2.enorm.weight",) + take(lm + "norm.weight"))
    out.append(("model.layers.2.hnorm.weight",) + take(layer0 + "input_layernorm.weight"))
    out.append(("model.layers.2.eh_proj.weight", "BF16", [64, 128], eh))
    out.append(("model.norm.weight",) + take(lm + "norm.weight"))
    out.append(("lm_head.weight",) + take("language_model.lm_head.weight"))
    inv_freq = [1.0 / (10000.0 ** (2 * i / 8)) for i in range(4)]
    out.append(("model.rotary_emb.inv_freq", "F32", [4], struct.pack("<4f", *inv_freq)))

    os.makedirs(dst, exist_ok=True)
    write_safetensors(os.path.join(dst, "model.safetensors"), out)
    config = {
        "architectures": ["ToyLlamaForCausalLM"],
        "model_type": "toy_llama",
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_nextn_predict_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "vocab_size": 512,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
