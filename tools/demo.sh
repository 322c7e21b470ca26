#!/usr/bin/env bash
# demo.sh — the main job, end to end on the embedded default: a fresh
# file:// store, the filter as a daemon, 200,000 generated events (with
# duplicates and malformed ones) sent over HTTP, a clean stop, and a summary
# of what was written. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
COUNT=${DEMO_EVENTS:-200000}
data=$PWD/demo-data
work=$(mktemp -d /tmp/sluice-demo.XXXXXX)
filter_pid=
trap '[ -n "$filter_pid" ] && kill "$filter_pid" 2>/dev/null; rm -rf "$work"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$data"
say "starting sluice-filter on a fresh store: file://$data"
"$BIN/sluice-filter" --store "file://$data" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
  >"$work/filter.log" 2>&1 &
filter_pid=$!
for _ in $(seq 100); do grep -q 'ingest listening' "$work/filter.log" && break; sleep 0.1; done
port=$(sed -n 's/.*ingest listening.* port=\([0-9]*\).*/\1/p' "$work/filter.log")
admin=$(sed -n 's/.*admin listening.* port=\([0-9]*\).*/\1/p' "$work/filter.log")
[ -n "$port" ] || { cat "$work/filter.log"; exit 1; }
echo "ingest: http://127.0.0.1:$port/v1/events   metrics: http://127.0.0.1:$admin/metrics"

say "generating $COUNT events (2% client retries, 1% malformed, 2% without id)"
"$BIN/sluicectl" gen --count "$COUNT" --seed 42 --dup-rate 0.02 --bad-rate 0.01 \
  --no-id-rate 0.02 >"$work/events.ndjson"
ls -lh "$work/events.ndjson" | awk '{print "  " $5 " of NDJSON"}'

say "sending them over HTTP: batches of 500, 32 connections"
"$BIN/sluicectl" send "$work/events.ndjson" --url "http://127.0.0.1:$port" --batch 500 \
  --concurrency 32

say "what the filter counted (/metrics)"
curl -s "http://127.0.0.1:$admin/metrics" \
  | grep -E '^sluice_filter_(events|flushes|requests)' | grep -v ' 0$' | sed 's/^/  /'

say "stopping the filter (SIGTERM: flush, answer, exit 0)"
kill -TERM "$filter_pid"
wait "$filter_pid" && echo "  exited 0"
filter_pid=

say "what is in the store"
"$BIN/sluicectl" status --store "file://$data"

say "rejections by reason"
"$BIN/sluicectl" ls rejected/ --store "file://$data" \
  | xargs -r "$BIN/sluicectl" cat --store "file://$data" \
  | grep -a -o '"reason":"[a-z_0-9]*"' | sort | uniq -c | sort -rn | sed 's/"reason"://; s/^/  /'

say "one accepted event, as stored"
first=$("$BIN/sluicectl" ls filtered/ --store "file://$data" | head -1)
"$BIN/sluicectl" cat "$first" --store "file://$data" | awk 'NR == 1 { print substr($0, 1, 400) "..." }'
echo
echo "The files are under $data (browse with: bin/sluicectl ls --store file://$data)."
