#!/usr/bin/env bash
# sluicectl sweep, replay, reconcile and the backlog columns of status.
# Part 1 builds a file:// store by hand (aged with touch) for the retention
# rules of sweep and the backlog figures of status. Part 2 runs the real
# stages (filter → dispatcher → combiner → splitter, when they are built)
# and checks that replay re-issues the recorded work so the stages rewrite
# byte-identical objects, and that reconcile finds a tampered ledger.
. "$(dirname "$0")/lib.sh"

ctl="$BIN/sluicectl"
now=$(date +%s)
snapshot() { (cd "$1" && find . -type f ! -name '.*' -printf '%P %s %T@\n' | LC_ALL=C sort); }

# ============================ part 1: sweep, status ============================
root=$T/s1
store="file://$root"
D=86400
old=$((now - 10 * D)) # 10 days ago
oh=$(hour_dir "$old")
jo="g1-$(hour_id "$old")-00000000000000a1" # consumed combined job (10 d)
ju="g1-$(hour_id "$old")-00000000000000a2" # combined, not split yet (10 d)

# raw/: one object filtered 10 days ago (aged before the filter ran, so its
# filtered/ object is named from the aged version), and one landed later
# with the same age but never filtered.
mkdir -p "$root/raw/in"
echo '{"event":"page_view","id":"r1"}' >"$root/raw/in/done.ndjson"
touch -d "@$old" "$root/raw/in/done.ndjson"
"$BIN/sluice-filter" --store "$store" --admin off --once >"$T/filter1.log" 2>&1
check "the filter filtered the aged raw object" \
  test "$(find "$root/filtered/$oh" -name 'g1-raw-*' | wc -l)" -eq 1
raw_f=$(cd "$root" && find "filtered/$oh" -name 'g1-raw-*' | head -1)
# Its filtered object is combined (marker) so that it is old and consumed.
put "$root" "state/combine/$oh/$(basename "$raw_f" .ndjson.zst)" $((10 * D)) "$jo"
touch -d "@$old" "$root/$raw_f"
echo '{"event":"page_view","id":"r2"}' >"$root/raw/in/late.ndjson"
touch -d "@$old" "$root/raw/in/late.ndjson"

# filtered/: old+consumed, old+unconsumed, 2-day-old consumed, new consumed,
# new unconsumed.
put "$root" "filtered/$oh/f-old-done.ndjson.zst" $((10 * D))
put "$root" "state/combine/$oh/f-old-done" $((10 * D)) "$jo"
put "$root" "filtered/$oh/f-old-open.ndjson.zst" $((10 * D))
d2=$(hour_dir $((now - 2 * D)))
put "$root" "filtered/$d2/f-2d-done.ndjson.zst" $((2 * D))
put "$root" "state/combine/$d2/f-2d-done" $((2 * D)) "$jo"
nh=$(hour_dir "$now")
put "$root" "filtered/$nh/f-new-done.ndjson.zst" 60
put "$root" "state/combine/$nh/f-new-done" 60 "$jo"
put "$root" "filtered/$nh/f-new-open.ndjson.zst" 30
# combined/: a split job (manifest) and one not split yet, both 10 days old.
put "$root" "combined/$oh/$jo.ndjson.zst" $((10 * D))
put "$root" "manifests/combined/$jo.json" $((10 * D))
put "$root" "manifests/split/$jo.json" $((10 * D))
put "$root" "combined/$oh/$ju.ndjson.zst" $((10 * D))
put "$root" "manifests/combined/$ju.json" $((10 * D))
put "$root" "jobs/split/$ju.json" $((10 * D))
# rejected/, split/: by age alone.
put "$root" "rejected/$oh/rj-31d.ndjson.zst" $((31 * D))
put "$root" "rejected/$oh/rj-10d.ndjson.zst" $((10 * D))
put "$root" "split/page_view/$oh/g1-old.ndjson.zst" $((91 * D))
put "$root" "manifests/split/g1-2020010100-00000000000000b1.json" $((91 * D))
put "$root" "split/page_view/$oh/$jo.ndjson.zst" $((10 * D))
# state/dedup/: past the replay horizon, within it, and new.
# (kept past the de-duplication window, 1 d, up to the replay horizon: the
# retention of combined/, 30 d, so that a replay of an old hour finds it)
dh=$(hour_dir $((now - 31 * D)))
put "$root" "state/dedup/$dh/$jo.idx" $((31 * D))
put "$root" "state/dedup/$oh/g1-replayable.idx" $((2 * D))
put "$root" "state/dedup/$nh/g1-new.idx" 60
# jobs/combine/: two pending jobs, the older one an hour old.
put "$root" "jobs/combine/g1-$(hour_id "$now")-00000000000000c1.json" 3600
put "$root" "jobs/combine/g1-$(hour_id "$now")-00000000000000c2.json" 10

