#!/usr/bin/env bash
# The real server SDKs, unchanged, pointed at sluice: @segment/analytics-node,
# @rudderstack/rudder-sdk-node (gzip bodies) and @snowplow/node-tracker send a
# few thousand events of every call type through a relay that loses some
# answers, so the SDKs retry. After the whole pipeline (filter, dispatcher,
# combiner, splitter --once), split/ holds each event exactly once, under its
# mapped type, with the SDK's own message id. Then the drop-in paths' hostile
# input: each gets the status the SDKs understand, never a crash.
. "$(dirname "$0")/lib.sh"

NODE_DIR=$(cd "$HERE/../node" && pwd)
if [ ! -d "$NODE_DIR/node_modules/@segment/analytics-node" ]; then
  not_ok "the SDKs are installed in tests/node (tools/install-deps.sh test)"
  exit 1
fi
store=$STORE_VIEW
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 100ms)
start_filter filter "${common[@]}" --flush-age 200ms --api-keys '{"sdk-key":"server"}' ||
  { not_ok "filter starts"; exit 1; }

COUNT=${SDK_EVENTS:-3000}
(cd "$NODE_DIR" && node sdk_clients.mjs --url "$FILTER_URL" --out "$T/ids.tsv" --count "$COUNT" \
  --lose 4 --write-key sdk-key) 2>"$T/node.log"
check "every SDK delivers every call (its callbacks and flushes succeed)" test $? -eq 0
note "$(tail -1 "$T/node.log")"
lost=$("$PY" -c "import json,sys; print(json.loads(open('$T/node.log').read().strip().splitlines()[-1])['lost'])" 2>/dev/null)
check "answers were lost, so the SDKs retried (${lost:-?} lost)" test "${lost:-0}" -gt 0
want=$(wc -l <"$T/ids.tsv")
check "the SDKs generated $want events, $COUNT per SDK" test "$want" -eq $((3 * COUNT))
check "filtered/ holds every SDK event at least once (retries repeat some)" \
  "$PY" "$HERE/verify.py" ids "$store" filtered "$T/ids.tsv" --at-least

# One event of each protocol, as stored: the envelope mapped, the original kept.
"$PY" "$HERE/verify.py" dump "$store" filtered >"$T/filtered.ndjson"
"$PY" - "$T/filtered.ndjson" <<'PY' >"$T/shape.out" 2>&1
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
def one(pred):
    for e in evs:
        if pred(e):
            return e
    raise SystemExit('no event matches')
t = one(lambda e: e['event'] == 'order_completed')
assert t['original_event'] == 'Order Completed' and t['type'] == 'track', t
assert t['id'] == t['messageId'] and t['properties']['price'] == 9.99, t
assert t['ts'] and t['context']['library']['name'], t
assert t['channel'] == 'server', t
i = one(lambda e: e['event'] == 'identify' and 'userId' in e)
assert i['traits']['plan'] == 'pro', i
r = one(lambda e: e.get('original_channel') == 'server')  # RudderStack's own channel field
assert r['channel'] == 'server' and r['_metadata'], r
b = one(lambda e: e['event'] == 'button_click' and e['tna'] == 'sdk-test')  # base64 ue_px, cx
assert b['ue_pr']['data']['data']['id'].startswith('b'), b
assert b['co']['data'][0]['data']['tier'] == 'gold', b
assert b['id'] == b['eid'] and isinstance(b['ts'], int), b
p = one(lambda e: e['event'] == 'button_click' and e['tna'] == 'sdk-plain')  # plain ue_pr, co
assert p['ue_pr']['data']['schema'] == 'iglu:com.acme/button_click/jsonschema/1-0-0', p
print('shape ok')
PY
check "stored events map the envelope and keep the original message ($(tail -1 "$T/shape.out"))" \
  grep -qx 'shape ok' "$T/shape.out"

stop_pid "$FILTER_PID"
check "the filter stops on SIGTERM with status 0" test $? -eq 0
check "dispatcher, combiner and splitter --once succeed" pipeline_once "${common[@]}"
check "split/ holds each SDK event exactly once, under its type, with the SDK's id" \
  "$PY" "$HERE/verify.py" ids "$store" split "$T/ids.tsv"

# --- the drop-in paths' statuses and hostile input ---
start_filter hostile --store "file://$T/store2" --flush-age 100ms --api-keys '{"sdk-key":"web"}' \
  --snowplow-channel web --max-batch 64KiB --max-decoded 1MiB --max-body 1MiB \
  --cors-origins 'https://shop.example' ||
  { not_ok "second filter starts"; exit 1; }
