#!/usr/bin/env python3
"""Checks larql-opt's INFER --format=json lines (stdin) against reference
logits (test/references/archs.json, from PyTorch; see its generator).

  check-logits.py REFERENCES.json ARCH [TOL]

For each prompt, in order: the token ids must equal the reference's, the
top 5 ids must be the reference's top 5, and every logit shown (the TOP N
of the statement) must be within TOL (default 1e-4) of the reference's
logit of that id. Prints the largest difference; exits 1 on a mismatch.
"""
import json
import sys

ref = json.load(open(sys.argv[1]))["archs"][sys.argv[2]]
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4
got = [json.loads(line) for line in sys.stdin if line.strip()]
if len(got) != len(ref):
    sys.exit("%d results for %d reference prompts" % (len(got), len(ref)))
worst, bad = 0.0, False
for g, r in zip(got, ref):
    if g["tokens"] != r["token_ids"]:
        print("%r: tokens %s, reference %s" % (r["text"], g["tokens"], r["token_ids"]))
        bad = True
        continue
    logits = r["logits"]
    top5 = sorted(range(len(logits)), key=lambda i: (-logits[i], i))[:5]
    if [t["id"] for t in g["top"][:5]] != top5:
        print("%r: top-5 %s, reference %s" % (r["text"], [t["id"] for t in g["top"][:5]], top5))
        bad = True
    for t in g["top"]:
        d = abs(t["logit"] - logits[t["id"]])
        worst = max(worst, d)
        if d > tol:
            print("%r: logit of %d is %.7g, reference %.7g" % (r["text"], t["id"], t["logit"], logits[t["id"]]))
            bad = True
print("%s: %d prompts, max |logit - reference| %.2g%s" % (sys.argv[2], len(ref), worst, " MISMATCH" if bad else ""))
sys.exit(1 if bad else 0)
