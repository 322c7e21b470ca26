#!/usr/bin/env bash
# sluicectl redrive: rejected events go back through the filter, and split/
# holds each exactly once however often redrive runs.
# Part 1 builds rejected/ objects by hand (mixed reasons and channels, a
# multi-line record, a record without its text, an hour out of range) and
# checks what redrive selects and writes, that a second run, a run after
# raw/ was swept and a run with another --reason add no duplicates.
# Part 2 (once the filter takes --schemas) rejects events under a strict
# schema over HTTP, fixes the schema, reloads it with SIGHUP, redrives twice
# and runs the pipeline: every rejected event is in split/ exactly once.
. "$(dirname "$0")/lib.sh"

ctl="$BIN/sluicectl"
root=$T/store
store="file://$root"
leases="local://$T/leases"
stage() {
  "$BIN/sluice-$1" --store "$store" --leases "$leases" --admin off --once "${@:2}" \
    >>"$T/stages.log" 2>&1
}
pipeline() { stage dispatcher && stage combiner && stage splitter; }

cat >"$T/tool.py" <<'PY'
"""Fixtures and checks for test_redrive.sh."""
import collections, glob, json, os, subprocess, sys


def zcat(path):
    return subprocess.run(['zstd', '-dcq', path], capture_output=True, check=True).stdout


