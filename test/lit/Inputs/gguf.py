#!/usr/bin/env python3
"""gguf.py: an independent GGUF v3 reader for tests (no llama.cpp needed).

  gguf.py dump FILE              keys (name type value-or-length) and tensors
  gguf.py malform KIND IN OUT    writes IN with one defect (see malform())
  gguf.py check HF F32.GGUF ARCH every tensor of the F32 GGUF against the HF
                                 checkpoint with llama.cpp's transforms
                                 (ARCH: gemma3, llama, qwen2, qwen3)
"""
import json
import math
import os
import struct
import sys

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
          7: "<B", 10: "<Q", 11: "<q", 12: "<d"}
TYPE_NAMES = {0: "UINT8", 1: "INT8", 2: "UINT16", 3: "INT16", 4: "UINT32",
              5: "INT32", 6: "FLOAT32", 7: "BOOL", 8: "STRING", 9: "ARRAY",
              10: "UINT64", 11: "INT64", 12: "FLOAT64"}
GGML_NAMES = {0: "F32", 1: "F16", 8: "Q8_0", 30: "BF16"}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(SCALAR[t])


def parse(data):
    r = Reader(data)
    assert data[:4] == b"GGUF"
    r.p = 4
    version, nt, nkv = r.take("<I"), r.take("<Q"), r.take("<Q")
    kvs = []
    for _ in range(nkv):
        k = r.string()
        t = r.take("<I")
        kvs.append([k, t, r.value(t)])
    tensors = []
    for _ in range(nt):
        name = r.string()
        nd = r.take("<I")
        dims = [r.take("<Q") for _ in range(nd)]
        tensors.append([name, dims, r.take("<I"), r.take("<Q")])
    align = 32
    for k, t, v in kvs:
        if k == b"general.alignment":
            align = v
    start = (r.p + align - 1) // align * align
    return version, kvs, tensors, data[start:], align


def put_value(t, v):
    if t == 8:
        return struct.pack("<Q", len(v)) + v
    if t == 9:
        et, elems = v
        if isinstance(elems, bytes):  # UINT8 elements, packed already
            return struct.pack("<IQ", et, len(elems)) + elems
        return (struct.pack("<IQ", et, len(elems)) +
                b"".join(put_value(et, e) for e in elems))
    return struct.pack(SCALAR[t], v)


def serialize(version, kvs, tensors, data, align=32, counts=None,
              bad_type=None):
    out = b"GGUF" + struct.pack("<I", version)
    nt, nkv = counts if counts else (len(tensors), len(kvs))
    out += struct.pack("<QQ", nt, nkv)
    for i, (k, t, v) in enumerate(kvs):
        shown = bad_type if bad_type is not None and i == 1 else t
        out += struct.pack("<Q", len(k)) + k + struct.pack("<I", shown)
        out += put_value(t, v)
    for name, dims, t, off in tensors:
        out += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", t, off)
    out += b"\0" * ((-len(out)) % align)
    return out + data


