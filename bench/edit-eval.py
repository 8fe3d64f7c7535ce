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
Each run records its wall and CPU seconds, larql-opt's peak resident
memory (larql_opt_peak_rss_mib) and the machine's load average;
"one_fact" per model is the whole command for the first fact alone (the
issue's interactive figure: well under a second).
Prints one JSON object: the unedited model's measurements, then one entry
per (batch size, style) with the edit-eval JSON plus seconds per fact, or
the error larql-opt gave (a script that fails writes nothing). Then, per
model ("cases"; --no-delete-update skips them), with every relation of
templates.json created (canonical prompts): the DELETE of France's capital
and the UPDATE of the first 10 trained capitals, one statement each, each
to the next one's capital: per edited prompt what it answers before and
after, whether the new answer is generated whole and the old one is gone,
and the recall of every other trained canonical prompt before and after.
`bench/edit-eval.py --table RESULT.json` prints such a result as the
Markdown table of docs/benchmarks.md.

  bench/edit-eval.py [--model DIR|V.vindex]... [--bin build/bin]
                     [--facts test/fixtures/facts/fictional.tsv]
                     [--sizes 1,10,all] [--styles batch,sequential]
                     [--mode M] [--work DIR] [--reps N] [--jobs J]
                     [--corpus TEXT] [--paraphrases]
--corpus gives the planner's key statistics ordinary text as well
(larql-plan-edits{corpus=TEXT} in the default pipeline).
MODE memit: --plan-options 'memit-rounds=8 memit-alphaedit=true ...' adds
larql-plan-edits options (docs/lql.md, "MODE memit"); --styles
batches:K writes the batch as K statements of consecutive facts (AlphaEdit's
sequential batches); its run's `first_batch` is the first statement's facts
measured after the last statement.
--chain runs each statement of a style in a larql-opt run of its own, over
the last run's output (the make-pipeline form; MODE memit holds what the
input's patches record, so the chain computes what one run would), and
--resume keeps the links a killed benchmark finished (work/TAG.chain/).
With --chain and batches:K the run's `links` measures each link on the
facts so far and on the first statement's facts (efficacy, paraphrase,
the trained answers kept; kept as NNNN.eval.json beside the link), each
as soon as it is made, with a line on stderr.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "test", "fixtures")


class Failed(Exception):
    pass


