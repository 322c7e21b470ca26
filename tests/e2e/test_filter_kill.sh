#!/usr/bin/env bash
# Kill test: kill -9 the filter at random moments while a client sends and
# retries; every event that was acknowledged with a 200 must be in
# filtered/ (or rejected/, with its reason). KILL_ROUNDS sets the number of
# kills (default 15 here; `make chaos` runs more).
. "$(dirname "$0")/lib.sh"

rounds=${KILL_ROUNDS:-15}
count=${KILL_EVENTS:-40000}
store=$T/store
port=0 # the first start takes a free port from the kernel; restarts reuse it

start_on_port() {
  "$BIN/sluice-filter" --store "file://$store" --listen "127.0.0.1:$port" --admin off \
    --raw=false --flush-age 100ms --flush-bytes 256KiB >>"$T/filter.log" 2>&1 &
  FILTER_PID=$!
  PIDS+=("$FILTER_PID")
}

"$BIN/sluicectl" gen --count "$count" --seed 99 --bad-rate 0.02 --dup-rate 0.02 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
start_on_port
port=$(listen_port "$T/filter.log") || { not_ok "filter starts"; exit 1; }

# Slow the client down a little so that the kills land during the run.
"$BIN/sluicectl" send "$T/gen.ndjson" --url "http://127.0.0.1:$port" --batch 50 \
  --concurrency 4 --retries 100000 --acked "$T/acked.txt" --stats "$T/send.json" \
  2>"$T/send.log" &
send_pid=$!
PIDS+=("$send_pid")

kills=0
while [ "$kills" -lt "$rounds" ] && kill -0 "$send_pid" 2>/dev/null; do
  sleep "0.$((RANDOM % 5 + 1))$((RANDOM % 10))"
  kill -9 "$FILTER_PID" 2>/dev/null && kills=$((kills + 1))
  wait "$FILTER_PID" 2>/dev/null
  start_on_port
done
note "$kills kills"
wait "$send_pid"
check "the client got every batch acknowledged in the end" test $? -eq 0
retries=$("$PY" -c "import json; print(json.load(open('$T/send.json'))['retries'])")
check "the kills interrupted the client: it retried ($retries retries after $kills kills)" \
  test "$retries" -gt 0
stop_pid "$FILTER_PID"
acked_lines=$(awk '{n += $2 - $1 + 1} END {print n + 0}' "$T/acked.txt")
note "$acked_lines lines acknowledged"
check "every acknowledged event is in the store" \
  "$PY" "$HERE/verify.py" filtered "$store" "$T/gen.tsv" --acked "$T/acked.txt" --at-least
finish