def malform(kind, src, dst):
    data = open(src, "rb").read()
    version, kvs, tensors, body, align = parse(data)
    counts = None
    if kind == "bad-magic":
        out = b"GGML" + data[4:]
    elif kind == "bad-version":
        out = serialize(2, kvs, tensors, body)
    elif kind == "tensor-count":
        out = serialize(version, kvs, tensors, body,
                        counts=(1 << 40, len(kvs)))
    elif kind == "kv-count":
        out = serialize(version, kvs, tensors, body,
                        counts=(len(tensors), 1 << 40))
    elif kind == "string-length":
        # The first key's length runs past the end of the file.
        out = data[:24] + struct.pack("<Q", 1 << 50) + data[32:]
    elif kind == "kv-type":
        out = serialize(version, kvs, tensors, body, bad_type=99)
    elif kind == "tensor-type":
        tensors[1][2] = 2  # Q4_1
        out = serialize(version, kvs, tensors, body)
    elif kind == "misaligned":
        tensors[1][3] += 4
        out = serialize(version, kvs, tensors, body)
    elif kind == "overlap":
        tensors[1][3] = 0
        out = serialize(version, kvs, tensors, body)
    elif kind == "gap":
        for t in tensors[1:]:
            t[3] += 32
        out = serialize(version, kvs, tensors, b"\0" * 32 + body)
    elif kind == "truncated":
        out = serialize(version, kvs, tensors, body)[:-100]
    elif kind == "big-arrays":
        # Three UINT8 arrays of 3M elements: each within the per-array
        # bound and the file, together past the bound on all arrays (8M).
        for i in range(3):
            kvs.append([b"test.pad.%d" % i, 9, (0, bytes(3 << 20))])
        out = serialize(version, kvs, tensors, body)
    elif kind == "long-piece":
        # The vocabulary's last token spelled with 300 bytes.
        for kv in kvs:
            if kv[0] == b"tokenizer.ggml.tokens":
                kv[2][1][-1] = b"a" * 300
        out = serialize(version, kvs, tensors, body)
    elif kind == "duplicate-key":
        kvs.append(list(kvs[0]))
        out = serialize(version, kvs, tensors, body)
    elif kind == "duplicate-tensor":
        tensors[1][0] = tensors[0][0]
        out = serialize(version, kvs, tensors, body)
    elif kind == "dims":
        tensors[0][1] = [1, 1, 1, 1, 1]
        out = serialize(version, kvs, tensors, body)
    elif kind == "zero-dim":
        tensors[1][1] = [0] + list(tensors[1][1][1:])
        out = serialize(version, kvs, tensors, body)
    elif kind.startswith("u32-key="):
        key, value = kind.split("=", 1)[1].split(":")
        for kv in kvs:
            if kv[0] == key.encode():
                kv[1], kv[2] = 4, int(value)
        out = serialize(version, kvs, tensors, body)
    elif kind.startswith("string-key="):
        key, value = kind.split("=", 1)[1].split(":", 1)
        for kv in kvs:
            if kv[0] == key.encode():
                kv[1], kv[2] = 8, value.encode()
        out = serialize(version, kvs, tensors, body)
    elif kind.startswith("scale-f32="):
        # Multiplies element 0 of an F32 tensor by 1.5.
        name = kind.split("=", 1)[1].encode()
        body = bytearray(body)
        for n, dims, t, o in tensors:
            if n == name:
                (v,) = struct.unpack_from("<f", body, o)
                struct.pack_into("<f", body, o, v * 1.5)
        out = serialize(version, kvs, tensors, bytes(body))
    elif kind.startswith("rename-tensor="):
        old, new = kind.split("=", 1)[1].split(":")
        for t in tensors:
            if t[0] == old.encode():
                t[0] = new.encode()
        out = serialize(version, kvs, tensors, body)
    elif kind.startswith("drop-key="):
        key = kind.split("=", 1)[1].encode()
        kvs = [kv for kv in kvs if kv[0] != key]
        out = serialize(version, kvs, tensors, body)
    elif kind.startswith("float-key="):
        key = kind.split("=", 1)[1].encode()
        for kv in kvs:
            if kv[0] == key:
                kv[1], kv[2] = 6, float(kv[2])
        out = serialize(version, kvs, tensors, body)
    elif kind.startswith("drop-tensor="):
        # Removing a tensor's info and bytes keeps the offsets sequential.
        name = kind.split("=", 1)[1].encode()
        keep, pieces, off = [], [], 0
        for i, (n, dims, t, o) in enumerate(tensors):
            end = tensors[i + 1][3] if i + 1 < len(tensors) else len(body)
            if n == name:
                continue
            keep.append([n, dims, t, off])
            pieces.append(body[o:end])
            off += end - o
        out = serialize(version, kvs, keep, b"".join(pieces))
    else:
        sys.exit("unknown malformation " + kind)
    open(dst, "wb").write(out)


def dump(path):
    version, kvs, tensors, body, align = parse(open(path, "rb").read())
    print("version %d, %d KVs, %d tensors" % (version, len(kvs), len(tensors)))
    for k, t, v in kvs:
        if t == 9:
            shown = "[%s x %d]" % (TYPE_NAMES[v[0]], len(v[1]))
        elif t == 8:
            shown = v.decode()
        elif t == 6:
            shown = "%.9g" % v
        else:
            shown = str(v)
        print("%s %s %s" % (k.decode(), TYPE_NAMES[t], shown))
    for name, dims, t, off in tensors:
        print("tensor %s %s %s %d" % (name.decode(), dims,
                                      GGML_NAMES.get(t, t), off))