def run(cmd, may_fail=False, cpu=None, rss=None):
    """Runs cmd; returns (wall seconds, stdout). With cpu (a list), appends
    the command's CPU seconds (user + system): on a loaded machine the wall
    time measures the other processes too. With rss (a list), appends its
    peak resident memory in MiB (the kernel's high-water mark for this one
    process, as wait4 reports it)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    # Both pipes drained at once (a full one would stall the child); the
    # child reaped here rather than by Popen, so its own usage is read.
    err = []
    drain = threading.Thread(target=lambda: err.append(p.stderr.read()))
    drain.start()
    out = p.stdout.read()
    drain.join()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if cpu is not None:
        cpu.append(usage.ru_utime + usage.ru_stime)
    if rss is not None:
        rss.append(usage.ru_maxrss / 1024.0)
    if p.returncode != 0:
        if may_fail:
            raise Failed(err[0].strip())
        sys.exit("edit-eval: failed (%d): %s\n%s" %
                 (p.returncode, " ".join(cmd), err[0]))
    return wall, out


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
    if style.startswith("batches:"):
        statements = memit_batches(rows, int(style.split(":")[1]), tail)
    elif style == "batch":
        statements = ["INSERT INTO edges VALUES\n  " + ",\n  ".join(rows) +
                      tail + ";"]
    else:
        statements = ["INSERT INTO edges VALUES %s%s;" % (r, tail)
                      for r in rows]
    lines += statements
    return "\n".join(head) + "\n", "\n".join(lines) + "\n", statements


def memit_batches(rows, k, tail):
    """The rows as k INSERT statements of consecutive rows (about equal)."""
    size = max(1, -(-len(rows) // k))
    return ["INSERT INTO edges VALUES\n  " + ",\n  ".join(rows[i:i + size]) +
            tail + ";" for i in range(0, len(rows), size)]


def write_facts(path, facts):
    with open(path, "w") as f:
        f.write("entity\trelation\ttarget\n")
        f.writelines("%s\t%s\t%s\n" % x for x in facts)


def inserted_after(tool, base, out_v, tsv):
    """vindex-bench-edit-eval on the facts of tsv (one KL sentence: the
    cheap form): its whole JSON."""
    _, out = run([tool("vindex-bench-edit-eval"), "--fixtures", FIX,
                  "--before", base, "--after", out_v, "--facts", tsv,
                  "--kl-sentences", "1"])
    return json.loads(out)


def batch_size(n, style):
    return max(1, -(-n // int(style.split(":")[1])))


def first_batch(tool, base, out_v, work, tag, batch, style):
    """For batches:K, the first statement's facts measured after the last
    statement (AlphaEdit's question: are the earlier edits kept?): their
    count and the efficacy and paraphrase of vindex-bench-edit-eval on them
    alone. None for the other styles."""
    if not style.startswith("batches:"):
        return None
    size = batch_size(len(batch), style)
    tsv = os.path.join(work, "%s-first.tsv" % tag)
    write_facts(tsv, batch[:size])
    ins = inserted_after(tool, base, out_v, tsv)["inserted"]["after"]
    return {"facts": size, "efficacy": ins["efficacy"],
            "paraphrase": ins["paraphrase"]}


def measure_links(tool, base, link_dir, batch, style):
    """--chain with batches:K: each link measured on the facts so far and on
    the first statement's facts (is the first batch kept link after link,
    and what do the trained answers do?). Each measure is kept beside its
    link as NNNN.eval.json, so --resume measures only the new links."""
    size = batch_size(len(batch), style)
    first_tsv = os.path.join(link_dir, "first.tsv")
    write_facts(first_tsv, batch[:size])
    links = []
    for i in range(-(-len(batch) // size)):
        stem = os.path.join(link_dir, "%04d" % (i + 1))
        if not os.path.isdir(stem + ".vindex"):
            break
        path = stem + ".eval.json"
        if not os.path.exists(path):
            so_far = stem + ".facts.tsv"
            write_facts(so_far, batch[:(i + 1) * size])
            ev = inserted_after(tool, base, stem + ".vindex", so_far)
            first = inserted_after(tool, base, stem + ".vindex", first_tsv)
            trained = ev["trained"]["after"]
            link = {"link": i + 1, "facts_so_far": min(len(batch),
                                                       (i + 1) * size),
                    "so_far": ev["inserted"]["after"],
                    "first_batch": first["inserted"]["after"],
                    "trained_canonical_hits": trained["canonical"]["hits"],
                    "trained_heldout_hits": trained["heldout"]["hits"]}
            with open(stem + ".json") as f:
                link["run"] = json.load(f)
            with open(path + ".tmp", "w") as f:
                json.dump(link, f, indent=1)
            os.replace(path + ".tmp", path)
        with open(path) as f:
            links.append(json.load(f))
    return links


def link_line(link):
    """One finished link's figures, for stderr."""
    so_far, first = link["so_far"]["efficacy"], link["first_batch"]["efficacy"]
    return ("edit-eval: link %d: %d/%d answered, first batch %d/%d, trained "
            "%d, held-out %d, %.0f CPU s" %
            (link["link"], so_far["hits"], so_far["total"], first["hits"],
             first["total"], link["trained_canonical_hits"],
             link["trained_heldout_hits"], link["run"]["cpu"]))


