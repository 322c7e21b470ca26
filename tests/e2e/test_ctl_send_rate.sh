#!/usr/bin/env bash
# sluicectl send --rate: batches are released on a fixed schedule, so a run
# cannot finish before its last batch is due, and pacing loses nothing;
# a rate that is not a number of events per second is refused with a reason.
. "$(dirname "$0")/lib.sh"

start_filter f1 --store "file://$T/store" --raw=false --flush-age 100ms ||
  { not_ok "filter starts"; exit 1; }
"$BIN/sluicectl" gen --count 4000 --seed 5 --manifest "$T/gen.tsv" >"$T/gen.ndjson"

# 20 batches of 200 at 2000 events/s: the last batch is due 3800 / 2000 =
# 1.9 s after the start, however fast or slow the machine is; without
# pacing a loopback filter takes a small fraction of that.
"$BIN/sluicectl" send "$T/gen.ndjson" --url "$FILTER_URL" --batch 200 --concurrency 4 \
  --rate 2000 --stats "$T/send.json" 2>"$T/send.log"
check "a paced send gets every batch acknowledged" test $? -eq 0
read -r acc elapsed offered < <("$PY" -c "import json; s = json.load(open('$T/send.json'))
print(s['accepted'], s['elapsed_s'], s['offered_rate'])")
check "every paced event is accepted ($acc of 4000)" test "$acc" -eq 4000
check "the stats record the offered rate ($offered)" test "$offered" -eq 2000
check "the last batch is not sent before it is due (${elapsed}s >= 1.9s)" \
  "$PY" -c "import sys; sys.exit(0 if $elapsed >= 1.9 else 1)"
stop_pid "$FILTER_PID"
check "every acknowledged event is in filtered/ exactly once" \
  "$PY" "$HERE/verify.py" filtered "$T/store" "$T/gen.tsv"

for bad in -5 fast 1e9; do
  "$BIN/sluicectl" send "$T/gen.ndjson" --url "$FILTER_URL" --rate "$bad" 2>"$T/bad.log"
  st=$?
  check "--rate $bad is refused as a usage error (exit $st)" test "$st" -eq 2
  check "--rate $bad says why" grep -q 'rate' "$T/bad.log"
done
finish
