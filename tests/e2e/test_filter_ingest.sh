#!/usr/bin/env bash
# The filter over real HTTP: a generated stream with duplicates and malformed
# events lands exactly as expected; every status code of SPEC §4; hostile
# input; a store outage answered 503; SIGTERM drains; raw/ and --input.
. "$(dirname "$0")/lib.sh"

store=$T/store
start_filter f1 --store "file://$store" --flush-age 200ms || { not_ok "filter starts"; exit 1; }
ok "filter starts on an ephemeral port"

# --- a generated stream, sent the way clients send it ---
"$BIN/sluicectl" gen --count 20000 --seed 11 --dup-rate 0.05 --bad-rate 0.05 --no-id-rate 0.05 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
"$BIN/sluicectl" send "$T/gen.ndjson" --url "$FILTER_URL" --batch 200 --concurrency 4 \
  --stats "$T/send.json" 2>"$T/send.log"
check "send gets every batch acknowledged" test $? -eq 0
acc=$("$PY" -c "import json;print(json.load(open('$T/send.json'))['accepted'])")
rej=$("$PY" -c "import json;print(json.load(open('$T/send.json'))['rejected'])")
want_acc=$(grep -c $'\taccepted\t' "$T/gen.tsv")
want_rej=$(grep -c $'\trejected\t' "$T/gen.tsv")
check "response counts agree with the expected outcome ($acc/$rej vs $want_acc/$want_rej)" \
  test "$acc" = "$want_acc" -a "$rej" = "$want_rej"

# --- SIGTERM drains and exits 0; the store holds exactly what was expected ---
stop_pid "$FILTER_PID"
check "SIGTERM exits 0" test $? -eq 0
check "every accepted event is in filtered/ exactly once, every rejection has its reason" \
  "$PY" "$HERE/verify.py" filtered "$store" "$T/gen.tsv"

# A second filter, on its own store, for the hand-made requests.
store=$T/store2
start_filter f2 --store "file://$store" --flush-age 100ms --request-timeout 1s || { not_ok "second filter starts"; exit 1; }
# --- status codes ---
r=$(post /v1/events -H 'Content-Type: application/json' --data-binary 'hello world')
check "a body that is not JSON gets 400 with a reason ($r)" \
  bash -c "[[ '$r' == 400* && '$r' == *not_json* ]]"
r=$(post /v1/events --data-binary '[{"event":"a","id":"1"},')
check "a broken JSON array gets 400 ($r)" bash -c "[[ '$r' == 400* ]]"
r=$(post /v1/events --data-binary '[]')
check "an empty array gets 200 with zero counts ($r)" test "$r" = '200 {"accepted":0,"rejected":0}'
r=$(post /v1/events --data-binary '{"events":[{"event":"w","id":"w1"},{"event":"w/x","id":"w2"}]}')
check "the events wrapper is accepted per event ($r)" test "$r" = '200 {"accepted":1,"rejected":1}'
printf '{"event":"z","id":"z1"}\n{"event":"z","id":"z2"}\n' | zstd -q -c >"$T/body.zst"
r=$(post /v1/events -H 'Content-Encoding: zstd' -H 'Content-Type: application/x-ndjson' \
  --data-binary @"$T/body.zst")
check "a zstd body is decoded ($r)" test "$r" = '200 {"accepted":2,"rejected":0}'
head -c 100 /dev/urandom >"$T/junk.zst"
r=$(post /v1/events -H 'Content-Encoding: zstd' --data-binary @"$T/junk.zst")
check "an undecodable zstd body gets 400 ($r)" bash -c "[[ '$r' == 400* ]]"
r=$(curl -s -o /dev/null -w '%{http_code}' "$FILTER_URL/v1/events")
check "GET on the ingest path gets 405 ($r)" test "$r" = 405
r=$(curl -s -o /dev/null -w '%{http_code}' "$FILTER_URL/nope")
check "an unknown path gets 404 ($r)" test "$r" = 404
r=$(curl -s -o /dev/null -w '%{http_code}' "$FILTER_URL/healthz")
check "healthz is not served on the ingest port by default ($r)" test "$r" = 404
r=$(curl -s -o /dev/null -w '%{http_code}' "$FILTER_URL/metrics")
check "metrics are not served on the ingest port by default ($r)" test "$r" = 404
head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$T/big"
r=$(post /v1/events --data-binary @"$T/big")
check "a body over the limit gets 413 ($r)" bash -c "[[ '$r' == 413* ]]"

