#!/usr/bin/env python3
"""Throughput and memory of vindex-decompose and vindex-compile against cp.

Generates (once) a synthetic checkpoint with Gemma 3 4B's text shapes, then,
in one run and alternating so that the page cache treats them alike:
  cp -rL CKPT COPY && sync           (the peer: the same bytes copied)
  vindex-decompose CKPT -o V && sync
  vindex-compile V --format=safetensors -o HF && sync
  vindex-compile V --format=gguf --type=T -o G.gguf && sync   (with --gguf T)
Prints one JSON object: per job the median wall time, GB/s of checkpoint
bytes, the ratio to cp, and peak RSS (from wait4). Usage:

  bench/decompose-compile.py [--layers N] [--reps R] [--work DIR] [--jobs J]
                             [--compress none|zstd] [--cold]
                             [--gguf auto|f32|f16|bf16|q8_0]
                             [--checkpoint DIR] [--baseline-bin DIR]

--cold drops the page cache (as root) before every job, so each one reads
its input from disk and writes into fresh memory; without it the job's
input is read into the page cache just before the job (untimed), and each
job recycles the pages its previous output held.
--checkpoint measures an existing checkpoint instead of generating one (a
tokenizer.json is needed for --gguf). --baseline-bin DIR also runs the
tools of another build (say, before a change) in the same loop, each right
after this build's run of the same job, as "decompose@baseline" and so on.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    """Runs cmd then sync; returns (wall seconds, peak RSS bytes)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    subprocess.run(["sync"], check=True)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("bench: failed: %s" % " ".join(cmd))
    return wall, ru.ru_maxrss * 1024


def warm(path):
    """Reads every file under path once, so that it is in the page cache."""
    buf = bytearray(8 << 20)
    for r, _, fs in os.walk(path, followlinks=True):
        for f in fs:
            with open(os.path.join(r, f), "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f))
               for r, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=34)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "bench"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--compress", default="none")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--gguf", default="",
                    help="also time vindex-compile --format=gguf --type=T")
    ap.add_argument("--checkpoint", default="",
                    help="an existing checkpoint to measure")
    ap.add_argument("--baseline-bin", default="",
                    help="also time the tools of this build directory")
    a = ap.parse_args()

    ckpt = a.checkpoint or os.path.join(a.work,
                                        "gemma3-4b-synthetic-%dl" % a.layers)
    os.makedirs(a.work, exist_ok=True)
    if not os.path.exists(os.path.join(ckpt, "config.json")):
        subprocess.run([os.path.join(a.bin, "vindex-make-synthetic"), "-o",
                        ckpt, "--layers", str(a.layers)], check=True,
                       stdout=subprocess.DEVNULL)
    tok = os.path.join(ckpt, "tokenizer.json")
    if a.gguf and not os.path.exists(tok) and not a.checkpoint:
        # GGUF needs a tokenizer; the synthetic checkpoint has none. The
        # fixture's (2048 pieces) is padded to the 262k rows with [PADn].
        shutil.copy(os.path.join(ROOT, "test", "fixtures", "models",
                                 "tiny-gemma3", "tokenizer.json"), tok)
    size = tree_bytes(ckpt)
    copy, vdx, hf, gguf = (os.path.join(a.work, n)
                           for n in ("copy", "v.vindex", "hf", "m.gguf"))
    jobs = ["--jobs", str(a.jobs)] if a.jobs else []
    res = {"cp": [], "decompose": [], "compile": []}
    if a.gguf:
        res["compile-gguf"] = []
    # Fresh memory costs ~2 s/GiB on first touch here while memory freed a
    # moment ago is cheap, so each job deletes its own previous output just
    # before it runs: every job then writes into equally recycled pages.
    # The first round only warms up and is not counted.
    bins = {"decompose": [os.path.join(a.bin, "vindex-decompose"), ckpt,
                          "-o", vdx, "--compress=" + a.compress] + jobs,
            "compile": [os.path.join(a.bin, "vindex-compile"), vdx,
                        "--format=safetensors", "-o", hf] + jobs,
            "compile-gguf": [os.path.join(a.bin, "vindex-compile"), vdx,
                             "--format=gguf", "--type=" + (a.gguf or "auto"),
                             "-o", gguf] + jobs,
            # -L: a checkpoint of links (--checkpoint) is copied whole.
            "cp": ["cp", "-rL", ckpt, copy]}
    outs = {"cp": copy, "decompose": vdx, "compile": hf,
            "compile-gguf": gguf}
    inputs = {"cp": ckpt, "decompose": ckpt, "compile": vdx,
              "compile-gguf": vdx}
    if a.baseline_bin:
        # The baseline decomposes into its own directory and compiles this
        # build's V-index (the same bytes: outputs must not change).
        base = os.path.join(a.baseline_bin, "")
        for job in [j for j in res if j != "cp"]:
            b = job + "@baseline"
            res[b] = []
            bins[b] = [base + os.path.basename(bins[job][0])] + bins[job][1:]
            outs[b] = outs[job] + ".baseline"
            inputs[b] = inputs[job]
            o = bins[b].index("-o")
            bins[b][o + 1] = outs[b]
        # Run each baseline job right after the same job of this build.
        res = {j: res[j] for j in sum(([j, j + "@baseline"] if
                                       j + "@baseline" in res else [j]
                                       for j in res if "@" not in j), [])}
    def remove(path):
        shutil.rmtree(path, ignore_errors=True)
        if os.path.isfile(path):
            os.remove(path)

    gguf_bytes = 0
    for rep in range(a.reps + 1):
        for job in res:
            remove(outs[job])
            subprocess.run(["sync"])
            if a.cold:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
            else:
                # The outputs of the other jobs (four copies of the model
                # in all) outgrow the page cache of a 24 GiB machine, so
                # "warm" is made true: the job's input is read just before.
                warm(inputs[job])
            r = run(bins[job])
            if rep:
                res[job].append(r)
            if job == "compile-gguf":
                gguf_bytes = os.path.getsize(gguf)
            if a.baseline_bin and job != "decompose":
                # Keep the disk use at two outputs: only this build's
                # V-index is read again (by the compiles).
                remove(outs[job])
    vindex_bytes = tree_bytes(vdx)
    for job, p in outs.items():
        if job in res:
            remove(p)

    out = {"benchmark": "decompose-compile", "layers": a.layers,
           "checkpoint_bytes": size, "vindex_bytes": vindex_bytes,
           "compress": a.compress, "cache": "cold" if a.cold else "warm",
           "reps": a.reps, "jobs": a.jobs or os.cpu_count(),
           "loadavg": os.getloadavg()}
    if a.gguf:
        out["gguf_type"] = a.gguf
        out["gguf_bytes"] = gguf_bytes
    cp_wall = statistics.median(w for w, _ in res["cp"])
    for job, runs in res.items():
        wall = statistics.median(w for w, _ in runs)
        out[job] = {"wall_s": round(wall, 3),
                    "walls_s": [round(w, 3) for w, _ in runs],
                    "gb_per_s": round(size / wall / 1e9, 3),
                    "vs_cp": round(cp_wall / wall, 3),
                    "peak_rss_mib": round(max(r for _, r in runs) / 2**20, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
