#!/usr/bin/env bash
# backends: fs s3
# An idle pipeline makes no LIST request: the four daemons, with
# --idle-list 1h, poll every 100 ms but list nothing while no producer
# bumped a generation (sluice_store_requests_total{op="list"} of each
# daemon does not move; sluice_lists_skipped_total does), and events sent
# afterwards still reach split/ exactly once — the producers' bumps wake
# the consumers. A producer whose bump never happens (its lease backend is
# down after its put: as if killed between the two) still has its work
# picked up, by the dispatcher's idle listing (--idle-list 3s here).
# What idling costs in LIST/s and the pick-up delay are measured by
# `make bench` (tests/bench/lists.sh), not asserted here.
. "$(dirname "$0")/lib.sh"

store=$STORE_VIEW
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 100ms)
quiet=(--idle-list 1h --admin 127.0.0.1:0)

# lists URL — LIST requests a daemon made so far (its /metrics at URL), or
# "none" when it serves no such count (a daemon whose metrics cannot be
# read must not pass for one that lists nothing).
lists() {
  curl -sf "$1/metrics" |
    sed -n 's/^sluice_store_requests_total{[^}]*op="list"[^}]*} \([0-9.e+]*\)$/\1/p' |
    awk '{ s += $1; n++ } END { if (n) printf "%d\n", s; else print "none" }'
}
# skipped URL — polls a daemon answered without listing.
skipped() {
  curl -s "$1/metrics" | sed -n 's/^sluice_lists_skipped_total{[^}]*} \([0-9.e+]*\)$/\1/p' |
    awk '{ s += $1 } END { printf "%d\n", s }'
}
all_lists() { local u; for u in "${urls[@]}"; do printf '%s ' "$(lists "$u")"; done; }
all_skipped() { local u; for u in "${urls[@]}"; do printf '%s ' "$(skipped "$u")"; done; }
# settled — no daemon listed during the last second.
settled() { local a; a=$(all_lists); sleep 1; [ "$a" = "$(all_lists)" ]; }
# within SECONDS CMD... — runs CMD (which takes its own time) until it
# succeeds; fails once SECONDS have passed. A bound on a wait only.
within() {
  local end=$((SECONDS + $1))
  shift
  while [ "$SECONDS" -lt "$end" ]; do "$@" && return 0; done
  return 1
}
send() { "$BIN/sluicectl" send "$1" --url "$FILTER_URL" --batch 200 --concurrency 2 2>>"$T/send.log"; }

"$BIN/sluicectl" gen --count 6000 --seed 33 --dup-rate 0.05 --manifest "$T/gen.tsv" >"$T/gen.ndjson"
sed -n '1,2000p' "$T/gen.ndjson" >"$T/a.ndjson"
sed -n '2001,4000p' "$T/gen.ndjson" >"$T/b.ndjson"
sed -n '4001,$p' "$T/gen.ndjson" >"$T/c.ndjson"

declare -A pid
start_filter filter "${common[@]}" --flush-age 100ms "${quiet[@]}" ||
  { not_ok "filter starts"; exit 1; }
pid[filter]=$FILTER_PID
start_stage dispatcher dispatcher "${common[@]}" "${quiet[@]}" --max-wait 300ms
pid[dispatcher]=$STAGE_PID
start_stage combiner combiner "${common[@]}" "${quiet[@]}"
pid[combiner]=$STAGE_PID
start_stage splitter splitter "${common[@]}" "${quiet[@]}" --dedup "$DEDUP_URL"
pid[splitter]=$STAGE_PID
urls=()
for s in filter dispatcher combiner splitter; do
  port=$(admin_port "$T/$s.log") || { not_ok "$s serves its metrics"; exit 1; }
  urls+=("http://127.0.0.1:$port")
done

send "$T/a.ndjson"
check "the first events are acknowledged" test $? -eq 0
check "the pipeline drains" wait_drained "$store" 90
check "the daemons stop listing once the work is done" within 30 settled

# ---- idle: polls, no LIST ---------------------------------------------------
before=$(all_lists)
skipped_before=$(all_skipped)
sleep 5
after=$(all_lists)
skipped_after=$(all_skipped)
note "LIST requests filter dispatcher combiner splitter: $before-> $after"
note "polls without a LIST: $skipped_before-> $skipped_after"
check "every daemon reports its LIST requests" test "${before/none/}" = "$before"
check "no daemon made a LIST request in 5 idle seconds" test "$before" = "$after"
read -r _ d0 c0 s0 <<<"$skipped_before"
read -r _ d1 c1 s1 <<<"$skipped_after"
check "the dispatcher, combiner and splitter kept polling (skipped listings grew)" \
  test "$d1" -gt "$d0" -a "$c1" -gt "$c0" -a "$s1" -gt "$s0"

# ---- new events wake the pipeline ---------------------------------------------
send "$T/b.ndjson"
check "events sent to the idle pipeline are acknowledged" test $? -eq 0
check "they are split: the producers' bumps woke the consumers" wait_drained "$store" 90
head -n 4000 "$T/gen.ndjson" >"$T/upto.ndjson"
awk -F'\t' '$1 <= 4000' "$T/gen.tsv" >"$T/upto.tsv"
check "split/ holds exactly the events sent so far, each once" \
  "$PY" "$HERE/verify.py" split "$store" "$T/upto.ndjson" "$T/upto.tsv"

# ---- a put whose bump never came --------------------------------------------
stop_pid "${pid[dispatcher]}"
check "the dispatcher stops on SIGTERM with status 0" test $? -eq 0
start_stage dispatcher2 dispatcher "${common[@]}" --idle-list 3s --admin 127.0.0.1:0 \
  --max-wait 300ms
pid[dispatcher]=$STAGE_PID
port=$(admin_port "$T/dispatcher2.log") || not_ok "the new dispatcher serves its metrics"
# first_pass — the new dispatcher listed, then stopped listing for a while.
first_pass() {
  local a
  a=$(lists "http://127.0.0.1:$port")
  [ "$a" -gt 0 ] && sleep 0.5 && [ "$a" = "$(lists "http://127.0.0.1:$port")" ]
}
check "the new dispatcher made its first pass" within 30 first_pass
touch "$T/leases-down"
"$BIN/sluice-filter" --store "$STORE_URL" --leases "fault:down_file=$T/leases-down:$LEASE_URL" \
  --input "$T/c.ndjson" --admin off --instance nobump >"$T/filter-nobump.log" 2>&1
check "a filter whose lease backend is down writes its objects" test $? -eq 0
check "its bump failed and was logged" grep -q 'cannot bump a generation' "$T/filter-nobump.log"
rm -f "$T/leases-down"
check "its work is split all the same (found by the idle listing)" wait_drained "$store" 90
check "split/ holds exactly every event, each once" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"

for s in "${!pid[@]}"; do
  stop_pid "${pid[$s]}"
  check "the $s stops on SIGTERM with status 0" test $? -eq 0
done
check "no sanitizer reports in any log" \
  sh -c "! grep -rl --include='*.log' 'runtime error\|AddressSanitizer\|LeakSanitizer' $T"
finish