auth=(-u sdk-key:)
r=$(post /v1/batch -d '{"batch":[{"type":"track","event":"A","messageId":"x1"}]}')
check "no write key gets 401 ($r)" bash -c "[[ '$r' == 401* ]]"
r=$(post /v1/batch -u wrong: -d '{"batch":[]}')
check "an unknown write key gets 401 ($r)" bash -c "[[ '$r' == 401* ]]"
r=$(post /v1/batch -d '{"writeKey":"sdk-key","batch":[{"type":"page","messageId":"x2"}]}')
check "a writeKey in the body is accepted ($r)" test "$r" = '200 {"accepted":1,"rejected":0}'
r=$(post '/beacon/v1/batch?writeKey=sdk-key' -H 'Content-Type: text/plain' \
  -d '{"batch":[{"type":"track","event":"Beacon Sent","messageId":"x3"}]}')
check "a text/plain beacon with ?writeKey= is accepted ($r)" test "$r" = '200 {"accepted":1,"rejected":0}'
r=$(post /v1/batch "${auth[@]}" -d 'hello')
check "a body that is not JSON gets 400 ($r)" bash -c "[[ '$r' == 400* ]]"
r=$(post /v1/batch "${auth[@]}" -d '{"batch":{"type":"track"}}')
check "a batch that is not an array gets 400 ($r)" bash -c "[[ '$r' == 400* && '$r' == *array* ]]"
r=$(post /v1/batch "${auth[@]}" -d '[1,2]')
check "a body that is not an object gets 400 ($r)" bash -c "[[ '$r' == 400* ]]"
r=$(post /v1/batch "${auth[@]}" -d '{"batch":[{"type":"track","event":5,"messageId":"w1"},{"type":"nope","messageId":"w2"},"str",{"type":"track","event":"Ok","messageId":7},{"type":"alias","messageId":"w5"}]}')
check "wrong types are rejected per message, the rest accepted ($r)" \
  test "$r" = '200 {"accepted":1,"rejected":4}'
"$PY" -c "
deep = '{\"a\":' * 40 + '1' + '}' * 40
print('{\"batch\":[{\"type\":\"page\",\"messageId\":\"d1\",\"properties\":%s},\n {\"type\":\"page\",\"messageId\":\"d2\"}]}' % deep)" >"$T/deep.json"
r=$(post /v1/batch "${auth[@]}" --data-binary @"$T/deep.json")
check "a message nested too deep is rejected alone, the next one accepted ($r)" \
  test "$r" = '200 {"accepted":1,"rejected":1}'
"$PY" -c "
import json; print(json.dumps({'batch': [{'type': 'track', 'event': 'Big', 'messageId': 'b%d' % i,
  'properties': {'pad': 'x' * 1000}} for i in range(100)]}))" >"$T/big.json"
r=$(post /v1/batch "${auth[@]}" --data-binary @"$T/big.json")
check "a batch over max_batch gets 413 ($r)" bash -c "[[ '$r' == 413* ]]"
head -c $((64 * 1024 * 1024)) /dev/zero | gzip -c >"$T/bomb.gz"
r=$(post /v1/batch "${auth[@]}" -H 'Content-Encoding: gzip' --data-binary @"$T/bomb.gz")
check "a gzip bomb gets 413, decoding stops at the cap ($r)" bash -c "[[ '$r' == 413* ]]"
head -c 300 /dev/urandom >"$T/junk.gz"
r=$(post /v1/batch "${auth[@]}" -H 'Content-Encoding: gzip' --data-binary @"$T/junk.gz")
check "a body that is not gzip gets 400 ($r)" bash -c "[[ '$r' == 400* ]]"
printf '{"batch":[{"type":"identify","messageId":"gz1","userId":"u"}]}' | gzip -c | head -c 30 >"$T/cut.gz"
r=$(post /v1/batch "${auth[@]}" -H 'Content-Encoding: gzip' --data-binary @"$T/cut.gz")
check "a truncated gzip body gets 400 ($r)" bash -c "[[ '$r' == 400* ]]"
sp='{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[
 {"e":"ue","eid":"s1","ue_px":"%%%not-base64%%%"},
 {"e":"ue","eid":"s2","ue_px":"bm90IGpzb24"},
 {"e":"pv","eid":"s3","cx":"e30"},
 {"e":7,"eid":"s4"},
 {"e":"pv","eid":"s5","dtm":"1700000000000"}]}'
r=$(post /com.snowplowanalytics.snowplow/tp2 -d "$sp")
check "Snowplow: broken base64, non-JSON ue, a wrong type rejected, the rest accepted ($r)" \
  test "$r" = '200 {"accepted":2,"rejected":3}'