def run_chain(tool, base, head, statements, link_dir, jobs, pipeline,
              resume, after_link=None):
    """--chain: each statement in a larql-opt run of its own over the last
    run's output (CREATE RELATION of every relation in each), as a make
    pipeline would apply them. Link i writes link_dir/NNNN.vindex and
    NNNN.json (its wall and CPU seconds and peak memory); with resume, a
    link whose two files are there is not run again (larql-opt writes its
    output atomically, so one that is there is whole). Returns (the last
    output, wall seconds, CPU seconds, the largest peak in MiB (None when
    no link recorded one), links run now). after_link (when given) is
    called after each link run now, so that a chain stopped half-way
    leaves the links it finished measured."""
    os.makedirs(link_dir, exist_ok=True)
    cur, wall, cpu, peak, ran = base, 0.0, 0.0, None, 0
    for i, st in enumerate(statements):
        stem = os.path.join(link_dir, "%04d" % (i + 1))
        times = stem + ".json"
        out_v = stem + ".vindex"
        if not (resume and os.path.exists(times) and os.path.isdir(out_v)):
            lql = stem + ".lql"
            with open(lql, "w") as f:
                f.write(head + st + "\n")
            shutil.rmtree(out_v, ignore_errors=True)
            if os.path.exists(stem + ".eval.json"):  # an earlier link's
                os.remove(stem + ".eval.json")
            c, m = [], []
            w = run([tool("larql-opt"), cur, lql, "-o", out_v, "--jobs",
                     str(jobs)] + pipeline, may_fail=True, cpu=c, rss=m)[0]
            with open(times, "w") as f:
                json.dump({"wall": w, "cpu": c[0], "peak_rss_mib": m[0]}, f)
            ran += 1
            if after_link:
                after_link()
        with open(times) as f:
            t = json.load(f)
        wall += t["wall"]
        cpu += t["cpu"]
        if t.get("peak_rss_mib") is not None:
            peak = max(peak or 0.0, t["peak_rss_mib"])
        cur = out_v
    return cur, wall, cpu, peak, ran


def plan_pipeline(corpus, options, jobs):
    """larql-opt's --pass-pipeline for --corpus and --plan-options (none
    when neither is given: the default pipeline). A pipeline given replaces
    the default one that larql-opt's --jobs reaches, so the planner is given
    the jobs itself."""
    opts = []
    if corpus:
        opts.append("corpus=%s" % os.path.abspath(corpus))
    opts += options.split()
    if opts and not any(o.startswith("jobs=") for o in opts):
        opts.append("jobs=%d" % jobs)
    if not opts:
        return []
    return ["--pass-pipeline=builtin.module(larql-resolve-relations,"
            "larql-lower-to-vindex,larql-plan-edits{%s})" % " ".join(opts)]


def answers(tool, vindex, items, path):
    """vindex-bench-edit-eval --answers over (prompt, target) items."""
    with open(path, "w") as f:
        f.writelines("%s\t%s\n" % x for x in items)
    _, out = run([tool("vindex-bench-edit-eval"), "--before", vindex,
                  "--answers", path])
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def canonical_facts():
    """The trained facts' canonical prompts: (entity, relation, prompt,
    first target), in file order."""
    out = []
    with open(os.path.join(FIX, "corpus", "eval_canonical.jsonl")) as f:
        for l in f:
            d = json.loads(l)
            out.append((d["entity"], d["relation"], d["prompt"],
                        d["targets"][0]))
    return out


