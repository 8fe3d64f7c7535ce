#!/usr/bin/env python3
"""Writes the prompt files check.sh and llama-answers read (prompt<TAB>target)
from the fixtures: canonical.tsv and heldout.tsv (the trained single-valued
facts), and, for a facts TSV (entity, relation, target; default
fictional.tsv), facts-canonical.tsv and facts-heldout.tsv from
templates.json.

  utils/llama-answers/prompts.py OUT_DIR [FACTS.tsv]
"""
import json
import os
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "test", "fixtures")
out = sys.argv[1]
facts_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    root, "facts", "fictional.tsv")
os.makedirs(out, exist_ok=True)
for name in ("canonical", "heldout"):
    items = [json.loads(l) for l in
             open(os.path.join(root, "corpus", "eval_%s.jsonl" % name))]
    multi = {i["relation"] for i in items if len(i["targets"]) > 1}
    with open(os.path.join(out, name + ".tsv"), "w") as f:
        for i in items:
            if i["relation"] not in multi:
                f.write("%s\t%s\n" % (i["prompt"], i["targets"][0]))
templates = json.load(open(os.path.join(root, "facts", "templates.json")))
facts = [l.split("\t") for l in open(facts_path).read().splitlines()[1:] if l]
for kind, key in (("canonical", "canonical"), ("heldout", "heldout_prompt")):
    with open(os.path.join(out, "facts-%s.tsv" % kind), "w") as f:
        for e, r, t in facts:
            f.write("%s\t%s\n" % (templates[r][key].replace("{e}", e), t))
