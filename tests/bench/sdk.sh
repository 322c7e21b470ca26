#!/usr/bin/env bash
# sdk.sh CORPUS [EVENTS] — Segment-format batches through the filter side by
# side with the native API in the same run: the same events, the same client
# (tests/node/bench_post.mjs, 16 keep-alive connections, batches of 500,
# bodies built before the filter's CPU is read, which covers the sending
# alone), a fresh filter (file store, flush age 20ms) per run. The forms take
# turns, run after run, so the machine's load weighs on each alike:
#   ndjson   the native events as NDJSON to /v1/events (as `sluicectl send`
#            posts them: the throughput rows of docs/benchmarks.md)
#   native   the same events as one JSON document, {"events": [...]}, to
#            /v1/events: the body shape of a Segment batch
#   segment  the same events as Segment track calls, {"batch": [...],
#            "sentAt"}, to /v1/batch
# Prints one table row per form:
#   form|path|body|events|events/s per filter core|MB/s per filter core|events/s wall|filter busy|runs
# "filter busy" is the filter's CPU time over the sending's wall time: near
# 100% the client kept the filter busy (per-request wake-ups are not what
# the per-core figure measures). Figures, never assertions. BENCH_RUNS
# (default 3) runs per form, medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=$1
events=${2:-400000}
BIN=${BIN:-bin} BUILD=${BUILD:-build} RUNS=${BENCH_RUNS:-3} PY=${PYTHON3:-/usr/bin/python3}
forms=(ndjson native segment)
work=$PWD/$BUILD/bench/sdk
mkdir -p "$work"
tck=$(getconf CLK_TCK)
pid= client=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ -n "$client" ] && kill "$client" 2>/dev/null; true' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one_run FORM — a fresh filter, the client's bodies built, then the filter's
# CPU read around the sending; appends "JSON t0 t1" to FORM.runs.
one_run() {
  local form=$1 port t0 t1 rc=0
  rm -rf "$work/store" "$work/ready"
  "$BIN/sluice-filter" --store "file://$work/store" --listen 127.0.0.1:0 --admin off --raw=false \
    --flush-age 20ms >"$work/filter.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q 'ingest listening' "$work/filter.log" && break; sleep 0.05; done
  port=$(sed -n 's/.*ingest listening.* port=\([0-9]*\).*/\1/p' "$work/filter.log")
  [ -n "$port" ] || {
    echo "sdk.sh: the filter did not start: $(ps -o stat=,wchan= -p "$pid" || echo exited) (see $work/filter.log)" >&2
    exit 1
  }
  node tests/node/bench_post.mjs --url "http://127.0.0.1:$port" --form "$form" \
    --input "$corpus" --events "$events" --ready "$work/ready" >"$work/client.out" &
  client=$!
  for _ in $(seq 1200); do [ -s "$work/ready" ] && break; sleep 0.05; done
  [ -s "$work/ready" ] || { echo "sdk.sh: the client did not get ready" >&2; exit 1; }
  t0=$(cpu_ticks "$pid")
  kill -USR2 "$client"
  wait "$client"
  client=
  t1=$(cpu_ticks "$pid")
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { echo "sdk.sh: the filter exited $rc on SIGTERM (see $work/filter.log)" >&2; exit 1; }
  pid=
  echo "$(cat "$work/client.out") $t0 $t1" >>"$work/$form.runs"
}

for form in "${forms[@]}"; do : >"$work/$form.runs"; done
for _ in $(seq "$RUNS"); do
  for form in "${forms[@]}"; do one_run "$form"; done
done
for form in "${forms[@]}"; do
  "$PY" - "$work/$form.runs" "$form" "$tck" <<'PY'
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
busy = statistics.median(r['cpu'] / r['elapsed_s'] for r in rows)
path, body = {'ndjson': ('/v1/events', 'NDJSON'), 'native': ('/v1/events', '{"events": [...]}'),
              'segment': ('/v1/batch', '{"batch": [...]}')}[sys.argv[2]]
print(f"{sys.argv[2]}|{path}|{body}|{rows[0]['events']}|{per_core:,.0f}|{mb:,.1f}|{wall:,.0f}|{busy:.0%}|{len(rows)}")
PY
done
