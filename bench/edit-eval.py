#!/usr/bin/env python3
"""The knowledge-edit evaluation: batches of INSERTs, timed, then measured.

For each fixture model (a checkpoint directory or a V-index) and each batch
(the first 1, 10 and all facts of --facts), in one INSERT statement
("batch") and one fact per statement ("sequential"):
  1. writes the LQL script: CREATE RELATION for each relation used (its
     canonical prompt from templates.json, then, as paraphrases, its
     training templates whose target comes last, cut before the target:
     "{e}'s capital city is {t}." gives "{e}'s capital city is", when
     --paraphrases is given; never the held-out prompt), then the
     INSERT(s), each with MODE m when --mode is given;
  2. runs `larql-opt IN.vindex script.lql -o OUT.vindex` and times it (the
     best of --reps runs, minus the time the same command takes with the
     CREATE RELATION statements alone: loading is not the edit);
  3. runs vindex-bench-edit-eval --before IN --after OUT --facts BATCH.
Prints one JSON object: the unedited model's measurements, then one entry
per (batch size, style) with the edit-eval JSON plus seconds per fact, or
the error larql-opt gave (a script that fails writes nothing).
`bench/edit-eval.py --table RESULT.json` prints such a result as the
Markdown table of docs/benchmarks.md.

  bench/edit-eval.py [--model DIR|V.vindex]... [--bin build/bin]
                     [--facts test/fixtures/facts/fictional.tsv]
                     [--sizes 1,10,all] [--styles batch,sequential]
                     [--mode M] [--work DIR] [--reps N] [--jobs J]
                     [--corpus TEXT] [--paraphrases]
--corpus gives the planner's key statistics ordinary text as well
(larql-plan-edits{corpus=TEXT} in the default pipeline).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "test", "fixtures")


class Failed(Exception):
    pass


def run(cmd, may_fail=False):
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        if may_fail:
            raise Failed(p.stderr.strip())
        sys.exit("edit-eval: failed (%d): %s\n%s" %
                 (p.returncode, " ".join(cmd), p.stderr))
    return wall, p.stdout


def lql_string(s):
    return "'" + s.replace("'", "''") + "'"


def prompts(rel, paraphrases):
    """The relation's prompts: the canonical one, then (with paraphrases)
    every training template whose target comes last ("{e}'s capital city
    is {t}." -> "{e}'s capital city is"); never the held-out prompt."""
    out = [rel["canonical"]]
    if paraphrases:
        for t in rel["train"]:
            if t.endswith(" {t}.") and "{t}" not in t[:-5]:
                p = t[:-5]
                if p not in out and p != rel.get("heldout_prompt"):
                    out.append(p)
    return [p.replace("{e}", "{entity}") for p in out]


def script(facts, templates, style, mode, paraphrases=False):
    rels = sorted({r for _, r, _ in facts})
    lines = ["CREATE RELATION %s AS %s;" % (r, lql_string(p))
             for r in rels for p in prompts(templates[r], paraphrases)]
    head = list(lines)
    rows = ["(entity=%s, relation=%s, target=%s)" %
            (lql_string(e), lql_string(r), lql_string(t))
            for e, r, t in facts]
    tail = " MODE %s" % mode if mode else ""
    if style == "batch":
        lines.append("INSERT INTO edges VALUES\n  " + ",\n  ".join(rows) +
                     tail + ";")
    else:
        lines += ["INSERT INTO edges VALUES %s%s;" % (r, tail) for r in rows]
    return "\n".join(head) + "\n", "\n".join(lines) + "\n"


def pct(r):
    return "%.1f%%" % (100.0 * r["recall"])


def table(result):
    print("| model | style | facts | efficacy | paraphrase | trained canonical"
          " | trained held-out | mean KL | s/fact | FFN width |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in result["models"]:
        u = m["unedited"]["trained"]["before"]
        print("| %s | unedited | 0 | | | %s | %s | | | %d |" %
              (m["model"], pct(u["canonical"]), pct(u["heldout"]),
               max(m["unedited"]["ffn_width"]["before"])))
        for r in m["runs"]:
            if "error" in r:
                print("| %s | %s | %d | failed: %s | | | | | | |" %
                      (m["model"], r["style"], r["facts"],
                       r["error"].splitlines()[0].replace("|", "/")))
                continue
            e = r["eval"]
            ins, tr = e["inserted"]["after"], e["trained"]["after"]
            print("| %s | %s | %d | %s | %s | %s | %s | %.2e | %.3f | %d -> %d |"
                  % (m["model"], r["style"], r["facts"], pct(ins["efficacy"]),
                     pct(ins["paraphrase"]), pct(tr["canonical"]),
                     pct(tr["heldout"]), e["kl"]["mean"],
                     r["seconds_per_fact"], max(e["ffn_width"]["before"]),
                     max(e["ffn_width"]["after"])))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        with open(sys.argv[2]) as f:
            table(json.load(f))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--facts", default=os.path.join(FIX, "facts",
                                                    "fictional.tsv"))
    ap.add_argument("--sizes", default="1,10,all")
    ap.add_argument("--styles", default="batch,sequential")
    ap.add_argument("--mode", default="")
    ap.add_argument("--work", default=os.path.join(ROOT, "out",
                                                   "edit-eval"))
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--kl-sentences", type=int, default=0)
    ap.add_argument("--corpus", default="")
    ap.add_argument("--paraphrases", action="store_true")
    a = ap.parse_args()
    models = a.model or [os.path.join(FIX, "models", m)
                         for m in ("tiny-gemma3", "tiny-llama")]
    tool = lambda t: os.path.join(a.bin, t)
    with open(os.path.join(FIX, "facts", "templates.json")) as f:
        templates = json.load(f)
    with open(a.facts) as f:
        facts = [tuple(l.rstrip("\n").split("\t"))
                 for l in f.read().splitlines()[1:] if l]
    os.makedirs(a.work, exist_ok=True)
    result = {"benchmark": "edit-eval", "facts": a.facts,
              "mode": a.mode or "default", "jobs": a.jobs,
              "corpus": a.corpus, "paraphrases": a.paraphrases,
              "models": []}
    pipeline = []
    if a.corpus:
        pipeline = ["--pass-pipeline=builtin.module(larql-resolve-relations,"
                    "larql-lower-to-vindex,larql-plan-edits{corpus=%s})"
                    % os.path.abspath(a.corpus)]
    for model in models:
        name = os.path.basename(model.rstrip("/")).replace(".vindex", "")
        work = os.path.join(a.work, name)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        base = model
        if not model.endswith(".vindex"):
            base = os.path.join(work, "base.vindex")
            run([tool("vindex-decompose"), model, "-o", base])
        evalcmd = [tool("vindex-bench-edit-eval"), "--fixtures", FIX,
                   "--before", base, "--facts", a.facts,
                   "--kl-sentences", str(a.kl_sentences)]
        _, out = run(evalcmd)
        entry = {"model": name, "unedited": json.loads(out), "runs": []}
        for size in a.sizes.split(","):
            n = len(facts) if size == "all" else int(size)
            batch = facts[:n]
            tsv = os.path.join(work, "facts-%d.tsv" % n)
            with open(tsv, "w") as f:
                f.write("entity\trelation\ttarget\n")
                f.writelines("%s\t%s\t%s\n" % x for x in batch)
            for style in a.styles.split(","):
                tag = "%s-%d" % (style, n)
                head, full = script(batch, templates, style, a.mode,
                                    a.paraphrases)
                paths = {}
                for kind, text in (("head", head), ("edit", full)):
                    paths[kind] = os.path.join(work, "%s-%s.lql" % (tag, kind))
                    with open(paths[kind], "w") as f:
                        f.write(text)
                out_v = os.path.join(work, tag + ".vindex")
                best = {}
                try:
                    for kind in ("head", "edit"):
                        best[kind] = min(
                            run([tool("larql-opt"), base, paths[kind], "-o",
                                 out_v, "--jobs", str(a.jobs)] + pipeline,
                                may_fail=True)[0]
                            for _ in range(a.reps))
                except Failed as e:
                    # The edit did not go through: nothing to measure (and
                    # the output of the CREATE RELATION run is not it).
                    shutil.rmtree(out_v, ignore_errors=True)
                    entry["runs"].append({"style": style, "facts": n,
                                          "script": paths["edit"],
                                          "error": str(e)})
                    continue
                # The last run left the edited V-index at out_v.
                _, out = run([tool("vindex-bench-edit-eval"), "--fixtures",
                              FIX, "--before", base, "--after", out_v,
                              "--facts", tsv, "--kl-sentences",
                              str(a.kl_sentences)])
                ev = json.loads(out)
                entry["runs"].append({
                    "style": style, "facts": n, "script": paths["edit"],
                    "larql_opt_seconds": best["edit"],
                    "load_seconds": best["head"],
                    "seconds_per_fact": max(0.0, best["edit"] - best["head"])
                    / n,
                    "eval": ev})
        result["models"].append(entry)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
