#!/usr/bin/env bash
# backends: fs s3
# test_dispatcher_lists — what the dispatcher's polling costs in LIST
# requests (the costliest request on S3), and that listing less does not
# lose late objects:
#   - idle, with everything combined, it lists about twice a second, not 9
#     times: jobs/combine/ and filtered/ of the current hour every pass,
#     the previous hour only in the first minutes of an hour, the rest of the
#     lookback every --lookback-every, done markers only when a partition
#     has an object in neither a job nor the cached done set;
#   - a late object written into an hour inside the lookback but older than
#     the hot partitions is still combined within --lookback-every (plus a
#     pass and the combiner's poll), long before the next full scan.
. "$(dirname "$0")/lib.sh"

store=$STORE_VIEW
common=(--store "$STORE_URL" --leases "$LEASE_URL")
every=4 # --lookback-every, seconds

# lists PORT — the dispatcher's LIST requests so far.
lists() {
  curl -s "http://127.0.0.1:$1/metrics" |
    sed -n 's/^sluice_store_requests_total{[^}]*op="list"[^}]*} \([0-9.e+]*\)$/\1/p' |
    awk '{ s += $1 } END { printf "%d\n", s }'
}
# count PREFIX — objects under PREFIX.
count() { store_keys "$1" | grep -c . ; }
# raw_late NAME AGO — a raw object of 200 events landed AGO ("2 hours ago"),
# filtered into its old partition by one filter pass.
raw_late() {
  "$BIN/sluicectl" gen --count 200 --seed "$3" >"$T/$1.ndjson" &&
    zstd -q -c "$T/$1.ndjson" >"$T/$1.ndjson.zst" &&
    store_put "raw/late/$1.ndjson.zst" "$T/$1.ndjson.zst" "$2" &&
    "$BIN/sluice-filter" "${common[@]}" --once --admin off >>"$T/filter-once.log" 2>&1
}

# Some work in the current hour and in an hour of the lookback, combined.
"$BIN/sluicectl" gen --count 3000 --seed 7 >"$T/gen.ndjson"
split -n l/6 -d -a 2 "$T/gen.ndjson" "$T/part."
for f in "$T"/part.*; do
  "$BIN/sluice-filter" --store "$STORE_URL" --input "$f" --admin off --instance "p${f##*.}" \
    2>>"$T/filter.log" || not_ok "filter --input $f"
done
check "old work is filtered into a lookback partition" raw_late old '2 hours ago' 8
n_filtered=$(count filtered)
note "$n_filtered filtered objects"

start_stage dispatcher dispatcher "${common[@]}" --admin 127.0.0.1:0 --max-wait 200ms \
  --lookback-every "${every}s" --full-scan 1h
d_pid=$STAGE_PID
start_stage combiner combiner "${common[@]}" --poll 200ms
c_pid=$STAGE_PID
port=$(admin_port "$T/dispatcher.log")
check "the dispatcher serves its metrics" test -n "$port"
drained=no
for _ in $(seq 1 120); do
  [ "$(count state/combine)" -eq "$n_filtered" ] && [ "$(count jobs/combine)" -eq 0 ] &&
    { drained=yes; break; }
  sleep 0.25
done
check "everything is combined ($(count state/combine) of $n_filtered done)" test "$drained" = yes

# ---- idle: LIST requests per second -----------------------------------------
# Bound, at --poll 1s: per pass jobs/combine/ and filtered/ of the hot
# partitions (1 or 2), i.e. at most 3/s; the other lookback partitions
# (3h lookback: at most 5 in all) once every $every s; done markers never,
# since nothing is eligible. (Before: 1 + 2 x 4 partitions = 9/s.)
sleep 2
a=$(lists "$port")
t0=$(date +%s.%N)
sleep 10
b=$(lists "$port")
t1=$(date +%s.%N)
rate=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", (b - a) / (t1 - t0) }')
bound=$(awk -v e="$every" 'BEGIN { printf "%.2f", 3 + 5 / e + 0.3 }')
note "idle: $((b - a)) LIST in $(awk -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", t1 - t0 }') s" \
  "= $rate/s (bound $bound/s)"
check "idle LIST rate $rate/s is under $bound/s" awk -v r="$rate" -v m="$bound" 'BEGIN { exit !(r < m) }'
check "idle LIST rate $rate/s is at least 1/s (jobs/combine/ every pass: take-over stays fast)" \
  awk -v r="$rate" 'BEGIN { exit !(r >= 0.9) }'

# ---- a late object in a lookback partition that is not hot -----------------
old_hour=$(date -u -d '2 hours ago' +'dt=%Y-%m-%d/hr=%H')
before=$(store_keys "state/combine/$old_hour" | grep -c .)
t0=$(date +%s.%N)
check "a late object lands in $old_hour" raw_late late '2 hours ago' 9
after=$before
for _ in $(seq 1 $(((every + 6) * 10))); do
  after=$(store_keys "state/combine/$old_hour" | grep -c .)
  [ "$after" -gt "$before" ] && break
  sleep 0.1
done
took=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }')
# lookback_every + one pass (1 s) + the combiner's poll and work (~1 s) + slack.
limit=$((every + 4))
check "the late object is combined ($before -> $after markers in $old_hour)" test "$after" -gt "$before"
check "... in ${took}s (limit ${limit}s: --lookback-every ${every}s, not --full-scan 1h)" \
  awk -v t="$took" -v m="$limit" 'BEGIN { exit !(t <= m) }'
check "everything filtered is combined exactly once (a marker each, no job left)" \
  test "$(count state/combine)" -eq "$(count filtered)" -a "$(count jobs/combine)" -eq 0
check "no input is in two combined manifests" sh -c "
  \"$PY\" \"$HERE/verify.py\" json \"$store\" manifests/combined |
  \"$PY\" -c 'import sys, json, collections
c = collections.Counter(i[\"key\"] for l in sys.stdin if l.strip() for i in json.loads(l)[\"inputs\"])
sys.exit(1 if not c or max(c.values()) > 1 else 0)'"

for p in "$d_pid" "$c_pid"; do
  stop_pid "$p"
  check "stage $p stops on SIGTERM with status 0" test $? -eq 0
done
check "no sanitizer reports in any log" \
  sh -c "! grep -rl --include='*.log' 'runtime error\|AddressSanitizer\|LeakSanitizer' $T"
finish
