#!/usr/bin/python3
"""How much of an FFN key at a relation prompt's last position tells the
entity apart, and whether the held-out prompt's key still points at its
own entity: why a last-position edit generalises to a paraphrase on one
fixture and not on the other.

For each layer, the keys (the down projection's input) at the last
position of the relation's canonical prompt and of its held-out prompt
(templates.json), for N entities of a set:
  entity_fraction  mean ||k - mean k|| / ||k|| over the canonical keys:
                   the share of the key that differs between entities
                   (the rest is the same for every entity of the set, and
                   an edit written there answers for all of them);
  own_cosine       mean cosine of an entity's centred held-out key with its
                   own centred canonical key;
  nearest_is_own   share of entities whose centred held-out key is nearest
                   (cosine) to their own centred canonical key.
Sets: "fictional" (the first N entities of fictional_1000.tsv, never
trained) and "trained" (the first N of facts.tsv).

Runs the fixtures' independent PyTorch implementation
(test/fixtures/scripts/models.py; needs Debian's python3-torch, so it is a
diagnostic, not a test) and tokenizes with vindex-tokenize from --bin.
Prints one JSON object.

  bench/entity-key-specificity.py [--model tiny-gemma3]... [--relation R]...
                                  [--bin build/bin] [--entities 60]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "test", "fixtures")
sys.path.insert(0, os.path.join(FIX, "scripts"))

import torch  # noqa: E402

import models  # noqa: E402
import st_io  # noqa: E402


def load_model(name):
    mdir = os.path.join(FIX, "models", name)
    with open(os.path.join(mdir, "config.json")) as f:
        config = json.load(f)
    model = models.build_from_config(config)
    sd, _ = st_io.load_file(os.path.join(mdir, "model.safetensors"),
                            to_float32=True)
    model.load_state_dict(sd, strict=False)  # lm_head is tied on Gemma
    return model.double().eval(), os.path.join(mdir, "tokenizer.json")


def encode(tool, tokenizer, texts):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(texts, f)
        f.flush()
        out = subprocess.run([tool, tokenizer, f.name], capture_output=True,
                             text=True, check=True).stdout
    return [json.loads(line)["ids"] for line in out.splitlines()]


def last_keys(model, ids_list):
    """Per layer, the down projection's input at the last position."""
    keys = {}
    hooks = []
    for L, layer in enumerate(model.model.layers):
        def keep(m, inp, out, L=L):
            keys.setdefault(L, []).append(inp[0][0, -1].detach())
        hooks.append(layer.mlp.down_proj.register_forward_hook(keep))
    with torch.no_grad():
        for ids in ids_list:
            model.model(torch.tensor([ids], dtype=torch.long))
    for h in hooks:
        h.remove()
    return {L: torch.stack(v) for L, v in keys.items()}


def specificity(canonical, heldout):
    out = []
    unit = lambda x: torch.nn.functional.normalize(x, dim=1)
    for L in sorted(canonical):
        C, H = canonical[L], heldout[L]
        Cc, Hc = C - C.mean(0), H - H.mean(0)
        M = unit(Hc) @ unit(Cc).T
        own = (M.argmax(1) == torch.arange(len(M))).float().mean()
        out.append({"layer": L,
                    "entity_fraction": round(float(
                        (Cc.norm(dim=1) / C.norm(dim=1)).mean()), 3),
                    "own_cosine": round(float(M.diag().mean()), 3),
                    "nearest_is_own": round(float(own), 3)})
    return out


def entities(path, n):
    seen = []
    with open(path) as f:
        next(f)
        for line in f:
            e = line.split("\t")[0]
            if e not in seen:
                seen.append(e)
    return sorted(seen)[:n]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append")
    p.add_argument("--relation", action="append")
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--entities", type=int, default=60)
    a = p.parse_args()
    with open(os.path.join(FIX, "facts", "templates.json")) as f:
        templates = json.load(f)
    sets = {
        "fictional": entities(os.path.join(FIX, "facts", "fictional_1000.tsv"),
                              a.entities),
        "trained": entities(os.path.join(FIX, "facts", "facts.tsv"),
                            a.entities)}
    tool = os.path.join(a.bin, "vindex-tokenize")
    result = {"benchmark": "entity-key-specificity", "entities": a.entities,
              "results": []}
    for name in a.model or ["tiny-gemma3", "tiny-llama"]:
        model, tokenizer = load_model(name)
        for rel in a.relation or ["capital", "currency", "language"]:
            t = templates[rel]
            entry = {"model": name, "relation": rel}
            for set_name, ents in sets.items():
                keys = [last_keys(model, encode(tool, tokenizer, [
                    t[which].replace("{e}", e) for e in ents]))
                    for which in ("canonical", "heldout_prompt")]
                entry[set_name] = specificity(*keys)
            result["results"].append(entry)
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
