#!/usr/bin/env bash
# The filter's raw/ source on a store that fails now and then (the fault
# store: gets, puts and stats fail at random, seeded): an object that fails
# does not end the pass, the others go on, and the failed ones are filtered
# by a later pass after a back-off, so that --once still ends with
# everything filtered, exactly as on a store that never failed. The daemon
# counts each object's events once, though a retried object redoes its
# pieces.
. "$(dirname "$0")/lib.sh"

# One large object (filtered in pieces) and six small ones, from one
# generated stream with a 5% share of bad events.
gen=$T/gen
mkdir -p "$gen"
"$BIN/sluicectl" gen --count 30000 --seed 11 --bad-rate 0.05 --manifest "$T/gen.tsv" \
  >"$T/all.ndjson"
head -n 24000 "$T/all.ndjson" | zstd -q -c >"$gen/part-big.ndjson.zst"
tail -n +24001 "$T/all.ndjson" >"$T/rest.ndjson"
split -n l/6 -d -a 1 "$T/rest.ndjson" "$T/small."
for f in "$T"/small.*; do zstd -q -c "$f" >"$gen/part-${f##*.}.ndjson.zst"; done
objects=$(ls "$gen" | wc -l)

# land DIR — the objects under DIR/raw/land, with the same mtimes (the
# filtered/ names differ, being functions of the etag; contents do not).
land() {
  mkdir -p "$1/raw/land"
  cp -p "$gen"/* "$1/raw/land/"
}
# contents DIR PREFIX — every line under PREFIX, sorted.
contents() { "$PY" "$HERE/verify.py" dump "$1" "$2" | LC_ALL=C sort; }
# markers DIR — the raw objects done: filtered/ objects that are not a
# later piece (-pNNNN).
markers() {
  "$PY" "$HERE/verify.py" keys "$1" filtered | grep -vc -- '-p[0-9]*\.ndjson\.zst$'
}

# --- the reference: a store that never fails ---
land "$T/clean"
"$BIN/sluice-filter" --store "file://$T/clean" --once --admin off >"$T/clean.log" 2>&1
check "filter --once on a healthy store exits 0" test $? -eq 0
check "every object is marked done ($(markers "$T/clean") of $objects)" \
  test "$(markers "$T/clean")" -eq "$objects"
check "the large object was filtered in pieces" \
  bash -c "'$PY' '$HERE/verify.py' keys '$T/clean' filtered | grep -q -- '-p0001\.ndjson\.zst$'"

# --- --once on a store whose gets, puts and stats fail at random ---
land "$T/faulty"
fault="fault:get_fail=0.3,put_fail=0.25,stat_fail=0.1,seed=5:file://$T/faulty"
"$BIN/sluice-filter" --store "$fault" --once --admin off >"$T/faulty.log" 2>&1
rc=$?
fails=$(grep -c 'msg="raw object not filtered; will retry"' "$T/faulty.log")
check "the store did fail under the run ($fails objects retried)" test "$fails" -ge 2
check "an object that failed did not end the pass: the ones after it were filtered" \
  "$PY" - "$T/faulty.log" <<'EOF'
import re, sys
passes, cur = [], None
for line in open(sys.argv[1]):
    m = re.search(r'msg="raw object (filtered|not filtered; will retry)" key=(\S+)', line)
    if m:
        if cur is None:
            cur = []
            passes.append(cur)
        cur.append(m.group(1))
    elif 'msg="raw pass failed' in line:
        cur = None
# some pass had a failure followed by a success
sys.exit(0 if any('filtered' in p[p.index('not filtered; will retry') + 1:]
                  for p in passes if 'not filtered; will retry' in p) else 1)
EOF
check "filter --once retries the failed objects and exits 0 (rc $rc)" test "$rc" -eq 0
check "every object is marked done ($(markers "$T/faulty") of $objects)" \
  test "$(markers "$T/faulty")" -eq "$objects"
check "every event is stored exactly once" "$PY" "$HERE/verify.py" filtered "$T/faulty" "$T/gen.tsv"
check "filtered/ holds the same events as on the healthy store" \
  cmp -s <(contents "$T/clean" filtered) <(contents "$T/faulty" filtered)
check "rejected/ holds the same lines as on the healthy store" \
  cmp -s <(contents "$T/clean" rejected) <(contents "$T/faulty" rejected)

# --- --once on a store that is down: like every stage's --once, it waits
# with the runtime's back-off for the store, and SIGTERM ends the wait at
# once with exit 0; a later --once on the store come back does the work ---
land "$T/down"
touch "$T/down.flag"
"$BIN/sluice-filter" --store "fault:down_file=$T/down.flag:file://$T/down" --once --admin off \
  >"$T/down.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_log "$T/down.log" 'raw pass failed; will retry' 20
sleep 1 # into its back-off (up to 30 s at the cap): SIGTERM must not wait for it
kill -TERM "$pid"
wait "$pid"
rc=$?
check "filter --once on a store that is down exits 0 on SIGTERM (rc $rc)" test "$rc" -eq 0
check "... having written nothing" test -z "$(ls "$T/down" | grep -v '^raw$')"
rm -f "$T/down.flag"
"$BIN/sluice-filter" --store "file://$T/down" --once --admin off >"$T/down2.log" 2>&1
check "filter --once exits 0 once the store is back" test $? -eq 0
check "... with every object marked done ($(markers "$T/down") of $objects)" \
  test "$(markers "$T/down")" -eq "$objects"

# --- the daemon: retried objects and pieces are counted once ---
land "$T/daemon"
start_filter d1 --store "fault:get_fail=0.3,put_fail=0.25,seed=9:file://$T/daemon" \
  --raw=true --raw-poll 100ms --admin-on-ingest || { not_ok "the daemon starts"; exit 1; }
done_all() { test "$(markers "$T/daemon")" -eq "$objects"; }
check "the daemon filters every object in the end" wait_until 60 done_all
check "the daemon retried objects that failed" grep -q 'raw object not filtered' "$T/d1.log"
metric() { curl -s "$FILTER_URL/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" { s += $2 } END { print s + 0 }'; }
acc=$(metric sluice_filter_events_accepted_total)
rej=$(metric sluice_filter_events_rejected_total)
objs=$(metric sluice_filter_raw_objects_total)
want_acc=$(contents "$T/clean" filtered | wc -l)
want_rej=$(contents "$T/clean" rejected | wc -l)
check "raw objects counted once ($objs of $objects)" test "$objs" -eq "$objects"
check "accepted events counted once ($acc, stored $want_acc)" test "$acc" -eq "$want_acc"
check "rejected events counted once ($rej, stored $want_rej)" test "$rej" -eq "$want_rej"
stop_pid "$FILTER_PID"
finish
