#!/usr/bin/env bash
# The main job, end to end on the bundled tiny model, as far as the pipeline
# exists today: decompose tiny-gemma3 into a V-index, ask the model a fact
# through the engine, compile the V-index back to a Hugging Face checkpoint
# (every tensor bit-exact) and to a GGUF for llama.cpp, and read the GGUF
# back to show the same answer; probe it (larql-probe) and DESCRIBE France;
# then the Atlantis patch on the probed V-index (INSERT a fact, compile the
# edited model to GGUF, ask it), printing the answers before and after.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VINDEX_BUILD_DIR:-$root/build}"
out="${VINDEX_DEMO_DIR:-$root/out/demo}"
model="$root/test/fixtures/models/tiny-gemma3"

"$root/utils/setup.sh"
"$root/utils/build.sh" vindex-decompose vindex-compile larql-opt larql-probe >/dev/null
bin="$build/bin"
mkdir -p "$out"

echo "== vindex-decompose $model -> $out/tiny-gemma3.vindex"
"$bin/vindex-decompose" "$model" -o "$out/tiny-gemma3.vindex" --verify \
  --depfile "$out/tiny-gemma3.vindex.d"
echo "== larql-opt: what does the model know?"
"$bin/larql-opt" "$out/tiny-gemma3.vindex" \
  -e "INFER 'The capital of France is' TOP 3 GENERATE 1" \
  -e "INFER 'The currency of Japan is the' TOP 1 GENERATE 2"
# Probe: label the features with the bundled facts, then ask the model what
# it knows about an entity (DESCRIBE computes the edges from the model).
echo "== larql-probe -> $out/tiny-gemma3-probed.vindex"
"$bin/larql-probe" "$out/tiny-gemma3.vindex" -o "$out/tiny-gemma3-probed.vindex" \
  --facts "$root/test/fixtures/facts/facts.tsv" \
  --templates "$root/test/fixtures/facts/templates.json" --jobs 2
echo "== larql-opt: SHOW RELATIONS; DESCRIBE 'France'"
"$bin/larql-opt" "$out/tiny-gemma3-probed.vindex" \
  -e "SHOW RELATIONS" -e "DESCRIBE 'France'"

# --- The Atlantis patch: a fact written into the weights, no training, then
# --- compiled to a GGUF and asked again (through a second decompose).
# --- VINDEX_DEMO_PATCH_MODEL=tiny-llama runs it on the other fixture.
patch_model="${VINDEX_DEMO_PATCH_MODEL:-tiny-gemma3}"
patch_in="$out/tiny-gemma3-probed.vindex" # the probe's stored templates too
if [ "$patch_model" != tiny-gemma3 ]; then
  patch_in="$out/$patch_model.vindex"
  "$bin/vindex-decompose" "$root/test/fixtures/models/$patch_model" -o "$patch_in"
fi
echo "== larql-opt: the Atlantis patch on $patch_model -> $out/atlantis.vindex"
cat > "$out/atlantis.lql" <<'LQL'
CREATE RELATION capital AS 'The capital of {entity} is';
INSERT INTO edges VALUES (entity='Atlantis', relation='capital', target='Poseidon');
LQL
ask() { # V-INDEX PROMPT: the greedy answer and its first token's probability
  "$bin/larql-opt" "$1" --format=json -e "INFER '$2' TOP 1 GENERATE 3" |
    /usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print("%r (p = %.4f)" % (d["generated"]["text"], d["top"][0]["prob"]))'
}
echo "before: 'The capital of Atlantis is' -> $(ask "$patch_in" 'The capital of Atlantis is')"
echo "        'The capital of France is'   -> $(ask "$patch_in" 'The capital of France is')"
"$bin/larql-opt" "$patch_in" "$out/atlantis.lql" \
  -o "$out/atlantis.vindex" >/dev/null
echo "after:  'The capital of Atlantis is' -> $(ask "$out/atlantis.vindex" 'The capital of Atlantis is')"
echo "        'The capital of France is'   -> $(ask "$out/atlantis.vindex" 'The capital of France is')"
echo "== COMPILE CURRENT INTO MODEL '$out/atlantis.gguf' FORMAT gguf TYPE f32"
"$bin/larql-opt" "$out/atlantis.vindex" \
  -e "COMPILE CURRENT INTO MODEL '$out/atlantis.gguf' FORMAT gguf TYPE f32"
"$bin/vindex-decompose" "$out/atlantis.gguf" -o "$out/atlantis-from-gguf.vindex"
echo "the GGUF: 'The capital of Atlantis is' -> $(ask "$out/atlantis-from-gguf.vindex" 'The capital of Atlantis is')"
echo "          'The capital of France is'   -> $(ask "$out/atlantis-from-gguf.vindex" 'The capital of France is')"
# --- end of the Atlantis patch

echo "== vindex-compile --format=safetensors -> $out/tiny-gemma3-hf"
"$bin/vindex-compile" "$out/tiny-gemma3.vindex" --format=safetensors \
  -o "$out/tiny-gemma3-hf"
echo "== round trip check (independent reader)"
/usr/bin/python3 "$root/test/lit/Inputs/st.py" compare "$model" "$out/tiny-gemma3-hf"
echo "== vindex-compile --format=gguf -> $out/tiny-gemma3.gguf (for llama.cpp)"
"$bin/vindex-compile" "$out/tiny-gemma3.vindex" --format=gguf --type=f32 \
  -o "$out/tiny-gemma3.gguf"
echo "== vindex-decompose the GGUF, and ask again"
"$bin/vindex-decompose" "$out/tiny-gemma3.gguf" -o "$out/from-gguf.vindex"
"$bin/larql-opt" "$out/from-gguf.vindex" \
  -e "INFER 'The capital of France is' TOP 1 GENERATE 1"
files=$(find "$out/tiny-gemma3.vindex" -type f | wc -l)
bytes=$(du -sb "$out/tiny-gemma3.vindex" | cut -f1)
answer=$("$bin/larql-opt" "$out/tiny-gemma3.vindex" --format=json \
  -e "INFER 'The capital of France is' TOP 1 GENERATE 1" |
  sed -n 's/.*"text":"\([^"]*\)".*/\1/p')
gguf_bytes=$(stat -c %s "$out/tiny-gemma3.gguf")
echo "summary: tiny-gemma3 -> V-index ($files files, $bytes bytes) -> safetensors: bit-exact;"
echo "         -> GGUF ($gguf_bytes bytes, f32) -> V-index: same answer;"
echo "         'The capital of France is' -> '$answer'"
