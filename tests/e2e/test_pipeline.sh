#!/usr/bin/env bash
# The whole pipeline on the embedded default, as daemons: filter →
# dispatcher → combiner → splitter. The multiset of (event, id) in split/
# equals the de-duplicated input exactly, each event in the file of its type
# and hour; every ledger balances; everything stops cleanly.
. "$(dirname "$0")/lib.sh"

store=$T/store
common=(--store "file://$store" --leases "local://$T/leases" --poll 100ms)
start_filter filter "${common[@]}" --flush-age 200ms || { not_ok "filter starts"; exit 1; }
filter_pid=$FILTER_PID
start_stage dispatcher dispatcher "${common[@]}" --max-wait 300ms; d_pid=$STAGE_PID
start_stage combiner combiner "${common[@]}"; c_pid=$STAGE_PID
start_stage splitter splitter "${common[@]}"; s_pid=$STAGE_PID

"$BIN/sluicectl" gen --count 30000 --seed 21 --dup-rate 0.05 --bad-rate 0.03 --no-id-rate 0.03 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
"$BIN/sluicectl" send "$T/gen.ndjson" --url "$FILTER_URL" --batch 300 --concurrency 4 \
  2>"$T/send.log"
check "every batch is acknowledged" test $? -eq 0
check "the pipeline drains (everything filtered is combined and split)" wait_drained "$store" 90
check "split/ holds exactly the de-duplicated events, by type and hour; ledgers balance" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"
dups=$(cat "$store"/manifests/split/*.json | "$PY" -c "
import sys, json
print(sum(json.loads(l)['duplicates_dropped'] for l in sys.stdin if l.strip()))")
check "duplicates were dropped and counted in the manifests ($dups)" test "$dups" -gt 0
for p in "$filter_pid" "$d_pid" "$c_pid" "$s_pid"; do
  stop_pid "$p"
  check "stage $p stops on SIGTERM with status 0" test $? -eq 0
done
if [ -x "$BIN/sluicectl" ] && "$BIN/sluicectl" --help 2>&1 | grep -q reconcile; then
  "$BIN/sluicectl" reconcile --store "file://$store" --from -1d --to now >"$T/reconcile.out" 2>&1
  check "sluicectl reconcile agrees" test $? -eq 0
fi
finish
