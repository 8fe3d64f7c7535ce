#!/usr/bin/env python3
"""synth.py: a small random-weight Hugging Face checkpoint (stdlib only).

  synth.py ARCH OUTDIR --text TRAIN.txt [--dtype bf16|f32] [--seed N]
      [--merges N]

ARCH is one of the families below. OUTDIR gets config.json (the keys
transformers writes for that model type), model.safetensors and a
byte-level BPE tokenizer.json trained on TRAIN.txt by bytebpe.py (the
Qwen 2 split for Qwen models, Llama 3's for llama3, GPT-2's otherwise).
The output depends only on the arguments.

Weights: matrices N(0, 1/fan_in) so every projection keeps unit scale,
norms 1 + N(0, 0.1^2), embeddings N(0, 1) (so the logits spread over a few
units), Qwen 2's q/k/v biases N(0, 0.5^2). Nothing is trained: the models
are for checking that two engines compute the same function.
"""
import argparse
import json
import math
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bytebpe  # noqa: E402
import st  # noqa: E402

VOCAB = 2048

COMMON = {
    "attention_dropout": 0.0,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "intermediate_size": 256,
    "num_hidden_layers": 3,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.53.0",
    "use_cache": True,
    "vocab_size": VOCAB,
}

# Per family: config.json keys on top of COMMON, and the tokenizer split.
FAMILIES = {
    "llama": ({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "attention_bias": False, "mlp_bias": False, "head_dim": 16,
        "hidden_size": 64, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 2048,
        "pad_token_id": 0, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": None, "rope_theta": 10000.0,
        "tie_word_embeddings": False}, "gpt2"),
    # Llama 3.2 style: llama3 RoPE scaling, tied embeddings.
    "llama3": ({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "attention_bias": False, "mlp_bias": False, "head_dim": 32,
        "hidden_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 131072,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0,
                         "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192,
                         "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True}, "llama3"),
    # Mistral 7B v0.3 style (no sliding window); "mistral-swa" has v0.1's
    # sliding window, made small enough for prompts to cross it.
    "mistral": ({
        "architectures": ["MistralForCausalLM"], "model_type": "mistral",
        "head_dim": 16, "hidden_size": 64, "num_attention_heads": 4,
        "num_key_value_heads": 1, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
        "sliding_window": None, "tie_word_embeddings": False}, "gpt2"),
    "mistral-swa": ({
        "architectures": ["MistralForCausalLM"], "model_type": "mistral",
        "head_dim": 16, "hidden_size": 64, "num_attention_heads": 4,
        "num_key_value_heads": 1, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
        "sliding_window": 8, "tie_word_embeddings": False}, "gpt2"),
    # Qwen 2.5 0.5B style: q/k/v biases, tied embeddings, no sliding window.
    "qwen2": ({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "hidden_size": 64, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 32768,
        "max_window_layers": 3, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": 1000000.0,
        "sliding_window": 32768, "tie_word_embeddings": True,
        "use_sliding_window": False}, "qwen2"),
    # Qwen 3 0.6B style: q/k RMS norms, heads * head_dim != hidden_size.
    "qwen3": ({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "attention_bias": False, "head_dim": 32, "hidden_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 40960, "max_window_layers": 3,
        "rms_norm_eps": 1e-06, "rope_scaling": None,
        "rope_theta": 1000000.0, "sliding_window": None,
        "tie_word_embeddings": True, "use_sliding_window": False}, "qwen2"),
}


def bf16_bytes(values):
    """Round to nearest even, as torch does."""
    out = bytearray()
    for (u,) in struct.iter_unpack("<I", struct.pack("<%df" % len(values),
                                                     *values)):
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        out += struct.pack("<H", u)
    return bytes(out)


def tensors(cfg, rng):
    """name -> list of floats and shape, in the order transformers saves."""
    d = cfg["hidden_size"]
    hd = cfg.get("head_dim") or d // cfg["num_attention_heads"]
    q = cfg["num_attention_heads"] * hd
    kv = cfg["num_key_value_heads"] * hd
    f = cfg["intermediate_size"]
    bias = cfg["model_type"] == "qwen2"
    qk_norm = cfg["model_type"] == "qwen3"

    def gauss(n, std, mean=0.0):
        return [rng.gauss(mean, std) for _ in range(n)]

    def mat(rows, cols):
        return gauss(rows * cols, 1 / math.sqrt(cols)), (rows, cols)

    def norm(n):
        return gauss(n, 0.1, 1.0), (n,)

    out = {"model.embed_tokens.weight": (gauss(VOCAB * d, 1.0), (VOCAB, d))}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        out[p + "input_layernorm.weight"] = norm(d)
        out[p + "self_attn.q_proj.weight"] = mat(q, d)
        out[p + "self_attn.k_proj.weight"] = mat(kv, d)
        out[p + "self_attn.v_proj.weight"] = mat(kv, d)
        if bias:
            out[p + "self_attn.q_proj.bias"] = gauss(q, 0.5), (q,)
            out[p + "self_attn.k_proj.bias"] = gauss(kv, 0.5), (kv,)
            out[p + "self_attn.v_proj.bias"] = gauss(kv, 0.5), (kv,)
        if qk_norm:
            out[p + "self_attn.q_norm.weight"] = norm(hd)
            out[p + "self_attn.k_norm.weight"] = norm(hd)
        out[p + "self_attn.o_proj.weight"] = mat(d, q)
        out[p + "post_attention_layernorm.weight"] = norm(d)
        out[p + "mlp.gate_proj.weight"] = mat(f, d)
        out[p + "mlp.up_proj.weight"] = mat(f, d)
        out[p + "mlp.down_proj.weight"] = mat(d, f)
    out["model.norm.weight"] = norm(d)
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = mat(VOCAB, d)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("arch", choices=sorted(FAMILIES))
    ap.add_argument("out")
    ap.add_argument("--text", required=True)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--merges", type=int, default=300)
    a = ap.parse_args()

    extra, split = FAMILIES[a.arch]
    cfg = dict(COMMON, **extra)
    cfg["torch_dtype"] = "bfloat16" if a.dtype == "bf16" else "float32"
    cfg = dict(sorted(cfg.items()))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    rng = random.Random("%s/%d" % (a.arch, a.seed))
    named = {}
    for name, (values, shape) in tensors(cfg, rng).items():
        if a.dtype == "bf16":
            named[name] = ("BF16", shape, bf16_bytes(values))
        else:
            named[name] = ("F32", shape,
                           struct.pack("<%df" % len(values), *values))
    st.write_file(os.path.join(a.out, "model.safetensors"), named,
                  meta={"format": "pt"})

    text = open(a.text, encoding="utf-8").read()[:60000]
    tok = bytebpe.tokenizer_json(bytebpe.train(text, a.merges), split)
    if cfg["model_type"].startswith("qwen"):
        # Qwen's tokenizer adds no BOS: its post-processor is ByteLevel.
        tok["post_processor"] = {"type": "ByteLevel", "add_prefix_space":
                                 False, "trim_offsets": False,
                                 "use_regex": False}
    with open(os.path.join(a.out, "tokenizer.json"), "w",
              encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
