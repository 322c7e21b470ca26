#!/usr/bin/env bash
# lists.sh — what polling costs in LIST requests (the costliest request on
# S3) on a file store; called by run.sh. Figures, never assertions
# (tests/e2e/test_dispatcher_lists.sh and test_idle_lists.sh check the
# behaviour).
#
# `lists.sh` (the dispatcher alone) prints one markdown table row: idle
# LIST/s at --poll 1s, the bound the design gives (jobs/combine/ and
# filtered/ of the hot partitions every pass, at most 3/s; the other
# lookback partitions, 5 at most, every --lookback-every), and how soon a
# late object in a lookback partition that is not hot is combined.
#
# `lists.sh pipeline` runs the four daemons with their default settings
# (poll 1s, raw_poll 10s, idle_list 60s where the binaries have it: BIN may
# point at older ones for a before/after) and prints one row: the whole
# idle pipeline's LIST/s over IDLE_WINDOW seconds (default 130, two
# idle_list periods), by stage, its S3 price per 30 days, and the pick-up
# delay of one new event (sent over HTTP until its split manifest exists),
# median, min and max of PICKUP_RUNS (default 5). `lists.sh pipeline s3`
# does the same on S3 (s3rver) with leases and de-duplication in Redis,
# both started here on loopback (tests/support/servers.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
PY=${PYTHON3:-/usr/bin/python3}

# lists URL — LIST requests a daemon made so far (its /metrics at URL).
lists() {
  curl -s "$1/metrics" |
    sed -n 's/^sluice_store_requests_total{[^}]*op="list"[^}]*} \([0-9.e+]*\)$/\1/p' |
    awk '{ s += $1 } END { printf "%d\n", s }'
}
now() { date +%s.%N; }
# port_of LOG WHAT — the port a daemon printed ("admin" or "ingest").
port_of() {
  local p=
  for _ in $(seq 200); do
    p=$(sed -n "s/.*msg=\"$2 listening\".* port=\([0-9]*\).*/\1/p" "$1" | tail -1)
    [ -n "$p" ] && break
    sleep 0.05
  done
  echo "$p"
}

pipeline() {
  local backend=${1:-fs}
  local work=$PWD/$BUILD/bench/lists-pipeline-$backend window=${IDLE_WINDOW:-130}
  local runs=${PICKUP_RUNS:-5} store view leases dedup=local
  rm -rf "$work"
  mkdir -p "$work"
  pids=()
  trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; srv_stop_all 2>/dev/null; true' EXIT
  if [ "$backend" = s3 ]; then
    . tests/support/servers.sh
    redis_start "$work/redis" >/dev/null && s3rver_start "$work/s3" >/dev/null ||
      { echo "lists.sh: redis-server or s3rver does not start" >&2; exit 1; }
    store=$(s3_store_url bench)
    view=$S3_BUCKET_DIR/bench
    leases=$REDIS_URL
    dedup=$REDIS_URL
  else
    mkdir -p "$work/store/raw"
    store=file://$work/store
    view=$work/store
    leases=local://$work/leases
  fi
  local common=(--store "$store" --leases "$leases")
  "$BIN/sluice-filter" "${common[@]}" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    >"$work/filter.log" 2>&1 &
  pids+=("$!")
  local s
  "$BIN/sluice-dispatcher" "${common[@]}" --admin 127.0.0.1:0 >"$work/dispatcher.log" 2>&1 &
  pids+=("$!")
  "$BIN/sluice-combiner" "${common[@]}" --admin 127.0.0.1:0 >"$work/combiner.log" 2>&1 &
  pids+=("$!")
  "$BIN/sluice-splitter" "${common[@]}" --dedup "$dedup" --admin 127.0.0.1:0 \
    >"$work/splitter.log" 2>&1 &
  pids+=("$!")
  local ingest urls=()
  ingest="http://127.0.0.1:$(port_of "$work/filter.log" ingest)"
  for s in filter dispatcher combiner splitter; do
    urls+=("http://127.0.0.1:$(port_of "$work/$s.log" admin)")
  done
  drained() { "$PY" tests/e2e/verify.py drained "$view" >/dev/null 2>&1; }
  splits() { "$BIN/sluicectl" ls --store "$store" manifests/split/ | awk 'NF { n++ } END { print n + 0 }'; }
  "$BIN/sluicectl" gen --count 2000 --seed 7 >"$work/seed.ndjson"
  "$BIN/sluicectl" send "$work/seed.ndjson" --url "$ingest" --batch 200 2>>"$work/send.log"
  for _ in $(seq 1200); do drained && [ "$(splits)" -gt 0 ] && break; sleep 0.1; done
  sleep 5
  local a=() b=() u t0 t1
  for u in "${urls[@]}"; do a+=("$(lists "$u")"); done
  t0=$(now)
  sleep "$window"
  for u in "${urls[@]}"; do b+=("$(lists "$u")"); done
  t1=$(now)
  local tw
  tw=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  local delays=() i n0 d
  for i in $(seq "$runs"); do
    "$BIN/sluicectl" gen --count 1 --seed $((100 + i)) >"$work/one.ndjson"
    n0=$(splits)
    t0=$(now)
    "$BIN/sluicectl" send "$work/one.ndjson" --url "$ingest" 2>>"$work/send.log"
    d=never
    for _ in $(seq 1200); do
      if [ "$(splits)" -gt "$n0" ]; then d=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'); break; fi
      sleep 0.05
    done
    delays+=("$d")
    sleep 2
  done
  awk -v w="$tw" -v a="${a[*]}" -v b="${b[*]}" -v d="${delays[*]}" 'BEGIN {
    na = split(a, x, " "); split(b, y, " "); nd = split(d, z, " ")
    tot = 0; by = ""
    for (i = 1; i <= na; i++) { r = (y[i] - x[i]) / w; tot += r; by = by (i > 1 ? ", " : "") sprintf("%.2f", r) }
    # delays: median, min, max (numeric sort; "never" sorts last)
    for (i = 1; i <= nd; i++) for (j = i + 1; j <= nd; j++) if ((z[j] + 0 < z[i] + 0 && z[j] != "never") || z[i] == "never") { t = z[i]; z[i] = z[j]; z[j] = t }
    printf "| %.2f | %s | $%.2f | %s s (%s–%s) |\n", tot, by, tot * 86400 * 30 / 1000 * 0.005, z[int((nd + 1) / 2)], z[1], z[nd]
  }'
}

if [ "${1:-}" = pipeline ]; then
  pipeline "${2:-fs}"
  exit 0
fi
work=$PWD/$BUILD/bench/lists
every=4 # --lookback-every, seconds
rm -rf "$work"
mkdir -p "$work"
store=file://$work/store
common=(--store "$store" --leases "local://$work/leases")
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; true' EXIT

count() { "$BIN/sluicectl" ls --store "$store" "$1/" | awk 'NF { n++ } END { print n + 0 }'; }
# late NAME SEED — a raw object landed two hours ago, filtered into its hour.
late() {
  mkdir -p "$work/store/raw/late"
  "$BIN/sluicectl" gen --count 200 --seed "$2" | zstd -q -c >"$work/store/raw/late/$1.ndjson.zst"
  touch -d '2 hours ago' "$work/store/raw/late/$1.ndjson.zst"
  "$BIN/sluice-filter" "${common[@]}" --once --admin off >>"$work/filter.log" 2>&1
}

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
a=$(lists "http://127.0.0.1:$port")
t0=$(now)
sleep 10
b=$(lists "http://127.0.0.1:$port")
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