# --- hostile events: each rejected with its reason, neighbours accepted ---
"$PY" - "$T/hostile.ndjson" <<'PY'
import sys
deep = '{"a":' * 100 + '1' + '}' * 100
lines = [
    b'{"event":"../etc/passwd","id":"h1"}',
    b'{"event":"a/b","id":"h2"}',
    b'{"event":"ok\\u0000","id":"h3"}',
    b'{"event":"tab\x01","id":"h4"}',
    b'{"event":"x","id":"h5","p":"\xff\xfe"}',
    ('{"event":"x","id":"h6","p":%s}' % deep).encode(),
    b'{"event":"x","id":"h7","n":1e400}',
    b'{"event":"x","id":"' + b'i' * 200 + b'"}',
    b'{"event":"x","id":"h9","ts":"yesterday"}',
    b'{"event":"good","id":"h10"}',
    b'[1,2,3]',
    b'{"id":"h12"}',
]
open(sys.argv[1], 'wb').write(b'\n'.join(lines) + b'\n')
PY
r=$(post /v1/events -H 'Content-Type: application/x-ndjson' --data-binary @"$T/hostile.ndjson")
check "hostile events are rejected one by one ($r)" test "$r" = '200 {"accepted":1,"rejected":11}'
slow=$(timeout 10 "$PY" - "${FILTER_URL##*:}" <<'PY'
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"ev')
s.settimeout(8)
print(s.recv(100).split(b'\r\n')[0].decode())
PY
)
check "a slow client gets 408 ($slow)" bash -c "[[ '$slow' == *408* ]]"
big_header=$(head -c 40000 /dev/zero | tr '\0' a)
r=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big_header" "$FILTER_URL/healthz")
check "an oversized header gets 431 ($r)" test "$r" = 431
check "the filter is still up after hostile input" kill -0 "$FILTER_PID"


