#!/usr/bin/env bash
# backends: fs s3
# The whole pipeline as daemons: filter → dispatcher → combiner → splitter,
# on the embedded default and on S3 + Redis. The multiset of (event, id) in
# split/ equals the de-duplicated input exactly, each event in the file of
# its type and hour; every ledger balances; everything stops cleanly.
. "$(dirname "$0")/lib.sh"

store=$STORE_VIEW
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 100ms)
start_filter filter "${common[@]}" --flush-age 200ms || { not_ok "filter starts"; exit 1; }
filter_pid=$FILTER_PID
start_stage dispatcher dispatcher "${common[@]}" --max-wait 300ms --full-scan 2s; d_pid=$STAGE_PID
start_stage combiner combiner "${common[@]}"; c_pid=$STAGE_PID
start_stage splitter splitter "${common[@]}" --dedup "$DEDUP_URL"; s_pid=$STAGE_PID

"$BIN/sluicectl" gen --count 30000 --seed 21 --dup-rate 0.05 --bad-rate 0.03 --no-id-rate 0.03 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
"$BIN/sluicectl" send "$T/gen.ndjson" --url "$FILTER_URL" --batch 300 --concurrency 4 \
  2>"$T/send.log"
check "every batch is acknowledged" test $? -eq 0
check "the pipeline drains (everything filtered is combined and split)" wait_drained "$store" 90
check "split/ holds exactly the de-duplicated events, by type and hour; ledgers balance" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"
dups=$("$PY" "$HERE/verify.py" json "$store" manifests/split | "$PY" -c "
import sys, json
print(sum(json.loads(l)['duplicates_dropped'] for l in sys.stdin if l.strip()))")
check "duplicates were dropped and counted in the manifests ($dups)" test "$dups" -gt 0
# A late arrival: a raw object landed five hours ago becomes a filtered
# object in that old partition, far behind the dispatcher's recent window;
# the periodic full scan must still find it.
"$BIN/sluicectl" gen --count 500 --seed 5 --manifest "$T/late.tsv" >"$T/late.ndjson"
zstd -q -c "$T/late.ndjson" >"$T/late.ndjson.zst"
store_put raw/late/part-1.ndjson.zst "$T/late.ndjson.zst" '5 hours ago'
"$BIN/sluice-filter" --store "$STORE_URL" --leases "$LEASE_URL" --once --admin off \
  >"$T/late-filter.log" 2>&1
old_hour=$(date -u -d '5 hours ago' +'dt=%Y-%m-%d/hr=%H')
check "the late raw object was filtered into its old partition ($old_hour)" \
  test -n "$(store_keys "filtered/$old_hour")"
check "the pipeline drains again, late object included" wait_drained "$store" 60
late_split=$(store_keys split | grep -c "/$old_hour/.*\.ndjson\.zst$")
check "the late events are split into their old hour ($late_split files)" test "$late_split" -gt 0
cat "$T/gen.ndjson" "$T/late.ndjson" >"$T/all.ndjson"
awk -F'\t' -v OFS='\t' -v n="$(wc -l <"$T/gen.ndjson")" 'FNR == NR { print; next } { $1 += n; print }' \
  "$T/gen.tsv" "$T/late.tsv" >"$T/all.tsv"
check "split/ holds exactly every expected event, late ones included" \
  "$PY" "$HERE/verify.py" split "$store" "$T/all.ndjson" "$T/all.tsv"

for p in "$filter_pid" "$d_pid" "$c_pid" "$s_pid"; do
  stop_pid "$p"
  check "stage $p stops on SIGTERM with status 0" test $? -eq 0
done
"$BIN/sluicectl" reconcile --store "$STORE_URL" --from -1d --to now >"$T/reconcile.out" 2>&1
check "sluicectl reconcile agrees" test $? -eq 0
finish
