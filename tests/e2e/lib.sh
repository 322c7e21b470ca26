# lib.sh — shared helpers for the end-to-end tests: a scratch directory,
# the backends to run on, starting and stopping the real programs on
# loopback ports they pick themselves, and TAP-like result lines that
# tests/run.sh counts.
#
# SLUICE_TEST_BACKEND picks the backends (tests/run.sh sets it for the
# scripts whose header says "# backends: fs s3"):
#   fs  (default) the embedded default: file://$T/store, local leases and
#       de-duplication
#   s3  a private s3rver and redis-server for this test, started here and
#       stopped at exit: the store on S3, leases and de-duplication in Redis
# Tests use STORE_URL, LEASE_URL and DEDUP_URL, and read what was written
# through STORE_VIEW: a directory that verify.py understands (the file
# store's root, or the s3rver bucket directory under the store's prefix).
set -uo pipefail
BIN=${BIN:-bin}
BIN=$(cd "$BIN" && pwd)
# The system python starts fast; a pyenv shim can take seconds on a busy machine.
PY=${PYTHON3:-/usr/bin/python3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${SLUICE_TEST_ROOT:-/tmp}
T=$(mktemp -d "$ROOT/e2e.$(basename "$0" .sh).XXXXXX")
PIDS=()
FAILS=0
. "$HERE/../support/servers.sh"

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; FAILS=$((FAILS + 1)); }
# check NAME CMD... — runs CMD, reports NAME.
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
note() { echo "# $*"; }

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  srv_stop_all
  wait 2>/dev/null
  if [ "$FAILS" -eq 0 ]; then rm -rf "$T"; else echo "# scratch kept in $T"; fi
}
trap cleanup EXIT

BACKEND=${SLUICE_TEST_BACKEND:-fs}
case $BACKEND in
  fs)
    STORE_URL=file://$T/store
    LEASE_URL=local://$T/leases
    DEDUP_URL=local
    STORE_VIEW=$T/store
    ;;
  s3)
    if ! srv_have_redis || ! srv_have_s3rver; then
      echo "not ok - redis-server and s3rver are installed (tools/install-deps.sh test)"
      exit 1
    fi
    redis_start "$T/redis" || { echo "not ok - redis-server starts"; exit 1; }
    s3rver_start "$T/s3" || { echo "not ok - s3rver starts"; exit 1; }
    STORE_URL=$(s3_store_url e2e)
    LEASE_URL=$REDIS_URL
    DEDUP_URL=$REDIS_URL
    STORE_VIEW=$S3_BUCKET_DIR/e2e
    ;;
  *) echo "not ok - unknown SLUICE_TEST_BACKEND '$BACKEND' (fs or s3)"; exit 1 ;;
esac
echo "# backend $BACKEND: store $STORE_URL leases $LEASE_URL dedup $DEDUP_URL"

# wait_log FILE PATTERN [SECONDS] — waits until FILE has a line matching PATTERN.
wait_log() {
  local file=$1 pat=$2 limit=${3:-10} i
  for ((i = 0; i < limit * 20; i++)); do
    grep -q -- "$pat" "$file" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "# timed out waiting for '$pat' in $file" >&2
  tail -5 "$file" >&2
  return 1
}

# start_filter NAME ARGS... — starts sluice-filter on an ephemeral port with
# its log in $T/NAME.log; sets FILTER_PID and FILTER_URL.
start_filter() {
  local name=$1; shift
  "$BIN/sluice-filter" --listen 127.0.0.1:0 --admin off --raw=false "$@" >"$T/$name.log" 2>&1 &
  FILTER_PID=$!
  PIDS+=("$FILTER_PID")
  wait_log "$T/$name.log" 'msg="ingest listening"' 10 || return 1
  local port
  port=$(sed -n 's/.*msg="ingest listening".* port=\([0-9]*\).*/\1/p' "$T/$name.log" | tail -1)
  FILTER_URL="http://127.0.0.1:$port"
}

# stop_pid PID [SECONDS] — SIGTERM, then waits; returns the exit status.
stop_pid() {
  local pid=$1 limit=${2:-20} i
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < limit * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  wait "$pid"
}

# post PATH ARGS... — curl to the filter; prints "STATUS BODY".
post() {
  local path=$1; shift
  curl -s -o "$T/resp.body" -w '%{http_code}' -X POST "$FILTER_URL$path" "$@" \
    >"$T/resp.code" 2>/dev/null
  echo "$(cat "$T/resp.code") $(cat "$T/resp.body" 2>/dev/null)"
}

finish() {
  [ "$FAILS" -eq 0 ]
}

# start_stage NAME PROGRAM ARGS... — starts bin/sluice-PROGRAM as a daemon
# with its log in $T/NAME.log; its pid goes to STAGE_PID and PIDS.
start_stage() {
  local name=$1 prog=$2; shift 2
  "$BIN/sluice-$prog" --admin off "$@" >>"$T/$name.log" 2>&1 &
  STAGE_PID=$!
  PIDS+=("$STAGE_PID")
}

