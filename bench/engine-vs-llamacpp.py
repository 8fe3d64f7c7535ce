#!/usr/bin/env python3
"""Our engine against llama.cpp's llama-bench on the same weights, one run.

For each model (the two fixtures, and the Gemma-3-4B-shaped synthetic
checkpoints given with --synthetic), the script builds a V-index
(vindex-decompose) and our GGUF of that V-index (vindex-compile
--format=gguf, --type auto: f32 for the fixtures, bf16 for the synthetic),
then, for each thread count and repetition, runs alternately

  vindex-bench-forward V --jobs T --prompt 64,512 --gen 128 --reps 1
  llama-bench -m G.gguf -t T -p 64,512 -n 128 -r 1 -o json

(pp64, pp512: prompt tokens/s; tg128: generated tokens/s), and keeps the
best of --reps repetitions of each. Beside them: the memory-bandwidth bound
of decoding (bytes of weights read per generated token, from the GGUF's
tensor table: every matrix but the embedding, plus the LM head, which is
the embedding when tied; against the read bandwidth vindex-bench-bandwidth
measures with the same thread count), and each tg figure as a fraction of
it. Prints one JSON object.

  bench/engine-vs-llamacpp.py [--llama-bench PATH] [--synthetic CKPT]...
                              [--threads 1,2] [--reps N] [--work DIR]
                              [--load map|memory]

--load memory reads the weights into memory on both sides (our
VINDEX_LOAD=memory, llama-bench --mmap 0) instead of mapping them.

llama-bench comes from --llama-bench or the LLAMA_BENCH environment
variable (llama.cpp is built outside the repository). Without it, or
without a --synthetic checkpoint, the script says what it skipped and
measures what it can: it never fails for a missing peer.
"""
import argparse
import json
import mmap
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "lit", "Inputs"))
import gguf  # noqa: E402  (the tests' independent GGUF reader)

# Bytes of one element (per block for Q8_0: 34 bytes per 32 values).
GGML_BYTES = {0: (4, 1), 1: (2, 1), 8: (34, 32), 30: (2, 1)}
TESTS = [("pp64", 64, 0), ("pp512", 512, 0), ("tg128", 0, 128)]


def log(msg):
    print("engine-vs-llamacpp: " + msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, **kw)
    if r.returncode != 0:
        sys.exit("engine-vs-llamacpp: failed (%d): %s\n%s" %
                 (r.returncode, " ".join(cmd), r.stderr[-2000:]))
    return r.stdout


def newer(out, *inputs):
    """True if out exists and is newer than every input (files or dirs)."""
    if not os.path.exists(out):
        return False
    t = os.path.getmtime(out)
    return all(os.path.getmtime(i) <= t for i in inputs)


def tensor_table(path):
    """(name, element count, ggml type) of every tensor in a GGUF file."""
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            r = gguf.Reader(m)
            r.p = 4
            _, nt, nkv = r.take("<I"), r.take("<Q"), r.take("<Q")
            for _ in range(nkv):
                r.string()
                r.value(r.take("<I"))
            out = []
            for _ in range(nt):
                name = r.string().decode()
                dims = [r.take("<Q") for _ in range(r.take("<I"))]
                typ = r.take("<I")
                r.take("<Q")
                n = 1
                for d in dims:
                    n *= d
                out.append((name, n, typ))
            return out
        finally:
            m.close()


def decode_bytes(path):
    """Weight bytes a decoder reads per generated token: every tensor once,
    except that only one row of the token embedding is read, and the LM
    head (output.weight, or the embedding when tied) is read whole."""
    total, embd, has_output = 0, 0, False
    for name, n, typ in tensor_table(path):
        num, den = GGML_BYTES[typ]
        nbytes = n * num // den
        if name == "token_embd.weight":
            embd = nbytes
            continue
        has_output |= name == "output.weight"
        total += nbytes
    return total if has_output else total + embd


def prepare(name, ckpt, work, bins, gguf_type):
    """A V-index and our GGUF of it for checkpoint ckpt (cached in work)."""
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    src = ckpt
    if not os.path.exists(os.path.join(ckpt, "tokenizer.json")):
        # The synthetic checkpoint has no tokenizer and a GGUF needs one: a
        # directory of links to its files plus the fixture's tokenizer
        # (vindex-compile pads it to the vocabulary with [PADn] pieces).
        src = os.path.join(d, "checkpoint")
        os.makedirs(src, exist_ok=True)
        for f in os.listdir(ckpt):
            link = os.path.join(src, f)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(ckpt, f)), link)
        tok = os.path.join(src, "tokenizer.json")
        if not os.path.exists(tok):
            shutil.copy(os.path.join(ROOT, "test", "fixtures", "models",
                                     "tiny-gemma3", "tokenizer.json"), tok)
    vdx = os.path.join(d, "model.vindex")
    gg = os.path.join(d, "model-%s.gguf" % gguf_type)
    if not newer(vdx, os.path.join(src, "config.json"), bins["decompose"]):
        log("decompose %s" % ckpt)
        shutil.rmtree(vdx, ignore_errors=True)
        run([bins["decompose"], src, "-o", vdx])
    if not newer(gg, vdx, bins["compile"]):
        log("compile %s to GGUF (%s)" % (name, gguf_type))
        run([bins["compile"], vdx, "--format=gguf", "--type=" + gguf_type,
             "-o", gg])
    return vdx, gg