r=$(post /com.snowplowanalytics.snowplow/tp2 -d '{"schema":"x","data":{"e":"pv"}}')
check "Snowplow: data that is not an array gets 400 ($r)" bash -c "[[ '$r' == 400* ]]"
r=$(curl -s -o "$T/gif" -w '%{http_code} %{content_type}' "$FILTER_URL/i?e=pv&eid=s6&url=http%3A%2F%2Fx")
check "Snowplow GET /i answers a GIF after storing ($r)" bash -c "[[ '$r' == '200 image/gif' ]] && head -c 6 '$T/gif' | grep -q GIF89a"
r=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$FILTER_URL/pixel/v1/track?writeKey=sdk-key&event=Pixel%20Seen&messageId=px1&anonymousId=a")
check "RudderStack GET pixel answers a GIF ($r)" test "$r" = '200 image/gif'
r=$(post /v1/batch "${auth[@]}" -d '{"batch":[{"type":"track","event":"ORDER completed","messageId":"n1"},
 {"type":"track","event":"HTTPServer Started","messageId":"n2"},{"type":"track","event":"plan_v2 chosen","messageId":"n3"},
 {"type":"track","event":"_private","messageId":"n4"},{"type":"track","event":"!!!","messageId":"n5"}]}')
check "track names are snake_cased; one that becomes no valid type is rejected ($r)" \
  test "$r" = '200 {"accepted":3,"rejected":2}'
r=$(curl -s -o /dev/null -w '%{http_code}' "$FILTER_URL/v1/batch")
check "GET on /v1/batch gets 405 ($r)" test "$r" = 405
curl -s -o /dev/null -D "$T/pre.h" -X OPTIONS "$FILTER_URL/v1/t" -H 'Origin: https://shop.example' \
  -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type'
check "a preflight from an allowed origin gets 204, the origin echoed, credentials, max-age" \
  bash -c "grep -q '^HTTP/1.1 204' '$T/pre.h' && grep -qi '^Access-Control-Allow-Origin: https://shop.example' '$T/pre.h' &&
           grep -qi '^Access-Control-Allow-Credentials: true' '$T/pre.h' && grep -qi '^Access-Control-Max-Age:' '$T/pre.h' &&
           grep -qi '^Access-Control-Allow-Headers:.*AnonymousId' '$T/pre.h'"
curl -s -o /dev/null -D "$T/pre2.h" -X OPTIONS "$FILTER_URL/v1/t" -H 'Origin: https://evil.example'
check "a preflight from another origin gets 403 without CORS headers" \
  bash -c "grep -q '^HTTP/1.1 403' '$T/pre2.h' && ! grep -qi 'Access-Control-Allow-Origin' '$T/pre2.h'"
r=$(post '/v1/t?writeKey=sdk-key' -H 'Origin: https://evil.example' -H 'Content-Type: text/plain' \
  -d '{"type":"track","event":"X","messageId":"evil1"}')
check "a simple request from another origin is refused by the filter too ($r)" bash -c "[[ '$r' == 403* ]]"
curl -s -o /dev/null -D "$T/ok.h" -X POST "$FILTER_URL/v1/t?writeKey=sdk-key" -H 'Origin: https://shop.example' \
  -H 'Content-Type: text/plain' -d '{"type":"track","event":"Shop Seen","messageId":"shop1"}'
check "an answer to an allowed origin carries its CORS headers" \
  bash -c "grep -q '^HTTP/1.1 200' '$T/ok.h' && grep -qi '^Access-Control-Allow-Origin: https://shop.example' '$T/ok.h'"
stop_pid "$FILTER_PID"
check "the second filter stops on SIGTERM with status 0" test $? -eq 0
"$PY" "$HERE/verify.py" dump "$T/store2" rejected >"$T/rej.ndjson"
check "the rejected Snowplow payloads say why (translate_error kept)" \
  bash -c "[ \$(grep -c 'translate_error' '$T/rej.ndjson') -eq 2 ]"
"$PY" "$HERE/verify.py" dump "$T/store2" filtered >"$T/acc.ndjson"
check "ORDER completed, HTTPServer Started, plan_v2 chosen map as go-snakecase does (plan_v_2_chosen)" \
  bash -c "grep -q '\"event\":\"order_completed\".*\"id\":\"n1\"' '$T/acc.ndjson' &&
           grep -q '\"event\":\"httpserver_started\".*\"id\":\"n2\"' '$T/acc.ndjson' &&
           grep -q '\"event\":\"plan_v_2_chosen\".*\"id\":\"n3\"' '$T/acc.ndjson'"
check "the pixel and beacon events are stored with their mapped types" \
  bash -c "grep -q '\"event\":\"pixel_seen\".*\"id\":\"px1\"' '$T/acc.ndjson' &&
           grep -q '\"event\":\"beacon_sent\"' '$T/acc.ndjson' && grep -q '\"id\":\"s6\"' '$T/acc.ndjson'"
finish
