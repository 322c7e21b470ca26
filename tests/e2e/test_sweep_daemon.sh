#!/usr/bin/env bash
# The dispatcher's periodic retention sweep: a daemon with --sweep-every 1s
# on a store holding aged consumed and unconsumed objects deletes exactly the
# consumed old ones (the rules of `sluicectl sweep`), counts them in its
# metrics, sweeps again later, and never sweeps with --once. Retentions that
# could sweep objects while a stage lags are refused at start.
. "$(dirname "$0")/lib.sh"

now=$(date +%s)
D=86400

root=$T/store
store="file://$root"
old=$((now - 10 * D))
oh=$(hour_dir "$old")
nh=$(hour_dir "$now")
jo="g1-$(hour_id "$old")-00000000000000a1" # split
ju="g1-$(hour_id "$old")-00000000000000a2" # combined, not split

# raw/: one filtered (by the real filter, aged first so that its filtered/
# object is named from the aged version), one never filtered.
mkdir -p "$root/raw/in"
echo '{"event":"page_view","id":"r1"}' >"$root/raw/in/done.ndjson"
touch -d "@$old" "$root/raw/in/done.ndjson"
"$BIN/sluice-filter" --store "$store" --admin off --once >"$T/filter.log" 2>&1
raw_f=$(cd "$root" && find "filtered/$oh" -name 'g1-raw-*' | head -1)
check "the filter filtered the aged raw object" test -n "$raw_f"
put "$root" "state/combine/$oh/$(basename "$raw_f" .ndjson.zst)" $((10 * D)) "$jo"
touch -d "@$old" "$root/$raw_f"
echo '{"event":"page_view","id":"r2"}' >"$root/raw/in/late.ndjson"
touch -d "@$old" "$root/raw/in/late.ndjson"
# filtered/: old combined, old not combined, new combined.
put "$root" "filtered/$oh/f-old-done.ndjson.zst" $((10 * D))
put "$root" "state/combine/$oh/f-old-done" $((10 * D)) "$jo"
put "$root" "filtered/$oh/f-old-open.ndjson.zst" $((10 * D))
put "$root" "filtered/$nh/f-new-done.ndjson.zst" 60
put "$root" "state/combine/$nh/f-new-done" 60 "$jo"
# combined/ (40 d, retention 30 d): one split, one not.
put "$root" "combined/$oh/$jo.ndjson.zst" $((40 * D))
put "$root" "manifests/combined/$jo.json" $((40 * D))
put "$root" "manifests/split/$jo.json" $((40 * D))
put "$root" "combined/$oh/$ju.ndjson.zst" $((40 * D))
put "$root" "manifests/combined/$ju.json" $((40 * D))
put "$root" "jobs/split/$ju.json" $((40 * D))
# rejected/, split/, state/dedup/: by age (state/dedup/ past the replay horizon).
put "$root" "rejected/$oh/rj-31d.ndjson.zst" $((31 * D))
put "$root" "rejected/$oh/rj-10d.ndjson.zst" $((10 * D))
put "$root" "split/page_view/$oh/g1-old.ndjson.zst" $((91 * D))
put "$root" "split/page_view/$oh/$jo.ndjson.zst" $((10 * D))
# (kept past the de-duplication window, 1 d, up to the replay horizon: the
# retention of combined/, 30 d, so that a replay of an old hour finds it)
dh=$(hour_dir $((now - 31 * D)))
put "$root" "state/dedup/$dh/$jo.idx" $((31 * D))
put "$root" "state/dedup/$oh/g1-replayable.idx" $((2 * D))
put "$root" "state/dedup/$nh/g1-new.idx" 60

want_deleted=$(LC_ALL=C sort <<EOF2
$raw_f
raw/in/done.ndjson
filtered/$oh/f-old-done.ndjson.zst
state/combine/$oh/f-old-done
state/combine/$oh/$(basename "$raw_f" .ndjson.zst)
combined/$oh/$jo.ndjson.zst
manifests/combined/$jo.json
rejected/$oh/rj-31d.ndjson.zst
split/page_view/$oh/g1-old.ndjson.zst
state/dedup/$dh/$jo.idx
EOF2
)
cp -a "$root" "$T/copy"
tree "$root" >"$T/before"

# --- --once never sweeps ---
"$BIN/sluice-dispatcher" --store "file://$T/copy" --leases "local://$T/leases-once" --admin off \
  --once --sweep-every 1s >"$T/once.log" 2>&1
check "dispatcher --once exits 0" test $? -eq 0
check "dispatcher --once sweeps nothing" test -f "$T/copy/filtered/$oh/f-old-done.ndjson.zst" \
  -a -f "$T/copy/raw/in/done.ndjson" -a -f "$T/copy/rejected/$oh/rj-31d.ndjson.zst"
check "... and logs no sweep" bash -c "! grep -q 'sweep done' '$T/once.log'"

# --- refused retentions ---
"$BIN/sluice-dispatcher" --store "file://$T/copy" --leases "local://$T/leases-once" --admin off \
  --once --retention '{"filtered":"30m"}' >/dev/null 2>"$T/bad1.err"