# wait_drained STORE_VIEW [SECONDS] — until everything filtered is split.
wait_drained() {
  local store=$1 limit=${2:-60} i
  for ((i = 0; i < limit * 4; i++)); do
    "$PY" "$HERE/verify.py" drained "$store" && return 0
    sleep 0.25
  done
  return 1
}

# store_put KEY FILE [DATE] — writes FILE to the test's store at KEY, through
# the store's own interface (an S3 PUT straight to s3rver, past the verifier), then, with DATE (as `touch
# -d` takes it), makes that its mtime, which the store reports as the
# object's age: s3rver takes Last-Modified from its file's mtime.
store_put() {
  local key=$1 file=$2 date=${3:-} path
  case $BACKEND in
    fs) path=$STORE_VIEW/$key
        mkdir -p "$(dirname "$path")"
        # A dot name, as the file store's own temp files: never listed.
        cp "$file" "$(dirname "$path")/.put.tmp" && mv "$(dirname "$path")/.put.tmp" "$path" ||
          return 1 ;;
    s3) path=$STORE_VIEW/$key._S3rver_object
        [ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$file" \
          "http://$S3_RAW_ENDPOINT/$SRV_BUCKET/${STORE_VIEW#"$S3_BUCKET_DIR/"}/$key")" = 200 ] || return 1 ;;
  esac
  [ -z "$date" ] || touch -d "$date" "$path"
}

# store_keys PREFIX — the keys under PREFIX in the test's store, sorted.
store_keys() { "$PY" "$HERE/verify.py" keys "$STORE_VIEW" "$1"; }

# admin_port LOGFILE — the admin port a stage printed at start.
admin_port() {
  wait_log "$1" 'msg="admin listening"' 10 >/dev/null 2>&1 || return 1
  sed -n 's/.*msg="admin listening".* port=\([0-9]*\).*/\1/p' "$1" | tail -1
}

# Helpers for tests that build a file:// store by hand. put and the ages
# count back from $now (set it before using them).
hour_dir() { date -u -d "@$1" +'dt=%Y-%m-%d/hr=%H'; } # hour_dir EPOCH
hour_id() { date -u -d "@$1" +'%Y%m%d%H'; }
# put ROOT KEY AGE_SECONDS [CONTENT] — writes an object with that age.
put() {
  mkdir -p "$(dirname "$1/$2")"
  printf '%s' "${4:-x}" >"$1/$2"
  touch -d "@$((now - $3))" "$1/$2"
}
# tree DIR — the object keys under DIR (temp files excluded), sorted.
tree() { (cd "$1" && find . -type f ! -name '.*' | sed 's|^\./||' | LC_ALL=C sort); }

# count_objects STORE_URL PREFIX — how many objects the store lists under
# PREFIX/, through `sluicectl ls` (the store's own listing, which never shows
# the hidden temp file a killed put leaves behind). Prints -1 and fails if
# the store cannot be listed.
count_objects() {
  local out
  out=$("$BIN/sluicectl" ls --store "$1" "${2%/}/" 2>/dev/null) || { echo -1; return 1; }
  awk 'NF { n++ } END { print n + 0 }' <<<"$out"
}

# wait_until SECONDS CMD... — runs CMD every 0.1 s until it succeeds; fails
# after SECONDS. A bound on a wait, never a measure of speed.
wait_until() {
  local limit=$1 i
  shift
  for ((i = 0; i < limit * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# listen_port LOGFILE — the ingest port a filter started with --listen
# 127.0.0.1:0 printed (the kernel picks a free one: no port is guessed).
listen_port() {
  wait_log "$1" 'msg="ingest listening"' 10 >/dev/null 2>&1 || return 1
  sed -n 's/.*msg="ingest listening".* port=\([0-9]*\).*/\1/p' "$1" | tail -1
}

# holds_lease DIR PID PREFIX — process PID holds a lease whose name starts
# with PREFIX (e.g. combine/: it is inside a job) in the local:// lease
# directory DIR.
holds_lease() {
  local f
  for f in "$1"/*.lease; do
    grep -q "^pid $2\$" "$f" 2>/dev/null && grep -q "^name [0-9]*:$3" "$f" &&
      ! grep -q '^owner -$' "$f" && return 0
  done
  return 1
}

# pipeline_once ARGS... — dispatcher, combiner, then splitter (with
# --dedup $DEDUP_URL), each --once with ARGS (--store, --leases, ...); logs
# in $T/STAGE.log. Fails at the first stage that fails.
pipeline_once() {
  local s extra
  for s in dispatcher combiner splitter; do
    extra=()
    [ "$s" = splitter ] && extra=(--dedup "$DEDUP_URL")
    "$BIN/sluice-$s" "$@" "${extra[@]}" --once --admin off >>"$T/$s.log" 2>&1 || return 1
  done
}
