#!/usr/bin/env bash
# test_combine — sluice-dispatcher and sluice-combiner on a file:// store:
# every filtered/ object ends up in exactly one combined/ object, events are
# kept as a multiset, ledgers balance, replay is byte-identical, and neither
# kill -9, failing puts, SIGTERM, nor several dispatchers and combiners
# running at once make an input combined twice or not at all.
. "$(dirname "$0")/lib.sh"

store=$T/store
LEASES="local://$T/leases"
COMMON=(--store "file://$store" --leases "$LEASES" --admin off)

# check.py STORE E2E_DIR — the invariants of a drained store, printed as one line
# per problem; exit 1 if there is any.
cat >"$T/check.py" <<'EOF'
import collections, json, os, sys

store = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from verify import decoded

errors = []

def err(msg):
    errors.append(msg)

def read(path):
    return decoded(open(path, 'rb').read())

def keys(prefix):
    out = []
    for d, _, files in os.walk(os.path.join(store, prefix)):
        for f in files:
            if not f.startswith('.'):
                out.append(os.path.relpath(os.path.join(d, f), store))
    return sorted(out)

def events(data):
    c = collections.Counter()
    for line in data.split(b'\n'):
        if line:
            e = json.loads(line)
            c[(e['event'], e['id'])] += 1
    return c

filtered = keys('filtered')
want = collections.Counter()
lines_of = {}
for k in filtered:
    data = read(os.path.join(store, k))
    lines_of[k] = sum(1 for l in data.split(b'\n') if l)
    want += events(data)

got = collections.Counter()
owner = {}
manifests = keys('manifests/combined')
for mk in manifests:
    m = json.load(open(os.path.join(store, mk)))
    jid = m['job_id']
    if mk != 'manifests/combined/%s.json' % jid:
        err('%s names job %s' % (mk, jid))
    l = m['ledger']
    if l['in'] != l['out'] + l['rejected'] + l['duplicates']:
        err('%s: ledger does not balance: %s' % (jid, l))
    if sum(i['events'] for i in m['inputs']) != l['in'] or m['events'] != l['out']:
        err('%s: ledger disagrees with inputs/events' % jid)
    path = os.path.join(store, m['output_key'])
    if not os.path.exists(path):
        err('%s: output %s missing' % (jid, m['output_key']))
        continue
    raw = open(path, 'rb').read()
    data = read(path)
    if len(raw) != m['bytes'] or len(data) != m['uncompressed_bytes']:
        err('%s: bytes/uncompressed_bytes differ from the object' % jid)
    ev = events(data)
    if sum(ev.values()) != m['events']:
        err('%s: %d lines, manifest says %d' % (jid, sum(ev.values()), m['events']))
    got += ev
    for i in m['inputs']:
        k = i['key']
        if k in owner:
            err('%s is in two manifests: %s and %s' % (k, owner[k], jid))
        owner[k] = jid
        if k not in lines_of:
            err('%s: input %s is not in filtered/' % (jid, k))
        elif lines_of[k] != i['events']:
            err('%s: input %s has %d events, manifest says %d' % (jid, k, lines_of[k], i['events']))
    sj = os.path.join(store, 'jobs/split/%s.json' % jid)
    if not os.path.exists(sj):
        err('%s: no split job' % jid)
    else:
        s = json.load(open(sj))
        if (len(s['inputs']) != 1 or s['inputs'][0]['key'] != m['output_key']
                or s['inputs'][0]['size'] != m['bytes']):
            err('%s: split job does not name the combined object' % jid)

for k in filtered:
    if k not in owner:
        err('%s was never combined' % k)
    name = k.split('/')[-1][:-len('.ndjson.zst')]
    marker = os.path.join(store, 'state/combine', *k.split('/')[1:3], name)
    if not os.path.exists(marker):
        err('%s has no done marker' % k)
    elif k in owner and open(marker).read() != owner[k]:
        err('%s: done marker names %s, manifest %s' % (k, open(marker).read(), owner[k]))
if got != want:
    err('combined events differ from filtered: %d missing, %d extra'
        % (sum((want - got).values()), sum((got - want).values())))
if keys('jobs/combine'):
    err('jobs/combine/ not empty: %s' % keys('jobs/combine')[:3])
if len(keys('jobs/split')) != len(manifests):
    err('%d split jobs for %d manifests' % (len(keys('jobs/split')), len(manifests)))
for e in errors[:20]:
    print('#', e)
print('# %d filtered objects, %d events, %d combined objects'
      % (len(filtered), sum(want.values()), len(manifests)))