# --- status backlog ---
"$ctl" status --store "$store" >"$T/st.out" 2>"$T/st.err"
check "status exits 0" test $? -eq 0
row() { awk -v p="$1" '$1 == p {print $6, $7}' "$T/st.out"; }
# filtered/ not combined: f-old-open (10 d) and f-new-open.
check "status: filtered backlog is the 2 objects without a marker, oldest 10d ($(row filtered/))" \
  bash -c "[[ '$(row filtered/)' =~ ^2\ 10d ]]"
check "status: 2 pending combine jobs, oldest 1h ($(row jobs/combine/))" \
  bash -c "[[ '$(row jobs/combine/)' =~ ^2\ (59m|1h) ]]"
check "status: 1 pending split job on combined/, 10d old ($(row combined/))" \
  bash -c "[[ '$(row combined/)' =~ ^1\ 10d ]]"
check "status: prefixes that feed no stage show - ($(row split/))" test "$(row split/)" = "- -"
check "status columns stay aligned" \
  bash -c "[ \$(awk '{print length(\$0)}' '$T/st.out' | sort -u | wc -l) -eq 1 ]"
"$ctl" status --store "$store" --json >"$T/st.json"
$PY - "$T/st.json" <<'EOF' >"$T/st.py" 2>&1
import json, sys
d = {r["prefix"]: r for r in json.load(open(sys.argv[1]))["prefixes"]}
assert d["filtered/"]["backlog"] == 2, d["filtered/"]
assert d["filtered/"]["backlog_oldest_age_ms"] >= 10 * 86400 * 1000, d["filtered/"]
assert d["jobs/combine/"]["backlog"] == 2, d["jobs/combine/"]
assert d["combined/"]["backlog"] == 1, d["combined/"]
assert d["split/"]["backlog"] is None and d["split/"]["backlog_oldest_age_ms"] is None
print("ok")
EOF
check "status --json has the backlog figures ($(tail -1 "$T/st.py"))" test "$(tail -1 "$T/st.py")" = ok

# --- sweep --dry-run ---
want_deleted=$(LC_ALL=C sort <<EOF
$raw_f
raw/in/done.ndjson
filtered/$oh/f-old-done.ndjson.zst
state/combine/$oh/f-old-done
state/combine/$oh/$(basename "$raw_f" .ndjson.zst)
rejected/$oh/rj-31d.ndjson.zst
split/page_view/$oh/g1-old.ndjson.zst
manifests/split/g1-2020010100-00000000000000b1.json
state/dedup/$dh/$jo.idx
EOF
)
snapshot "$root" >"$T/snap.before"
"$ctl" sweep --store "$store" --dry-run >"$T/dry.out" 2>"$T/dry.err"
check "sweep --dry-run exits 0" test $? -eq 0
snapshot "$root" >"$T/snap.after"
check "sweep --dry-run deletes nothing" diff "$T/snap.before" "$T/snap.after"
check "sweep --dry-run lists exactly what it would delete" \
  diff <(echo "$want_deleted") <(sed -n 's/^would delete //p' "$T/dry.out" | LC_ALL=C sort)
check "sweep --dry-run prints a summary per prefix" grep -q '^filtered/ .* 7d' "$T/dry.err"

