#!/usr/bin/env bash
# lists.sh — what the dispatcher's polling costs in LIST requests (the
# costliest request on S3) on a file store, and how soon a late object in a
# lookback partition that is not hot is combined; called by run.sh. Prints
# one markdown table row: idle LIST/s at --poll 1s, the bound the design
# gives (jobs/combine/ and filtered/ of the hot partitions every pass, at
# most 3/s; the other lookback partitions, 5 at most, every
# --lookback-every), and the late object's delay against --lookback-every.
# Figures, never assertions (tests/e2e/test_dispatcher_lists.sh checks the
# behaviour).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
work=$PWD/$BUILD/bench/lists
every=4 # --lookback-every, seconds
rm -rf "$work"
mkdir -p "$work"
store=file://$work/store
common=(--store "$store" --leases "local://$work/leases")
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; true' EXIT

# lists PORT — the dispatcher's LIST requests so far.
lists() {
  curl -s "http://127.0.0.1:$1/metrics" |
    sed -n 's/^sluice_store_requests_total{[^}]*op="list"[^}]*} \([0-9.e+]*\)$/\1/p' |
    awk '{ s += $1 } END { printf "%d\n", s }'
}
count() { "$BIN/sluicectl" ls --store "$store" "$1/" | awk 'NF { n++ } END { print n + 0 }'; }
# late NAME SEED — a raw object landed two hours ago, filtered into its hour.
late() {
  mkdir -p "$work/store/raw/late"
  "$BIN/sluicectl" gen --count 200 --seed "$2" | zstd -q -c >"$work/store/raw/late/$1.ndjson.zst"
  touch -d '2 hours ago' "$work/store/raw/late/$1.ndjson.zst"
  "$BIN/sluice-filter" "${common[@]}" --once --admin off >>"$work/filter.log" 2>&1
}
now() { date +%s.%N; }

"$BIN/sluicectl" gen --count 3000 --seed 7 >"$work/gen.ndjson"
"$BIN/sluice-filter" --store "$store" --input "$work/gen.ndjson" --admin off 2>>"$work/filter.log"
late old 8
"$BIN/sluice-dispatcher" "${common[@]}" --admin 127.0.0.1:0 --max-wait 200ms \
  --lookback-every "${every}s" --full-scan 1h >"$work/dispatcher.log" 2>&1 &
pids+=("$!")
"$BIN/sluice-combiner" "${common[@]}" --admin off --poll 200ms >"$work/combiner.log" 2>&1 &
pids+=("$!")
port=
for _ in $(seq 200); do
  port=$(sed -n 's/.*msg="admin listening".* port=\([0-9]*\).*/\1/p' "$work/dispatcher.log")
  [ -n "$port" ] && break
  sleep 0.05
done
for _ in $(seq 600); do
  [ "$(count filtered)" -eq "$(count state/combine)" ] && [ "$(count jobs/combine)" -eq 0 ] && break
  sleep 0.1
done

sleep 2
a=$(lists "$port")
t0=$(now)
sleep 10
b=$(lists "$port")
t1=$(now)
rate=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", (b - a) / (t1 - t0) }')
bound=$(awk -v e="$every" 'BEGIN { printf "%.2f", 3 + 5 / e }')

old_hour=$(date -u -d '2 hours ago' +'dt=%Y-%m-%d/hr=%H')
before=$(count "state/combine/$old_hour")
t0=$(now)
late late 9
took=never
for _ in $(seq 600); do
  if [ "$(count "state/combine/$old_hour")" -gt "$before" ]; then
    took=$(awk -v t0="$t0" -v t1="$(now)" 'BEGIN { printf "%.1f s", t1 - t0 }')
    break
  fi
  sleep 0.1
done
echo "| $rate | $bound | $took | ${every} s |"
