#!/usr/bin/env bash
# The splitter on real files: generated events (with client retries) go
# through the filter, into combined objects (the dispatcher and combiner),
# and the splitter routes them to split/<event>/dt=/hr=/ exactly once. Manifests balance and list what was
# written; a re-run writes the same bytes and keeps its events; a second
# combined object repeating events drops them as cross-batch duplicates;
# kill -9 at any moment, then a re-run, gives the exact same result.
. "$(dirname "$0")/lib.sh"

store=$T/store
S=(--store "file://$store" --leases "local://$T/leases" --admin off)

cat >"$T/tool.py" <<'PY'
"""Fixtures and checks for test_split.sh (file:// store layout)."""
import collections, glob, json, os, subprocess, sys


def etag(path):
    st = os.stat(path)
    return '%x-%x-%x' % (st.st_mtime_ns, st.st_size, st.st_ino)


def zcat(path):
    return subprocess.run(['zstd', '-dcq', path], capture_output=True, check=True).stdout


def put(store, key, data):
    path = os.path.join(store, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'wb') as f:
        f.write(data)
    os.rename(path + '.tmp', path)
    return path


def descriptor(store, key, job):
    """jobs/split/<job>.json for the combined object at key."""
    d = {"version": 1, "job_id": job, "generation": 1, "created_ms": 0,
         "output_key": "manifests/split/%s.json" % job,
         "inputs": [{"key": key, "size": os.path.getsize(os.path.join(store, key)),
                     "etag": etag(os.path.join(store, key))}]}
    put(store, 'jobs/split/%s.json' % job, (json.dumps(d, separators=(',', ':')) + '\n').encode())


def extra(store, job, repeat, new):
    """A second combined object in the partition of the first: `repeat`
    events already in split/ (a duplicate delivery) and `new` fresh ones."""
    first = sorted(glob.glob(store + '/combined/dt=*/hr=*/*.ndjson.zst'))[0]
    rel = os.path.relpath(first, store).split('/')
    lines = [l for l in zcat(first).split(b'\n') if l]
    out = lines[:repeat]
    for i in range(new):
        ev = json.loads(lines[i])
        ev['id'] = 'fresh-%d' % i
        out.append(json.dumps(ev, separators=(',', ':')).encode())
    z = subprocess.run(['zstd', '-1', '-cq'], input=b'\n'.join(out) + b'\n',
                       capture_output=True, check=True).stdout
    key = 'combined/%s/%s/%s.ndjson.zst' % (rel[1], rel[2], job)
    put(store, key, z)
    descriptor(store, key, job)


def check(store, want_dups=None):
    """Manifests against the files; no (event, id) twice in split/."""
    problems = []
    listed = set()
    seen = collections.Counter()
    total_out = 0
    for mp in sorted(glob.glob(store + '/manifests/split/*.json')):
        m = json.load(open(mp))
        l = m['ledger']
        if l['in'] != l['out'] + l['rejected'] + l['duplicates']:
            problems.append('unbalanced ledger %s: %s' % (mp, l))
        if m['duplicates_dropped'] != l['duplicates']:
            problems.append('duplicates_dropped != ledger duplicates in ' + mp)
        if [e['url'] for e in m['entries']] != [o['key'] for o in m['outputs']]:
            problems.append('entries do not list the outputs in ' + mp)
        rows = 0
        for o, e in zip(m['outputs'], m['entries']):
            path = os.path.join(store, o['key'])
            listed.add(o['key'])
            if not os.path.exists(path):
                problems.append('missing output ' + o['key'])
                continue
            if os.path.getsize(path) != o['bytes'] or e['meta']['content_length'] != o['bytes']:
                problems.append('wrong size for ' + o['key'])
            got = [json.loads(x) for x in zcat(path).split(b'\n') if x]
            if len(got) != o['rows']:
                problems.append('%s has %d rows, manifest says %d' % (o['key'], len(got), o['rows']))
            want = 'split/%s/dt=%s/hr=%s/%s.ndjson.zst' % (o['event'], o['dt'], o['hr'], m['job_id'])
            if o['key'] != want:
                problems.append('unexpected key %s' % o['key'])
            for ev in got:
                seen[(ev['event'], ev['id'])] += 1
                if ev['event'] != o['event'] or ev['received_at'][:13] != o['dt'] + 'T' + o['hr']:
                    problems.append('%s holds an event of %s at %s' % (o['key'], ev['event'], ev['received_at']))
                    break
            rows += o['rows']
        if rows != l['out']:
            problems.append('outputs hold %d rows, ledger out is %d in %s' % (rows, l['out'], mp))
        total_out += rows
    on_disk = {os.path.relpath(p, store) for p in glob.glob(store + '/split/*/*/*/*')}
    if on_disk != listed:
        problems.append('files under split/ not in a manifest: %s' % sorted(on_disk - listed)[:3])
    twice = [k for k, c in seen.items() if c > 1]
    if twice:
        problems.append('%d events appear twice in split/, e.g. %s' % (len(twice), twice[:2]))
    for p in problems:
        print('# ' + p)
    return not problems


