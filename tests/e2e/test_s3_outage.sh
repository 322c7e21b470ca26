#!/usr/bin/env bash
# backends: s3
# Store outage: the S3 server (s3rver) is stopped while the filter receives
# a stream of events. While it is down the filter answers 503, never 200;
# every stage stays up. s3rver comes back on the same port with the same
# data; clients retry with the same events, and in the end split/ holds
# exactly the expected set: no loss, no duplicates.
. "$(dirname "$0")/lib.sh"

count=${OUTAGE_EVENTS:-8000}
store=$STORE_VIEW
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 100ms)
declare -A pid
start_stage filter filter "${common[@]}" --listen 127.0.0.1:0 --raw=false --flush-age 100ms
pid[filter]=$STAGE_PID
start_stage dispatcher dispatcher "${common[@]}" --max-wait 200ms
pid[dispatcher]=$STAGE_PID
start_stage combiner combiner "${common[@]}"
pid[combiner]=$STAGE_PID
start_stage splitter splitter "${common[@]}" --dedup "$DEDUP_URL"
pid[splitter]=$STAGE_PID
stages=(filter dispatcher combiner splitter)
port=$(listen_port "$T/filter.log") || { not_ok "filter starts"; exit 1; }
url=http://127.0.0.1:$port
all_alive() {
  local s
  for s in "${stages[@]}"; do kill -0 "${pid[$s]}" 2>/dev/null || { note "$s exited"; return 1; }; done
}

"$BIN/sluicectl" gen --count "$count" --seed 61 --dup-rate 0.05 --bad-rate 0.02 --no-id-rate 0.02 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
n=$(wc -l <"$T/gen.ndjson")
half=$((n / 2))
# Events that probe the outage by hand; expected in split/ once re-sent.
for i in 1 2 3; do
  printf '{"event":"outage_probe","id":"probe-%d"}\n' "$i"
done >"$T/probes.ndjson"
# probe I — POSTs probe I; prints the status code.
probe() {
  curl -s -o "$T/probe.body" -w '%{http_code}' --max-time 120 -X POST "$url/v1/events" \
    -H 'Content-Type: application/x-ndjson' --data-binary "$(sed -n "${1}p" "$T/probes.ndjson")"
}

# --- the first half, with the store up ---
head -n "$half" "$T/gen.ndjson" | "$BIN/sluicectl" send - --url "$url" --batch 100 \
  --concurrency 2 2>"$T/send1.log"
check "with the store up, the first half is acknowledged" test $? -eq 0
r=$(probe 1)
check "with the store up, a probe gets 200 ($r)" test "$r" = 200

# --- the second half streams in while the store goes down ---
tail -n +"$((half + 1))" "$T/gen.ndjson" | "$BIN/sluicectl" send - --url "$url" --batch 50 \
  --concurrency 2 --retries 100000 --verbose 2>"$T/send2.log" &
sender=$!
sleep 0.5
s3rver_stop "$T/s3"
check "s3rver is down" test "$(curl -s -o /dev/null -w '%{http_code}' "http://$S3_ENDPOINT/")" = 000
codes='' times=''
for i in 2 3; do
  t0=$SECONDS
  codes+="$(probe "$i") "
  times+="$((SECONDS - t0))s "
done
check "while the store is down the filter answers 503, never 200 (${codes% }; in ${times% })" \
  test "$codes" = "503 503 "
saw_503() { grep -q 'HTTP 503; retrying' "$T/send2.log"; }
wait_until 60 saw_503
retries=$(grep -c 'HTTP 503; retrying' "$T/send2.log")
check "the client saw 503 and kept retrying ($retries retries)" test "$retries" -gt 0
check "every stage is still running during the outage" all_alive

# --- the store comes back on the same port with the same data ---
s3rver_start "$T/s3"
check "s3rver is back on the same port ($S3_PORT)" grep -qF "endpoint=$S3_ENDPOINT&" <<<"$STORE_URL"
wait "$sender"
check "the second half is acknowledged in the end" test $? -eq 0
for i in 2 3; do
  r=$(probe "$i")
  check "probe $i, sent again, gets 200 ($r)" test "$r" = 200
done
check "every stage is still running after the outage" all_alive

# --- no loss, no duplicates ---
n_probes=$(wc -l <"$T/probes.ndjson")
cat "$T/gen.ndjson" "$T/probes.ndjson" >"$T/all.ndjson"
{
  cat "$T/gen.tsv"
  for ((i = 1; i <= n_probes; i++)); do
    printf '%d\taccepted\toutage_probe\tprobe-%d\t-\n' "$((n + i))" "$i"
  done
} >"$T/all.tsv"
check "the pipeline drains" wait_drained "$store" 120
check "split/ holds exactly the expected events: nothing lost, nothing duplicated" \
  "$PY" "$HERE/verify.py" split "$store" "$T/all.ndjson" "$T/all.tsv"
for s in "${stages[@]}"; do
  stop_pid "${pid[$s]}"
  check "$s stops on SIGTERM with status 0" test $? -eq 0
done
finish
