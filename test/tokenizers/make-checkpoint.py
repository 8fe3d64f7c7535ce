#!/usr/bin/env python3
"""Writes a tiny Hugging Face checkpoint around a real tokenizer.json.

  make-checkpoint.py ARCH TOKENIZER_JSON ROWS OUT_DIR

ARCH is qwen3 or gemma3_text; ROWS the embedding's rows (vocab_size), which
may differ from the tokenizer's size as in real checkpoints (Qwen3: 151,936
rows for 151,669 ids; Gemma 3: 262,144 rows for 262,145 ids). Weights are
deterministic pseudo-random F16 values of magnitude 2^-5..2^-2; two layers,
hidden size 64. Stdlib only. Used by the conformance lit tests and by
bench/tokenizer-startup.sh.
"""
import json
import os
import random
import shutil
import struct
import sys

H, I, LAYERS, HEADS, KV, HD = 64, 128, 2, 4, 2, 16

# The high byte of an F16: keep sign and the top two mantissa bits, set the
# exponent to 10..12.
HIGH = bytes((b & 0x83) | ((10 + (b >> 2) % 3) << 2) for b in range(256))


def f16(rng, n):
    data = bytearray(rng.randbytes(2 * n))
    data[1::2] = bytes(data[1::2]).translate(HIGH)
    return bytes(data)


def config(arch, rows, tok):
    common = {
        "hidden_size": H, "intermediate_size": I, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV,
        "head_dim": HD, "rms_norm_eps": 1e-6, "vocab_size": rows,
        "max_position_embeddings": 4096, "tie_word_embeddings": True,
        "torch_dtype": "float16", "attention_bias": False,
    }
    ids = {a["content"]: a["id"] for a in tok.get("added_tokens", [])}
    if arch == "qwen3":
        return dict(common, architectures=["Qwen3ForCausalLM"],
                    model_type="qwen3", hidden_act="silu",
                    rope_theta=1000000.0, rope_scaling=None,
                    bos_token_id=ids["<|endoftext|>"],
                    eos_token_id=ids["<|im_end|>"], use_sliding_window=False,
                    sliding_window=None, max_window_layers=LAYERS)
    return dict(common, architectures=["Gemma3ForCausalLM"],
                model_type="gemma3_text",
                hidden_activation="gelu_pytorch_tanh",
                bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"],
                pad_token_id=ids["<pad>"], query_pre_attn_scalar=HD,
                rope_theta=1000000.0, rope_local_base_freq=10000.0,
                rope_scaling=None, sliding_window=16,
                layer_types=["sliding_attention", "full_attention"],
                final_logit_softcapping=None, attn_logit_softcapping=None)


def tensors(arch, rows):
    out = [("model.embed_tokens.weight", (rows, H)), ("model.norm.weight", (H,))]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (H,)),
                (p + "post_attention_layernorm.weight", (H,)),
                (p + "self_attn.q_proj.weight", (HEADS * HD, H)),
                (p + "self_attn.k_proj.weight", (KV * HD, H)),
                (p + "self_attn.v_proj.weight", (KV * HD, H)),
                (p + "self_attn.o_proj.weight", (H, HEADS * HD)),
                (p + "self_attn.q_norm.weight", (HD,)),
                (p + "self_attn.k_norm.weight", (HD,)),
                (p + "mlp.gate_proj.weight", (I, H)),
                (p + "mlp.up_proj.weight", (I, H)),
                (p + "mlp.down_proj.weight", (H, I))]
        if arch == "gemma3_text":
            out += [(p + "pre_feedforward_layernorm.weight", (H,)),
                    (p + "post_feedforward_layernorm.weight", (H,))]
    return sorted(out)


def main(arch, tokenizer, rows, out):
    rows = int(rows)
    with open(tokenizer, encoding="utf-8") as f:
        tok = json.load(f)
    os.makedirs(out, exist_ok=True)
    shutil.copy(tokenizer, os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(arch, rows, tok), f, indent=2)
    rng = random.Random(15)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape in tensors(arch, rows):
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "F16", "shape": list(shape),
                        "data_offsets": [off, off + 2 * n]}
        blobs.append(f16(rng, n))
        off += 2 * n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
