#!/usr/bin/env bash
# sdk.sh CORPUS [EVENTS] — Segment-format batches through the filter side by
# side with the native API in the same run: the same events, the same client
# (tests/node/bench_post.mjs, 16 keep-alive connections, batches of 500,
# bodies built before the clock starts), a fresh filter (file store, flush
# age 20ms) per run. Prints one table row per form:
#   form|path|events|events/s per filter core|MB/s per filter core|events/s wall|runs
# Figures, never assertions. BENCH_RUNS (default 3) runs per form, medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=$1
events=${2:-400000}
BIN=${BIN:-bin} BUILD=${BUILD:-build} RUNS=${BENCH_RUNS:-3} PY=${PYTHON3:-/usr/bin/python3}
work=$PWD/$BUILD/bench/sdk
mkdir -p "$work"
tck=$(getconf CLK_TCK)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; true' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for form in native segment; do
  : >"$work/$form.runs"
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/store"
    "$BIN/sluice-filter" --store "file://$work/store" --listen 127.0.0.1:0 --admin off --raw=false \
      --flush-age 20ms >"$work/filter.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q 'ingest listening' "$work/filter.log" && break; sleep 0.05; done
    port=$(sed -n 's/.*ingest listening.* port=\([0-9]*\).*/\1/p' "$work/filter.log")
    # the client builds its bodies first; the filter's CPU is read around the sending only
    t0=$(cpu_ticks "$pid")
    out=$(node tests/node/bench_post.mjs --url "http://127.0.0.1:$port" --form "$form" \
      --input "$corpus" --events "$events")
    t1=$(cpu_ticks "$pid")
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || { echo "sdk.sh: the filter exited $rc on SIGTERM (see $work/filter.log)" >&2; exit 1; }
    pid=
    echo "$out $t0 $t1" >>"$work/$form.runs"
  done
  "$PY" - "$work/$form.runs" "$form" "$tck" "$RUNS" <<'PY'
import json, statistics, sys
rows = []
for l in open(sys.argv[1]):
    j, t0, t1 = l.rsplit(' ', 2)
    r = json.loads(j)
    r['cpu'] = (int(t1) - int(t0)) / int(sys.argv[3])
    rows.append(r)
assert all(r['accepted'] == r['events'] for r in rows), 'every event must be accepted'
per_core = statistics.median(r['events'] / r['cpu'] for r in rows)
mb = statistics.median(r['bytes'] / r['cpu'] / 1e6 for r in rows)
wall = statistics.median(r['events'] / r['elapsed_s'] for r in rows)
path = '/v1/batch' if sys.argv[2] == 'segment' else '/v1/events'
print(f"{sys.argv[2]}|{path}|{rows[0]['events']}|{per_core:,.0f}|{mb:,.1f}|{wall:,.0f}|{len(rows)}")
PY
done
