#!/usr/bin/env python3
"""The key statistics pass (`larql-probe --key-stats`), timed, as JSON.

  bench/key-stats.py BUILD_BIN V.vindex CORPUS.txt [--before BIN]
                     [--layers 0,1,2,3] [--jobs J] [--runs N]

Runs BUILD_BIN/larql-probe V.vindex --key-stats CORPUS.txt on the layers
given, N times (default 3), and with --before a second build's larql-probe
(e.g. an older checkout's bin directory) in turn, A B A B, on the same
input: wall and CPU seconds (minimum and median), and whether both builds
wrote the same stats/ bytes (they must: the sums are made in a fixed
order).
"""
import argparse
import filecmp
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time


def run_once(probe, vindex, corpus, layers, jobs, out):
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([probe, vindex, "-o", out, "--key-stats", corpus,
                    "--key-stats-layers", layers, "--jobs", str(jobs)],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime -
                                                       before.ru_stime)


def summary(walls, cpus):
    return {"wall_s_min": min(walls), "wall_s_median": statistics.median(walls),
            "cpu_s_median": statistics.median(cpus)}


def same_stats(a, b):
    da, db = os.path.join(a, "stats"), os.path.join(b, "stats")
    names = sorted(os.listdir(da))
    if names != sorted(os.listdir(db)):
        return False
    return all(filecmp.cmp(os.path.join(da, n), os.path.join(db, n),
                           shallow=False) for n in names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bin")
    ap.add_argument("vindex")
    ap.add_argument("corpus")
    ap.add_argument("--before")
    ap.add_argument("--layers", default="0,1,2,3")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    builds = [("after", a.bin)] + ([("before", a.before)] if a.before else [])
    work = tempfile.mkdtemp(prefix="key-stats-")
    times = {name: ([], []) for name, _ in builds}
    try:
        for _ in range(a.runs):
            for name, bindir in builds:
                walls, cpus = times[name]
                w, c = run_once(os.path.join(bindir, "larql-probe"),
                                   a.vindex, a.corpus, a.layers, a.jobs,
                                   os.path.join(work, name + ".vindex"))
                walls.append(w)
                cpus.append(c)
        result = {"benchmark": "key-stats", "vindex": a.vindex,
                  "corpus": a.corpus, "layers": a.layers, "jobs": a.jobs,
                  "runs": a.runs,
                  "load_average": os.getloadavg()[0]}
        for name, _ in builds:
            result[name] = summary(*times[name])
        if a.before:
            result["wall_ratio_before_over_after"] = (
                result["before"]["wall_s_median"] /
                result["after"]["wall_s_median"])
            result["same_bytes"] = same_stats(
                os.path.join(work, "after.vindex"),
                os.path.join(work, "before.vindex"))
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
