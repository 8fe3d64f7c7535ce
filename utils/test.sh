#!/usr/bin/env bash
# Sets up, builds and runs every test: the GoogleTest unit tests (through
# ctest), the lit suite and the fuzz targets (utils/fuzz.sh, 30 s each, two
# at a time: about 2 minutes of fuzzing over six targets). The
# last line is "N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VINDEX_BUILD_DIR:-$root/build}"
"$root/utils/setup.sh" || exit 1
"$root/utils/build.sh" || { echo "0 passed, 1 failed (build)"; exit 1; }

log="$build/test-summary.log"
(cd "$build" && ctest --output-on-failure -E '^lit$') 2>&1 | tee "$log"
unit_status=${PIPESTATUS[0]}
/usr/bin/python3 /usr/lib/llvm-19/build/utils/lit/lit.py -sv "$build/test/lit" 2>&1 | tee -a "$log"
lit_status=${PIPESTATUS[0]}

# Every libFuzzer target (test/fuzz), FUZZ_SECONDS (default 30) each.
if FUZZ_JOBS="${FUZZ_JOBS:-2}" "$root/utils/fuzz.sh" 2>&1 | tee -a "$log"; then fuzz_failed=0; else fuzz_failed=1; fi

unit_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log" | tail -1)
unit_failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
lit_passed=$(sed -n 's/^ *Passed *: *\([0-9]*\).*/\1/p' "$log" | tail -1)
lit_failed=$(sed -n 's/^ *Failed *: *\([0-9]*\).*/\1/p' "$log" | tail -1)
unit_total=${unit_total:-0}; unit_failed=${unit_failed:-0}
lit_passed=${lit_passed:-0}; lit_failed=${lit_failed:-0}
if [ "$unit_status" -ne 0 ] && [ "$unit_failed" -eq 0 ]; then unit_failed=1; fi
if [ "$lit_status" -ne 0 ] && [ "$lit_failed" -eq 0 ]; then lit_failed=1; fi
passed=$(( unit_total - unit_failed + lit_passed + 1 - fuzz_failed ))
failed=$(( unit_failed + lit_failed + fuzz_failed ))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
