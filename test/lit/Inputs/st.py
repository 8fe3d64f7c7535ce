#!/usr/bin/env python3
"""Test helper: an independent safetensors reader/writer (stdlib only).

  st.py compare A B          tensors of two checkpoints are identical
  st.py shard SRC DST N      split a checkpoint into N shards with an index
  st.py multimodal SRC DST   wrap a gemma3_text checkpoint as multimodal gemma3
  st.py malform KIND DST     write a small checkpoint broken in one way
  st.py flip FILE OFFSET     flip one byte of FILE (corruption tests)
  st.py convert SRC DST DT   copy a BF16 checkpoint with every tensor as F32 or F16
  st.py grow SRC DST V F     copy a Llama checkpoint with V vocabulary rows and F
                             FFN features (rows and features repeated cyclically)
  st.py kinds                list the malform kinds
"""
import json
import os
import shutil
import struct
import sys

AUX = ["config.json", "tokenizer.json", "tokenizer.model",
       "tokenizer_config.json", "special_tokens_map.json",
       "generation_config.json"]
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def read_file(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        tensors[name] = (e["dtype"], tuple(e["shape"]), data[base + b:base + end])
    return tensors, meta


def read_checkpoint(path):
    """name -> (dtype, shape, bytes) for a directory, file or index."""
    if os.path.isdir(path):
        index = os.path.join(path, "model.safetensors.index.json")
        path = index if os.path.exists(index) else os.path.join(path, "model.safetensors")
    if path.endswith(".json"):
        d = os.path.dirname(path)
        with open(path) as f:
            wm = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(wm.values())):
            out.update(read_file(os.path.join(d, shard))[0])
        return out
    return read_file(path)[0]


def write_file(path, tensors, meta=None, order=None):
    header = {}
    if meta:
        header["__metadata__"] = meta
    off = 0
    names = order or list(tensors)
    for name in names:
        dt, shape, data = tensors[name]
        header[name] = {"dtype": dt, "shape": list(shape),
                        "data_offsets": [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name in names:
            f.write(tensors[name][2])


def copy_aux(src, dst):
    os.makedirs(dst, exist_ok=True)
    for a in AUX:
        if os.path.exists(os.path.join(src, a)):
            shutil.copyfile(os.path.join(src, a), os.path.join(dst, a))


def cmd_compare(a, b):
    ta, tb = read_checkpoint(a), read_checkpoint(b)
    bad = 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            print("only in one side: %s" % name)
            bad += 1
        elif ta[name] != tb[name]:
            print("differs: %s" % name)
            bad += 1
    if bad:
        print("%d tensors differ" % bad)
        return 1
    print("%d tensors identical" % len(ta))
    return 0


def cmd_shard(src, dst, n):
    n = int(n)
    tensors = read_checkpoint(src)
    copy_aux(src, dst)
    names = sorted(tensors)
    wm = {}
    for i in range(n):
        part = names[i * len(names) // n:(i + 1) * len(names) // n]
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, n)
        write_file(os.path.join(dst, fname), {k: tensors[k] for k in part},
                   {"format": "pt"}, part)
        for k in part:
            wm[k] = fname
    total = sum(len(t[2]) for t in tensors.values())
    with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f,
                  indent=2, sort_keys=True)
    return 0


def cmd_multimodal(src, dst):
    tensors = read_checkpoint(src)
    copy_aux(src, dst)
    with open(os.path.join(src, "config.json")) as f:
        text = json.load(f)
    cfg = {"architectures": ["Gemma3ForConditionalGeneration"],
           "model_type": "gemma3", "text_config": text,
           "vision_config": {"model_type": "siglip_vision_model"},
           "eos_token_id": text.get("eos_token_id")}
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    out = {"language_model." + k: v for k, v in tensors.items()}
    out["vision_tower.vision_model.post_layernorm.weight"] = (
        "F32", (4,), struct.pack("<4f", 1, 2, 3, 4))
    out["multi_modal_projector.mm_soft_emb_norm.weight"] = (
        "F32", (2,), struct.pack("<2f", 1, 2))
    write_file(os.path.join(dst, "model.safetensors"), out, {"format": "pt"})
    return 0


def good_header():
    return {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]}}


def raw(header_bytes, data, length=None):
    n = len(header_bytes) if length is None else length
    return struct.pack("<Q", n) + header_bytes + data


def enc(h):
    return json.dumps(h).encode()


def malformed(kind):
    data = bytes(range(24))
    h = good_header()
    if kind == "truncated":
        return raw(enc(h), data)[:5]
    if kind == "truncated-data":
        return raw(enc(h), data)[:-6]
    if kind == "header-past-end":
        return raw(enc(h), data, length=4096)
    if kind == "header-over-cap":
        return raw(enc(h), data, length=200_000_000)
    if kind == "bad-json":
        return raw(b'{"a": {"dtype": "F32",, }', data)
    if kind == "not-object":
        return raw(b'[1, 2, 3]', data)
    if kind == "unknown-dtype":
        h["b"]["dtype"] = "Q17"
        return raw(enc(h), data)
    if kind == "unsupported-dtype":
        h["b"]["dtype"] = "I8"
        h["b"]["shape"] = [8]
        return raw(enc(h), data)
    if kind == "shape-mismatch":
        h["a"]["shape"] = [2, 3]
        return raw(enc(h), data)
    if kind == "negative-shape":
        h["a"]["shape"] = [-2, 2]
        return raw(enc(h), data)
    if kind == "overlap":
        h["b"]["data_offsets"] = [8, 16]
        return raw(enc(h), data[:16])
    if kind == "out-of-bounds":
        h["b"]["data_offsets"] = [16, 24]
        return raw(enc(h), data[:20])
    if kind == "trailing":
        return raw(enc(h), data + b"\0" * 8)
    if kind == "duplicate":
        text = enc(h)[:-1] + b', "a": ' + enc(h["a"]) + b"}"
        return raw(text, data)
    if kind == "missing-offsets":
        del h["a"]["data_offsets"]
        return raw(enc(h), data)
    raise SystemExit("unknown kind " + kind)


