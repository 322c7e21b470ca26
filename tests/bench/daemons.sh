# shellcheck shell=bash
# daemons.sh — sourced by the benches that run the four stages as daemons
# (backends.sh, sustain.sh, pipeline.sh): start them on loopback ports they pick, read
# their ports and CPU ticks, scrape their /metrics, stop them. Expects BIN.
# The caller owns the array `pids` (stage pids, filter first) and the
# associative array `admin` (stage -> admin port); INGEST_PORT is the
# filter's ingest port after bench_start_stages.
# shellcheck disable=SC2034 # INGEST_PORT is read by the caller
BENCH_STAGES=(filter dispatcher combiner splitter)

# wait_line FILE PATTERN SECONDS
wait_line() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
log_port() { sed -n "s/.*msg=\"$2\".* port=\([0-9]*\).*/\1/p" "$1" | tail -1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stage_ticks() {
  local t=0 p
  for p in "${pids[@]}"; do t=$((t + $(ticks "$p"))); done
  echo "$t"
}

# bench_start_stages DIR STORE_URL LEASE_URL DEDUP_URL — the four stages
# with default settings (the dispatcher also gets BENCH_DISPATCHER_ARGS),
# logs in DIR/<stage>.log; returns 1 if one of them does not come up
# within 10 s.
bench_start_stages() {
  local dir=$1 common=(--store "$2" --leases "$3" --admin 127.0.0.1:0) s
  "$BIN/sluice-filter" "${common[@]}" --listen 127.0.0.1:0 >"$dir/filter.log" 2>&1 &
  pids=($!)
  # shellcheck disable=SC2086 # BENCH_DISPATCHER_ARGS is a list of flags
  "$BIN/sluice-dispatcher" "${common[@]}" ${BENCH_DISPATCHER_ARGS:-} >"$dir/dispatcher.log" 2>&1 &
  pids+=($!)
  "$BIN/sluice-combiner" "${common[@]}" >"$dir/combiner.log" 2>&1 &
  pids+=($!)
  "$BIN/sluice-splitter" "${common[@]}" --dedup "$4" >"$dir/splitter.log" 2>&1 &
  pids+=($!)
  for s in "${BENCH_STAGES[@]}"; do
    wait_line "$dir/$s.log" 'msg="admin listening"' 10 || { echo "$s did not start" >&2; return 1; }
    admin[$s]=$(log_port "$dir/$s.log" 'admin listening')
  done
  wait_line "$dir/filter.log" 'msg="ingest listening"' 10 || return 1
  INGEST_PORT=$(log_port "$dir/filter.log" 'ingest listening')
}

# bench_stop_stages — SIGTERM to every stage, then waits for each; 1 (and
# says which) when one did not exit 0, as every stage must on SIGTERM.
bench_stop_stages() {
  local p st rc=0
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] || continue
    st=0
    wait "$p" || st=$?
    if [ "$st" -ne 0 ]; then
      echo "a stage (pid $p) exited with status $st on SIGTERM" >&2
      rc=1
    fi
  done
  pids=()
  return "$rc"
}

# bench_metric STAGE NAME — the sum of NAME's samples on STAGE's /metrics.
bench_metric() {
  curl -sf "http://127.0.0.1:${admin[$1]}/metrics" |
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }'
}

# bench_conns RATE BATCH — connections for `sluicectl send --rate RATE`:
# the filter acknowledges after its flush (~1 s at the default flush_age),
# so each connection has one batch in flight for about a second; as many as
# 2 s of the rate needs, 16 to 256 (16 without a rate).
bench_conns() {
  local c=$((($1 * 2 + $2 - 1) / $2))
  [ "$c" -lt 16 ] && c=16
  [ "$c" -gt 256 ] && c=256
  echo "$c"
}