HF_NAMES = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm", "post_ffw_norm":
    "post_feedforward_layernorm", "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    "post_attention_norm": "post_attention_layernorm"}


def hf_name(name, arch):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output.weight":
        return "lm_head.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    _, layer, part, kind = name.split(".")
    if part == "ffn_norm":
        part = ("pre_feedforward_layernorm" if arch == "gemma3"
                else "post_attention_layernorm")
    else:
        part = HF_NAMES[part]
    return "model.layers.%s.%s.%s" % (layer, part, kind)


def floats(dtype, raw):
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dtype == "BF16":
        h = struct.unpack("<%dH" % (len(raw) // 2), raw)
        wide = struct.pack("<%dI" % len(h), *[x << 16 for x in h])
        return list(struct.unpack("<%df" % len(h), wide))
    return list(struct.unpack("<%de" % (len(raw) // 2), raw))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def llama3_rope_factors(cfg):
    """rope_freqs.weight as convert_hf_to_gguf.py derives it for a llama3
    rope_scaling (LlamaModel.generate_extra_tensors), rounding each step to
    f32 as its torch tensors do."""
    rs = cfg["rope_scaling"]
    base = cfg.get("rope_theta", 10000.0)
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    factor = rs.get("factor", 8.0)
    low = rs.get("low_freq_factor", 1.0)
    high = rs.get("high_freq_factor", 4.0)
    old = rs.get("original_max_position_embeddings", 8192)
    out = []
    for i in range(0, dim, 2):
        freq = f32(1.0 / f32(f32(base) ** f32(f32(i) / dim)))
        wave = f32(f32(2 * math.pi) / freq)
        if wave < f32(old / high):
            out.append(1.0)
        elif wave > f32(old / low):
            out.append(f32(factor))
        else:
            smooth = f32(f32(f32(old / wave) - low) / f32(high - low))
            out.append(f32(1 / f32(f32(f32(1 - smooth) / f32(factor)) +
                                   smooth)))
    return out


def check(hf_dir, path, arch):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import st
    hf = st.read_checkpoint(hf_dir)
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    version, kvs, tensors, body, align = parse(open(path, "rb").read())
    seen = set()
    for i, (name, dims, t, off) in enumerate(tensors):
        name = name.decode()
        assert t == 0, name + " is not F32"
        if name == "rope_freqs.weight":
            assert arch == "llama", name
            assert cfg["rope_scaling"]["rope_type"] == "llama3", name
            want = llama3_rope_factors(cfg)
            got = list(struct.unpack_from("<%df" % len(want), body, off))
            if dims != [len(want)] or got != want:
                sys.exit("tensor %s is not llama3's factors %s" % (name, want))
            continue
        src = hf_name(name, arch)
        seen.add(src)
        dtype, shape, raw = hf[src]
        assert list(reversed(dims)) == list(shape), (name, dims, shape)
        want = floats(dtype, raw)
        if arch == "gemma3" and len(shape) == 1:
            want = [f32(x + 1.0) for x in want]
        if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
            hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
            rows, cols = shape
            perm = []
            for r in range(rows):
                h, j = divmod(r, hd)
                perm.append(h * hd + (j % 2) * (hd // 2) + j // 2)
            want = [want[perm[r] * cols + c] for r in range(rows)
                    for c in range(cols)]
        n = 1
        for d in dims:
            n *= d
        got = list(struct.unpack_from("<%df" % n, body, off))
        if got != want:
            sys.exit("tensor %s differs from %s" % (name, src))
    missing = set(hf) - seen
    if missing:
        sys.exit("HF tensors not in the GGUF: %s" % sorted(missing))
    print("all tensors as llama.cpp expects (%d)" % len(tensors))


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
        sys.exit(0)
    if sys.argv[1] == "dump":
        dump(sys.argv[2])
    elif sys.argv[1] == "malform":
        malform(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
