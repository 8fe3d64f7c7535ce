#!/usr/bin/env bash
# Does the compiled model answer as the V-index does, in our engine and in
# llama.cpp? For an (edited) V-index: COMPILE it to GGUF (f32 and bf16),
# decompose each GGUF again, and compare, prompt by prompt, the answers of
# the V-index (its overlay) with those of our engine on each GGUF and of
# llama.cpp on each GGUF (llama-answers, built by build.sh beside this).
#   utils/llama-answers/check.sh V.vindex LLAMA_ANSWERS WORK PROMPTS.tsv...
# PROMPTS.tsv: `prompt<TAB>target` lines. Prints one JSON line per
# comparison (compare.py).
set -euo pipefail
v=$1 la=$2 work=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
bin=${VINDEX_BIN:-$here/../../build/bin}
mkdir -p "$work"
for t in f32 bf16; do
  "$bin/larql-opt" "$v" -e "COMPILE CURRENT INTO MODEL '$work/$t.gguf' FORMAT gguf TYPE $t" >/dev/null
  "$bin/vindex-decompose" "$work/$t.gguf" -o "$work/$t.vindex"
done
for p in "$@"; do
  n=$(basename "$p" .tsv)
  "$bin/vindex-bench-edit-eval" --before "$v" --answers "$p" > "$work/$n.overlay.jsonl"
  for t in f32 bf16; do
    "$bin/vindex-bench-edit-eval" --before "$work/$t.vindex" --answers "$p" > "$work/$n.ours-$t.jsonl"
    "$la" "$work/$t.gguf" 1 < "$p" > "$work/$n.llama-$t.jsonl"
    echo "{\"prompts\": \"$n\", \"gguf\": \"$t\", \"engine\": \"ours\", \"compare\": $(python3 "$here/compare.py" "$work/$n.overlay.jsonl" "$work/$n.ours-$t.jsonl")}"
    echo "{\"prompts\": \"$n\", \"gguf\": \"$t\", \"engine\": \"llama.cpp\", \"compare\": $(python3 "$here/compare.py" "$work/$n.overlay.jsonl" "$work/$n.llama-$t.jsonl")}"
  done
done
