#!/usr/bin/env python3
"""Does the compiled, edited model answer in llama.cpp as it does in Vindex?

Given an edited V-index (the patch overlay), the GGUF files compiled from
it, the inserted facts and the trained facts' canonical prompts:
  1. our engine on the overlay: one larql-opt script of
     `INFER 'prompt' TOP 1 GENERATE n` for every prompt;
  2. our engine on each GGUF (decomposed back to a V-index);
  3. llama.cpp on each GGUF: `llama-simple -m GGUF -n N prompt` per prompt
     (greedy; llama.cpp built outside the repository: --llama-simple or
     $LLAMA_SIMPLE).
Per prompt set (the inserted facts' canonical prompts, the trained facts'),
it counts the prompts whose greedy text begins with the whole target
(a hit) under each, and the prompts on which the texts agree (one is a
prefix of the other: our GENERATE runs to the end of a word, llama-simple
stops after N tokens). Prints one JSON object; the exit status is 0 even
when answers differ (the figures are the result).

  bench/edit-llamacpp.py --overlay OUT.vindex --gguf x-f32.gguf
      [--gguf x-bf16.gguf] --facts test/fixtures/facts/fictional.tsv
      [--trained test/fixtures/corpus/eval_canonical.jsonl]
      [--templates test/fixtures/facts/templates.json] [--bin build/bin]
      [--llama-simple PATH] [--work DIR] [--limit N]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "test", "fixtures")
GENERATE = 12      # our GENERATE (then to the end of the word)
LLAMA_TOKENS = 16  # llama-simple's -n


def lql_string(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ours(bin_dir, vindex, prompts, work):
    """Our engine's greedy text for each prompt (one larql-opt run)."""
    script = os.path.join(work, "infer.lql")
    with open(script, "w") as f:
        for p in prompts:
            f.write("INFER %s TOP 1 GENERATE %d;\n" % (lql_string(p), GENERATE))
    p = subprocess.run([os.path.join(bin_dir, "larql-opt"), vindex, script],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        sys.exit("edit-llamacpp: larql-opt failed on %s:\n%s" %
                 (vindex, p.stderr))
    out = [l.split("generated:", 1)[1].strip()
           for l in p.stdout.splitlines() if "generated:" in l]
    if len(out) != len(prompts):
        sys.exit("edit-llamacpp: %d answers for %d prompts" %
                 (len(out), len(prompts)))
    return out


def llama(simple, gguf, prompts):
    """llama.cpp's greedy text for each prompt (llama-simple, one run per
    prompt: its output is the prompt, then the continuation)."""
    out = []
    for prompt in prompts:
        p = subprocess.run([simple, "-m", gguf, "-n", str(LLAMA_TOKENS),
                            prompt], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit("edit-llamacpp: llama-simple failed on %s:\n%s" %
                     (gguf, p.stderr[-2000:]))
        text = p.stdout
        at = text.find(prompt)
        if at < 0:
            sys.exit("edit-llamacpp: llama-simple's output lacks the prompt "
                     "%r: %r" % (prompt, text))
        out.append(text[at + len(prompt):].strip())
    return out


def hit(text, target):
    """Whether text begins with the whole target (then not a letter)."""
    if not text.startswith(target):
        return False
    rest = text[len(target):]
    return not rest or not rest[0].isalnum()


def agree(a, b):
    n = min(len(a), len(b))
    return a[:n] == b[:n] and (n > 0 or a == b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--overlay", required=True)
    ap.add_argument("--gguf", action="append", required=True)
    ap.add_argument("--facts", required=True)
    ap.add_argument("--trained",
                    default=os.path.join(FIX, "corpus", "eval_canonical.jsonl"))
    ap.add_argument("--templates",
                    default=os.path.join(FIX, "facts", "templates.json"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--llama-simple", default=os.environ.get("LLAMA_SIMPLE"))
    ap.add_argument("--work", default="")
    ap.add_argument("--limit", type=int, default=0,
                    help="at most N trained prompts (0: all)")
    a = ap.parse_args()
    if not a.llama_simple:
        sys.exit("edit-llamacpp: give --llama-simple or $LLAMA_SIMPLE "
                 "(llama.cpp built outside the repository)")
    templates = json.load(open(a.templates))
    sets = {"inserted": [], "trained": []}
    with open(a.facts) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            canon = templates[row["relation"]]["canonical"]
            sets["inserted"].append(
                (canon.replace("{e}", row["entity"]), row["target"]))
    with open(a.trained) as f:
        for line in f:
            j = json.loads(line)
            sets["trained"].append((j["prompt"], j["targets"][0]))
    if a.limit:
        sets["trained"] = sets["trained"][:a.limit]
    work = a.work or tempfile.mkdtemp(prefix="edit-llamacpp-")
    os.makedirs(work, exist_ok=True)
    prompts = [p for s in sets.values() for p, _ in s]
    targets = [t for s in sets.values() for _, t in s]
    runs = {"overlay": ours(a.bin, a.overlay, prompts, work)}
    for g in a.gguf:
        name = os.path.basename(g)
        v = os.path.join(work, name + ".vindex")
        subprocess.run([os.path.join(a.bin, "vindex-decompose"), g, "-o", v],
                       check=True, stdout=subprocess.DEVNULL)
        runs["vindex:" + name] = ours(a.bin, v, prompts, work)
        runs["llama.cpp:" + name] = llama(a.llama_simple, g, prompts)
    result = {"benchmark": "edit-llamacpp", "overlay": a.overlay,
              "gguf": a.gguf, "facts": a.facts, "sets": {}}
    base = runs["overlay"]
    at = 0
    for sname, items in sets.items():
        n = len(items)
        rng = range(at, at + n)
        entry = {"prompts": n, "hits": {}, "agree_with_overlay": {},
                 "differences": []}
        for rname, texts in runs.items():
            entry["hits"][rname] = sum(hit(texts[i], targets[i]) for i in rng)
            if rname != "overlay":
                entry["agree_with_overlay"][rname] = sum(
                    agree(texts[i], base[i]) for i in rng)
                for i in rng:
                    if not agree(texts[i], base[i]):
                        entry["differences"].append(
                            {"run": rname, "prompt": prompts[i],
                             "overlay": base[i], "text": texts[i]})
        entry["differences"] = entry["differences"][:20]
        result["sets"][sname] = entry
        at += n
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
