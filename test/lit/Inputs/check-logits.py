#!/usr/bin/env python3
"""Checks larql-opt's INFER output against PyTorch reference logits, so that
the suite's INFER checks come from the references rather than hand-copied
numbers.

  check-logits.py REFERENCES.json [ARCH] [--tol TOL] < INFER --format=json lines
  check-logits.py REFERENCES.json [ARCH] --checks FORMAT TEXT N [--tol TOL]

REFERENCES.json is test/references/archs.json (its ARCH entry) or a
fixture's goldens.json (test/fixtures/references/<model>/). Each INFER
result is matched to the reference prompt of the same text: the token ids
must equal the reference's, the top ids (at most 5) must be the reference's,
every logit shown (the TOP N of the statement) must be within TOL (default
1e-4) of the reference's logit of that id and every probability within TOL
of the reference's softmax, and a GENERATE continuation must begin the
reference's greedy continuation (goldens only). Prints the largest logit
difference; exits 1 on a mismatch. Without ARCH (archs.json) every prompt
of the references must be answered, in order.

--checks writes FileCheck lines for the top N rows of TEXT as larql-opt
prints them in FORMAT (table or csv), from the references: the token (the
reference's piece without SentencePiece's leading space mark), and the
probability and logit as printed, as a choice of the roundings of every
value within TOL of the reference's.
"""
import json
import math
import re
import sys


def load(path, arch):
    """[(text, token_ids, logits, greedy ids or None, pieces {id: piece})]."""
    data = json.load(open(path))
    if "archs" in data:
        return [(r["text"], r["token_ids"], r["logits"], None, {})
                for r in data["archs"][arch]]
    out = []
    for p in data["prompts"]:
        pieces = {t["id"]: t["piece"] for t in p.get("top5", [])}
        out.append((p["text"], p["token_ids"], p["last_logits"],
                    p.get("greedy_continuation_ids"), pieces))
    return out


def softmax(logits):
    m = max(logits)
    e = [math.exp(x - m) for x in logits]
    s = sum(e)
    return [x / s for x in e]


def top_ids(logits, n):
    return sorted(range(len(logits)), key=lambda i: (-logits[i], i))[:n]


def roundings(value, tol, digits):
    """The values printed with DIGITS decimals of every x in [v-tol, v+tol],
    as a FileCheck regex."""
    lo, hi = value - tol, value + tol
    step = 10.0 ** -digits
    first = math.floor(lo / step)
    seen = []
    for k in range(first, math.floor(hi / step) + 2):
        # The printed value k*step stands for [k-0.5, k+0.5) * step.
        if (k + 0.5) * step < lo or (k - 0.5) * step > hi:
            continue
        s = "%.*f" % (digits, k * step)
        if s not in seen:
            seen.append(s)
    return "{{" + "|".join(re.escape(s) for s in seen) + "}}"


def checks(refs, fmt, text, n, tol):
    ref = next((r for r in refs if r[0] == text), None)
    if ref is None:
        sys.exit("no reference prompt %r" % text)
    _, _, logits, _, pieces = ref
    probs = softmax(logits)
    for rank, i in enumerate(top_ids(logits, n), 1):
        if i not in pieces:
            sys.exit("the reference has no piece for id %d" % i)
        token = re.escape(pieces[i].replace("\u2581", " ").strip())
        p, l = roundings(probs[i], tol, 4), roundings(logits[i], tol, 3)
        if fmt == "table":
            print("CHECK: {{^ *}}%d  %s {{ *}}%s {{ *}}%s{{$}}" % (rank, token, p, l))
        else:
            print('CHECK: INFER,"%s",%d,%d,"%s",%s{{[0-9]*}},%s{{[0-9]*$}}'
                  % (text, rank, i, token, p, l))


def main(argv):
    tol = 1e-4
    if "--tol" in argv:
        i = argv.index("--tol")
        tol = float(argv[i + 1])
        del argv[i:i + 2]
    spec = None
    if "--checks" in argv:
        i = argv.index("--checks")
        spec = argv[i + 1:i + 4]
        del argv[i:i + 4]
    path, arch = argv[1], (argv[2] if len(argv) > 2 else None)
    refs = load(path, arch)
    if spec:
        checks(refs, spec[0], spec[1], int(spec[2]), tol)
        return 0
    got = [json.loads(line) for line in sys.stdin if line.strip()]
    if arch is not None and len(got) != len(refs):
        sys.exit("%d results for %d reference prompts" % (len(got), len(refs)))
    if not got:
        sys.exit("no INFER results")
    by_text = {r[0]: r for r in refs}
    worst, bad = 0.0, False
    for g in got:
        r = by_text.get(g["prompt"])
        if r is None:
            print("%r: no reference prompt" % g["prompt"])
            bad = True
            continue
        text, ids, logits, greedy, _ = r
        if g["tokens"] != ids:
            print("%r: tokens %s, reference %s" % (text, g["tokens"], ids))
            bad = True
            continue
        n = min(5, len(g["top"]))
        want = top_ids(logits, n)
        if [t["id"] for t in g["top"][:n]] != want:
            print("%r: top %s, reference %s" % (text, [t["id"] for t in g["top"][:n]], want))
            bad = True
        probs = softmax(logits)
        for t in g["top"]:
            d = abs(t["logit"] - logits[t["id"]])
            worst = max(worst, d)
            if d > tol:
                print("%r: logit of %d is %.7g, reference %.7g" % (text, t["id"], t["logit"], logits[t["id"]]))
                bad = True
            if "prob" in t and abs(t["prob"] - probs[t["id"]]) > tol:
                print("%r: probability of %d is %.7g, reference %.7g" % (text, t["id"], t["prob"], probs[t["id"]]))
                bad = True
        gen = g.get("generated", {}).get("ids")
        if gen is not None and greedy is not None and gen != greedy[:len(gen)]:
            print("%r: generated %s, reference %s" % (text, gen, greedy))
            bad = True
    name = arch or path.replace("\\", "/").split("/")[-2]
    print("%s: %d prompts, max |logit - reference| %.2g%s" % (name, len(got), worst, " MISMATCH" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