sys.exit(1 if errors or not filtered else 0)
EOF

# fill_filtered DIR SEED SLICES — gen events and filter them as SLICES objects.
fill_filtered() {
  local dir=$1 seed=$2 slices=$3 i
  mkdir -p "$dir"
  "$BIN/sluicectl" gen --count 20000 --seed "$seed" --manifest "$dir/gen.tsv" \
    >"$dir/gen.ndjson" || return 1
  split -n "l/$slices" -d -a 3 "$dir/gen.ndjson" "$dir/part."
  for f in "$dir"/part.*; do
    "$BIN/sluice-filter" --store "file://$store" --input "$f" --admin off \
      --instance "s$seed-${f##*.}" 2>>"$dir/filter.log" || return 1
  done
}

# Objects only: a put cut short by kill -9 leaves a hidden temp file.
hashes() { (cd "$store" && find combined manifests/combined -type f ! -name '.*' | sort | xargs sha256sum); }
# count_keys PREFIX — objects under PREFIX as the store lists them (a killed
# put's temp file is not one).
count_keys() { count_objects "file://$store" "$1"; }
# in_job PID — combiner PID holds a job's lease: it is inside that job.
in_job() { holds_lease "$T/leases" "$1" combine/; }
dispatch() { "$BIN/sluice-dispatcher" "${COMMON[@]}" --once --job-objects 6 "$@" >>"$T/disp.log" 2>&1; }
combine() { "$BIN/sluice-combiner" "${COMMON[@]}" --once "$@" >>"$T/comb.log" 2>&1; }
reset_combined() { rm -rf "$store/combined" "$store/manifests/combined" "$store/state/combine" \
  "$store/jobs/split"; }

# ---- one pass --------------------------------------------------------------
check "20 filtered objects are written" fill_filtered "$T/a" 1 20
check "there are 20 filtered objects" test "$(count_keys filtered)" -eq 20
check "dispatcher --once exits 0" dispatch
check "it wrote 4 jobs of at most 6 inputs" test "$(count_keys jobs/combine)" -eq 4
cp -r "$store/jobs/combine" "$T/jobs.saved"
check "combiner --once exits 0" combine
check "every filtered object is in exactly one combined object, events kept" \
  "$PY" "$T/check.py" "$store" "$HERE"
check "a second dispatcher pass creates nothing" dispatch
check "jobs/combine/ stays empty" test "$(count_keys jobs/combine)" -eq 0
hashes >"$T/ref.sha"

# ---- deterministic replay --------------------------------------------------
reset_combined
dispatch && combine
check "replay writes byte-identical combined objects and manifests" \
  diff "$T/ref.sha" <(hashes)
check "replay invariants hold" "$PY" "$T/check.py" "$store" "$HERE"

# ---- the other output modes ------------------------------------------------
# concat copies every input's zstd frames; auto copies the big inputs and
# recompresses the small ones into shared frames (120KiB splits these ~120 KB
# inputs into both kinds). The events and manifests' counts are the same.
for mode in "concat" "auto --concat-min 120KiB" "recompress"; do
  reset_combined
  dispatch && combine --mode $mode
  check "--mode $mode: invariants hold" "$PY" "$T/check.py" "$store" "$HERE"
done
reset_combined
dispatch && combine
check "back in the default mode the bytes are the same again" diff "$T/ref.sha" <(hashes)

# ---- a job committed by a holder that died before its cleanup -------------
job=$(basename "$(ls "$T/jobs.saved" | head -1)" .json)
marker=$(find "$store/state/combine" -type f ! -name '.*' | xargs grep -l "$job" | head -1)
inode=$(stat -c %i "$store"/combined/*/*/"$job".ndjson.zst)
mkdir -p "$store/jobs/combine" # an emptied directory is pruned
cp "$T/jobs.saved/$job.json" "$store/jobs/combine/"
rm -f "$marker" "$store/jobs/split/$job.json"
combine
check "a committed job only gets its cleanup redone" grep -q "job cleanup finished.*job=$job" "$T/comb.log"
check "its combined object is not rewritten" \
  test "$(stat -c %i "$store"/combined/*/*/"$job".ndjson.zst)" = "$inode"
check "its cleanup is complete again" "$PY" "$T/check.py" "$store" "$HERE"

