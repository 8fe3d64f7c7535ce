#!/usr/bin/env bash
# Builds the LQL front end's libFuzzer target (test/fuzz, linking the
# VindexLQL library) with Debian's clang-19 in $build/fuzz-build and runs
# it: first every input that ever crashed it (test/fuzz/crashers/), then
# FUZZ_SECONDS (default 60) of fuzzing seeded with the LQL scripts of the
# lit suite. Exit status 0 only if nothing crashed or leaked. New crashers
# are left in $build/fuzz/artifacts; copy them to test/fuzz/crashers/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VINDEX_BUILD_DIR:-$root/build}"
seconds="${FUZZ_SECONDS:-60}"
out="$build/fuzz"
mkdir -p "$out/corpus" "$out/artifacts"

# A separate CMake build of the front end with clang-19 and the sanitizers
# (libFuzzer's instrumentation on every object, its main only in the
# target): the fuzz target links the VindexLQL library, as larql-opt does.
# Debug with -O1: assertions stay on.
cmake -S "$root" -B "$build/fuzz-build" -G Ninja -DVINDEX_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DMLIR_DIR=/usr/lib/llvm-19/lib/cmake/mlir -DPython3_EXECUTABLE=/usr/bin/python3 \
  >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
ninja -C "$build/fuzz-build" lql-fuzzer >"$out/build.log" 2>&1 ||
  { tail -30 "$out/build.log"; exit 1; }
cp "$build/fuzz-build/bin/lql-fuzzer" "$out/lql-parser-fuzzer"

# Seeds: every LQL script of the test suite.
find "$root/test/lit" -name '*.lql' -exec cp {} "$out/corpus/" \;

crashers=("$root"/test/fuzz/crashers/*)
if [ -e "${crashers[0]}" ]; then
  "$out/lql-parser-fuzzer" "${crashers[@]}" >"$out/regressions.log" 2>&1 ||
    { tail -30 "$out/regressions.log"; echo "fuzz: a kept crasher fails again"; exit 1; }
fi
"$out/lql-parser-fuzzer" "$out/corpus" -max_total_time="$seconds" \
  -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/artifacts/" -print_final_stats=1 \
  >"$out/fuzz.log" 2>&1 ||
  { tail -40 "$out/fuzz.log"; echo "fuzz: crash or leak (see $out/artifacts)"; exit 1; }
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/fuzz.log" || true
echo "fuzz: ${seconds}s, no crash or leak"
