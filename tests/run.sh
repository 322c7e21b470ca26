#!/usr/bin/env bash
# run.sh — runs every test: the cmocka unit and contract binaries, then the
# end-to-end scripts against the real programs. Prints one line per test
# program and, last, "tests: N passed, N failed, N skipped" counting
# individual test cases. TESTS=pattern runs only the programs whose name
# matches (an end-to-end script matches by file name or by its run's name,
# e.g. test_pipeline[s3]).
#
# A skip is a failure: every feature the tests cover is built and its
# servers are installed by `make test` (tools/install-deps.sh test), so a
# cmocka case that skips, a missing server or backend, or an S3 run that
# cannot start fails the run (exit 1). Skipped cases are counted in
# "N skipped"; each suite or run that skipped adds one to "N failed".
#
# For the whole run it starts a redis-server and an s3rver on loopback
# (tests/support/servers.sh), plus a second, scratch redis-server that tests
# may flush, and exports for the suites (a value set beforehand wins):
#   SLUICE_TEST_STORE_URLS  the s3:// store
#   SLUICE_TEST_LEASE_URLS  redis:// and unix://
#   SLUICE_TEST_DEDUP_URLS  redis://
#   SLUICE_TEST_REDIS_URL   the scratch Redis
#   SLUICE_TEST_S3_URL      an s3:// store URL for backend unit tests
# so the contract suites run on the embedded default and on S3 + Redis.
# An end-to-end script whose header has a line "# backends: fs s3" runs once
# per backend listed (and in SLUICE_TEST_BACKENDS, default "fs s3"), with
# SLUICE_TEST_BACKEND set; its lib.sh starts private servers for s3.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
export BIN BUILD
export SLUICE_TEST_ROOT=${SLUICE_TEST_ROOT:-$(mktemp -d /tmp/sluice-test.XXXXXX)}
logdir=$SLUICE_TEST_ROOT/logs
mkdir -p "$logdir"
passed=0 failed=0 skipped=0 failed_names=()
unset SLUICE_TEST_BACKEND

. tests/support/servers.sh
trap srv_stop_all EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM

# built BACKEND... — the library was built with these backend sources.
lib_members=$(ar t "$BUILD/libpipe.a" 2>/dev/null)
built() {
  local m
  for m in "$@"; do grep -qx "$m.o" <<<"$lib_members" || return 1; done
}

# The run's servers and backends. Without them the suites that need them
# cannot run: that is reported as a failure (see the top), and the rest runs.
srv=$SLUICE_TEST_ROOT/servers
s3_why=
if srv_have_redis && redis_start "$srv/redis-scratch" && scratch_url=$REDIS_URL &&
  redis_start "$srv/redis"; then
  export SLUICE_TEST_REDIS_URL=${SLUICE_TEST_REDIS_URL-$scratch_url}
  export SLUICE_TEST_LEASE_URLS=${SLUICE_TEST_LEASE_URLS-$REDIS_URL${REDIS_UNIX_URL:+ $REDIS_UNIX_URL}}
  export SLUICE_TEST_DEDUP_URLS=${SLUICE_TEST_DEDUP_URLS-$REDIS_URL}
else
  s3_why="redis-server does not start (tools/install-deps.sh test)"
fi
if srv_have_s3rver && s3rver_start "$srv/s3"; then
  export SLUICE_TEST_S3_URL=${SLUICE_TEST_S3_URL-$(s3_store_url unit)}
  # The bucket's root: S3 caps the whole key, prefix included, at 1024
  # bytes, and the suite puts a key of the store's full 1024.
  export SLUICE_TEST_STORE_URLS=${SLUICE_TEST_STORE_URLS-$(s3_store_url)}
else
  s3_why="${s3_why:+$s3_why, }s3rver does not start (tools/install-deps.sh test)"
fi
if ! built store_s3 lease_redis dedup_redis; then
  s3_why="${s3_why:+$s3_why, }store_s3, lease_redis or dedup_redis not in $BUILD/libpipe.a"
fi
if [ -n "$s3_why" ]; then
  printf 'FAIL  %-36s (%s)\n' "servers and backends" "$s3_why"
  failed=$((failed + 1))
  failed_names+=("servers")
fi
e2e_backends=${SLUICE_TEST_BACKENDS:-fs s3}

run_cmocka() {
  local t=$1 name log
  name=$(basename "$t")
  log=$logdir/$name.log
  local start=$SECONDS
  CMOCKA_MESSAGE_OUTPUT=stdout "$t" >"$log" 2>&1
  local rc=$?
  # A binary may run several groups (the contract suites: one per backend).
  local p f k
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
  k=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$k" -eq 0 ]; then f=1; fi # it ran nothing
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + k))
  if [ "$f" -eq 0 ] && [ "$k" -eq 0 ]; then
    printf 'ok    %-36s %3d cases  %3ds\n' "$name" "$p" $((SECONDS - start))
  elif [ "$f" -eq 0 ]; then
    printf 'FAIL  %-36s %3d skipped (log: %s)\n' "$name" "$k" "$log"
    grep -E '^\[  SKIPPED \] [a-z_]' "$log" | sort -u | head -20 | sed 's/^/      /'
    failed=$((failed + 1))
    failed_names+=("$name")
  else
    printf 'FAIL  %-36s %3d failed (log: %s)\n' "$name" "$f" "$log"
    grep -E '^\[  (FAILED|ERROR) |^\[  ERROR|ERROR:|Sanitizer|runtime error' "$log" | head -20 | sed 's/^/      /'
    failed_names+=("$name")
  fi
}

# run_script SCRIPT [BACKEND]
run_script() {
  local t=$1 backend=${2:-} name log
  name=$(basename "$t" .sh)
  log=$logdir/$name.log
  if [ -n "$backend" ]; then
    name="${name}[$backend]"
    log=$logdir/$(basename "$t" .sh).$backend.log
  fi
  local start=$SECONDS
  if [ -n "$backend" ]; then
    SLUICE_TEST_BACKEND=$backend bash "$t" >"$log" 2>&1
  else
    bash "$t" >"$log" 2>&1
  fi
  local rc=$?
  local p f
  p=$(grep -c '^ok ' "$log")
  f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi # it checked nothing
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
  base=$(basename "$t")
  backends=$(sed -n '1,10s/^# backends: *//p' "$t" | head -1)
  if [ -z "$backends" ]; then
    [[ $base =~ $pat ]] && run_script "$t"
    continue
  fi
  for b in $backends; do
    [[ " $e2e_backends " == *" $b "* ]] || continue
    [[ $base =~ $pat || "${base%.sh}[$b]" =~ $pat ]] || continue
    if [ "$b" = s3 ] && [ -n "$s3_why" ]; then
      printf 'FAIL  %-36s skipped (%s)\n' "${base%.sh}[$b]" "$s3_why"
      skipped=$((skipped + 1)) failed=$((failed + 1))
      failed_names+=("${base%.sh}[$b]")
      continue
    fi
    run_script "$t" "$b"
  done
done

echo
srv_stop_all
if [ "$failed" -ne 0 ]; then
  echo "failed: ${failed_names[*]}"
  echo "logs in $logdir"
else
  rm -rf "$SLUICE_TEST_ROOT"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
