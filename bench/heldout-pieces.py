#!/usr/bin/python3
"""Where an edited model's paraphrase is lost: at the target's first piece
or at the later ones. For each inserted fact, on the relation's held-out
prompt (templates.json's heldout_prompt, never given to an edit) and on
its canonical prompt, runs the edited model and counts
  first   the target's first piece is the greedy choice;
  whole   every piece of the target follows greedily (the paraphrase of
          vindex-bench-edit-eval);
and compares the edit's write at the last position after layer --layer
(edited minus unedited residual) on the two prompts:
  write_cosine  mean cosine of the held-out prompt's write with the
                canonical one's;
  write_ratio   mean norm of the held-out write over the canonical one's.
Per relation and in all; one JSON object.

The models are Hugging Face directories (the fixture, and the edited
V-index compiled with `vindex-compile --format=safetensors`). Runs the
fixtures' independent PyTorch implementation (test/fixtures/scripts/
models.py; needs Debian's python3-torch, so it is a diagnostic, not a
test) and tokenizes with vindex-tokenize from --bin.

  bench/heldout-pieces.py --before test/fixtures/models/tiny-llama
                          --after edited.hf --facts F.tsv [--count N]
                          [--layer 3] [--bin build/bin]
"""
import argparse
import importlib.util
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "test", "fixtures")
sys.path.insert(0, os.path.join(FIX, "scripts"))

import torch  # noqa: E402

import models  # noqa: E402
import st_io  # noqa: E402

# The tokenizing step is entity-key-specificity.py's (vindex-tokenize).
_spec = importlib.util.spec_from_file_location(
    "entity_key_specificity",
    os.path.join(ROOT, "bench", "entity-key-specificity.py"))
_eks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_eks)
encode = _eks.encode


def load_model(mdir):
    with open(os.path.join(mdir, "config.json")) as f:
        config = json.load(f)
    model = models.build_from_config(config)
    sd, _ = st_io.load_file(os.path.join(mdir, "model.safetensors"),
                            to_float32=True)
    model.load_state_dict(sd, strict=False)
    if "lm_head.weight" in sd and "model.embed_tokens.weight" in sd:
        # An edit that lifts output rows unties a tied model (models.py
        # ties Gemma's, and loading both wrote the tied one twice).
        model.lm_head = torch.nn.Linear(config["hidden_size"],
                                        config["vocab_size"], bias=False)
        model.lm_head.weight = torch.nn.Parameter(sd["lm_head.weight"])
        model.model.embed_tokens.weight = torch.nn.Parameter(
            sd["model.embed_tokens.weight"])
    return model.double().eval()


def run(model, ids):
    """The last position's logits and its residual after each layer."""
    with torch.no_grad():
        logits, hidden, _ = model(torch.tensor([ids]), return_hidden=True)
    return logits[0, -1], [h[0, -1] for h in hidden[1:]]


def follows(model, prompt, pieces):
    """Whether each piece is the greedy choice after the prompt and the
    pieces before it (teacher-forced: the first miss ends greedy
    generation, so `whole` is all of them)."""
    ids = list(prompt)
    for p in pieces:
        logits, _ = run(model, ids)
        if int(logits.argmax()) != p:
            return False
        ids.append(p)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--facts", required=True)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    a = ap.parse_args()
    with open(os.path.join(FIX, "facts", "templates.json")) as f:
        templates = json.load(f)
    with open(a.facts) as f:
        facts = [l.split("\t") for l in f.read().splitlines()[1:] if l]
    if a.count:
        facts = facts[:a.count]
    before, after = load_model(a.before), load_model(a.after)
    tool = os.path.join(a.bin, "vindex-tokenize")
    tok = os.path.join(a.before, "tokenizer.json")
    prompt = {w: encode(tool, tok, [templates[r][w].replace("{e}", e)
                                    for e, r, _ in facts])
              for w in ("canonical", "heldout_prompt")}
    # The target's pieces as they follow the canonical prompt.
    whole = encode(tool, tok, [templates[r]["canonical"].replace("{e}", e) +
                               " " + t for e, r, t in facts])
    rows = {}
    for i, (e, r, t) in enumerate(facts):
        pieces = whole[i][len(prompt["canonical"][i]):]
        row = {}
        writes = {}
        for w, name in (("canonical", "canonical"),
                        ("heldout_prompt", "heldout")):
            ids = prompt[w][i]
            logits, edited = run(after, ids)
            _, unedited = run(before, ids)
            writes[name] = edited[a.layer] - unedited[a.layer]
            row[name + "_first"] = int(logits.argmax()) == pieces[0]
            row[name + "_whole"] = (row[name + "_first"] and
                                    follows(after, ids, pieces))
        c, h = writes["canonical"], writes["heldout"]
        row["write_cosine"] = float(torch.nn.functional.cosine_similarity(
            c, h, dim=0))
        row["write_ratio"] = float(h.norm() / c.norm())
        rows.setdefault(r, []).append(row)

    def summary(xs):
        n = len(xs)
        return {"facts": n,
                **{k: sum(x[k] for x in xs) for k in (
                    "canonical_first", "canonical_whole", "heldout_first",
                    "heldout_whole")},
                "write_cosine": round(sum(x["write_cosine"] for x in xs) / n,
                                      3),
                "write_ratio": round(sum(x["write_ratio"] for x in xs) / n,
                                     3)}
    result = {"benchmark": "heldout-pieces", "before": a.before,
              "after": a.after, "facts": a.facts, "layer": a.layer,
              "all": summary([x for xs in rows.values() for x in xs]),
              "by_relation": {r: summary(xs) for r, xs in sorted(rows.items())}}
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