def fact_edit(tool, base, work, name, relations, statements, changed, pipe,
              jobs):
    """Runs CREATE RELATION (every relation, canonical prompt) + the
    statements with -o, then asks every trained canonical prompt before and
    after. changed: {prompt: (new target or None, old target)}. Returns the
    case's JSON: the changed prompts (new answer generated whole, old
    answer gone, what is answered), and the recall of the rest."""
    lql = os.path.join(work, name + ".lql")
    with open(lql, "w") as f:
        f.write("".join("CREATE RELATION %s AS %s;\n" % (r, lql_string(p))
                        for r, p in relations))
        f.write("".join(x + "\n" for x in statements))
    out_v = os.path.join(work, name + ".vindex")
    try:
        wall, _ = run([tool("larql-opt"), base, lql, "-o", out_v, "--jobs",
                       str(jobs)] + pipe, may_fail=True)
    except Failed as e:
        return {"case": name, "script": lql, "error": str(e)}
    facts = canonical_facts()
    items = [(p, changed[p][0] or t) if p in changed else (p, t)
             for _, _, p, t in facts]
    before = answers(tool, base, items, os.path.join(work, name + ".tsv"))
    after = answers(tool, out_v, items, os.path.join(work, name + ".tsv"))
    rest_b = rest_a = rest_n = 0
    edited = []
    for (e, r, p, t), b, a in zip(facts, before, after):
        if p in changed:
            new, old = changed[p]
            edited.append({"entity": e, "relation": r, "old": old,
                           "new": new, "before": b["generated"],
                           "after": a["generated"],
                           "new_answered": bool(new) and a["match"],
                           "old_gone": not a["generated"].strip()
                           .startswith(old)})
            continue
        rest_n += 1
        rest_b += b["match"]
        rest_a += a["match"]
    n = max(len(edited), 1)
    return {"case": name, "script": lql, "larql_opt_seconds": wall,
            "edited": edited,
            "new_answered": sum(x["new_answered"] for x in edited) / n,
            "old_gone": sum(x["old_gone"] for x in edited) / n,
            "rest": {"total": rest_n, "before": rest_b / max(rest_n, 1),
                     "after": rest_a / max(rest_n, 1)}}


def delete_update(tool, base, work, templates, pipe, jobs, updates=10):
    """The DELETE of France's capital and the UPDATE of the first `updates`
    trained capitals (one statement each) to the next one's capital."""
    relations = [(r, templates[r]["canonical"].replace("{e}", "{entity}"))
                 for r in sorted(templates)]
    facts = canonical_facts()
    cases = []
    france = [x for x in facts if x[0] == "France" and x[1] == "capital"]
    if france:
        e, r, p, t = france[0]
        cases.append(fact_edit(
            tool, base, work, "delete-france-capital", relations,
            ["DELETE FROM edges WHERE entity = 'France' AND relation = "
             "'capital';"], {p: (None, t)}, pipe, jobs))
    caps = [x for x in facts if x[1] == "capital"][:updates]
    changed, stmts = {}, []
    for i, (e, r, p, t) in enumerate(caps):
        new = caps[(i + 1) % len(caps)][3]
        changed[p] = (new, t)
        stmts.append("UPDATE edges SET target = %s WHERE entity = %s AND "
                     "relation = 'capital';" % (lql_string(new),
                                                lql_string(e)))
    cases.append(fact_edit(tool, base, work, "update-%d-capitals" % len(caps),
                           relations, stmts, changed, pipe, jobs))
    return cases


def pct(r):
    return "%.1f%%" % (100.0 * r["recall"])


def paraphrase_goal(m):
    """90% of what the unedited model's held-out prompts answer of the
    trained facts, relation by relation, applied to the inserted facts of
    the largest run: (goal, facts), or None without runs."""
    runs = [r for r in m["runs"] if "eval" in r]
    if not runs:
        return None
    held = m["unedited"]["trained"]["before"]["heldout"].get("by_relation")
    ins = max(runs, key=lambda r: r["facts"])["eval"]["inserted"]["after"]
    if held is None or "by_relation" not in ins["paraphrase"]:
        return None
    goal = 0.0
    for rel, c in ins["paraphrase"]["by_relation"].items():
        h = held.get(rel)
        if h and h["total"]:
            goal += 0.9 * h["hits"] / h["total"] * c["total"]
    return goal, ins["paraphrase"]["total"]


