#!/usr/bin/env bash
# Builds the libFuzzer targets of test/fuzz (each links the library it
# fuzzes) with Debian's clang-19, ASan and UBSan in $build/fuzz-build, and
# runs each: first every input that ever crashed it
# (test/fuzz/crashers/<target>/), then FUZZ_SECONDS (default 30) of fuzzing
# seeded from the suite's inputs (test/fuzz/make-seeds.py, which needs the
# tools of the normal build in $build/bin) with the target's dictionary.
#
#   utils/fuzz.sh [TARGET...]     default: every target
#   FUZZ_SECONDS=600 FUZZ_JOBS=2 utils/fuzz.sh gguf vindex
#
# Targets: lql safetensors config tokenizer gguf vindex. FUZZ_JOBS targets
# run at once (default 1). Prints each target's executions, peak RSS and
# coverage ("cov:" of libFuzzer's last line). Exit status 0 only if nothing
# crashed, leaked or timed out. New crashers are left in
# $build/fuzz/<target>/artifacts; copy them to test/fuzz/crashers/<target>/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VINDEX_BUILD_DIR:-$root/build}"
seconds="${FUZZ_SECONDS:-30}"
jobs="${FUZZ_JOBS:-1}"
out="$build/fuzz"
all=(lql safetensors config tokenizer gguf vindex)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
mkdir -p "$out"

# A separate CMake build with clang-19 and the sanitizers (libFuzzer's
# instrumentation on every object, its main only in the targets). Debug
# with -O1: assertions stay on.
cmake -S "$root" -B "$build/fuzz-build" -G Ninja -DVINDEX_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DMLIR_DIR=/usr/lib/llvm-19/lib/cmake/mlir -DPython3_EXECUTABLE=/usr/bin/python3 \
  >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
ninja -C "$build/fuzz-build" "${targets[@]/%/-fuzzer}" >"$out/build.log" 2>&1 ||
  { tail -30 "$out/build.log"; exit 1; }

# Seeds (and the V-index the vindex target opens manifests against).
rm -rf "$out/seeds"
python3 "$root/test/fuzz/make-seeds.py" "$root" "$build/bin" "$out/seeds" \
  >"$out/seeds.log" 2>&1 || { tail -30 "$out/seeds.log"; exit 1; }
export VINDEX_FUZZ_VINDEX="$out/seeds/seed.vindex"

# Per target: its dictionary and the longest input worth trying.
dict() { case "$1" in lql) echo lql.dict ;; config|tokenizer|safetensors) echo json.dict ;; esac; }
maxlen() { case "$1" in tokenizer) echo 200000 ;; gguf|vindex|safetensors) echo 65536 ;; *) echo 4096 ;; esac; }

run_target() {
  local t=$1 dir="$out/$1" bin="$build/fuzz-build/bin/$1-fuzzer"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  local crashers=("$root/test/fuzz/crashers/$t"/*)
  if [ -e "${crashers[0]}" ]; then
    "$bin" "${crashers[@]}" >"$dir/regressions.log" 2>&1 ||
      { tail -30 "$dir/regressions.log"; echo "fuzz $t: a kept crasher fails again"; return 1; }
  fi
  local d
  d=$(dict "$t")
  "$bin" "$dir/corpus" "$out/seeds/$t" -max_total_time="$seconds" \
    -max_len="$(maxlen "$t")" -timeout=10 -rss_limit_mb=2048 \
    ${d:+-dict="$root/test/fuzz/$d"} \
    -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
    >"$dir/fuzz.log" 2>&1 ||
    { tail -40 "$dir/fuzz.log"; echo "fuzz $t: crash, leak or timeout (see $dir/artifacts)"; return 1; }
  local execs rss cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/fuzz.log")
  cov=$(grep -o 'cov: [0-9]*' "$dir/fuzz.log" | tail -1)
  echo "fuzz $t: ${seconds}s, $execs executions, peak RSS ${rss} MB, $cov, no crash"
}

failed=0
pids=()
for t in "${targets[@]}"; do
  run_target "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" -eq 0 ] && echo "fuzz: ${#targets[@]} targets, no crash or leak"
exit "$failed"
