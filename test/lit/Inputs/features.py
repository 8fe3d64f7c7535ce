#!/usr/bin/env python3
"""Test helper: the `features` table of LQL recomputed from a checkpoint.

Reads the safetensors with st.py (stdlib only, independent of the C++
readers) and checks larql-opt's --format=json output read from stdin:

  features.py CKPT row L I
      the one row of `SELECT * FROM features WHERE layer = L AND feature = I`
  features.py CKPT top L0 L1 X N
      `SELECT * FROM features WHERE layer >= L0 AND layer <= L1 AND
       down_norm > X ORDER BY down_norm DESC LIMIT N`
  features.py CKPT nearest0 TOKEN N
      `SELECT * FROM features NEAREST TO 'x' AT LAYER 0 LIMIT N` where TOKEN
      is the last token id of 'x': at the input of layer 0 the residual is
      the token's embedding times the embedding scale (sqrt(hidden) for
      Gemma), so the scores are gate_i . (scale * embed[TOKEN])
  features.py CKPT count L0 L1 X
      how many rows of layers L0..L1 have down_norm > X (printed)

Definitions (docs/lql.md): norms are L2 norms of the feature's gate row,
up row and down column (HF stores down_proj as [hidden, F]); top_output is
the 3 tokens t with the largest lm_head[t] . down_i (the embedding when
tied), top_input the 3 with the largest scale * embed[t] . gate_i, ties to
the lower id, decoded as the tokenizer's decoder does for one token, joined
by " | ". Prints OK lines; exits 1 on a mismatch.
"""
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def floats(dtype, raw):
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dtype == "BF16":
        n = len(raw) // 2
        return list(struct.unpack("<%df" % n, b"".join(
            b"\0\0" + raw[2 * i:2 * i + 2] for i in range(n))))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    raise SystemExit("unsupported dtype " + dtype)


class Checkpoint:
    def __init__(self, path):
        self.t = st.read_checkpoint(path)
        with open(os.path.join(path, "config.json")) as f:
            self.cfg = json.load(f)
        with open(os.path.join(path, "tokenizer.json")) as f:
            tok = json.load(f)
        self.pieces = {i: p for p, i in tok["model"]["vocab"].items()}
        for a in tok.get("added_tokens", []):
            self.pieces[a["id"]] = a["content"]
        self.cache = {}

    def matrix(self, name):
        if name not in self.cache:
            dt, shape, raw = self.t[name]
            v = floats(dt, raw)
            cols = shape[1]
            self.cache[name] = [v[r * cols:(r + 1) * cols]
                                for r in range(shape[0])]
        return self.cache[name]

    def vec(self, layer, kind, i):
        m = self.matrix("model.layers.%d.mlp.%s_proj.weight" % (layer, kind))
        if kind == "down":
            return [row[i] for row in m]
        return m[i]

    def decode(self, i):
        p = self.pieces.get(i, "")
        if p.startswith("<0x") and p.endswith(">") and len(p) == 6:
            text = bytes([int(p[3:5], 16)]).decode("utf-8", "replace")
        else:
            text = p.replace("\u2581", " ")
        return text[1:] if text.startswith(" ") else text

    def top(self, vocab_name, v, scale):
        rows = self.matrix(vocab_name)
        scores = [scale * sum(a * b for a, b in zip(r, v)) for r in rows]
        ids = sorted(range(len(scores)), key=lambda t: (-scores[t], t))[:3]
        return " | ".join(self.decode(t) for t in ids)

    def row(self, layer, i, full=True):
        def norm(v):
            return math.sqrt(sum(x * x for x in v))
        r = {"layer": layer, "feature": i,
             "gate_norm": norm(self.vec(layer, "gate", i)),
             "up_norm": norm(self.vec(layer, "up", i)),
             "down_norm": norm(self.vec(layer, "down", i))}
        if full:
            emb = "model.embed_tokens.weight"
            head = emb if self.cfg.get("tie_word_embeddings") else "lm_head.weight"
            scale = math.sqrt(self.cfg["hidden_size"]) \
                if self.cfg["model_type"].startswith("gemma") else 1.0
            r["top_output"] = self.top(head, self.vec(layer, "down", i), 1.0)
            r["top_input"] = self.top(emb, self.vec(layer, "gate", i), scale)
        return r


def same(want, got):
    if set(want) != set(got):
        return False
    for k, w in want.items():
        g = got[k]
        if isinstance(w, float):
            # scores go through f32 sums of a hidden-sized product
            tol = 1e-4 if k == "score" else 1e-5
            if not math.isclose(w, g, rel_tol=tol, abs_tol=1e-6):
                return False
        elif w != g:
            return False
    return True


def main(argv):
    ck = Checkpoint(argv[1])
    mode = argv[2]
    F = ck.cfg["intermediate_size"]
    if mode == "count":
        l0, l1, x = int(argv[3]), int(argv[4]), float(argv[5])
        n = sum(1 for layer in range(l0, l1 + 1) for i in range(F)
                if ck.row(layer, i, False)["down_norm"] > x)
        print(n)
        return 0
    got = json.loads(sys.stdin.readline())["rows"]
    if mode == "row":
        want = [ck.row(int(argv[3]), int(argv[4]))]
    elif mode == "nearest0":
        tok, n = int(argv[3]), int(argv[4])
        scale = math.sqrt(ck.cfg["hidden_size"]) \
            if ck.cfg["model_type"].startswith("gemma") else 1.0
        h = [scale * x for x in ck.matrix("model.embed_tokens.weight")[tok]]
        scores = [sum(a * b for a, b in zip(ck.vec(0, "gate", i), h))
                  for i in range(F)]
        ids = sorted(range(F), key=lambda i: (-scores[i], i))[:n]
        want = []
        for i in ids:
            r = ck.row(0, i)
            r["score"] = scores[i]
            want.append(r)
    else:
        l0, l1, x, n = int(argv[3]), int(argv[4]), float(argv[5]), int(argv[6])
        rows = [ck.row(layer, i, False) for layer in range(l0, l1 + 1)
                for i in range(F)]
        rows = [r for r in rows if r["down_norm"] > x]
        rows.sort(key=lambda r: (-r["down_norm"], r["layer"], r["feature"]))
        want = [ck.row(r["layer"], r["feature"]) for r in rows[:n]]
    if len(want) != len(got):
        print("expected %d rows, got %d" % (len(want), len(got)))
        return 1
    for w, g in zip(want, got):
        if not same(w, g):
            print("mismatch:\n  expected %s\n  got      %s" % (w, g))
            return 1
        print("OK %d %d %.6f %s" % (w["layer"], w["feature"], w["down_norm"],
                                    w["top_output"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