# ---- an input that changed after dispatch ----------------------------------
mkdir -p "$store/jobs/combine"
"$PY" - "$T/jobs.saved/$job.json" "$store/jobs/combine" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
bad = d['job_id'][:-16] + 'ffffffffffffffff'
d['output_key'] = d['output_key'].replace(d['job_id'], bad)
d['job_id'] = bad
d['inputs'][0]['etag'] = 'not-the-etag'
json.dump(d, open('%s/%s.json' % (sys.argv[2], bad), 'w'))
EOF
combine
check "a job whose input changed is dropped, not an error (combiner --once exits 0)" test $? -eq 0
check "it is reported" grep -q "changed since the job was written" "$T/comb.log"
check "its descriptor goes (its inputs go back to the dispatcher) and nothing is written for it" \
  test "$(count_keys jobs/combine)" -eq 0 -a -z "$(find "$store/combined" -name '*ffffffffffffffff*')"
check "... and the drop is counted" grep -q "job dropped; its inputs go back" "$T/comb.log"
rm -f "$store"/jobs/combine/*

# ---- SIGTERM in the middle of a job: abandoned, exit 0 ---------------------
reset_combined
dispatch
# Recompressing at level 19 makes a 4 MB job take a second or more, so the
# signal lands in it (by default these ~120 KB inputs are copied, fast).
"$BIN/sluice-combiner" "${COMMON[@]}" --once --mode recompress --zstd-level 19 >"$T/term.log" 2>&1 &
pid=$!
PIDS+=("$pid")
check "the combiner starts a job" wait_until 30 in_job "$pid"
stop_pid "$pid"
check "SIGTERM mid-job exits 0" test $? -eq 0
check "the job is abandoned, nothing committed" \
  test "$(count_keys combined)" -eq 0 -a "$(count_keys jobs/combine)" -eq 4
check "the abandonment is logged" grep -q "job abandoned before its commit" "$T/term.log"

# ---- kill -9 in the middle of a job ----------------------------------------
"$BIN/sluice-combiner" "${COMMON[@]}" --mode recompress --zstd-level 19 >"$T/kill.log" 2>&1 &
pid=$!
PIDS+=("$pid")
check "the daemon starts a job" wait_until 30 in_job "$pid"
{ kill -9 "$pid"; wait "$pid"; } 2>/dev/null
check "kill -9 mid-job leaves every descriptor" test "$(count_keys jobs/combine)" -eq 4
combine
check "after kill -9 a re-run gives the same bytes" diff "$T/ref.sha" <(hashes)
check "after kill -9 invariants hold" "$PY" "$T/check.py" "$store" "$HERE"

# ---- failing puts: commits stop half way, then kill -9 ---------------------
reset_combined
dispatch
"$BIN/sluice-combiner" --store "fault:put_fail=0.4,seed=3:file://$store" --leases "$LEASES" \
  --admin off --once >"$T/fault.log" 2>&1 &
pid=$!
PIDS+=("$pid")
check "puts failed along the way" wait_log "$T/fault.log" "job failed; will retry" 60
some_written() { [ "$(count_keys combined)" -gt 0 ]; }
check "some combined output was written before the kill" wait_until 60 some_written
{ kill -9 "$pid"; wait "$pid"; } 2>/dev/null
note "left behind: $(count_keys combined) combined, $(count_keys manifests/combined) manifests," \
  "$(count_keys state/combine) markers, $(count_keys jobs/combine) descriptors"
combine
check "after half-done commits a re-run gives the same bytes" diff "$T/ref.sha" <(hashes)
check "after half-done commits invariants hold" "$PY" "$T/check.py" "$store" "$HERE"

# ---- 2 dispatchers + 3 combiners while objects keep arriving ---------------
rm -rf "$store"
store=$T/store2
COMMON=(--store "file://$store" --leases "local://$T/leases2" --admin off)
fill_filtered "$T/b" 2 10
DAEMON=(--store "file://$store" --leases "local://$T/leases2" --poll 100ms)
for i in 1 2; do
  "$BIN/sluice-dispatcher" "${DAEMON[@]}" --admin off --max-wait 200ms --job-objects 4 \
    --instance "d$i" >"$T/d$i.log" 2>&1 &
  eval "d${i}_pid=$!"
  PIDS+=("$!")
done
for i in 1 2 3; do
  admin=off
  [ "$i" -eq 1 ] && admin=127.0.0.1:0
  "$BIN/sluice-combiner" "${DAEMON[@]}" --admin "$admin" --instance "c$i" >"$T/c$i.log" 2>&1 &
  eval "c${i}_pid=$!"
  PIDS+=("$!")
done
# New objects arrive while they run; the active dispatcher and one combiner
# are killed half way (the others must take over).
(fill_filtered "$T/c" 3 30) &
feed_pid=$!
active() { grep -l "dispatcher lease acquired" "$T/d1.log" "$T/d2.log" 2>/dev/null | head -1; }
has_active() { [ -n "$(active)" ]; }
check "one dispatcher takes the lease" wait_until 30 has_active
a=$(active)
a=${a##*/d}
a=${a%.log}
standby=$((3 - a))
eval "active_pid=\$d${a}_pid standby_pid=\$d${standby}_pid"
check "the standby dispatcher has not taken the lease" bash -c "! grep -q 'dispatcher lease acquired' '$T/d$standby.log'"
{ kill -9 "$active_pid" "$c2_pid"; wait "$active_pid" "$c2_pid"; } 2>/dev/null
wait "$feed_pid"
check "new filtered objects kept arriving" test "$(count_keys filtered)" -eq 40
all_done() {
  n_done=$(count_keys state/combine)
  [ "$n_done" -eq 40 ] && [ "$(count_keys jobs/combine)" -eq 0 ]
}
n_done=0
check "the daemons combine everything" wait_until 120 all_done
note "$n_done of 40 done"
port=$(admin_port "$T/c1.log")
check "the combiner serves its metrics" \
  sh -c "curl -s http://127.0.0.1:$port/metrics | grep -q '^sluice_combiner_jobs_total'"
