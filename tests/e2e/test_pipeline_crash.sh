#!/usr/bin/env bash
# backends: fs s3
# Crash and concurrency test, on the embedded default and on S3 + Redis:
# while events stream in, kill -9 a random stage process at random moments
# (CRASH_KILLS times, default 50) and restart it; two dispatchers, three
# combiners and two splitters share the store. Clients retry with the same
# ids. In the end split/ holds exactly the expected set: nothing lost,
# nothing duplicated, no input in two combined manifests, every combined
# object split by its own job. `make chaos` runs it bigger.
. "$(dirname "$0")/lib.sh"

kills_wanted=${CRASH_KILLS:-50}
# s3rver serves a few hundred requests a second: fewer events keep the S3
# run to a couple of minutes; the kills, not the volume, make the test.
if [ "$BACKEND" = s3 ]; then count=${CRASH_EVENTS:-12000}; else count=${CRASH_EVENTS:-40000}; fi
store=$STORE_VIEW
port=0 # the filter's first start takes a free port from the kernel; restarts reuse it
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 50ms)
declare -A pid

start() {
  case $1 in
    filter) start_stage filter filter "${common[@]}" --listen "127.0.0.1:$port" --raw=false \
              --flush-age 100ms --flush-bytes 256KiB ;;
    dispatcher*) start_stage "$1" dispatcher "${common[@]}" --max-wait 100ms --lease-ttl 2s ;;
    combiner*) start_stage "$1" combiner "${common[@]}" --lease-ttl 3s ;;
    splitter*) start_stage "$1" splitter "${common[@]}" --lease-ttl 3s --dedup "$DEDUP_URL" ;;
  esac
  pid[$1]=$STAGE_PID
}

# Two dispatchers (one active), three combiners and two splitters share the
# store, as in a scaled-out deployment.
stages=(filter dispatcher1 dispatcher2 combiner1 combiner2 combiner3 splitter1 splitter2)
for s in "${stages[@]}"; do start "$s"; done
port=$(listen_port "$T/filter.log") || { not_ok "filter starts"; exit 1; }

"$BIN/sluicectl" gen --count "$count" --seed 77 --dup-rate 0.03 --bad-rate 0.02 --no-id-rate 0.02 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
"$BIN/sluicectl" send "$T/gen.ndjson" --url "http://127.0.0.1:$port" --batch 100 --concurrency 4 \
  --retries 100000 --stats "$T/send.json" 2>"$T/send.log" &
send_pid=$!
PIDS+=("$send_pid")

kills=0
declare -A by_stage
while [ "$kills" -lt "$kills_wanted" ]; do
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  victim=${stages[RANDOM % ${#stages[@]}]}
  if kill -9 "${pid[$victim]}" 2>/dev/null; then
    kills=$((kills + 1))
    by_stage[$victim]=$((${by_stage[$victim]:-0} + 1))
  fi
  wait "${pid[$victim]}" 2>/dev/null
  start "$victim"
done
note "kills: $(for s in "${!by_stage[@]}"; do printf '%s=%s ' "$s" "${by_stage[$s]}"; done)"
wait "$send_pid"
check "the client got every batch acknowledged in the end" test $? -eq 0
check "the pipeline drains after the storm" wait_drained "$store" 120
check "split/ holds exactly the expected events: nothing lost, nothing duplicated" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"
for s in "${stages[@]}"; do stop_pid "${pid[$s]}"; done
finish