def table(result):
    cases = [(m["model"], c) for m in result["models"]
             for c in m.get("cases", [])]
    print("| model | style | facts | efficacy | paraphrase | trained canonical"
          " | trained held-out | mean KL | s/fact (CPU) | FFN width |")
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
            print("| %s | %s | %d | %s | %s | %s | %s | %.2e | %.3f (%s) |"
                  " %d -> %d |"
                  % (m["model"], r["style"], r["facts"], pct(ins["efficacy"]),
                     pct(ins["paraphrase"]), pct(tr["canonical"]),
                     pct(tr["heldout"]), e["kl"]["mean"],
                     r["seconds_per_fact"],
                     "%.3f" % r["cpu_seconds_per_fact"]
                     if "cpu_seconds_per_fact" in r else "",
                     max(e["ffn_width"]["before"]),
                     max(e["ffn_width"]["after"])))
    for m in result["models"]:
        for r in m["runs"]:
            if "first_batch" in r:
                fb = r["first_batch"]
                print("\n%s, %s of %d: the first statement's %d facts after "
                      "the last: efficacy %d/%d, paraphrase %d/%d" %
                      (m["model"], r["style"], r["facts"], fb["facts"],
                       fb["efficacy"]["hits"], fb["efficacy"]["total"],
                       fb["paraphrase"]["hits"], fb["paraphrase"]["total"]))
    for m in result["models"]:
        goal = paraphrase_goal(m)
        if goal is not None:
            print("\n%s: paraphrase goal %.1f of %d facts (90%% of the "
                  "model's own held-out recall of each relation's trained "
                  "facts, times the relation's facts)" % (m["model"], *goal))
    for m in result["models"]:
        if "one_fact" in m:
            o = m["one_fact"]
            print("\n%s, one fact, the whole larql-opt command: %.2f s wall, "
                  "%.2f s CPU (load average %.1f)" %
                  (m["model"], o["larql_opt_seconds"],
                   o["larql_opt_cpu_seconds"], o["load_average"]))
    if not cases:
        return
    print()
    print("| model | case | new answer | old answer gone | answers now |"
          " rest of the canonical prompts |")
    print("|---|---|---|---|---|---|")
    for name, c in cases:
        if "error" in c:
            print("| %s | %s | failed: %s | | | |" %
                  (name, c["case"], c["error"].splitlines()[0]
                   .replace("|", "/")))
            continue
        now = ", ".join("%s: %s -> %s" % (x["entity"], x["before"],
                                           x["after"])
                        for x in c["edited"][:3])
        if len(c["edited"]) > 3:
            now += ", ..."
        newa = ("%.0f%%" % (100 * c["new_answered"])
                if any(x["new"] for x in c["edited"]) else "")
        print("| %s | %s | %s | %.0f%% | %s | %.1f%% -> %.1f%% (%d) |" %
              (name, c["case"], newa, 100 * c["old_gone"],
               now.replace("|", "/"), 100 * c["rest"]["before"],
               100 * c["rest"]["after"], c["rest"]["total"]))


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
    ap.add_argument("--no-delete-update", action="store_true")
    ap.add_argument("--plan-options", default="")
    ap.add_argument("--chain", action="store_true")
    ap.add_argument("--resume", action="store_true")
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
              "plan_options": a.plan_options, "models": []}
    pipeline = plan_pipeline(a.corpus, a.plan_options, a.jobs)
    for model in models:
        name = os.path.basename(model.rstrip("/")).replace(".vindex", "")
        work = os.path.join(a.work, name)
        if not a.resume:
            shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work, exist_ok=True)
        base = model
        if not model.endswith(".vindex"):
            base = os.path.join(work, "base.vindex")
            if not (a.resume and os.path.isdir(base)):
                run([tool("vindex-decompose"), model, "-o", base])
        evalcmd = [tool("vindex-bench-edit-eval"), "--fixtures", FIX,
                   "--before", base, "--facts", a.facts,
                   "--kl-sentences", str(a.kl_sentences)]
        _, out = run(evalcmd)
        entry = {"model": name, "unedited": json.loads(out), "runs": []}
        for size in filter(None, a.sizes.split(",")):
            n = len(facts) if size == "all" else int(size)
            batch = facts[:n]
            tsv = os.path.join(work, "facts-%d.tsv" % n)
            write_facts(tsv, batch)
            for style in a.styles.split(","):
                tag = "%s-%d" % (style, n)
                head, full, statements = script(batch, templates, style,
                                                a.mode, a.paraphrases)
                paths = {}
                for kind, text in (("head", head), ("edit", full)):
                    paths[kind] = os.path.join(work, "%s-%s.lql" % (tag, kind))
                    with open(paths[kind], "w") as f:
                        f.write(text)
                out_v = os.path.join(work, tag + ".vindex")
                best, cpu, rss = {}, {}, {}
                try:
                    if a.chain:
                        # One run per statement; loading is counted once
                        # per link.
                        c = []
                        best["head"] = run([tool("larql-opt"), base,
                                            paths["head"], "-o", out_v,
                                            "--jobs", str(a.jobs)] +
                                           pipeline, may_fail=True, cpu=c)[0]
                        cpu["head"] = c[0]
                        shutil.rmtree(out_v, ignore_errors=True)
                        link_dir = os.path.join(work, tag + ".chain")

                        def measured():
                            # Each link measured as it is made (batches:K),
                            # a line on stderr: hours of links are not
                            # lost with the benchmark.
                            if style.startswith("batches:"):
                                done = measure_links(tool, base, link_dir,
                                                     batch, style)
                                print(link_line(done[-1]), file=sys.stderr,
                                      flush=True)
                        (last, best["edit"], cpu["edit"], rss["edit"],
                         ran) = run_chain(
                            tool, base, head, statements, link_dir, a.jobs,
                            pipeline, a.resume, measured)
                        best["head"] *= len(statements)
                        cpu["head"] *= len(statements)
                        out_v = last
                    for kind in ("head", "edit") if not a.chain else ():
                        cpu[kind], rss[kind] = [], []
                        best[kind] = min(
                            run([tool("larql-opt"), base, paths[kind], "-o",
                                 out_v, "--jobs", str(a.jobs)] + pipeline,
                                may_fail=True, cpu=cpu[kind],
                                rss=rss[kind])[0]
                            for _ in range(a.reps))
                        cpu[kind] = min(cpu[kind])
                        rss[kind] = max(rss[kind])
                except Failed as e:
                    # The edit did not go through: nothing to measure (and
                    # the output of the CREATE RELATION run is not it).
                    shutil.rmtree(out_v, ignore_errors=True)
                    entry["runs"].append({"style": style, "facts": n,
                                          "script": paths["edit"],
                                          "chain": a.chain,
                                          "error": str(e)})
                    continue
                # The last run left the edited V-index at out_v.
                _, out = run([tool("vindex-bench-edit-eval"), "--fixtures",
                              FIX, "--before", base, "--after", out_v,
                              "--facts", tsv, "--kl-sentences",
                              str(a.kl_sentences)])
                ev = json.loads(out)
                first = first_batch(tool, base, out_v, work, tag, batch,
                                    style)
                links = None
                if a.chain and style.startswith("batches:"):
                    links = measure_links(tool, base,
                                          os.path.join(work, tag + ".chain"),
                                          batch, style)
                entry["runs"].append({
                    "style": style, "facts": n, "script": paths["edit"],
                    "chain": a.chain,
                    "larql_opt_seconds": best["edit"],
                    "load_seconds": best["head"],
                    "seconds_per_fact": max(0.0, best["edit"] - best["head"])
                    / n,
                    "larql_opt_cpu_seconds": cpu["edit"],
                    "larql_opt_peak_rss_mib": rss["edit"],
                    "cpu_seconds_per_fact": max(0.0, cpu["edit"] -
                                                cpu["head"]) / n,
                    "load_average": os.getloadavg()[0],
                    "eval": ev})
                if first is not None:
                    entry["runs"][-1]["first_batch"] = first
                if links is not None:
                    entry["runs"][-1]["links"] = links
                if n == 1 and style == "batch":
                    # The interactive figure: one fact's INSERT, the whole
                    # larql-opt command (loading the V-index included).
                    entry["one_fact"] = {
                        "larql_opt_seconds": best["edit"],
                        "larql_opt_cpu_seconds": cpu["edit"],
                        "larql_opt_peak_rss_mib": rss["edit"],
                        "load_average": os.getloadavg()[0]}
        if not a.no_delete_update:
            entry["cases"] = delete_update(tool, base, work, templates,
                                           pipeline, a.jobs)
        result["models"].append(entry)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
