#!/usr/bin/env bash
# Prints the sha256 of every output the tools make from the two fixtures:
# V-indexes (plain and zstd), safetensors checkpoints and GGUF files of every
# --type. Run it before and after a change that must keep outputs
# byte-identical and diff the two lists:
#   utils/output-hashes.sh build/bin /tmp/before > before.sha
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:?usage: output-hashes.sh BIN_DIR WORK_DIR}"
out="${2:?usage: output-hashes.sh BIN_DIR WORK_DIR}"
rm -rf "$out"
mkdir -p "$out"
for m in tiny-gemma3 tiny-llama; do
  for c in none zstd; do
    "$bin/vindex-decompose" "$root/test/fixtures/models/$m" -o "$out/$m-$c.vindex" --compress=$c
    "$bin/vindex-compile" "$out/$m-$c.vindex" --format=safetensors -o "$out/$m-$c-hf"
    for t in auto f32 f16 bf16 q8_0; do
      "$bin/vindex-compile" "$out/$m-$c.vindex" --format=gguf -o "$out/$m-$c-$t.gguf" --type=$t
    done
  done
done
cd "$out"
find . -type f ! -name '*.d' | LC_ALL=C sort | xargs sha256sum
