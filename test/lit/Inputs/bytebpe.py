#!/usr/bin/env python3
"""bytebpe.py: a small byte-level BPE tokenizer.json for tests (stdlib only).

  bytebpe.py train TEXT --merges N --split gpt2|llama3|qwen2 -o TOKENIZER.json
      Learns N merges from TEXT (most frequent adjacent pair first, ties by
      the pair itself, so the output is deterministic) over GPT-2's byte to
      unicode alphabet, and writes a Hugging Face tokenizer.json in the
      shape of the named family: GPT-2 (ByteLevel pre-tokenizer with its
      regex), Llama 3 and Qwen 2 (Split with their regex, then ByteLevel).
      Ids: 0 <|pad|>, 1 <|end_of_text|>, 2 <|begin_of_text|> (the ids of
      tiny-llama's config.json), then the 256 byte symbols, then the merges.
  bytebpe.py lql JSONL
      One INFER statement per "text" of JSONL (LQL string escapes).
  bytebpe.py encode TOKENIZER.json --split S TEXT...
      The ids of each ASCII TEXT (BOS first) by a plain BPE over the merges
      of TOKENIZER.json, one JSON list per line: an encoder independent of
      Vindex's, for ASCII text (Python's re has no \p{L}).
"""
import argparse
import collections
import json
import re
import sys

PATTERNS = {
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
# The same regexes for ASCII text, in Python's syntax.
ASCII_PATTERNS = {
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
SPECIALS = ["<|pad|>", "<|end_of_text|>", "<|begin_of_text|>"]


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable characters."""
    bs = (list(range(ord("!"), ord("~") + 1)) +
          list(range(ord("\xa1"), ord("\xac") + 1)) +
          list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train(text, merges):
    # Words for counting pairs only: the tokenizer's own regex decides the
    # pieces at encoding time, so an ASCII approximation is enough here.
    words = re.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d| ?[^\s\w]+|\s+",
                       text)
    b2u = bytes_to_unicode()
    counts = collections.Counter(
        tuple(b2u[b] for b in w.encode("utf-8")) for w in words)
    learned = []
    for _ in range(merges):
        pairs = collections.Counter()
        for w, c in counts.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        learned.append(best)
        merged = collections.Counter()
        for w, c in counts.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += c
        counts = merged
    return learned


def tokenizer_json(learned, split):
    vocab = {}
    for s in SPECIALS:
        vocab[s] = len(vocab)
    for ch in bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
    for a, b in learned:
        vocab.setdefault(a + b, len(vocab))
    byte_level = {"type": "ByteLevel", "add_prefix_space": False,
                  "trim_offsets": True, "use_regex": split == "gpt2"}
    if split == "gpt2":
        pre = byte_level
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PATTERNS[split]},
             "behavior": "Isolated", "invert": False},
            dict(byte_level, use_regex=False)]}
    bos = SPECIALS[2]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            {"id": vocab[s], "content": s, "single_word": False,
             "lstrip": False, "rstrip": False, "normalized": False,
             "special": True} for s in SPECIALS],
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]],
                                     "tokens": [bos]}}},
        "decoder": dict(byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab,
                  "merges": [[a, b] for a, b in learned]},
    }


def encode(tok, split, text):
    vocab = tok["model"]["vocab"]
    ranks = {tuple(m): i for i, m in enumerate(tok["model"]["merges"])}
    b2u = bytes_to_unicode()
    ids = [vocab[SPECIALS[2]]]
    for word in re.findall(ASCII_PATTERNS[split], text):
        parts = [b2u[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            best = min(range(len(parts) - 1),
                       key=lambda i: ranks.get((parts[i], parts[i + 1]),
                                               len(ranks)))
            if (parts[best], parts[best + 1]) not in ranks:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        ids += [vocab[p] for p in parts]
    return ids


def lql_string(s):
    return "'" + (s.replace("\\", "\\\\").replace("'", "\\'")
                  .replace("\n", "\\n").replace("\t", "\\t")) + "'"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "lql":
        for line in open(sys.argv[2], encoding="utf-8"):
            text = json.loads(line)["text"]
            if text:
                print("INFER %s TOP 1;" % lql_string(text))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "encode":
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("tokenizer")
        ap.add_argument("--split", choices=sorted(PATTERNS), default="llama3")
        ap.add_argument("texts", nargs="+")
        a = ap.parse_args()
        tok = json.load(open(a.tokenizer, encoding="utf-8"))
        for t in a.texts:
            print(json.dumps(encode(tok, a.split, t)))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train"])
    ap.add_argument("text")
    ap.add_argument("--merges", type=int, default=300)
    ap.add_argument("--split", choices=sorted(PATTERNS), default="llama3")
    ap.add_argument("-o", required=True)
    a = ap.parse_args()
    text = open(a.text, encoding="utf-8").read()[:60000]
    tok = tokenizer_json(train(text, a.merges), a.split)
    with open(a.o, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
