#!/usr/bin/env python3
"""Checks that README.md and docs/ say what is true of the tree and tools.

  check-docs.py ROOT BINDIR

1. Every command line of a fenced code block that starts with one of the
   tools (vindex-decompose, vindex-compile, larql-probe, larql-opt) uses
   only options that tool's --help lists (the options a user copies from
   the docs exist, with the spelling shown).
2. Every repository path written in backticks (lib/..., tools/...,
   include/..., test/..., utils/..., docs/..., passes/..., bench/...)
   exists, with <Name> placeholders and globs left alone.
3. No document, and no source comment, points outside the repository
   (a "../shared/..." or "/work/..." path).
Prints one line per problem; exits 1 if there is any.
"""
import glob
import os
import re
import subprocess
import sys

root, bindir = sys.argv[1], sys.argv[2]
TOOLS = ["vindex-decompose", "vindex-compile", "larql-probe", "larql-opt"]
docs = [os.path.join(root, "README.md")] + sorted(
    glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True))
problems = []
checked = {"command lines": 0, "options": 0, "paths": 0}


def rel(p):
    return os.path.relpath(p, root)


helps = {}
for t in TOOLS:
    out = subprocess.run([os.path.join(bindir, t), "--help-hidden"],
                         capture_output=True, text=True).stdout
    helps[t] = set(re.findall(r"^\s+(--?[a-zA-Z][\w-]*)", out, re.M)) | \
        set(re.findall(r"(--[a-zA-Z][\w-]*)", out))

for d in docs:
    text = open(d, encoding="utf-8").read()
    # 1. Options of the tools' command lines in code blocks.
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        tool = None
        for line in block.replace("\\\n", " ").split("\n"):
            words = line.strip().lstrip("$ ").split()
            if words and words[0] in TOOLS:
                tool = words[0]
                checked["command lines"] += 1
            elif not (tool and line[:1].isspace()):
                tool = None  # an indented line continues a synopsis
            if not tool:
                continue
            for opt in re.findall(r"(?<![\w'\"])(--[a-zA-Z][\w-]*)", line):
                checked["options"] += 1
                if opt not in helps[tool]:
                    problems.append("%s: `%s` is not an option of %s (its --help): %s"
                                    % (rel(d), opt, tool, line.strip()))
    # 2. Repository paths in backticks.
    for path in re.findall(r"`((?:lib|tools|include|test|utils|docs|passes|bench)/[^`\s]*)`", text):
        p = path.rstrip(".,:;)")
        if "<" in p or "*" in p or "{" in p or "%" in p or "..." in p:
            continue
        checked["paths"] += 1
        if not os.path.exists(os.path.join(root, p)):
            problems.append("%s: `%s` does not exist" % (rel(d), p))

# 3. Nothing points outside the repository.
outside = re.compile(r"\.\./shared/|/work/(?:shared|main|wt)\b")
for pattern in ["README.md", "docs/**/*.md", "lib/**/*.*", "include/**/*.*",
                "tools/**/*.*", "passes/**/*.*", "test/lit/**/*.test",
                "utils/*"]:
    for f in glob.glob(os.path.join(root, pattern), recursive=True):
        if not os.path.isfile(f) or f.endswith("check-docs.py"):
            continue
        try:
            for n, line in enumerate(open(f, encoding="utf-8"), 1):
                if outside.search(line):
                    problems.append("%s:%d: points outside the repository: %s"
                                    % (rel(f), n, line.strip()))
        except UnicodeDecodeError:
            pass

for p in problems:
    print(p)
print("check-docs: %d documents, %d command lines, %d options, %d paths "
      "checked, %d problems" % (len(docs), checked["command lines"],
                                checked["options"], checked["paths"],
                                len(problems)))
sys.exit(1 if problems else 0)
