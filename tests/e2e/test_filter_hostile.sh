#!/usr/bin/env bash
# The filter's edge under hostile input, over real HTTP with the real
# binary: a zstd bomb gets a permanent 4xx while a normal client keeps
# being acknowledged; too many records get 413; an unauthenticated large
# body gets 401 before it is sent; a connection flood gets 503 +
# Retry-After; /metrics is not on the ingest port. And raw/: an oversized
# object and a corrupt zstd object are quarantined while the walk goes on;
# a large valid object is filtered in pieces, exactly once.
. "$(dirname "$0")/lib.sh"

key=sekrit-key-k1
keys='{"'$key'":"web"}'
store=$T/store
start_filter f1 --store "file://$store" --flush-age 200ms --api-keys "$keys" \
  --max-conns-per-ip 64 || { not_ok "filter starts"; exit 1; }
port=${FILTER_URL##*:}

# --- a zstd bomb: 64 MiB of "x\n" in a few KiB ---
yes x | head -c $((64 * 1024 * 1024)) | zstd -q -19 -c >"$T/bomb.zst"
note "bomb: $(stat -c %s "$T/bomb.zst") bytes compressed"
"$BIN/sluicectl" gen --count 4000 --seed 21 --manifest "$T/gen.tsv" >"$T/gen.ndjson"
# Bombs back to back while a normal client sends its events in 40 requests.
(
  for i in $(seq 12); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 -X POST "$FILTER_URL/v1/events" \
      -H "X-Api-Key: $key" -H 'Content-Encoding: zstd' --data-binary @"$T/bomb.zst"
  done >"$T/bomb.codes"
) &
bombs=$!
"$BIN/sluicectl" send "$T/gen.ndjson" --url "$FILTER_URL" --api-key "$key" --batch 100 \
  --concurrency 2 --retries 0 --stats "$T/send.json" 2>"$T/send.log"
send_rc=$?
wait "$bombs"
codes=$(sort "$T/bomb.codes" | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
check "every bomb got a permanent 413 ($codes)" \
  bash -c "[ \$(grep -c . '$T/bomb.codes') = 12 ] && ! grep -qv '^413$' '$T/bomb.codes'"
check "the normal client, sending meanwhile without retries, was acknowledged every time" \
  test "$send_rc" -eq 0
r=$(curl -s -o "$T/bomb.body" -w '%{http_code}' -X POST "$FILTER_URL/v1/events" \
  -H "X-Api-Key: $key" -H 'Content-Encoding: zstd' --data-binary @"$T/bomb.zst")
check "the bomb's 413 says which limit ($(cat "$T/bomb.body"))" \
  bash -c "[ '$r' = 413 ] && grep -q 'more than 10000 records' '$T/bomb.body'"

# --- too many records in one request: 413, nothing of it stored ---
"$PY" -c "
import sys
sys.stdout.write(''.join('{\"event\":\"many\",\"id\":\"m%d\"}\n' % i for i in range(10001)))
" >"$T/many.ndjson"
r=$(post /v1/events -H "X-Api-Key: $key" -H 'Content-Type: application/x-ndjson' \
  --data-binary @"$T/many.ndjson")
check "10001 records in one request get 413 ($r)" bash -c "[[ '$r' == 413* && '$r' == *records* ]]"
head -n 10000 "$T/many.ndjson" >"$T/enough.ndjson"
r=$(post /v1/events -H "X-Api-Key: $key" -H 'Content-Type: application/x-ndjson' \
  --data-binary @"$T/enough.ndjson")
check "10000 records fit ($r)" test "$r" = '200 {"accepted":10000,"rejected":0}'

# http_py — Python prelude for the raw-socket clients below: connect(port)
# and ask(sock, request bytes) -> the response head as text.
http_py='
import socket, sys
def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    return s
def ask(s, req):
    s.sendall(req)
    r = b""
    while b"\r\n\r\n" not in r:
        c = s.recv(4096)
        if not c:
            break
        r += c
    return r.split(b"\r\n\r\n")[0].decode()
'

# --- authentication before the body ---
auth=$(timeout 20 "$PY" -c "$http_py"'
s = connect(int(sys.argv[1]))
# 16 MiB declared, 5 bytes sent: the answer must come without the rest
head = ask(s, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Api-Key: wrong-key-zz\r\n"
              b"Content-Length: 16777216\r\n\r\n{\"eve")
print(head.split("\r\n")[0])
' "$port")
check "an unknown key with a 16 MiB body declared gets 401 before the body is sent ($auth)" \
  bash -c "[[ '$auth' == *' 401 '* ]]"
r=$(post /v1/events --data-binary '[{"event":"a","id":"noauth"}]')
check "no key at all: 401 ($r)" bash -c "[[ '$r' == 401* ]]"
r=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Api-Key: $key" "$FILTER_URL/metrics")
check "/metrics is not served on the ingest port ($r)" test "$r" = 404
r=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Api-Key: $key" "$FILTER_URL/v1/events")
check "GET on the ingest path: 405 ($r)" test "$r" = 405
check "the filter never logged a key or a part of one" \
  bash -c "! grep -q 'sekrit\|key-k1\|wrong-key\|key-zz' '$T/f1.log'"
stop_pid "$FILTER_PID"
check "SIGTERM exits 0" test $? -eq 0
check "the normal client's events are all stored" \
  "$PY" "$HERE/verify.py" filtered "$store" "$T/gen.tsv" --at-least
n=$("$PY" "$HERE/verify.py" dump "$store" filtered | grep -c '"event":"many"')
check "of the many-record requests only the one that fit is stored ($n)" test "$n" = 10000
total=$("$PY" "$HERE/verify.py" dump "$store" filtered | grep -c .)
want=$(($(grep -c $'\taccepted\t' "$T/gen.tsv") + 10000))
check "and nothing else, nothing twice ($total events, want $want)" test "$total" = "$want"
n=$("$PY" "$HERE/verify.py" dump "$store" rejected | grep -c '"raw":"x"')
check "no rejection line of a bomb was stored ($n)" test "$n" = 0

# --- a connection flood over the per-address cap: 503 + Retry-After ---
start_filter f2 --store "file://$T/store2" --max-conns-per-ip 4 \
  || { not_ok "second filter starts"; exit 1; }
flood=$(timeout 30 "$PY" -c "$http_py"'
port = int(sys.argv[1])
held = []
for i in range(4):
    s = connect(port)
    ask(s, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")  # 404: open and counted
    held.append(s)
s = connect(port)
head = ask(s, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
status = head.split("\r\n")[0]
retry = [l for l in head.split("\r\n") if l.lower().startswith("retry-after:")]
closed = s.recv(4096) == b""
for h in held:
    h.close()
print(status, retry[0] if retry else "no-retry-after", "closed" if closed else "open")
' "${FILTER_URL##*:}")
check "the 5th connection from one address gets 503 + Retry-After and is closed ($flood)" \
  bash -c "[[ '$flood' == *' 503 '*'Retry-After: 1 closed' ]]"
r=""
for _ in $(seq 50); do
  r=$(post /v1/events --data-binary '[{"event":"after","id":"f1"}]')
  [[ $r == 200* ]] && break
  sleep 0.1
done
check "once they close, the same address is served again ($r)" \
  test "$r" = '200 {"accepted":1,"rejected":0}'
stop_pid "$FILTER_PID"

# --- raw/: quarantine instead of a stall ---
store4=$T/store4
mkdir -p "$store4/raw/land"
"$PY" -c "
import sys
sys.stdout.write(''.join('{\"event\":\"big\",\"id\":\"b%d\",\"pad\":\"%s\"}\n' % (i, 'p' * 100) for i in range(2000)))
" >"$store4/raw/land/a-oversized.ndjson"
{ printf '\x28\xb5\x2f\xfd'; head -c 2000 /dev/urandom; } >"$store4/raw/land/b-corrupt.ndjson.zst"
printf '{"event":"small","id":"s1"}\n{"event":"small","id":"s2"}\n' >"$store4/raw/land/c-small.ndjson"
start_filter f4 --store "file://$store4" --raw=true --raw-poll 200ms --max-raw 64KiB \
  --admin-on-ingest || { not_ok "small max_raw filter starts"; exit 1; }
wait_log "$T/f4.log" 'raw object filtered.*c-small' 30
check "the objects before it did not stop the walk: the last one is filtered" \
  grep -q 'raw object filtered.*c-small' "$T/f4.log"
metrics=$(curl -s "$FILTER_URL/metrics")
check "an oversized object is counted as quarantined (too_large)" \
  grep -q '^sluice_filter_raw_quarantined_total{reason="too_large"} 1$' <<<"$metrics"
check "a corrupt zstd object is counted as quarantined (undecodable)" \
  grep -q '^sluice_filter_raw_quarantined_total{reason="undecodable"} 1$' <<<"$metrics"
sleep 0.5 # more passes over raw/: nothing is quarantined twice
metrics=$(curl -s "$FILTER_URL/metrics")
check "later passes do not try them again" \
  grep -q '^sluice_filter_raw_quarantined_total{reason="too_large"} 1$' <<<"$metrics"
stop_pid "$FILTER_PID"
q=$("$PY" "$HERE/verify.py" json "$store4" rejected | "$PY" -c "
import sys, json
for l in sys.stdin:
    d = json.loads(l)
    if 'quarantine' in d:
        print(d['raw_key'], d['quarantine'], d['reason'], d['raw_size'] > 0, bool(d['raw_etag']))
" | sort | tr '\n' ';')
check "each quarantined object has a record with key, size, etag and reason ($q)" \
  test "$q" = 'raw/land/a-oversized.ndjson too_large too_large True True;raw/land/b-corrupt.ndjson.zst undecodable not_json True True;'
ids=$("$PY" "$HERE/verify.py" dump "$store4" filtered | "$PY" -c "
import sys, json; print(' '.join(sorted(json.loads(l)['id'] for l in sys.stdin)))")
check "the next object was filtered ($ids)" test "$ids" = "s1 s2"

# --- raw/: a large valid object is filtered in pieces, every event once ---
store=$T/store3
mkdir -p "$store/raw/land"
"$BIN/sluicectl" gen --count 120000 --seed 7 --bad-rate 0.01 --manifest "$T/large.tsv" \
  | zstd -q -c >"$store/raw/land/d-large.ndjson.zst"
"$BIN/sluice-filter" --store "file://$store" --once --admin off >"$T/large1.log" 2>&1
check "filter --once over the large object exits 0" test $? -eq 0
keys=$("$PY" "$HERE/verify.py" keys "$store" filtered)
pieces=$(grep -c -- '-raw-[0-9a-f]*-p[0-9]*\.ndjson\.zst$' <<<"$keys")
check "the large object was written in pieces ($pieces after the first)" test "$pieces" -ge 2
check "every event of the large object is stored exactly once" \
  "$PY" "$HERE/verify.py" filtered "$store" "$T/large.tsv"
# A run cut short before its last write (the first piece: the done marker)
# redoes the object: the pieces already written are kept, nothing doubles.
marker=$(grep -v -- '-p[0-9]*\.ndjson\.zst$' <<<"$keys")
(cd "$store" && find filtered rejected -type f | sort | xargs sha256sum) >"$T/pieces1.sum"
rm -f "$store/$marker"
"$BIN/sluice-filter" --store "file://$store" --once --admin off >"$T/large2.log" 2>&1
check "the redo pass exits 0" test $? -eq 0
(cd "$store" && find filtered rejected -type f | sort | xargs sha256sum) >"$T/pieces2.sum"
check "the redo wrote the same objects byte for byte (marker ${marker##*/})" \
  bash -c "[ -n '$marker' ] && cmp -s '$T/pieces1.sum' '$T/pieces2.sum'"
check "and still every event exactly once" \
  "$PY" "$HERE/verify.py" filtered "$store" "$T/large.tsv"
"$BIN/sluice-filter" --store "file://$store" --once --admin off >"$T/large3.log" 2>&1
(cd "$store" && find filtered rejected -type f | sort | xargs sha256sum) >"$T/pieces3.sum"
check "a further pass writes nothing" cmp -s "$T/pieces1.sum" "$T/pieces3.sum"
finish
