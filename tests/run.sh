#!/usr/bin/env bash
# run.sh — runs every test: the cmocka unit and contract binaries, then the
# end-to-end scripts against the real programs. Prints one line per test
# program and, last, "N passed, N failed" counting individual test cases.
# TESTS=pattern runs only the programs whose name matches.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
export BIN BUILD
export SLUICE_TEST_ROOT=${SLUICE_TEST_ROOT:-$(mktemp -d /tmp/sluice-test.XXXXXX)}
logdir=$SLUICE_TEST_ROOT/logs
mkdir -p "$logdir"
passed=0 failed=0 failed_names=()

run_cmocka() {
  local t=$1 name log
  name=$(basename "$t")
  log=$logdir/$name.log
  local start=$SECONDS
  CMOCKA_MESSAGE_OUTPUT=stdout "$t" >"$log" 2>&1
  local rc=$?
  local p f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  p=${p:-0} f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$f" -eq 0 ]; then
    printf 'ok    %-36s %3d cases  %3ds\n' "$name" "$p" $((SECONDS - start))
  else
    printf 'FAIL  %-36s %3d failed (log: %s)\n' "$name" "$f" "$log"
    grep -E '^\[  (FAILED|ERROR) |^\[  ERROR|ERROR:|Sanitizer|runtime error' "$log" | head -20 | sed 's/^/      /'
    failed_names+=("$name")
  fi
}

run_script() {
  local t=$1 name log
  name=$(basename "$t" .sh)
  log=$logdir/$name.log
  local start=$SECONDS
  bash "$t" >"$log" 2>&1
  local rc=$?
  local p f
  p=$(grep -c '^ok ' "$log")
  f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$f" -eq 0 ]; then
    printf 'ok    %-36s %3d cases  %3ds\n' "$name" "$p" $((SECONDS - start))
  else
    printf 'FAIL  %-36s %3d failed (log: %s)\n' "$name" "$f" "$log"
    grep -E '^not ok |^#' "$log" | head -20 | sed 's/^/      /'
    tail -5 "$log" | sed 's/^/      | /'
    failed_names+=("$name")
  fi
}

pat=${TESTS:-.}
for t in "$BUILD"/tests/unit/test_* "$BUILD"/tests/contract/test_*; do
  [ -x "$t" ] && [[ $t != *.o ]] && [[ $t != *.d ]] || continue
  [[ $(basename "$t") =~ $pat ]] || continue
  run_cmocka "$t"
done
for t in tests/e2e/test_*.sh; do
  [ -f "$t" ] || continue
  [[ $(basename "$t") =~ $pat ]] || continue
  run_script "$t"
done

echo
if [ "$failed" -ne 0 ]; then
  echo "failed: ${failed_names[*]}"
  echo "logs in $logdir"
else
  rm -rf "$SLUICE_TEST_ROOT"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
