#!/usr/bin/python3
"""What rounding activations to bf16 costs in accuracy (issue 13).

llama.cpp multiplies bf16 weights with `vdpbf16ps`, rounding each activation
to bf16 first (ggml's vec_dot_type of BF16 is BF16); that is how its prompts
run at twice the f32 multiply-add rate. This runs the fixtures' independent
PyTorch implementation (test/fixtures/scripts/models.py) on every reference
prompt three ways and prints, as JSON, the largest last-position logit
difference from the f32 computation:

  bf16:  every linear layer's input rounded to bf16 (llama.cpp's product);
  hilo:  each input split into two bf16 numbers, x = hi + lo (the avx512bf16
         decode kernel's product), both multiplied;

against the 1e-3 that the engine's reference tests ask of every kernel path.
Needs torch (Debian's python3-torch): /usr/bin/python3 bench/bf16-activations.py
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "fixtures", "scripts"))
import models  # noqa: E402
import st_io  # noqa: E402


def load(name):
    mdir = os.path.join(ROOT, "test", "fixtures", "models", name)
    with open(os.path.join(mdir, "config.json")) as f:
        config = json.load(f)
    model = models.build_from_config(config)
    sd, _ = st_io.load_file(os.path.join(mdir, "model.safetensors"), to_float32=True)
    model.load_state_dict(sd, strict=False)  # Gemma's lm_head is tied
    return model.eval()


def bf16(x):
    return x.to(torch.bfloat16).float()


def rounded(self, x):
    return F.linear(bf16(x), self.weight, self.bias)


def hilo(self, x):
    hi = bf16(x)
    return F.linear(hi, self.weight, self.bias) + F.linear(bf16(x - hi), self.weight)


def measure(name):
    model = load(name)
    with open(os.path.join(ROOT, "test", "fixtures", "references", name,
                           "goldens.json")) as f:
        prompts = json.load(f)["prompts"]
    exact = torch.nn.Linear.forward
    out = {"model": name, "prompts": len(prompts)}
    try:
        for label, forward in (("bf16", rounded), ("hilo", hilo)):
            worst, same_top1 = 0.0, 0
            for p in prompts:
                ids = torch.tensor([p["token_ids"]])
                torch.nn.Linear.forward = exact
                a = model(ids)[0, -1]
                torch.nn.Linear.forward = forward
                b = model(ids)[0, -1]
                worst = max(worst, (a - b).abs().max().item())
                same_top1 += int(a.argmax() == b.argmax())
            out[label] = {"max_abs_logit_diff": worst, "same_top1": same_top1}
    finally:
        torch.nn.Linear.forward = exact
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny-gemma3,tiny-llama")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    results = [measure(m) for m in a.models.split(",") if m]
    print(json.dumps({"benchmark": "bf16-activations", "tolerance": 1e-3,
                      "results": results}))


if __name__ == "__main__":
    main()
