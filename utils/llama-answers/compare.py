#!/usr/bin/env python3
"""Compares two engines' answers, line by line (JSON lines with prompt,
match, p_first, as `vindex-bench-edit-eval --answers` and llama-answers
print them): how many prompts each gets right, on how many they agree, and
the largest difference of the target's first-token probability.

  compare.py OURS.jsonl THEIRS.jsonl
"""
import json
import sys

a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
if [x["prompt"] for x in a] != [x["prompt"] for x in b]:
    sys.exit("compare: the files hold different prompts")
agree = sum(x["match"] == y["match"] for x, y in zip(a, b))
diffs = [abs(x["p_first"] - y["p_first"]) for x, y in zip(a, b)]
print(json.dumps({
    "prompts": len(a),
    "match_first": sum(bool(x["match"]) for x in a),
    "match_second": sum(bool(y["match"]) for y in b),
    "agree": agree,
    "p_first_max_abs_diff": max(diffs) if diffs else 0.0,
    "disagreements": [x["prompt"] for x, y in zip(a, b)
                      if x["match"] != y["match"]][:10]}))