# --- sweep ---
"$ctl" sweep --store "$store" >"$T/sweep.out" 2>"$T/sweep.err"
check "sweep exits 0" test $? -eq 0
check "sweep deletes exactly the old and consumed objects" \
  diff <(tree "$root") <(cut -d' ' -f1 "$T/snap.before" | LC_ALL=C comm -23 - <(echo "$want_deleted"))
check "sweep keeps an old filtered object that is not combined" \
  test -f "$root/filtered/$oh/f-old-open.ndjson.zst"
check "sweep keeps an old raw object that is not filtered" test -f "$root/raw/in/late.ndjson"
check "sweep keeps a combined object that is not split" test -f "$root/combined/$oh/$ju.ndjson.zst"
obj_line=$(grep -n "^deleted filtered/.*f-old-done" "$T/sweep.out" | cut -d: -f1)
mark_line=$(grep -n "^deleted state/combine/.*f-old-done" "$T/sweep.out" | cut -d: -f1)
check "sweep deletes a filtered object before its marker (lines $obj_line, $mark_line)" \
  test "${obj_line:-9999}" -lt "${mark_line:-0}"
"$ctl" sweep --store "$store" >"$T/sweep2.out" 2>&1
check "a second sweep finds nothing more" test -z "$(grep '^deleted' "$T/sweep2.out")"

# --- retention overrides ---
"$ctl" sweep --store "$store" --retention '{"filtered":"1d","combined":"5d"}' >"$T/sweep3.out" 2>&1
check "sweep --retention exits 0" test $? -eq 0
check "retention filtered=1d deletes the 2-day-old consumed object and its marker" \
  test ! -e "$root/filtered/$d2/f-2d-done.ndjson.zst" -a ! -e "$root/state/combine/$d2/f-2d-done"
check "retention keeps fresh consumed objects" test -f "$root/filtered/$nh/f-new-done.ndjson.zst"
check "retention combined=5d deletes a split combined object and its manifest" \
  test ! -e "$root/combined/$oh/$jo.ndjson.zst" -a ! -e "$root/manifests/combined/$jo.json"
check "... but keeps its split manifest (split: 90d) and the unsplit one" \
  test -f "$root/manifests/split/$jo.json" -a -f "$root/combined/$oh/$ju.ndjson.zst"
check "still keeps the unconsumed filtered object" test -f "$root/filtered/$oh/f-old-open.ndjson.zst"
"$ctl" sweep --store "$store" --retention '{"filtred":"1d"}' >/dev/null 2>"$T/bad.err"
check "an unknown retention prefix is a usage error (exit 2)" test $? -eq 2
check "... naming it" grep -q filtred "$T/bad.err"
"$ctl" sweep --store "$store" --retention '{"raw":"soon"}' >/dev/null 2>&1
check "a retention that is not a duration is a usage error" test $? -eq 2

# ===================== part 2: replay, reconcile, real stages =====================
root=$T/s2
store="file://$root"
leases="local://$T/leases"
stage() { "$BIN/sluice-$1" --store "$store" --leases "$leases" --admin off --once >>"$T/stages.log" 2>&1; }
pipeline() { stage dispatcher && stage combiner && stage splitter; }
"$ctl" gen --count 400 --seed 5 --dup-rate 0.05 --bad-rate 0.02 >"$T/ev.ndjson"
"$BIN/sluice-filter" --store "$store" --admin off --input "$T/ev.ndjson" >>"$T/stages.log" 2>&1
mkdir -p "$root/raw/land"
"$ctl" gen --count 60 --seed 6 >"$root/raw/land/a.ndjson"
stage filter
pipeline
check "the pipeline ran (stages exit 0)" test $? -eq 0
check "the pipeline drained" $PY "$HERE/verify.py" drained "$root"
job=$(basename "$(ls "$root/manifests/combined/" | head -1)" .json)
njobs=$(ls "$root/manifests/combined/" | wc -l) # 2 if the test straddles an hour
note "job $job ($njobs in all)"

