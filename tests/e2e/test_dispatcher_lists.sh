#!/usr/bin/env bash
# backends: fs s3
# test_dispatcher_lists — listing less does not lose late objects: the
# dispatcher lists jobs/combine/ and filtered/ of the current hour every
# pass, the rest of the lookback only every --lookback-every, done markers
# only when needed; a late object written into an hour inside the lookback
# but older than the hot partitions is still combined long before the next
# full scan (--full-scan 1h: found within a minute, it was the lookback).
# What the polling costs in LIST requests per second is measured by
# `make bench` (tests/bench/lists.sh), not asserted here.
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
for _ in $(seq 1 240); do
  [ "$(count state/combine)" -eq "$n_filtered" ] && [ "$(count jobs/combine)" -eq 0 ] &&
    { drained=yes; break; }
  sleep 0.25
done
check "everything is combined ($(count state/combine) of $n_filtered done)" test "$drained" = yes
a=$(lists "$port")
check "the dispatcher counts its LIST requests in sluice_store_requests_total ($a)" test "$a" -gt 0

# ---- a late object in a lookback partition that is not hot -----------------
old_hour=$(date -u -d '2 hours ago' +'dt=%Y-%m-%d/hr=%H')
before=$(count "state/combine/$old_hour")
check "a late object lands in $old_hour" raw_late late '2 hours ago' 9
late_done() { after=$(count "state/combine/$old_hour"); [ "$after" -gt "$before" ]; }
after=$before
# The bound only ends the wait: a minute is far below --full-scan 1h.
check "the late object is combined before the next full scan" wait_until 60 late_done
note "$before -> $after markers in $old_hour"
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