CONFIG_KINDS = ["huge-layer", "mlp-bias", "config-missing-field", "config-unknown-arch",
                "config-bad-json", "config-shape-mismatch", "missing-shard",
                "index-not-in-shard", "config-zero-ffn", "config-huge-layers"]


def cmd_malform(kind, dst):
    fixtures = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
    llama = os.path.join(fixtures, "models", "tiny-llama")
    os.makedirs(dst, exist_ok=True)
    shutil.copyfile(os.path.join(llama, "config.json"),
                    os.path.join(dst, "config.json"))
    if kind not in CONFIG_KINDS:
        with open(os.path.join(dst, "model.safetensors"), "wb") as f:
            f.write(malformed(kind))
        return 0
    shutil.copyfile(os.path.join(llama, "model.safetensors"),
                    os.path.join(dst, "model.safetensors"))
    cfg_path = os.path.join(dst, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if kind in ("huge-layer", "mlp-bias", "config-zero-ffn"):
        tensors = read_checkpoint(dst)
        if kind == "config-zero-ffn":
            # FFN tensors of zero features, agreeing with the config.
            for name, (dt, shape, _) in list(tensors.items()):
                if ".mlp.down_proj." in name:
                    tensors[name] = (dt, (shape[0], 0), b"")
                elif ".mlp." in name:
                    tensors[name] = (dt, (0, shape[1]), b"")
            cfg["intermediate_size"] = 0
        elif kind == "huge-layer":
            t = tensors.pop("model.layers.0.mlp.up_proj.weight")
            tensors["model.layers.3000000000.mlp.up_proj.weight"] = t
        else:
            tensors["model.layers.0.mlp.down_proj.bias"] = (
                "F32", (cfg["hidden_size"],), struct.pack("<f", 10.0) * cfg["hidden_size"])
        write_file(os.path.join(dst, "model.safetensors"), tensors,
                   {"format": "pt"}, sorted(tensors))
    if kind == "config-missing-field":
        del cfg["hidden_size"]
    elif kind == "config-unknown-arch":
        cfg["model_type"] = "gpt_neox"
    elif kind == "config-huge-layers":
        cfg["num_hidden_layers"] = 3000000000
    elif kind == "config-shape-mismatch":
        cfg["intermediate_size"] = 400
    elif kind in ("missing-shard", "index-not-in-shard"):
        names = sorted(read_checkpoint(dst))
        wm = {k: "model.safetensors" for k in names}
        if kind == "missing-shard":
            wm[names[-1]] = "model-00002-of-00002.safetensors"
        else:
            wm["model.layers.99.mlp.up_proj.weight"] = "model.safetensors"
        with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wm}, f)
    if kind == "config-bad-json":
        with open(cfg_path, "w") as f:
            f.write('{"model_type": "llama",\n "hidden_size": 96,,\n}')
        return 0
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    return 0


def bf16_values(data):
    n = len(data) // 2
    halves = struct.unpack("<%dH" % n, data)
    return struct.unpack("<%df" % n, struct.pack("<%dI" % n, *[h << 16 for h in halves]))


def cmd_convert(src, dst, dtype):
    tensors = read_checkpoint(src)
    copy_aux(src, dst)
    out = {}
    for name, (dt, shape, data) in tensors.items():
        assert dt == "BF16", name
        vals = bf16_values(data)
        fmt = {"F32": "f", "F16": "e"}[dtype]
        out[name] = (dtype, shape, struct.pack("<%d%s" % (len(vals), fmt), *vals))
    write_file(os.path.join(dst, "model.safetensors"), out, {"format": "pt"},
               sorted(out))
    return 0


def cmd_grow(src, dst, vocab, ffn):
    vocab, ffn = int(vocab), int(ffn)
    tensors = read_checkpoint(src)
    copy_aux(src, dst)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    out = {}
    for name, (dt, shape, data) in tensors.items():
        size = DTYPE_SIZE[dt]
        if name.endswith(("embed_tokens.weight", "lm_head.weight")) or \
                name.endswith(("gate_proj.weight", "up_proj.weight")):
            rows = vocab if "proj" not in name else ffn
            row = len(data) // shape[0]
            data = b"".join(data[(r % shape[0]) * row:(r % shape[0] + 1) * row]
                            for r in range(rows))
            shape = (rows,) + tuple(shape[1:])
        elif name.endswith("down_proj.weight"):
            cols, width = shape[1], shape[1] * size
            data = b"".join(
                b"".join(data[h * width + (c % cols) * size:
                              h * width + (c % cols + 1) * size]
                         for c in range(ffn)) for h in range(shape[0]))
            shape = (shape[0], ffn)
        out[name] = (dt, shape, data)
    cfg["vocab_size"], cfg["intermediate_size"] = vocab, ffn
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_file(os.path.join(dst, "model.safetensors"), out, {"format": "pt"},
               sorted(out))
    return 0


def cmd_flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(int(offset))
        b = f.read(1)
        f.seek(int(offset))
        f.write(bytes([b[0] ^ 0xFF]))
    return 0


def main(argv):
    cmds = {"compare": cmd_compare, "shard": cmd_shard,
            "multimodal": cmd_multimodal, "malform": cmd_malform,
            "flip": cmd_flip, "convert": cmd_convert, "grow": cmd_grow}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__)
        return 2
    return cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