# --- reconcile on a consistent store ---
"$ctl" reconcile --store "$store" --from -1d >"$T/rec.out" 2>"$T/rec.err"
check "reconcile exits 0 on a consistent store ($(cat "$T/rec.err"))" test $? -eq 0
rows_manifests=$($PY -c '
import json, glob, sys
print(sum(o["rows"] for f in glob.glob(sys.argv[1] + "/manifests/split/*.json")
          for o in json.load(open(f))["outputs"]))' "$root")
check "reconcile's total equals the rows of the split manifests ($rows_manifests)" \
  test "$(awk '$1 == "total" {print $2}' "$T/rec.out")" = "$rows_manifests"
check "reconcile prints one row per event type and hour" \
  test "$(grep -vc -e '^EVENT' -e '^total' "$T/rec.out")" -eq \
  "$(cd "$root/split" && find . -name '*.zst' | cut -d/ -f2-4 | sort -u | wc -l)"
"$ctl" reconcile --store "$store" --from -1d --to -23h >/dev/null 2>&1
check "reconcile of an empty range exits 0" test $? -eq 0

# --- status when drained ---
"$ctl" status --store "$store" >"$T/st2.out"
check "status: no backlog once drained" \
  test "$(awk '$1 == "filtered/" || $1 == "jobs/combine/" || $1 == "combined/" {print $6}' "$T/st2.out" | tr '\n' ' ')" = "0 0 0 "

snap_out() { (cd "$root" && find combined split manifests -type f ! -name '.*' -print0 | LC_ALL=C sort -z | xargs -0 md5sum); }
snap_out >"$T/out.0"

# --- replay combine ---
"$ctl" replay combine --store "$store" --leases "$leases" --from -1d --dry-run >"$T/rc.dry" 2>&1
check "replay combine --dry-run exits 0" test $? -eq 0
check "replay combine --dry-run lists the job" grep -q "jobs/combine/$job.json" "$T/rc.dry"
check "replay combine --dry-run changes nothing" \
  test -f "$root/manifests/combined/$job.json" -a ! -e "$root/jobs/combine/$job.json"
"$ctl" replay combine --store "$store" --leases "$leases" --from -1d >"$T/rc.out" 2>&1
check "replay combine exits 0" test $? -eq 0
check "replay combine writes the descriptor back and removes the manifest" \
  test -f "$root/jobs/combine/$job.json" -a ! -e "$root/manifests/combined/$job.json"
"$ctl" status --store "$store" >"$T/st3.out"
check "status shows the re-issued combine job as backlog" \
  test "$(awk '$1 == "jobs/combine/" {print $6}' "$T/st3.out")" = "$njobs"
stage combiner && stage splitter
snap_out >"$T/out.1"
check "the combiner redoes the job into byte-identical objects and manifests" \
  diff "$T/out.0" "$T/out.1"
check "no combine descriptor is left" test "$(count_objects "$store" jobs/combine)" -eq 0

# --- replay split ---
"$ctl" replay split --store "$store" --leases "$leases" --from -1d --dry-run >"$T/rs.dry" 2>&1
check "replay split --dry-run lists the job and changes nothing" \
  bash -c "grep -q 'jobs/split/$job.json' '$T/rs.dry' && test -f '$root/manifests/split/$job.json'"
"$ctl" replay split --store "$store" --leases "$leases" --from -1d >"$T/rs.out" 2>&1
check "replay split exits 0" test $? -eq 0
check "replay split writes the split job back and removes the manifest" \
  test -f "$root/jobs/split/$job.json" -a ! -e "$root/manifests/split/$job.json"
"$ctl" status --store "$store" >"$T/st4.out"
check "status shows the pending split job on combined/" \
  test "$(awk '$1 == "combined/" {print $6}' "$T/st4.out")" = "$njobs"
stage splitter
snap_out >"$T/out.2"
check "the splitter redoes the job into byte-identical outputs (its own claims: nothing dropped)" \
  diff "$T/out.0" "$T/out.2"

# --- replay filter ---
raw_f=$(cd "$root" && find filtered -name 'g1-raw-*' | head -1)
md5_before=$(md5sum <"$root/$raw_f")
"$ctl" replay filter --store "$store" --from -1d --dry-run >"$T/rf.dry" 2>&1
check "replay filter --dry-run names the raw object's output and keeps it" \
  bash -c "grep -q '$raw_f' '$T/rf.dry' && test -f '$root/$raw_f'"
"$ctl" replay filter --store "$store" --from -1d >"$T/rf.out" 2>&1
check "replay filter exits 0" test $? -eq 0
check "replay filter deletes the raw object's filtered output" test ! -e "$root/$raw_f"
check "replay filter leaves HTTP batches alone" \
  test "$(find "$root/filtered" -name 'g1-*' ! -name 'g1-raw-*' | wc -l)" -ge 1
stage filter
check "sluice-filter --once rewrites the same key with identical bytes" \
  test "$(md5sum <"$root/$raw_f" 2>/dev/null)" = "$md5_before"
"$ctl" reconcile --store "$store" --from -1d >/dev/null 2>"$T/rec2.err"
check "reconcile still exits 0 after the replays ($(cat "$T/rec2.err"))" test $? -eq 0

# --- reconcile finds tampering ---
man=$root/manifests/combined/$job.json
cp "$man" "$T/man.bak"
$PY - "$man" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["ledger"]["in"] += 1
open(sys.argv[1], "w").write(json.dumps(m))
EOF
"$ctl" reconcile --store "$store" --from -1d >"$T/rec3.out" 2>&1
check "reconcile exits 1 when a combined ledger is tampered with" test $? -eq 1
check "... naming the job" grep -q "difference: job $job" "$T/rec3.out"
cp "$T/man.bak" "$man"
$PY - "$man" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["inputs"] = m["inputs"][1:]  # an input dropped from the manifest
m["ledger"]["in"] = m["ledger"]["out"] = m["events"] = sum(i["events"] for i in m["inputs"])
open(sys.argv[1], "w").write(json.dumps(m))
EOF
"$ctl" reconcile --store "$store" --from -1d >"$T/rec4.out" 2>&1
check "reconcile exits 1 when a filtered object is in no combined manifest" test $? -eq 1
check "... naming the object and the job whose counts differ" \
  bash -c "grep -q 'in no combined manifest' '$T/rec4.out' && grep -q 'job $job' '$T/rec4.out'"
cp "$T/man.bak" "$man"
sman=$root/manifests/split/$job.json
cp "$sman" "$T/sman.bak"
$PY - "$sman" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["outputs"][0]["rows"] += 3
open(sys.argv[1], "w").write(json.dumps(m))
EOF
"$ctl" reconcile --store "$store" --from -1d >"$T/rec5.out" 2>&1
check "reconcile exits 1 when a split output's rows are tampered with" test $? -eq 1
check "... naming the job" grep -q "difference: job $job: split outputs hold" "$T/rec5.out"
cp "$T/sman.bak" "$sman"
"$ctl" reconcile --store "$store" --from -1d >/dev/null 2>&1
check "reconcile exits 0 again once restored" test $? -eq 0

# --- usage ---
"$ctl" replay --store "$store" --from -1d >/dev/null 2>&1
check "replay without a STAGE is a usage error" test $? -eq 2
"$ctl" replay combine --store "$store" >/dev/null 2>&1
check "replay without --from is a usage error" test $? -eq 2
"$ctl" replay everything --store "$store" --from -1d >/dev/null 2>&1
check "replay of an unknown stage is a usage error" test $? -eq 2
"$ctl" reconcile --store "$store" --from yesterday-ish >/dev/null 2>&1
check "reconcile with a bad time is a usage error" test $? -eq 2
for c in replay sweep reconcile; do
  "$ctl" "$c" --help >"$T/help.$c"
  check "$c --help exits 0 and describes it" test $? -eq 0 -a -s "$T/help.$c"
done

finish
