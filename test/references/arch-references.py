#!/usr/bin/python3
"""Reference logits for the synthetic checkpoints of every architecture the
engine accepts besides the fixtures' (Gemma 3, Llama: see walk-references.py
and test/fixtures/references): qwen2, qwen3, mistral, mistral-swa, llama3
(Llama 3 RoPE scaling, tied embeddings) and plain llama, from
test/lit/Inputs/synth.py (random weights; the same bytes for the same
arguments, so the lit test makes them again).

  /usr/bin/python3 test/references/arch-references.py   (needs python3-torch)

Writes test/references/archs.json: per architecture and prompt, the token ids
(test/lit/Inputs/bytebpe.py's own encoder, with the BOS the model's
post-processor adds) and all last-position logits, computed in float64 by
the forward pass of Hugging Face's modeling_{llama,qwen2,qwen3,mistral}.py
written out below (q/k/v biases for Qwen 2; per-head q/k RMS norms before
RoPE for Qwen 3; HF's llama3 inv_freq rescaling; the sliding-window mask
kv > q - window). test/lit/pipeline/arch-references.test checks the engine
against it (within 1e-4) with no torch.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch

here = os.path.dirname(os.path.abspath(__file__))
inputs = os.path.join(here, "..", "lit", "Inputs")
sys.path.insert(0, inputs)
import bytebpe  # noqa: E402

ARCHS = ["llama", "llama3", "mistral", "mistral-swa", "qwen2", "qwen3"]
PROMPTS = ["Hi", "The capital city of Peru is",
           "A citizen of Costa Rica is Costa Rican. The capital city of "
           "Malawi is Lilongwe. The main language of Ghana is English."]
SPLIT = {"llama": "gpt2", "llama3": "llama3", "mistral": "gpt2",
         "mistral-swa": "gpt2", "qwen2": "qwen2", "qwen3": "qwen2"}
D = torch.float64


def load(path):
    data = open(path, "rb").read()
    n = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    dt = {"BF16": torch.bfloat16, "F32": torch.float32}
    return {k: torch.frombuffer(bytearray(data[8 + n + e["data_offsets"][0]:
                                               8 + n + e["data_offsets"][1]]),
                                dtype=dt[e["dtype"]]).reshape(e["shape"]).to(D)
            for k, e in header.items()}


def rms(x, w, eps):
    return w * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def inv_freq(c, hd):
    f = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=D) / hd))
    rs = c.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / f
        scaled = torch.where(wavelen > old / lo, f / factor, f)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        f = torch.where(medium, smoothed, scaled)
    return f


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos + rot * sin


def forward(c, w, ids):
    T = len(ids)
    d, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim") or d // nh
    eps = c["rms_norm_eps"]
    freqs = torch.arange(T, dtype=D)[:, None] * inv_freq(c, hd)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q_pos = torch.arange(T)[:, None]
    kv_pos = torch.arange(T)[None, :]
    allowed = kv_pos <= q_pos
    window = c.get("sliding_window") if c.get("use_sliding_window", True) else None
    if c["model_type"] == "mistral" and window:
        allowed = allowed & (kv_pos > q_pos - window)
    mask = torch.zeros(T, T, dtype=D).masked_fill(~allowed, float("-inf"))
    h = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        x = rms(h, w[p + "input_layernorm.weight"], eps)

        def proj(name):
            y = x @ w[p + "self_attn.%s_proj.weight" % name].T
            b = w.get(p + "self_attn.%s_proj.bias" % name)
            return y + b if b is not None else y
        q = proj("q").view(T, nh, hd)
        k = proj("k").view(T, nkv, hd)
        v = proj("v").view(T, nkv, hd)
        if c["model_type"] == "qwen3":
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q = rope(q.transpose(0, 1), cos, sin)
        k = rope(k.transpose(0, 1), cos, sin)
        v = v.transpose(0, 1)
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        a = torch.softmax(q @ k.transpose(1, 2) * hd ** -0.5 + mask, dim=-1) @ v
        h = h + a.transpose(0, 1).reshape(T, nh * hd) @ w[p + "self_attn.o_proj.weight"].T
        x = rms(h, w[p + "post_attention_layernorm.weight"], eps)
        g = x @ w[p + "mlp.gate_proj.weight"].T
        u = x @ w[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    h = rms(h, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return (h[-1] @ head.T).tolist()


def main():
    corpus = os.path.join(here, "..", "fixtures", "corpus", "train.txt")
    out = {"generator": "test/references/arch-references.py",
           "compute": "float64 from the bf16 checkpoint of synth.py (seed 1)",
           "archs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            ckpt = os.path.join(tmp, arch)
            subprocess.run([sys.executable, os.path.join(inputs, "synth.py"),
                            arch, ckpt, "--text", corpus], check=True)
            c = json.load(open(os.path.join(ckpt, "config.json")))
            tok = json.load(open(os.path.join(ckpt, "tokenizer.json")))
            w = load(os.path.join(ckpt, "model.safetensors"))
            recs = []
            for text in PROMPTS:
                ids = bytebpe.encode(tok, SPLIT[arch], text)
                if c["model_type"].startswith("qwen"):
                    ids = ids[1:]  # no BOS: Qwen's post-processor is ByteLevel
                logits = forward(c, w, ids)
                recs.append({"text": text, "token_ids": ids,
                             "logits": [float("%.9g" % v) for v in logits]})
            out["archs"][arch] = recs
            print(arch, [len(r["token_ids"]) for r in recs])
    with open(os.path.join(here, "archs.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))


main()