# The standby takes the lease at its next poll after the kill; the work
# may be drained before that, so wait for it rather than race it.
check "the standby dispatcher took over" wait_log "$T/d$standby.log" "dispatcher lease acquired" 30
for p in "$standby_pid" "$c1_pid" "$c3_pid"; do
  stop_pid "$p"
  check "daemon $p stops with exit 0 on SIGTERM" test $? -eq 0
done
check "no input in two manifests, every input combined" "$PY" "$T/check.py" "$store" "$HERE"
# A second job over inputs another job already combined (a paused or
# duplicated dispatcher): the first commit wins, the second job is dropped.
first=$(ls "$store/manifests/combined" | head -1)
"$PY" - "$store" "${first%.json}" <<'PY'
import json, sys
store, job = sys.argv[1], sys.argv[2]
m = json.load(open(f"{store}/manifests/combined/{job}.json"))
other = job[:-4] + ("0000" if not job.endswith("0000") else "1111")
d = {"version": 1, "job_id": other, "generation": m["generation"], "created_ms": 0,
     "output_key": m["output_key"].replace(job, other),
     "inputs": [{"key": i["key"], "size": i["size"], "etag": i["etag"]} for i in m["inputs"]]}
import os
os.makedirs(f"{store}/jobs/combine", exist_ok=True)
open(f"{store}/jobs/combine/{other}.json", "w").write(json.dumps(d))
print(other)
PY
"$BIN/sluice-combiner" "${COMMON[@]}" --once >"$T/superseded.log" 2>&1
check "a job over inputs combined by another job is dropped, not committed" \
  sh -c "grep -q 'already combined by another job' '$T/superseded.log' && [ -z \"\$(ls '$store/jobs/combine' 2>/dev/null)\" ]"
check "no input in two manifests after the superseded job" "$PY" "$T/check.py" "$store" "$HERE"
# A put killed before its rename leaves a temp file: an old one goes at a
# daemon's start and with each sweep (pipe_store_tidy), not at a --once
# run; a young one may be a live put's and stays.
mkdir -p "$store/state/combine"
printf x >"$store/state/combine/.tmp.1.dead.0" && touch -d '-2 hours' "$store/state/combine/.tmp.1.dead.0"
printf x >"$store/state/combine/.tmp.2.live.0"
"$BIN/sluice-combiner" "${COMMON[@]}" --once >"$T/once-tidy.log" 2>&1
check "a --once run does not walk the store for temp files" \
  test -e "$store/state/combine/.tmp.1.dead.0"
"$BIN/sluicectl" sweep --store "file://$store" >"$T/sweep.out" 2>"$T/sweep.err"
check "the sweep removes a dead put's temp file and keeps a young one" \
  test ! -e "$store/state/combine/.tmp.1.dead.0" -a -e "$store/state/combine/.tmp.2.live.0"
rm -f "$store/state/combine/.tmp.2.live.0"
check "no sanitizer reports in any log" \
  sh -c "! grep -rl --include='*.log' 'runtime error\|AddressSanitizer\|LeakSanitizer' $T"
finish
