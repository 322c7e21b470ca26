#!/usr/bin/env bash
# Leases under long writes: a combiner whose put of the combined object
# takes three times its lease TTL (a slow upload, from the fault store's
# put_delay_ms) keeps the lease all along, so a second combiner started
# meanwhile finds the job taken and leaves it alone; the first commits it,
# and the pipeline ends with exactly the generated events in split/.
. "$(dirname "$0")/lib.sh"

store=$T/store
L=(--leases "local://$T/leases" --admin off)
# One raw/ object landed mid-hour two hours ago: its events' received_at is
# its mtime, so they make exactly one combine job.
mkdir -p "$store/raw/land"
"$BIN/sluicectl" gen --count 20000 --seed 4 --dup-rate 0.05 --manifest "$T/gen.tsv" >"$T/gen.ndjson"
cp "$T/gen.ndjson" "$store/raw/land/batch.ndjson"
touch -d "@$(($(date +%s) / 3600 * 3600 - 5400))" "$store/raw/land/batch.ndjson"
"$BIN/sluice-filter" --store "file://$store" --admin off --once >"$T/filter.log" 2>&1
"$BIN/sluice-dispatcher" --store "file://$store" "${L[@]}" --once >"$T/disp.log" 2>&1
check "the dispatcher wrote one combine job" test "$(ls "$store/jobs/combine" 2>/dev/null | wc -l)" -eq 1

# A: puts of 64 KiB or more (the combined object) take 3 s; TTL 1 s.
slow="fault:put_delay_ms=3000,put_delay_bytes=65536:file://$store"
"$BIN/sluice-combiner" --store "$slow" "${L[@]}" --once --lease-ttl 1s >"$T/a.log" 2>&1 &
a=$!
PIDS+=("$a")
check "the slow combiner takes the job" wait_until 30 holds_lease "$T/leases" "$a" combine/
sleep 1.8 # past A's TTL, A is in its slow put
"$BIN/sluice-combiner" --store "file://$store" "${L[@]}" --once --lease-ttl 1s >"$T/b.log" 2>&1
check "a second combiner run exits 0" test $? -eq 0
wait "$a"
check "the slow combiner exits 0" test $? -eq 0
check "the slow combiner combined the job" grep -q 'msg="job combined"' "$T/a.log"
check "the second combiner never took the job while its holder was still writing it" \
  bash -c "! grep -q 'msg=\"job combined\"' '$T/b.log'"
check "the slow combiner never lost its lease" bash -c "! grep -q 'lease lost' '$T/a.log'"

for st in dispatcher combiner splitter; do
  "$BIN/sluice-$st" --store "file://$store" "${L[@]}" --once >>"$T/rest.log" 2>&1
done
check "the pipeline drains" "$PY" "$HERE/verify.py" drained "$store"
check "split/ holds exactly the generated events, each once" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"

finish
