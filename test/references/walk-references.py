#!/usr/bin/python3
"""Reference logits of WALK (the sparse FFN) for the fixture models.

  /usr/bin/python3 test/references/walk-references.py   (needs python3-torch)

Writes test/fixtures/references/<model>/walk.json for tiny-gemma3 and
tiny-llama, which EngineReference.WalkMatchesTheSparseReference reads (the
test needs no torch). The model is test/fixtures/scripts/models.py (the fixtures'
implementation: HF's modeling code, tensor for tensor), its weights the
fixture's BF16 safetensors upcast, all compute in float64. Each layer's MLP
is replaced by the walk as docs/lql.md defines it: per position every
feature i gets the score |act(gate_i . x)| * |up_i| * |down_i| (L2 norms of
its up row and down column), the K best fire (ties to the lower index), and
the output is sum over them of act(gate_i . x) * (up_i . x) * down_i.
Written independently of lib/Model (a torch top-k, not the engine's
selection).
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
# The fixtures' implementation, kept once in test/fixtures/scripts/.
sys.path.insert(0, os.path.join(here, "..", "fixtures", "scripts"))
import models  # noqa: E402

fixtures = os.path.join(here, "..", "fixtures")


def load_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    dtypes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = bytearray(data[8 + n + b:8 + n + end])
        t = torch.frombuffer(buf, dtype=dtypes[e["dtype"]]) if buf else \
            torch.zeros(0, dtype=dtypes[e["dtype"]])
        out[name] = t.reshape(e["shape"]).to(torch.float64)
    return out


def walk_mlp(mlp, act, k):
    up_norm = mlp.up_proj.weight.norm(dim=1)
    down_norm = mlp.down_proj.weight.norm(dim=0)

    def forward(x):
        a = act(mlp.gate_proj(x))
        score = a.abs() * (up_norm * down_norm)
        # Ties to the lower index: a stable descending sort.
        order = torch.sort(score, dim=-1, descending=True, stable=True).indices
        mask = torch.zeros_like(score).scatter_(-1, order[..., :k], 1.0)
        return mlp.down_proj(a * mlp.up_proj(x) * mask)
    return forward


def main():
    for name in ["tiny-gemma3", "tiny-llama"]:
        mdir = os.path.join(fixtures, "models", name)
        cfg = json.load(open(os.path.join(mdir, "config.json")))
        model = models.build_from_config(dict(models.config_for(name), **cfg))
        sd = load_safetensors(os.path.join(mdir, "model.safetensors"))
        model = model.to(torch.float64)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and set(missing) <= {"lm_head.weight"}, missing
        model.eval()
        gemma = cfg["model_type"] == "gemma3_text"
        act = (lambda g: F.gelu(g, approximate="tanh")) if gemma else F.silu
        goldens = json.load(open(os.path.join(fixtures, "references", name,
                                              "goldens.json")))
        ffn = cfg["intermediate_size"]
        plain = [layer.mlp.forward for layer in model.model.layers]
        records = []
        for p in goldens["prompts"][:4]:
            ids = torch.tensor([p["token_ids"]])
            for k in [ffn // 4, ffn // 16]:
                for layer in model.model.layers:
                    layer.mlp.forward = walk_mlp(layer.mlp, act, k)
                with torch.no_grad():
                    logits = model(ids)[0, -1]
                for layer, f in zip(model.model.layers, plain):
                    layer.mlp.forward = f
                top = torch.topk(logits, 5)
                records.append({"text": p["text"], "token_ids": p["token_ids"],
                                "k": k, "top5": [int(t) for t in top.indices],
                                "last_logits": [float(v) for v in logits]})
        out = os.path.join(fixtures, "references", name, "walk.json")
        with open(out, "w") as f:
            json.dump({"model": name, "generator": "test/references/walk-references.py",
                       "compute": "float64, BF16 weights upcast",
                       "prompts": records}, f)
        print(out, len(records))


main()
