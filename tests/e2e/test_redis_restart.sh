#!/usr/bin/env bash
# backends: s3
# Lease and de-duplication state lost: the pipeline runs on S3 + Redis on a
# stream of events; in the middle Redis is stopped and started again empty,
# and later flushed (FLUSHALL) while everything runs. Events already split
# before each loss are sent again after it (client retries of acknowledged
# batches), on top of the generator's own repeats. split/ must hold exactly
# the expected set every time: the durable record of what was done lives in
# the store, Redis only speeds it up.
. "$(dirname "$0")/lib.sh"

count=${REDIS_RESTART_EVENTS:-12000}
store=$STORE_VIEW
port=0 # the kernel picks the filter's port
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 100ms)
declare -A pid

start() {
  case $1 in
    filter) start_stage filter filter "${common[@]}" --listen "127.0.0.1:$port" --raw=false \
              --flush-age 100ms ;;
    dispatcher) start_stage dispatcher dispatcher "${common[@]}" --max-wait 200ms --lease-ttl 2s ;;
    combiner*) start_stage "$1" combiner "${common[@]}" --instance "$1" --lease-ttl 3s ;;
    splitter*) start_stage "$1" splitter "${common[@]}" --instance "$1" --lease-ttl 3s \
                 --dedup "$DEDUP_URL" ;;
  esac
  pid[$1]=$STAGE_PID
}
stages=(filter dispatcher combiner1 combiner2 splitter1 splitter2)
for s in "${stages[@]}"; do start "$s"; done
port=$(listen_port "$T/filter.log") || { not_ok "filter starts"; exit 1; }
url=http://127.0.0.1:$port

"$BIN/sluicectl" gen --count "$count" --seed 91 --dup-rate 0.05 --bad-rate 0.02 --no-id-rate 0.02 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
n=$(wc -l <"$T/gen.ndjson")
q=$((n / 6))

# send_lines A B — sends lines A..B of the generated stream, retrying; the
# batches acknowledged go to $T/acked-A.
send_lines() {
  sed -n "$1,$2p" "$T/gen.ndjson" | "$BIN/sluicectl" send - --url "$url" --batch 100 \
    --concurrency 2 --retries 100000 --acked "$T/acked-$1" 2>>"$T/send.log"
}
# expect_upto N — the expected outcome of lines 1..N, for verify.py split.
expect_upto() {
  head -n "$1" "$T/gen.ndjson" >"$T/upto.ndjson"
  awk -F'\t' -v n="$1" '$1 <= n' "$T/gen.tsv" >"$T/upto.tsv"
}
# dropped — duplicates dropped, summed over the split manifests.
dropped() {
  "$PY" "$HERE/verify.py" json "$store" manifests/split | "$PY" -c "
import sys, json
print(sum(json.loads(l)['duplicates_dropped'] for l in sys.stdin if l.strip()))"
}
accepted_in() { awk -F'\t' -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $2 == "accepted"' "$T/gen.tsv" | wc -l; }
all_alive() {
  local s
  for s in "${stages[@]}"; do kill -0 "${pid[$s]}" 2>/dev/null || { note "$s exited"; return 1; }; done
}
# resend A B WHAT — sends lines A..B again once split, and checks each of
# them is dropped as a duplicate.
resend() {
  local d0 d1 want
  check "$3: the pipeline drains before" wait_drained "$store" 90
  d0=$(dropped)
  send_lines "$1" "$2"
  check "$3: sent again, acknowledged" test $? -eq 0
  check "$3: the pipeline drains after" wait_drained "$store" 90
  d1=$(dropped)
  want=$(accepted_in "$1" "$2")
  check "$3: every accepted event sent again was dropped as a duplicate ($((d1 - d0)) of $want)" \
    test "$((d1 - d0))" -eq "$want"
}

# --- before: a third of the stream, split, with its state in Redis ---
send_lines 1 $((2 * q))
check "lines 1-$((2 * q)) are acknowledged" test $? -eq 0
check "the pipeline drains" wait_drained "$store" 90
keys=$(redis_cli "$T/redis" dbsize)
check "Redis holds lease and de-duplication state ($keys keys)" test "${keys:-0}" -gt 0

# --- Redis restarted empty while events stream in ---
send_lines $((2 * q + 1)) $((4 * q)) &
sender=$!
check "events stream in before the restart" wait_until 30 test -s "$T/acked-$((2 * q + 1))"
run_id() { redis_cli "$T/redis" info server | sed -n 's/^run_id:\([0-9a-f]*\).*/\1/p'; }
before=$(run_id)
redis_restart "$T/redis"
# The stages write their leases again at once: fewer keys than before, and
# another server, show the state was lost.
after=$(redis_cli "$T/redis" dbsize)
check "Redis is back as a new server without the state ($keys keys before, $after after)" \
  test "$(run_id)" != "$before" -a "${after:-0}" -lt "$keys"
wait "$sender"
check "lines $((2 * q + 1))-$((4 * q)), sent across the restart, are acknowledged" test $? -eq 0
check "every stage survived the restart" all_alive
resend 1 $((2 * q)) "after the restart, lines split before it"
expect_upto $((4 * q))
check "split/ holds exactly lines 1-$((4 * q)): nothing lost, nothing duplicated" \
  "$PY" "$HERE/verify.py" split "$store" "$T/upto.ndjson" "$T/upto.tsv"

# --- FLUSHALL while events stream in ---
send_lines $((4 * q + 1)) "$n" &
sender=$!
check "events stream in before the flush" wait_until 30 test -s "$T/acked-$((4 * q + 1))"
check "FLUSHALL while the pipeline runs" test "$(redis_cli "$T/redis" flushall)" = OK
wait "$sender"
check "the rest of the stream, sent across the flush, is acknowledged" test $? -eq 0
check "every stage survived the flush" all_alive
resend $((2 * q + 1)) "$n" "after the flush, lines sent since the restart"
check "split/ holds exactly the whole stream: nothing lost, nothing duplicated" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"
note "Redis keys at the end: $(redis_cli "$T/redis" dbsize)"

for s in "${stages[@]}"; do
  stop_pid "${pid[$s]}"
  check "$s stops on SIGTERM with status 0" test $? -eq 0
done
finish
