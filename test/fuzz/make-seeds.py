#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target from the suite's inputs.

  make-seeds.py ROOT TOOLS OUT

ROOT is the source tree, TOOLS the bin/ folder of a normal build (for a
V-index and a GGUF made from the fixtures), OUT the folder to fill:
OUT/<target>/ for each target of test/fuzz/CMakeLists.txt, and
OUT/seed.vindex (the V-index vindex-fuzzer opens its manifests against).
Targets that fuzz several readers take the first byte as the reader
(see each target's source); their seeds carry that byte.
"""
import glob
import json
import os
import shutil
import struct
import subprocess
import sys

root, tools, out = sys.argv[1:4]
fixtures = os.path.join(root, "test", "fixtures")
sys.path.insert(0, os.path.join(root, "test", "lit", "Inputs"))
import gguf  # noqa: E402  (the suite's independent GGUF writer)


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(path):
    with open(path, "rb") as f:
        return f.read()


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


models = sorted(glob.glob(os.path.join(fixtures, "models", "*")))

# lql: every LQL script of the lit suite.
for p in glob.glob(os.path.join(root, "test", "lit", "**", "*.lql"),
                   recursive=True):
    put("lql", os.path.relpath(p, root).replace(os.sep, "_"), read(p))

# config: the fixtures' config.json, and each with another architecture and
# the RoPE scalings the engine reads.
for m in models:
    text = read(os.path.join(m, "config.json"))
    put("config", os.path.basename(m) + ".json", text)
    cfg = json.loads(text)
    for arch, mt in [("Qwen2ForCausalLM", "qwen2"),
                     ("Qwen3ForCausalLM", "qwen3"),
                     ("MistralForCausalLM", "mistral")]:
        c = dict(cfg, architectures=[arch], model_type=mt)
        put("config", "%s-%s.json" % (os.path.basename(m), mt), json.dumps(c))
    c = dict(cfg, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192})
    put("config", os.path.basename(m) + "-llama3-rope.json", json.dumps(c))

# tokenizer: the fixtures' tokenizer.json (SentencePiece-style BPE) and a
# byte-level BPE trained by the suite's own trainer.
for m in models:
    put("tokenizer", os.path.basename(m) + ".json",
        read(os.path.join(m, "tokenizer.json")))
bpe = os.path.join(out, "bytebpe.json")
run(sys.executable, os.path.join(root, "test", "lit", "Inputs", "bytebpe.py"),
    "train", os.path.join(fixtures, "corpus", "train.txt"), "--merges", "50",
    "--split", "llama3", "-o", bpe)
put("tokenizer", "bytebpe.json", read(bpe))
os.remove(bpe)

# safetensors (first byte 0): small whole files, and the fixtures' headers
# (their data cut off); (first byte 1) an index.json over the fixture shard.
def safetensors(tensors, meta=None):
    header, data = {}, b""
    for name, dtype, shape, size in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + size]}
        data += bytes(range(size % 256)) * (size // 256) + bytes(size % 256)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "small", b"\0" + safetensors(
    [("a", "F32", [2, 2], 16), ("b", "BF16", [3], 6), ("c", "F16", [0], 0)],
    {"format": "pt"}))
put("safetensors", "empty", b"\0" + safetensors([]))
for m in models:
    st = read(os.path.join(m, "model.safetensors"))
    n = struct.unpack_from("<Q", st)[0]
    put("safetensors", os.path.basename(m) + "-header", b"\0" + st[:8 + n])
    names = json.loads(st[8:8 + n])
    names.pop("__metadata__", None)
    index = {"metadata": {"total_size": len(st) - 8 - n},
             "weight_map": {k: "model.safetensors" for k in names}}
    if os.path.basename(m) == "tiny-llama":
        put("safetensors", "index", b"\1" + json.dumps(index).encode())

# gguf: a small file of every KV type, and the header of the fixture compiled
# to GGUF (the data cut off past the first tensor).
kvs = [[b"general.architecture", 8, b"llama"], [b"general.alignment", 4, 32],
       [b"a.u8", 0, 1], [b"a.i8", 1, 2], [b"a.u16", 2, 3], [b"a.i16", 3, 4],
       [b"a.i32", 5, 5], [b"a.f32", 6, 1.5], [b"a.bool", 7, 1],
       [b"a.u64", 10, 6], [b"a.i64", 11, 7], [b"a.f64", 12, 2.5],
       [b"tokenizer.ggml.tokens", 9, (8, [b"a", b"b", b"<s>"])],
       [b"tokenizer.ggml.scores", 9, (6, [0.0, -1.0, -2.0])]]
tensors = [[b"t.f32", [4, 2], 0, 0], [b"t.f16", [4], 1, 32],
           [b"t.q8", [32], 8, 64], [b"t.bf16", [2], 30, 128]]
put("gguf", "small.gguf", gguf.serialize(3, kvs, tensors, bytes(160)))
work = os.path.join(out, "work")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
llama = os.path.join(fixtures, "models", "tiny-llama")
plain = os.path.join(work, "l.vindex")
run(os.path.join(tools, "vindex-decompose"), llama, "-o", plain)
g = os.path.join(work, "m.gguf")
run(os.path.join(tools, "vindex-compile"), plain, "--format=gguf",
    "-o", g)
version, kv, ts, body, align = gguf.parse(read(g))
put("gguf", "tiny-llama-header.gguf",
    gguf.serialize(version, kv, ts[:1], body[:ts[1][3]] if len(ts) > 1 else body))

# vindex: the target opens its manifests against seed.vindex, a probed
# V-index (labels) with a patch overlay (patches/: features appended to two
# layers, one installed over a stored feature, one deleted), so that the
# manifests that list labels and patches open in full. Seeds: (first byte 0)
# the plain, probed and patched manifests; (1) the labels; (2) every patch
# file, and an empty one.
put("vindex", "manifest", b"\0" + read(os.path.join(plain, "manifest.vfb")))
probed = os.path.join(work, "p.vindex")
run(os.path.join(tools, "larql-probe"), plain, "-o", probed, "--facts",
    os.path.join(fixtures, "facts", "facts.tsv"), "--templates",
    os.path.join(fixtures, "facts", "templates.json"), "--jobs", "1")
put("vindex", "labels", b"\1" + read(os.path.join(probed, "labels.vfb")))
put("vindex", "probed-manifest", b"\0" + read(os.path.join(probed,
                                                          "manifest.vfb")))
hidden = json.loads(read(os.path.join(llama, "config.json")))["hidden_size"]
width = json.loads(read(os.path.join(llama, "config.json")))["intermediate_size"]


def vector(seed, scale):
    values = [scale * (((seed * 7919 + i * 104729) % 2001) / 1000.0 - 1.0)
              for i in range(hidden)]
    return "dense<[%s]> : tensor<%dxf32>" % (
        ", ".join("%.4f" % v for v in values), hidden)


installs = os.path.join(work, "install.mlir")
with open(installs, "w") as f:
    for n, (layer, slot) in enumerate([(1, width), (1, width + 1),
                                       (2, width), (3, 7)]):
        f.write("vindex.install_feature {layer = %d, slot = %d, gate = %s, "
                "up = %s, down = %s}\n" % (layer, slot, vector(3 * n, 0.3),
                                           vector(3 * n + 1, 0.3),
                                           vector(3 * n + 2, 0.5)))
installed = os.path.join(work, "i.vindex")
run(os.path.join(tools, "larql-opt"), probed, installs, "-o", installed)
seed_vindex = os.path.join(out, "seed.vindex")
shutil.rmtree(seed_vindex, ignore_errors=True)
run(os.path.join(tools, "larql-opt"), installed, "-e",
    "DELETE FROM edges WHERE layer = 2 AND feature = 5", "-p",
    "builtin.module(larql-lower-to-vindex)", "-o", seed_vindex)
patches = sorted(glob.glob(os.path.join(seed_vindex, "patches", "*")))
if not patches or not os.path.exists(os.path.join(seed_vindex, "labels.vfb")):
    sys.exit("the seed V-index has no patches or no labels")
put("vindex", "patched-manifest", b"\0" + read(os.path.join(seed_vindex,
                                                           "manifest.vfb")))
for p in patches:
    put("vindex", "patch-" + os.path.basename(p), b"\2" + read(p))
put("vindex", "patch", b"\2")
shutil.rmtree(work)
