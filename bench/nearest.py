#!/usr/bin/env python3
"""Latency of `SELECT ... FROM features NEAREST TO 'x' AT LAYER n` through
larql-opt, as JSON: the time of one process running the statement once and
R+1 times, the difference divided by R being the statement's own latency
(model loading excluded).

  bench/nearest.py V.vindex [--layer N] [--reps R] [--entity X]
"""
import argparse, json, os, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ap = argparse.ArgumentParser()
ap.add_argument("vindex")
ap.add_argument("--layer", type=int, default=2)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--entity", default="France")
ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
a = ap.parse_args()
q = "SELECT feature, score FROM features NEAREST TO '%s' AT LAYER %d LIMIT 5" % (
    a.entity, a.layer)


def run(n):
    cmd = [os.path.join(a.bin, "larql-opt"), a.vindex]
    for _ in range(n):
        cmd += ["-e", q]
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


run(1)  # fault the mapped weights in
one, many = run(1), run(a.reps + 1)
print(json.dumps({"benchmark": "nearest", "vindex": a.vindex, "layer": a.layer,
                  "process_with_one_statement_s": round(one, 3),
                  "statement_latency_s": round((many - one) / a.reps, 3)}))