def manifest(store, job):
    return json.load(open('%s/manifests/split/%s.json' % (store, job)))


if __name__ == '__main__':
    cmd, store = sys.argv[1], sys.argv[2]
    if cmd == 'extra':
        extra(store, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == 'check':
        sys.exit(0 if check(store) else 1)
    elif cmd == 'field':  # field STORE JOB a.b.c
        v = manifest(store, sys.argv[3])
        for part in sys.argv[4].split('.'):
            v = v[part]
        print(v)
PY

# sums — checksums of every split file and split manifest in $store.
# (A put cut short by kill -9 leaves a hidden temp file, which no listing shows.)
sums() { (cd "$store" && find split manifests/split -type f ! -name '.*' | sort | xargs sha256sum); }

# make_jobs — combined objects and their split jobs from filtered/.
make_jobs() {
  "$BIN/sluice-dispatcher" "${S[@]}" --once >>"$T/dispatcher.log" 2>&1 &&
    "$BIN/sluice-combiner" "${S[@]}" --once >>"$T/combiner.log" 2>&1
}

# --- fixtures: generated events with client retries, filtered, combined ---
"$BIN/sluicectl" gen --count 20000 --seed 2 --dup-rate 0.05 --manifest "$T/gen.tsv" >"$T/gen.ndjson"
"$BIN/sluice-filter" "${S[@]}" --input "$T/gen.ndjson" >"$T/filter.log" 2>&1
check "the filter stores the generated events" test $? -eq 0
make_jobs
check "combined objects and split jobs are made" \
  bash -c "ls '$store'/jobs/split/*.json >/dev/null 2>&1"
mkdir -p "$T/saved" && cp "$store"/jobs/split/*.json "$T/saved/"
job=$(basename "$(ls "$store"/jobs/split/*.json | head -1)" .json)

# --- the split ---
"$BIN/sluice-splitter" "${S[@]}" --once >"$T/split1.log" 2>&1
check "the splitter exits 0" test $? -eq 0
check "every accepted event is in split/ once, in its event's file for its hour" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"
check "manifests balance and list exactly the files written, with rows and bytes" \
  "$PY" "$T/tool.py" check "$store"
dups=$("$PY" "$T/tool.py" field "$store" "$job" duplicates_dropped)
want_dups=$(awk -F'\t' '$2 == "accepted"' "$T/gen.tsv" | cut -f3,4 | sort | uniq -d -c |
  awk '{n += $1 - 1} END {print n + 0}')
check "in-batch retries are dropped and counted ($dups, expected $want_dups)" \
  test "$dups" = "$want_dups"
check "jobs/split/ is empty afterwards" test "$(count_objects "file://$store" jobs/split)" -eq 0
check "the job's de-duplication index is stored" \
  bash -c "ls '$store'/state/dedup/dt=*/hr=*/$job.idx >/dev/null"
sums >"$T/sums1"

# --- a re-run of the same job writes the same bytes and keeps its events ---
rm -f "$store/manifests/split/$job.json"
mkdir -p "$store/jobs/split" && cp "$T/saved/$job.json" "$store/jobs/split/"
"$BIN/sluice-splitter" "${S[@]}" --once >"$T/split2.log" 2>&1
check "the re-run exits 0" test $? -eq 0
sums >"$T/sums2"
check "the re-run rewrites byte-identical split files and manifest" cmp -s "$T/sums1" "$T/sums2"
check "the re-run keeps every event (its own claims are not duplicates)" \
  grep -q "job=$job .*dup_cross=0 " "$T/split2.log"

# --- a second combined object repeating 300 events: cross-batch duplicates ---
job2=$(echo "$job" | sed 's/-[0-9a-f]*$/-00000000000000e2/')
"$PY" "$T/tool.py" extra "$store" "$job2" 300 200
"$BIN/sluice-splitter" "${S[@]}" --once >"$T/split3.log" 2>&1
check "the splitter exits 0 on the second object" test $? -eq 0
d2=$("$PY" "$T/tool.py" field "$store" "$job2" duplicates_dropped)
o2=$("$PY" "$T/tool.py" field "$store" "$job2" ledger.out)
check "events delivered again in another batch are dropped and counted (dropped $d2, kept $o2)" \
  test "$d2" = 300 -a "$o2" = 200
check "still no event twice in split/, every manifest balanced" "$PY" "$T/tool.py" check "$store"

# --- a line that is not an event is rejected in the ledger, never a crash ---
job3=$(echo "$job" | sed 's/-[0-9a-f]*$/-00000000000000e3/')
dir3=$(dirname "$(ls "$store"/combined/dt=*/hr=*/"$job".ndjson.zst)")
{ printf '{"event":"hostile","id":"h1","received_at":"2026-01-01T00:00:00.000Z"}\n'
  printf 'not json\n{"event":"../x","id":"h2","received_at":"2026-01-01T00:00:00.000Z"}\n'
  printf '{"event":"hostile","received_at":"2026-01-01T00:00:00.000Z"}\n[1,2]\n'
  printf '{"event":"hostile","id":"h3","received_at":"yesterday"}\n'
  printf '{"event":"hostile","id":"h1","received_at":"2026-01-01T00:00:00.000Z"}\n'; } |
  zstd -q -c >"$dir3/$job3.ndjson.zst"
"$PY" -c "import sys; sys.path.insert(0, '$T'); import tool; tool.descriptor('$store', '${dir3#"$store"/}/$job3.ndjson.zst', '$job3')"
"$BIN/sluice-splitter" "${S[@]}" --once >"$T/split4.log" 2>&1
check "bad lines do not stop the splitter" test $? -eq 0
l3=$("$PY" "$T/tool.py" field "$store" "$job3" ledger)
check "bad lines are counted as rejected in the ledger ($l3)" \
  test "$l3" = "{'in': 7, 'out': 1, 'rejected': 5, 'duplicates': 1}"
check "split/hostile/dt=2026-01-01/hr=00 holds the good event" \
  test -f "$store/split/hostile/dt=2026-01-01/hr=00/$job3.ndjson.zst"

# --- ... and each of them is in rejected/, under a key named after the job ---
rej=$(ls "$store"/rejected/dt=*/hr=*/"$job3.split.ndjson.zst" 2>/dev/null)
check "the rejected lines are written to rejected/ under the job's name ($rej)" test -f "$rej"
zstd -dcq "$rej" >"$T/rej1" 2>/dev/null
check "rejected/ holds one line per rejected line, with its reason, source and text" \
  "$PY" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
want = [("not_json", "not json"), ("bad_event_type", None), ("bad_id", None),
        ("not_json", "[1,2]"), ("bad_ts", None)]
got = [(l["reason"], l["raw"]) for l in lines]
ok = len(lines) == 5 and all(l["source"] == sys.argv[2] and l["message"] for l in lines)
ok = ok and [g[0] for g in got] == [w[0] for w in want]
ok = ok and all(w[1] is None or g[1] == w[1] for g, w in zip(got, want))
ok = ok and json.loads(got[1][1])["event"] == "../x" and "yesterday" in got[4][1]
sys.exit(0 if ok else 1)' "$T/rej1" "${dir3#"$store"/}/$job3.ndjson.zst"
rm -f "$store/manifests/split/$job3.json"
"$PY" -c "import sys; sys.path.insert(0, '$T'); import tool; tool.descriptor('$store', '${dir3#"$store"/}/$job3.ndjson.zst', '$job3')"
"$BIN/sluice-splitter" "${S[@]}" --once >"$T/split5.log" 2>&1
check "a re-run rewrites the same rejected/ key with the same lines" \
  bash -c "[ \"\$(ls '$store'/rejected/dt=*/hr=*/ | grep -c '$job3')\" = 1 ] &&
           zstd -dcq '$rej' | cmp -s - '$T/rej1'"

# --- one time parser: what the filter accepts as "ts" the splitter routes by ---
tstore=$T/tstore
TS=(--store "file://$tstore" --leases "local://$T/tleases" --admin off)
{ printf '{"event":"zero","id":"z1","ts":-0}\n{"event":"zero","id":"z2","ts":0}\n'
  printf '{"event":"zero","id":"z3","ts":"1970-01-01T00:59:59.999+00:00"}\n'
  printf '{"event":"zero","id":"z4","ts":"1970-01-01T01:00:00Z"}\n'; } >"$T/zero.ndjson"
"$BIN/sluice-filter" "${TS[@]}" --input "$T/zero.ndjson" >"$T/tfilter.log" 2>&1
for st in dispatcher combiner; do "$BIN/sluice-$st" "${TS[@]}" --once >>"$T/tstages.log" 2>&1; done
"$BIN/sluice-splitter" "${TS[@]}" --time-field ts --once >>"$T/tstages.log" 2>&1
check "the splitter routes by ts as the filter read it: -0 and 0 are 1970-01-01T00" \
  "$PY" -c '
import glob, json, subprocess, sys
def ids(hr):
    out = set()
    for p in glob.glob(sys.argv[1] + "/split/zero/dt=1970-01-01/hr=%s/*.zst" % hr):
        data = subprocess.run(["zstd", "-dcq", p], capture_output=True, check=True).stdout
        out |= {json.loads(l)["id"] for l in data.splitlines() if l}
    return out
sys.exit(0 if ids("00") == {"z1", "z2", "z3"} and ids("01") == {"z4"} else 1)' "$tstore"
check "no splitter rejection for what the filter accepted" \
  bash -c "! ls '$tstore'/rejected/dt=*/hr=*/*.split.ndjson.zst >/dev/null 2>&1"
"$BIN/sluicectl" reconcile --store "file://$tstore" --from 1970-01-01 >"$T/trec.out" 2>"$T/trec.err"
check "sluicectl reconcile balances ($(tail -1 "$T/trec.err"))" test $? -eq 0

# --- kill -9 at any moment, then a re-run: the same bytes ---
store=$T/kstore
S=(--store "file://$store" --leases "local://$T/kleases" --admin off)
"$BIN/sluicectl" gen --count 60000 --seed 5 --dup-rate 0.05 --manifest "$T/k.tsv" >"$T/k.ndjson"
"$BIN/sluice-filter" "${S[@]}" --input "$T/k.ndjson" >"$T/kfilter.log" 2>&1
make_jobs
mkdir -p "$T/ksaved" && cp "$store"/jobs/split/*.json "$T/ksaved/"
"$BIN/sluice-splitter" "${S[@]}" --once >"$T/kref.log" 2>&1
sums >"$T/ksums.ref"
check "the uninterrupted reference run is exact" \
  "$PY" "$HERE/verify.py" split "$store" "$T/k.ndjson" "$T/k.tsv"
kills=0 exact=0
for delay in 0.03 0.1 0.18 0.26 0.33 0.38; do
  rm -rf "$store/split" "$store/manifests/split" "$store/state/dedup"
  mkdir -p "$store/jobs/split" && cp "$T/ksaved"/*.json "$store/jobs/split/"
  "$BIN/sluice-splitter" "${S[@]}" --once >>"$T/kill.log" 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null
  "$BIN/sluice-splitter" "${S[@]}" --once >>"$T/kill.log" 2>&1 || continue
  sums >"$T/ksums"
  cmp -s "$T/ksums.ref" "$T/ksums" && [ "$(count_objects "file://$store" jobs/split)" -eq 0 ] &&
    exact=$((exact + 1))
done
note "kill -9 landed in $kills of 6 rounds"
check "after kill -9 and a re-run, split/ and manifests are exact and byte-identical (6/6: $exact)" \
  test "$exact" = 6

# --- a combined object over max_input fails its job, which stays for a larger cap ---
rm -f "$store"/manifests/split/*.json
mkdir -p "$store/jobs/split" && cp "$T/ksaved"/*.json "$store/jobs/split/"
bigjob=$(basename "$(find "$store/combined" -name '*.ndjson.zst' -size +1024k | head -1)" .ndjson.zst)
"$BIN/sluice-splitter" "${S[@]}" --max-input 1MiB --once >"$T/big.log" 2>&1
rc=$?
check "a combined object over max_input (job ${bigjob:-none} over 1 MiB) fails the run" \
  test "$rc" -ne 0 -a -n "$bigjob"
check "... saying why, and leaving its job in place with no manifest" \
  bash -c "grep 'cannot read combined object' '$T/big.log' | grep -q 'job=$bigjob .*size limit exceeded' &&
           [ -f '$store/jobs/split/$bigjob.json' ] && [ ! -f '$store/manifests/split/$bigjob.json' ]"

finish