def ours(bins, vdx, threads, load):
    env = dict(os.environ, VINDEX_LOAD=load)
    out = json.loads(run([bins["forward"], vdx, "--jobs", str(threads),
                          "--prompt", "64,512", "--gen", "128", "--reps",
                          "1"], env=env))
    return {r["test"]: r["tokens_per_s"] for r in out["results"]}


def llama(bench, gg, threads, load):
    cmd = [bench, "-m", gg, "-t", str(threads), "-p", "64,512", "-n", "128",
           "-r", "1", "-o", "json",
           "--mmap", "0" if load == "memory" else "1"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        # e.g. the 4-layer slice: every layer is sliding-window, and this
        # llama.cpp aborts with an empty global KV cache (GGML_ASSERT).
        log("llama-bench failed (%d) on %s: %s" %
            (r.returncode, gg, r.stderr.strip().splitlines()[-1:]))
        return {}
    out = json.loads(r.stdout)
    res = {}
    for r in out:
        test = ("pp%d" % r["n_prompt"]) if r["n_prompt"] else \
            ("tg%d" % r["n_gen"])
        res[test] = r["avg_ts"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bench", default=os.environ.get("LLAMA_BENCH"),
                    help="llama.cpp's llama-bench (default: $LLAMA_BENCH)")
    ap.add_argument("--synthetic", action="append", default=[],
                    help="a checkpoint written by vindex-make-synthetic "
                         "(repeatable; e.g. 34 layers and a 4-layer slice)")
    ap.add_argument("--models", default="tiny-gemma3,tiny-llama",
                    help="fixtures under test/fixtures/models")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=2,
                    help="alternating repetitions; the best is kept")
    ap.add_argument("--type", default="auto",
                    help="vindex-compile --type for our GGUF")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "bench",
                                                    "engine-vs-llamacpp"))
    ap.add_argument("--load", default="map", choices=("map", "memory"),
                    help="where both read the weights from: mapped files "
                         "(ours VINDEX_LOAD=map, llama-bench --mmap 1) or "
                         "a copy in memory (VINDEX_LOAD=memory, --mmap 0)")
    a = ap.parse_args()

    bins = {k: os.path.join(a.bin, v) for k, v in
            (("decompose", "vindex-decompose"), ("compile", "vindex-compile"),
             ("forward", "vindex-bench-forward"),
             ("bandwidth", "vindex-bench-bandwidth"))}
    for k, b in bins.items():
        if not os.access(b, os.X_OK):
            sys.exit("engine-vs-llamacpp: %s not built (%s)" % (k, b))
    skipped = []
    bench = a.llama_bench
    if not bench or not os.access(bench, os.X_OK):
        skipped.append("llama.cpp: no llama-bench (give --llama-bench or "
                       "set LLAMA_BENCH); only our engine is measured")
        bench = None
    models = [(m, os.path.join(ROOT, "test", "fixtures", "models", m))
              for m in a.models.split(",") if m]
    if not a.synthetic:
        skipped.append("synthetic: no --synthetic checkpoint (make one with "
                       "vindex-make-synthetic); fixtures only")
    for s in a.synthetic:
        if os.path.exists(os.path.join(s, "config.json")):
            models.append((os.path.basename(os.path.normpath(s)), s))
        else:
            skipped.append("synthetic: %s is not a checkpoint" % s)
    for s in skipped:
        log("skipping " + s)
    threads = [int(t) for t in a.threads.split(",")]

    bw = json.loads(run([bins["bandwidth"], "--jobs", a.threads]))
    bandwidth = {int(t): v for t, v in bw["read_gb_per_s"].items()}
    log("read bandwidth GB/s: %s" % bandwidth)

    out = {"benchmark": "engine-vs-llamacpp", "llama_bench": bench,
           "skipped": skipped, "read_gb_per_s": bandwidth, "load": a.load,
           "loadavg_start": os.getloadavg(), "models": []}
    for name, ckpt in models:
        vdx, gg = prepare(name, ckpt, a.work, bins, a.type)
        per_token = decode_bytes(gg)
        entry = {"model": name, "gguf_type": a.type,
                 "decode_bytes_per_token": per_token, "results": []}
        if per_token < 32 << 20:
            entry["note"] = ("the weights fit in the last-level cache: the "
                             "DRAM bound does not bind")
        for t in threads:
            best = {"ours": {}, "llama.cpp": {}}
            for rep in range(a.reps):
                log("%s, %d thread(s), repetition %d" % (name, t, rep + 1))
                runs = [("ours", lambda: ours(bins, vdx, t, a.load))]
                if bench:
                    runs.append(("llama.cpp",
                                 lambda: llama(bench, gg, t, a.load)))
                if rep % 2:  # alternate who goes first
                    runs.reverse()
                for who, fn in runs:
                    for test, v in fn().items():
                        best[who][test] = max(best[who].get(test, 0), v)
            bound = bandwidth[t] * 1e9 / per_token
            for test, _, _ in TESTS:
                r = {"test": test, "threads": t,
                     "ours": round(best["ours"].get(test, 0), 2)}
                if bench:
                    r["llama.cpp"] = round(best["llama.cpp"].get(test, 0), 2)
                    r["ratio"] = (round(r["ours"] / r["llama.cpp"], 3)
                                  if r["llama.cpp"] else None)
                if test.startswith("tg"):
                    r["bound"] = round(bound, 3)
                    r["ours_of_bound"] = round(r["ours"] / bound, 3)
                    if bench:
                        r["llama.cpp_of_bound"] = round(
                            r["llama.cpp"] / bound, 3)
                entry["results"].append(r)
        out["models"].append(entry)
    out["loadavg_end"] = os.getloadavg()
    out["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