def rejected(store, key, lines):
    """A rejected/ object as the filter writes it (one JSON line each)."""
    path = os.path.join(store, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = ''.join(json.dumps(l, sort_keys=True, separators=(',', ':')) + '\n' for l in lines)
    z = subprocess.run(['zstd', '-1', '-cq'], input=text.encode(), capture_output=True,
                       check=True).stdout
    open(path, 'wb').write(z)


def line(reason, raw, channel='web'):
    l = {"reason": reason, "message": "test", "source": "http", "channel": channel,
         "received_at": "2024-01-01T00:00:00.000Z"}
    if raw is not None:
        l["raw"] = raw
    return l


def fixtures(store, h_in1, h_in2, h_out):
    rejected(store, 'rejected/%s/g1-test-a.ndjson.zst' % h_in1, [
        line('schema_violation', '{"event":"checkout","id":"c1","properties":{"amount":5}}'),
        line('schema_violation', '{"event":"checkout","id":"c2","properties":{"amount":6}}', 'ios'),
        line('unknown_event_type', '{"event":"signup","plan":"pro"}'),
        line('not_json', '{"event":"x",'),
        line('too_large', None),
        line('schema_violation', '{\n  "event": "checkout",\n  "id": "c3"\n}'),
        line('schema_violation', '[1,2]'),
        line('unknown_schema_version', '{"event":"checkout","id":"c4","schema_version":3}',
             'server'),
    ])
    rejected(store, 'rejected/%s/g1-test-b.ndjson.zst' % h_in2, [
        line('schema_violation', '{"event":"page_view","id":"p1","url":"/"}'),
        line('schema_violation', '{"event":"checkout","id":"c1","properties":{"amount":5}}'),
    ])
    rejected(store, 'rejected/%s/g1-test-c.ndjson.zst' % h_out, [
        line('schema_violation', '{"event":"checkout","id":"old1"}'),
    ])


def join_fixture(store, h):
    """Records that are not JSON and would join into one event if they were
    written one after the other: '{..."inner":' then '{...}}'."""
    rejected(store, 'rejected/%s/g1-test-j.ndjson.zst' % h, [
        line('not_json', '{"event":"merged","id":"m1","inner":'),
        line('not_json', '{"event":"inner","id":"m2"}}'),
        line('not_json', '{"event":"x2",', 'ios'),
        line('schema_violation', '{"event":"kept","id":"k1"}', 'ios'),
    ])


def raw_objects(store):
    out = {}
    for p in sorted(glob.glob(store + '/raw/redrive/*/*.ndjson.zst')):
        out[os.path.relpath(p, store)] = [l for l in zcat(p).split(b'\n') if l]
    return out


def split_events(store):
    """(event, id) -> how many times split/ holds it."""
    c = collections.Counter()
    for p in glob.glob(store + '/split/*/dt=*/hr=*/*.ndjson.zst'):
        for l in zcat(p).split(b'\n'):
            if l:
                e = json.loads(l)
                c[(e['event'], e.get('id'))] += 1
    return c


def cmd_check_raw(store):
    objs = raw_objects(store)
    by_channel = collections.Counter(k.split('/')[2] for k in objs)
    lines = [l for ls in objs.values() for l in ls]
    ids = sorted(json.loads(l).get('id', '-') for l in lines)
    errors = []
    if dict(by_channel) != {'web': 2, 'ios': 1, 'server': 1}:
        errors.append('objects per channel %s' % dict(by_channel))
    if ids != ['-', 'c1', 'c1', 'c2', 'c3', 'c4', 'p1']:
        errors.append('ids %s' % ids)
    if any(b'\n' in l or b'\r' in l for l in lines):
        errors.append('a record spans lines')
    if any(b'old1' in l or b'"x",' in l for l in lines):
        errors.append('an unselected or out-of-range event was written')
    if errors:
        print('\n'.join(errors))
    return 1 if errors else 0


def cmd_check_split(store, want):
    """want: event:id,... that must each be in split/ exactly once (id '-'
    for an event without id: exactly one line of that type)."""
    c = split_events(store)
    errors = []
    for w in want.split(','):
        ev, i = w.split(':')
        n = sum(v for (e, x), v in c.items() if e == ev) if i == '-' else c[(ev, i)]
        if n != 1:
            errors.append('%s:%s is in split/ %d times' % (ev, i, n))
    extra = [k for k, v in c.items() if v > 1]
    if extra:
        errors.append('duplicates: %s' % extra)
    if errors:
        print('\n'.join(errors))
    return 1 if errors else 0


def cmd_count_raw(store):
    print(len(raw_objects(store)))
    return 0


if __name__ == '__main__':
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd in ('fixtures', 'join_fixture'):
        globals()[cmd](*args)
        sys.exit(0)
    sys.exit(globals()['cmd_' + cmd](*args))
PY

# =============================== part 1 =======================================
now=$(date +%s)
h1=$(hour_dir $((now - 2 * 3600)))
h2=$(hour_dir "$now")
hout=$(hour_dir $((now - 3 * 86400)))
mkdir -p "$root"
"$PY" "$T/tool.py" fixtures "$root" "$h1" "$h2" "$hout"

"$ctl" redrive --store "$store" --from -1d --dry-run >"$T/dry.out" 2>"$T/dry.err"
check "redrive --dry-run exits 0" test $? -eq 0
check "--dry-run lists 4 objects to write" test "$(grep -c '^would write' "$T/dry.out")" -eq 4
check "--dry-run writes nothing" test ! -e "$root/raw" -a ! -e "$root/state"

"$ctl" redrive --store "$store" --from -1d >"$T/r1.out" 2>"$T/r1.err"
check "redrive exits 0" test $? -eq 0
note "$(cat "$T/r1.err")"
check "the summary counts objects, lines and reasons" \
  grep -qE '2 rejected objects scanned, 10 lines; 8 selected \((schema_violation=6 unknown_event_type=1 unknown_schema_version=1|.*)\)' \
  "$T/r1.err"
check "the summary: 7 events written to 4 raw objects, 1 line not redrivable" \
  grep -q '7 events written to 4 raw objects, 0 objects already redriven, 1 lines not redrivable, 0 failed' \
  "$T/r1.err"
check "raw objects: one per rejected object and channel, each record on one line, nothing unselected" \
  "$PY" "$T/tool.py" check_raw "$root"
check "a marker per raw object under state/redrive/" \
  test "$(find "$root/state/redrive" -name '*.json' | wc -l)" -eq 4
cp -r "$root/raw" "$T/raw-first"

"$ctl" redrive --store "$store" --from -1d >"$T/r2.out" 2>"$T/r2.err"
check "a second redrive exits 0 and writes nothing" \
  grep -q '0 events written to 0 raw objects, 4 objects already redriven' "$T/r2.err"
check "... and the raw objects are untouched (same bytes, same mtimes)" \
  diff -r "$T/raw-first" "$root/raw"

# The filter takes the raw objects (no schemas: every event is accepted).
stage filter
pipeline
check "the pipeline ran (stages exit 0)" test $? -eq 0
want="checkout:c1,checkout:c2,checkout:c3,checkout:c4,page_view:p1,signup:-"
check "split/ holds every redriven event once (c1 was rejected twice)" \
  "$PY" "$T/tool.py" check_split "$root" "$want"

# raw/ swept: the markers still stop a rewrite; another --reason set writes
# new objects whose events the splitter drops as duplicates.
rm -rf "$root/raw/redrive"
"$ctl" redrive --store "$store" --from -1d >"$T/r3.out" 2>"$T/r3.err"
check "after raw/ was swept, redrive still writes nothing (markers)" \
  grep -q '0 events written to 0 raw objects, 4 objects already redriven' "$T/r3.err"
"$ctl" redrive --store "$store" --from -1d --reason any >"$T/r4.out" 2>"$T/r4.err"
check "--reason any selects all 10 lines and writes 8 events (no text: 1, not an object: 1)" \
  grep -qE '10 selected .*8 events written to 4 raw objects, 0 objects already redriven, 2 lines not redrivable' \
  "$T/r4.err"
"$ctl" redrive --store "$store" --from "$(date -u -d @$((now - 4 * 86400)) +%Y-%m-%d)" \
  --to "$(date -u -d @$((now - 2 * 86400)) +%Y-%m-%d)" --reason schema_violation \
  >"$T/r5.out" 2>"$T/r5.err"
check "an explicit range reaches the old hour only (1 event)" \
  grep -q '1 rejected objects scanned, 1 lines; 1 selected (schema_violation=1); 1 events written to 1 raw objects' \
  "$T/r5.err"
stage filter
pipeline
check "the pipeline ran again" test $? -eq 0
check "split/ still holds each event once, the old one added" \
  "$PY" "$T/tool.py" check_split "$root" "$want,checkout:old1"
check "the record that is not JSON was rejected again, as not_json, from raw/redrive/" \
  bash -c "for f in \$(find '$root/rejected' -name 'g1-raw-*'); do zstd -dcq \$f; done | grep -q '\"reason\":\"not_json\".*raw:raw/redrive/'"

"$ctl" redrive --store "$store" --from -1d --reason 'Bad!' >/dev/null 2>&1
check "a malformed --reason is a usage error (exit 2)" test $? -eq 2
"$ctl" redrive --store "$store" >/dev/null 2>&1
check "--from is required (exit 2)" test $? -eq 2
"$ctl" redrive --store "$store" --from now --to -1h >/dev/null 2>&1
check "--to before --from is exit 2" test $? -eq 2

# Records that are not JSON never join into one event: the filter reads an
# object that holds one JSON value as one record, whatever its lines.
root=$T/store3
store="file://$root"
leases="local://$T/leases3"
"$PY" "$T/tool.py" join_fixture "$root" "$h2"
"$ctl" redrive --store "$store" --from -1h --reason any >"$T/j.out" 2>"$T/j.err"
check "redrive exits 0 on records that would join" test $? -eq 0
note "$(cat "$T/j.err")"
check "... writes the JSON record first and leaves out the two that would join" \
  grep -q '2 events written to 1 raw objects, 0 objects already redriven, 2 lines not redrivable' \
  "$T/j.err"
stage filter
pipeline
check "the pipeline ran on them (stages exit 0)" test $? -eq 0
check "split/ holds the JSON record once" "$PY" "$T/tool.py" check_split "$root" "kept:k1"
check "... and no event made of two records" \
  test "$(find "$root/split" -name '*.zst' -exec zstd -dcq {} + | grep -c '"merged"')" -eq 0
check "the record that is not JSON, written after it, is rejected again alone" \
  bash -c "for f in \$(find '$root/rejected' -name 'g1-raw-*'); do zstd -dcq \$f; done | grep -c '\"reason\":\"not_json\"' | grep -qx 1"

# =============================== part 2 =======================================
root=$T/store2
store="file://$root"
leases="local://$T/leases2"
S=$T/schemas
mkdir -p "$S/checkout"
cat >"$S/checkout/1.json" <<'EOF'
{"type": "object", "required": ["event", "properties"],
 "properties": {"properties": {"type": "object", "required": ["amount"],
   "properties": {"amount": {"type": "number", "minimum": 0, "maximum": 100}}}}}
EOF
start_filter filter --store "$store" --schemas "$S" --unknown-types reject --raw=true \
  --raw-poll 200ms --flush-age 100ms || { not_ok "the filter starts with --schemas"; finish; exit; }
pid=$FILTER_PID
"$PY" - "$T/events.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], 'w') as f:
    for i in range(40):
        amount = 50 if i % 2 == 0 else 500  # odd ones break the maximum
        f.write(json.dumps({"event": "checkout", "id": "k%d" % i,
                            "properties": {"amount": amount}}) + '\n')
    for i in range(10):
        f.write(json.dumps({"event": "signup", "id": "s%d" % i, "plan": "pro"}) + '\n')
    for i in range(5):  # no id: the filter derives one
        f.write(json.dumps({"event": "checkout", "properties": {"amount": 700 + i}}) + '\n')
PY
resp=$(post /v1/events -H 'Content-Type: application/x-ndjson' --data-binary "@$T/events.ndjson")
check "the strict schema rejects 35 of 55 events ($resp)" \
  test "$resp" = '200 {"accepted":20,"rejected":35}'

# The fix: a higher maximum and a schema for signup; SIGHUP reloads.
sed -i 's/"maximum": 100/"maximum": 1000/' "$S/checkout/1.json"
mkdir -p "$S/signup"
echo '{"type": "object", "properties": {"plan": {"type": "string"}}}' >"$S/signup/1.json"
kill -HUP "$pid"
wait_log "$T/filter.log" 'msg="schemas reloaded"' 10
check "the filter reloads its schemas on SIGHUP" test $? -eq 0
for run in 1 2; do
  "$ctl" redrive --store "$store" --from -1h >"$T/s$run.out" 2>"$T/s$run.err"
  check "redrive run $run exits 0" test $? -eq 0
done
check "the first run selected the 35 rejected events" \
  grep -qE '35 selected \(' "$T/s1.err"
check "the second run wrote nothing" grep -q '0 events written to 0 raw objects' "$T/s2.err"
n_raw=$("$PY" "$T/tool.py" count_raw "$root")
for i in $(seq 1 100); do
  [ "$(find "$root/filtered" -name 'g1-raw-*' | wc -l)" -ge "$n_raw" ] && break
  sleep 0.1
done
check "the running filter took the $n_raw redriven raw objects" \
  test "$(find "$root/filtered" -name 'g1-raw-*' | wc -l)" -ge "$n_raw"
stop_pid "$pid"
check "the filter stops cleanly" test $? -eq 0
pipeline
check "the pipeline ran (stages exit 0)" test $? -eq 0
want=$(for i in $(seq 0 39); do printf 'checkout:k%d,' "$i"; done)
want+=$(for i in $(seq 0 9); do printf 'signup:s%d,' "$i"; done)
check "every event, the 35 redriven ones included, is in split/ exactly once" \
  "$PY" "$T/tool.py" check_split "$root" "${want%,}"
check "the 5 events without id were redriven too (55 lines in split/)" \
  test "$(find "$root/split" -name '*.zst' -exec zstd -dcq {} + | wc -l)" -eq 55
check "redriven events keep the channel they came in on (server, not batch)" \
  test "$(find "$root/split" -name '*.zst' -exec zstd -dcq {} + | grep -vc '"channel":"server"')" -eq 0
finish
