#!/usr/bin/env bash
# pipeline.sh EVENTS [RATE] — whole-pipeline figures with default settings: the
# four stages as daemons on a fresh file:// store, EVENTS events of the bench
# corpus sent with 16 connections in batches of 500 — or, with RATE, offered
# at RATE events/s (`sluicectl send --rate`, as many connections as 2 s of
# the rate needs, 16 to 256, as tests/bench/sustain.sh); then events/s per core
# (events ÷ CPU seconds of all four stages) and the latency from an event's
# received_at to the write of the split file that holds it (p50/p99).
# Prints one line: "events cpu_s wall_s p50_s p99_s". Called by run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
PY=${PYTHON3:-/usr/bin/python3}
events=${1:-200000}
rate=${2:-0}
. tests/bench/daemons.sh
conns=$(bench_conns "$rate" 500)
work=$PWD/$BUILD/bench/pipeline
corpus=$PWD/$BUILD/bench/corpus-1m.ndjson
rm -rf "$work"
mkdir -p "$work"
store=$work/store
common=(--store "file://$store" --leases "local://$work/leases" --admin off)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done' EXIT
"$BIN/sluice-filter" "${common[@]}" --listen 127.0.0.1:0 --raw=false >"$work/filter.log" 2>&1 &
pids+=($!)
for s in dispatcher combiner splitter; do
  "$BIN/sluice-$s" "${common[@]}" >"$work/$s.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do grep -q 'ingest listening' "$work/filter.log" && break; sleep 0.05; done
port=$(sed -n 's/.*ingest listening.* port=\([0-9]*\).*/\1/p' "$work/filter.log")
c0=$(stage_ticks)
t0=$(date +%s%N)
head -n "$events" "$corpus" | "$BIN/sluicectl" send - --url "http://127.0.0.1:$port" \
  --batch 500 --concurrency "$conns" --rate "$rate" 2>/dev/null
count() { "$BIN/sluicectl" ls "$1" --store "file://$store" 2>/dev/null | wc -l; }
for _ in $(seq 1200); do
  f=$(count filtered/)
  if [ "$(count state/combine/)" -eq "$f" ] && [ "$(count jobs/)" -eq 0 ] &&
     [ "$(count manifests/split/)" -eq "$(count manifests/combined/)" ]; then break; fi
  sleep 0.25
done
t1=$(date +%s%N)
c1=$(stage_ticks)
bench_stop_stages || exit 1 # a stage that fails on SIGTERM stops the bench
"$PY" - "$store" "$((c1 - c0))" "$(getconf CLK_TCK)" "$(( (t1 - t0) / 1000000 ))" <<'PY'
import datetime, glob, json, os, subprocess, sys
store, ticks, tck, wall_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lat = []
for path in glob.glob(os.path.join(store, 'split', '*', '*', '*', '*.ndjson.zst')):
    written = os.stat(path).st_mtime
    data = subprocess.run(['zstd', '-dcq', path], capture_output=True, check=True).stdout
    for line in data.splitlines():
        i = line.find(b'"received_at":"')
        ts = line[i + 15:i + 39].decode()
        t = datetime.datetime.strptime(ts, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
            tzinfo=datetime.timezone.utc).timestamp()
        lat.append(written - t)
lat.sort()
n = len(lat)
print(n, ticks / tck, wall_ms / 1000, lat[n // 2], lat[min(n - 1, int(n * 0.99))])
PY