stop_pid "$FILTER_PID"
reasons=$("$PY" "$HERE/verify.py" dump "$store" rejected | "$PY" -c "
import sys, json, collections
c = collections.Counter(json.loads(l)['reason'] for l in sys.stdin)
print(' '.join(f'{k}={c[k]}' for k in sorted(c)))")
check "rejections are stored with their reason codes ($reasons)" test "$reasons" = 'bad_event_type=3 bad_id=1 bad_number=1 bad_string=2 bad_ts=1 invalid_utf8=1 missing_event=1 not_object=1 too_deep=1'

# --- a store outage is answered 503, never 200; service resumes after ---
store=$T/store3
mkdir -p "$store"
start_filter f3 --store "fault:down_file=$T/down:file://$store" --flush-age 50ms \
  || { not_ok "filter on the fault store starts"; exit 1; }
r=$(post /v1/events --data-binary '[{"event":"s","id":"s1"}]')
check "with the store up, 200 ($r)" test "$r" = '200 {"accepted":1,"rejected":0}'
touch "$T/down"
r=$(post /v1/events --data-binary '[{"event":"s","id":"s2"}]')
check "with the store down, 503 ($r)" bash -c "[[ '$r' == 503* ]]"
r=$(post /v1/events --data-binary '[{"event":"s","id":"s3"}]')
check "still down, still 503 ($r)" bash -c "[[ '$r' == 503* ]]"
rm -f "$T/down"
# The client retries (a 503 stored nothing) until the filter writes again.
s4_ok() { r=$(post /v1/events --data-binary '[{"event":"s","id":"s4"}]'); [[ $r == 200* ]]; }
wait_until 30 s4_ok
check "store back, 200 again ($r)" test "$r" = '200 {"accepted":1,"rejected":0}'
stop_pid "$FILTER_PID"
ids=$("$PY" "$HERE/verify.py" dump "$store" filtered | "$PY" -c "
import sys, json; print(' '.join(sorted(json.loads(l)['id'] for l in sys.stdin)))")
check "only acknowledged events were stored ($ids)" test "$ids" = "s1 s4"

# --- bounded memory: bodies still arriving count against max_pending ---
# Two clients that have declared 3 MB bodies (and sent a few bytes) hold
# that much of max_pending (8 MiB): a third body of 2.8 MB does not fit
# beside them and gets 503 + Retry-After from its headers alone; once they
# leave, the same request fits. A body that can never fit is refused by
# the limits (413), never 503.
store=$T/store6
start_filter f6 --store "file://$store" --max-pending 8MiB --flush-bytes 1MiB \
  --max-body 3MiB --max-decoded 3MiB --max-rejected 1MiB --admin-on-ingest \
  || { not_ok "small-buffer filter starts"; exit 1; }
"$PY" -c "
import sys
line = b'{\"event\":\"big\",\"id\":\"%d\",\"pad\":\"' + b'x' * 900 + b'\"}\n'
sys.stdout.buffer.write(b''.join(line.replace(b'%d', str(i).encode()) for i in range(3000)))
" >"$T/three-mb.ndjson"
port=${FILTER_URL##*:}
exec 7<>"/dev/tcp/127.0.0.1/$port" 8<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n{"ev' >&7
printf 'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n{"ev' >&8
for _ in $(seq 100); do
  curl -s "$FILTER_URL/metrics" | grep -q '^sluice_filter_receiving_bytes 6000000$' && break
  sleep 0.05
done
check "both bodies still arriving are counted" \
  bash -c "curl -s '$FILTER_URL/metrics' | grep -q '^sluice_filter_receiving_bytes 6000000$'"
code=$(curl -s -D "$T/h503" -o /dev/null -w '%{http_code}' -X POST "$FILTER_URL/v1/events" \
  -H 'Content-Type: application/x-ndjson' --data-binary @"$T/three-mb.ndjson")
check "a body that would pass max_pending beside two still arriving gets 503 ($code)" \
  test "$code" = 503
check "the 503 carries Retry-After" grep -qi '^Retry-After: ' "$T/h503"
exec 7<&- 8<&-
r=""
for _ in $(seq 50); do
  r=$(post /v1/events -H 'Content-Type: application/x-ndjson' --data-binary @"$T/three-mb.ndjson")
  [[ $r == 200* ]] && break
  sleep 0.1
done
check "once those clients left, the same body fits ($r)" \
  test "$r" = '200 {"accepted":3000,"rejected":0}'
head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$T/four-mb"
r=$(post /v1/events --data-binary @"$T/four-mb")
check "a body over max_body gets 413, not 503 ($r)" bash -c "[[ '$r' == 413* ]]"
stop_pid "$FILTER_PID"
"$BIN/sluice-filter" --max-pending 8MiB --flush-bytes 1MiB --admin off --store "file://$T/x" \
  2>"$T/cfg6.log"; rc=$?
check "max_pending below twice what one request may add is a usage error (exit $rc)" \
  bash -c "[ $rc = 2 ] && grep -q max_decoded '$T/cfg6.log'"
# each other relation between the size limits, broken alone, is refused with its rule
for bad in "--flush-bytes 200MiB|max_pending must be at least twice flush_bytes" \
  "--max-body 100MiB|max_body must not exceed max_decoded" \
  "--max-event 16MiB|max_event must not exceed flush_bytes" \
  "--max-batch 100MiB|max_batch must not exceed max_decoded"; do
  "$BIN/sluice-filter" ${bad%%|*} --admin off --store "file://$T/x" 2>"$T/cfg7.log"; rc=$?
  check "${bad%%|*} is a usage error: ${bad#*|} (exit $rc)" \
    bash -c "[ $rc = 2 ] && grep -q '${bad#*|}' '$T/cfg7.log'"
done

# --- raw/ objects are filtered once, to deterministic names ---
store=$T/store4
mkdir -p "$store/raw/firehose"
"$BIN/sluicectl" gen --count 500 --seed 3 --bad-rate 0.1 --manifest "$T/raw.tsv" \
  | zstd -q -c >"$store/raw/firehose/part-0001.ndjson.zst"
printf '[{"event":"arr","id":"a1"},{"event":"arr","id":"a2"}]' >"$store/raw/firehose/part-0002.json"
"$BIN/sluice-filter" --store "file://$store" --once --admin off >"$T/raw1.log" 2>&1
check "filter --once over raw/ exits 0" test $? -eq 0
(cd "$store" && find filtered rejected -type f | sort | xargs sha256sum) >"$T/raw1.sum"
"$BIN/sluice-filter" --store "file://$store" --once --admin off >"$T/raw2.log" 2>&1
(cd "$store" && find filtered rejected -type f | sort | xargs sha256sum) >"$T/raw2.sum"
check "a second pass writes nothing new" cmp -s "$T/raw1.sum" "$T/raw2.sum"
rm -rf "$store/filtered" "$store/rejected"
"$BIN/sluice-filter" --store "file://$store" --once --admin off >"$T/raw3.log" 2>&1
(cd "$store" && find filtered rejected -type f | sort | xargs sha256sum) >"$T/raw3.sum"
check "re-filtering raw/ rewrites the same keys byte for byte" cmp -s "$T/raw1.sum" "$T/raw3.sum"
n=$("$PY" "$HERE/verify.py" dump "$store" filtered | grep -c '"event":"arr"')
check "a JSON-array raw object is filtered per element ($n)" test "$n" = 2

# --- --input backfills a local file ---
store=$T/store5
"$BIN/sluicectl" gen --count 300 --seed 5 --manifest "$T/in.tsv" >"$T/in.ndjson"
"$BIN/sluice-filter" --store "file://$store" --input "$T/in.ndjson" --admin off 2>"$T/in.log"
check "--input exits 0" test $? -eq 0
check "--input stores exactly the expected events" \
  "$PY" "$HERE/verify.py" filtered "$store" "$T/in.tsv"
"$BIN/sluice-filter" --store "file://$store" --input "$T/missing-file" --admin off 2>"$T/in2.log"
rc=$?
check "--input of a missing file fails (exit $rc)" test "$rc" -ne 0
check "... with a message naming it" grep -q 'missing-file' "$T/in2.log"

# --- configuration is checked at start ---
"$BIN/sluice-filter" --listen 0.0.0.0:0 --admin off --store "file://$T/x" 2>"$T/cfg.log"
check "an open endpoint on a public address is refused at start" \
  bash -c "grep -q api_keys '$T/cfg.log'"
"$BIN/sluice-filter" --flush-bytes 8XB 2>"$T/cfg2.log"; rc=$?
check "a malformed size is a usage error (exit $rc)" test "$rc" = 2
"$BIN/sluice-filter" --help >"$T/help.txt"; rc=$?
check "--help exits 0 and documents the flags" bash -c "[ $rc = 0 ] && grep -q -- --flush-age '$T/help.txt' && grep -q SLUICE_STORE '$T/help.txt'"
finish
