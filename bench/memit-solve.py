#!/usr/bin/env python3
"""MODE memit's closed-form solve (`vindex-bench-memit-solve`), timed, as JSON.

  bench/memit-solve.py BUILD_BIN [--before BIN] [--shapes F:N,...] [--dim D]
                       [--jobs J] [--reps N] [--runs N]

Runs BUILD_BIN/vindex-bench-memit-solve on each shape (F features, N keys;
default: tiny-llama's chain links 2 and 7, 1584:3000 and 2800:8000), N
times (--runs, default 3), and with --before a second build's (e.g. an
older checkout's bin directory) in turn, A B A B, on the same pseudo-random
problem: CPU and wall seconds of the best call of each run (minimum and
median over the runs), and whether both builds gave the same Δ, in double
and rounded to f32. The largest relative difference of Δ between the two
builds is given where they differ.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
from array import array


def run_once(tool, features, keys, dim, jobs, reps, dump):
    out = subprocess.run([tool, "--features", str(features), "--keys",
                          str(keys), "--dim", str(dim), "--jobs", str(jobs),
                          "--reps", str(reps), "--dump", dump],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def largest_relative_difference(a, b):
    x, y = array("d"), array("d")
    with open(a, "rb") as f:
        x.frombytes(f.read())
    with open(b, "rb") as f:
        y.frombytes(f.read())
    return max((abs(p - q) / abs(p) for p, q in zip(x, y) if p != q),
               default=0.0)


def summary(runs):
    cpus = [r["solve_cpu_s"] for r in runs]
    walls = [r["solve_wall_s"] for r in runs]
    return {"cpu_s_min": min(cpus), "cpu_s_median": statistics.median(cpus),
            "wall_s_min": min(walls),
            "wall_s_median": statistics.median(walls),
            "delta_xxh3": runs[-1]["delta_xxh3"],
            "delta_f32_xxh3": runs[-1]["delta_f32_xxh3"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bin")
    ap.add_argument("--before")
    ap.add_argument("--shapes", default="1584:3000,2800:8000")
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    builds = [("after", a.bin)] + ([("before", a.before)] if a.before else [])
    work = tempfile.mkdtemp(prefix="memit-solve-")
    result = {"benchmark": "memit-solve", "dim": a.dim, "jobs": a.jobs,
              "reps": a.reps, "runs": a.runs, "shapes": []}
    try:
        for shape in a.shapes.split(","):
            features, keys = (int(x) for x in shape.split(":"))
            runs = {name: [] for name, _ in builds}
            for _ in range(a.runs):
                for name, bindir in builds:
                    runs[name].append(run_once(
                        os.path.join(bindir, "vindex-bench-memit-solve"),
                        features, keys, a.dim, a.jobs, a.reps,
                        os.path.join(work, name + ".bin")))
            entry = {"features": features, "keys": keys}
            for name, _ in builds:
                entry[name] = summary(runs[name])
            if a.before:
                after, before = entry["after"], entry["before"]
                entry["cpu_ratio_before_over_after"] = (
                    before["cpu_s_median"] / after["cpu_s_median"])
                entry["same_delta"] = (after["delta_xxh3"] ==
                                       before["delta_xxh3"])
                entry["same_delta_f32"] = (after["delta_f32_xxh3"] ==
                                           before["delta_f32_xxh3"])
                entry["largest_relative_difference"] = (
                    largest_relative_difference(
                        os.path.join(work, "before.bin"),
                        os.path.join(work, "after.bin")))
            result["shapes"].append(entry)
        result["load_average"] = os.getloadavg()[0]
        print(json.dumps(result, indent=1))
    finally:
        for name, _ in builds:
            path = os.path.join(work, name + ".bin")
            if os.path.exists(path):
                os.remove(path)
        os.rmdir(work)


if __name__ == "__main__":
    main()
