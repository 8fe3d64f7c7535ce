#!/usr/bin/env bash
# Builds the LQL parser's libFuzzer target with Debian's clang-19 and runs
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

clang++-19 -std=c++20 -O1 -g -fno-exceptions \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/include" -isystem /usr/lib/llvm-19/include \
  "$root/test/fuzz/LQLParserFuzzer.cpp" "$root/lib/LQL/Parser.cpp" \
  "$root/lib/LQL/Diagnostics.cpp" \
  -L/usr/lib/llvm-19/lib -lMLIR -lLLVM-19 -Wl,-rpath,/usr/lib/llvm-19/lib \
  -o "$out/lql-parser-fuzzer"

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