rc=$?
check "a filtered/ retention under 1h stops the dispatcher (exit $rc)" test "$rc" -ne 0
check "... with a message naming it" grep -q 'filtered/.*at least 1h' "$T/bad1.err"
"$BIN/sluice-dispatcher" --store "file://$T/copy" --leases "local://$T/leases-once" --admin off \
  --once --retention '{"combined":"10m"}' >/dev/null 2>"$T/bad2.err"
check "a combined/ retention under 1h stops the dispatcher" test $? -ne 0
"$BIN/sluice-dispatcher" --store "file://$T/copy" --leases "local://$T/leases-once" --admin off \
  --once --retention '{"filtred":"1d"}' >/dev/null 2>"$T/bad3.err"
check "an unknown retention prefix stops the dispatcher" test $? -ne 0
check "... naming it" grep -q filtred "$T/bad3.err"
"$BIN/sluice-dispatcher" --store "file://$T/copy" --leases "local://$T/leases-once" --admin off \
  --once --retention '{"raw":"8d"}' >/dev/null 2>"$T/warn.err"
check "raw/ outliving filtered/ is a warning, not an error" test $? -eq 0
check "... that is logged" grep -q 'raw/ outlives filtered/' "$T/warn.err"

# --- the daemon ---
"$BIN/sluice-dispatcher" --store "$store" --leases "local://$T/leases" --admin 127.0.0.1:0 \
  --sweep-every 1s --poll 200ms >"$T/disp.log" 2>&1 &
DISP=$!
PIDS+=("$DISP")
check "the daemon logs a sweep" wait_log "$T/disp.log" 'msg="sweep done"' 15
check "the daemon deletes exactly the old and consumed objects" \
  diff <(tree "$root" | grep -v '^jobs/combine/') <(LC_ALL=C comm -23 "$T/before" - <<<"$want_deleted")
check "it keeps an old filtered object that is not combined" \
  test -f "$root/filtered/$oh/f-old-open.ndjson.zst"
check "it keeps an old raw object that is not filtered" test -f "$root/raw/in/late.ndjson"
check "it keeps a combined object that is not split" test -f "$root/combined/$oh/$ju.ndjson.zst"
check "the sweep log line has the counts" \
  grep -q 'msg="sweep done".*raw=1 filtered=2 rejected=1 combined=1 split_manifests=0 split=1 dedup=1 markers_manifests=3 kept=3 errors=0' "$T/disp.log"

port=$(sed -n 's/.*msg="admin listening".* port=\([0-9]*\).*/\1/p' "$T/disp.log" | head -1)
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
check "sluice_sweep_deleted_total{prefix=\"filtered/\"} is 2 ($(metric 'sluice_sweep_deleted_total{prefix="filtered/"}'))" \
  test "$(metric 'sluice_sweep_deleted_total{prefix="filtered/"}')" = 2
check "sluice_sweep_deleted_total{prefix=\"state/combine/\"} is 2" \
  test "$(metric 'sluice_sweep_deleted_total{prefix="state/combine/"}')" = 2
check "sluice_sweep_deleted_total{prefix=\"raw/\"} is 1" \
  test "$(metric 'sluice_sweep_deleted_total{prefix="raw/"}')" = 1
check "sluice_sweep_deleted_total{prefix=\"manifests/combined/\"} is 1" \
  test "$(metric 'sluice_sweep_deleted_total{prefix="manifests/combined/"}')" = 1
check "sluice_sweep_errors_total is 0" test "$(metric sluice_sweep_errors_total)" = 0

# A second sweep a second later: counted, deleting nothing more; then an
# object that ages past its retention while the daemon runs goes too.
runs=0
swept_twice() { runs=$(metric sluice_sweep_runs_total); [ "${runs:-0}" -ge 2 ]; }
wait_until 30 swept_twice
check "the daemon sweeps again after --sweep-every (runs=$runs)" test "${runs:-0}" -ge 2
check "... deleting nothing more" test "$(metric 'sluice_sweep_deleted_total{prefix="filtered/"}')" = 2
put "$root" "rejected/$oh/rj-late.ndjson.zst" $((31 * D))
wait_until 30 test ! -e "$root/rejected/$oh/rj-late.ndjson.zst"
check "an object aged past its retention later is swept by a later run" \
  test ! -e "$root/rejected/$oh/rj-late.ndjson.zst"

# A standby dispatcher (the lease is held) never sweeps: after passes that
# found the lease busy (sluice_lease_events_total{result="busy"}), no sweep.
"$BIN/sluice-dispatcher" --store "$store" --leases "local://$T/leases" --admin 127.0.0.1:0 \
  --sweep-every 1s --poll 200ms --instance standby >"$T/standby.log" 2>&1 &
STANDBY=$!
PIDS+=("$STANDBY")
sport=$(admin_port "$T/standby.log")
busy() {
  curl -s "http://127.0.0.1:$sport/metrics" |
    awk '$1 == "sluice_lease_events_total{result=\"busy\"}" { n = $2 } END { exit !(n >= 8) }'
}
check "the standby finds the lease held, pass after pass" wait_until 30 busy
check "a standby dispatcher does not sweep" bash -c "! grep -q 'sweep done' '$T/standby.log'"
stop_pid "$STANDBY"
stop_pid "$DISP"
check "the daemon stops cleanly on SIGTERM" test $? -eq 0

finish
