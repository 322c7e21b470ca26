#!/usr/bin/env bash
# The filter with schemas over real HTTP: valid events accepted with their
# defaults, violations rejected with the exact reason text, redacted fields
# gone or hashed in filtered/ AND rejected/, unknown types accepted or
# rejected by configuration, a SIGHUP reload changing the verdict (and a
# broken reload keeping the old schemas), and a broken directory at start.
. "$(dirname "$0")/lib.sh"

ROOT_DIR=$(cd "$HERE/../.." && pwd)
schemas=$T/schemas
cp -r "$ROOT_DIR/tests/data/schemas/set" "$schemas"
printf 'e2e-redaction-key-0123456789abcdef\n' >"$T/key"
store=$T/store
start_filter s1 --store "file://$store" --flush-age 100ms --schemas "$schemas" --admin-on-ingest \
  --redact-key-file "$T/key" || { not_ok "filter with schemas starts"; exit 1; }
ok "filter with schemas starts"
check "the start logs how many schemas it loaded" grep -q 'msg="schemas loaded".*schemas=4' "$T/s1.log"

cat >"$T/body.ndjson" <<'EOF'
{"event":"checkout_completed","id":"ok1","user_id":"usr_1","properties":{"order_id":"ord_0123abcd","amount":12.5,"currency":"EUR","email":"ann@example.com","card_last4":"4242"}}
{"event":"checkout_completed","id":"bad1","properties":{"order_id":"ord_0123abcd","amount":5e9,"currency":"EUR","email":"bob@example.com","card_last4":"1111"}}
{"event":"checkout_completed","id":"bad2","properties":{"order_id":"ord_0123abcd","amount":1,"currency":"EUR","items":[{"sku":"SKU-1","quantity":0}]}}
{"event":"checkout_completed","id":"bad3","schema_version":9,"properties":{"order_id":"x","amount":1,"card_last4":"8765"}}
{"event":"signup","id":"ok2","user_id":"usr_0123456789ab","properties":{"method":"google","phone":"+33 6 12 34 56 78"}}
{"event":"signup","id":"bad4","ts":"not a time","user_id":"usr_0123456789ab","properties":{"method":"email","phone":"+44 7700 900123","email":"carol@example.com"}}
{"event":"brand_new_event","id":"new1","properties":{"anything":true}}
EOF
r=$(post /v1/events -H 'Content-Type: application/x-ndjson' --data-binary @"$T/body.ndjson")
check "valid, unknown-type and invalid events are counted apart ($r)" \
  test "$r" = '200 {"accepted":3,"rejected":4}'
metrics=$(curl -s "$FILTER_URL/metrics")
check "schema_violation shows in the per-reason reject counter" \
  grep -q '^sluice_filter_events_rejected_total{reason="schema_violation"} 2$' <<<"$metrics"
check "unknown_schema_version shows in the per-reason reject counter" \
  grep -q '^sluice_filter_events_rejected_total{reason="unknown_schema_version"} 1$' <<<"$metrics"
check "an accepted event of an unknown type is counted" \
  grep -q '^sluice_filter_unknown_type_events_total 1$' <<<"$metrics"
check "rewritten events are counted" grep -q '^sluice_filter_events_rewritten_total 2$' <<<"$metrics"
stop_pid "$FILTER_PID"

"$PY" "$HERE/verify.py" dump "$store" filtered >"$T/filtered.ndjson"
"$PY" "$HERE/verify.py" dump "$store" rejected >"$T/rejected.ndjson"
"$PY" - "$T/filtered.ndjson" "$T/rejected.ndjson" "$T/key" >"$T/checks.txt" <<'PY'
import hashlib, json, sys
acc = {e["id"]: e for e in map(json.loads, open(sys.argv[1]))}
rej = [json.loads(l) for l in open(sys.argv[2])]
key = open(sys.argv[3], "rb").read().rstrip(b"\n")
h = lambda s: hashlib.blake2b(s.encode(), key=key, digest_size=16).hexdigest()
def say(name, cond):
    print(("ok" if cond else "not ok") + " - " + name)
p = acc["ok1"]["properties"]
say("defaults are applied in filtered/", p.get("coupon", "absent") is None and p.get("gift") is False)
say("members keep their order, defaults come last",
    list(p) == ["order_id", "amount", "currency", "email", "coupon", "gift"])
say("a removed field is absent from filtered/", "card_last4" not in p)
say("a hashed field is BLAKE2b keyed with the configured key", p["email"] == h("ann@example.com"))
s = acc["ok2"]["properties"]
say("signup: phone removed, plan defaulted", "phone" not in s and s["plan"] == "free")
say("an event of an unknown type is accepted as sent", acc["new1"]["properties"] == {"anything": True})
by_id = {}
for r in rej:
    by_id[json.loads(r["raw"])["id"]] = r
want = {
    "bad1": ("schema_violation", "properties.amount: above maximum 1e9"),
    "bad2": ("schema_violation", "properties.items[0].quantity: below minimum 1"),
    "bad3": ("unknown_schema_version",
             'event type "checkout_completed" has no schema version 9 (the highest is 2)'),
    "bad4": ("bad_ts", None),
}
for i, (reason, message) in want.items():
    r = by_id.get(i, {})
    say(f"{i} is rejected as {reason}", r.get("reason") == reason)
    if message:
        say(f"{i} carries the exact message", r.get("message") == message)
text = open(sys.argv[2]).read()
for secret in ["bob@example.com", "1111", "8765", "+44 7700 900123", "carol@example.com"]:
    say(f"rejected/ does not hold {secret!r}", secret not in text)
raw1 = json.loads(by_id["bad1"]["raw"])["properties"]
say("a hashed field is hashed in rejected/ too", raw1.get("email") == h("bob@example.com"))
raw4 = json.loads(by_id["bad4"]["raw"])
say("an envelope rejection of a typed event is redacted too",
    "phone" not in raw4["properties"] and raw4["ts"] == "not a time")
PY
while read -r line; do
  case $line in ok\ -*) ok "${line#ok - }" ;; *) not_ok "${line#not ok - }" ;; esac
done <"$T/checks.txt"
check "the python checks ran" test "$(wc -l <"$T/checks.txt")" -ge 18

# --- unknown types rejected by configuration ---
store=$T/store2
start_filter s2 --store "file://$store" --flush-age 100ms --schemas "$schemas" --admin-on-ingest \
  --redact-key-file "$T/key" --unknown-types reject || { not_ok "second filter starts"; exit 1; }
r=$(post /v1/events --data-binary '[{"event":"brand_new_event","id":"n1"},{"event":"page_view","id":"p1","properties":{"path":"/"}}]')
check "with --unknown-types reject an unknown type is rejected ($r)" \
  test "$r" = '200 {"accepted":1,"rejected":1}'
check "and still counted" bash -c "curl -s '$FILTER_URL/metrics' | grep -q '^sluice_filter_unknown_type_events_total 1$'"

# --- SIGHUP: a fixed schema changes the verdict; a broken one changes nothing ---
ev='[{"event":"page_view","id":"home","properties":{"path":"home"}}]'
r=$(post /v1/events --data-binary "$ev")
check "before the fix, a path without a leading slash is rejected ($r)" \
  test "$r" = '200 {"accepted":0,"rejected":1}'
"$PY" - "$schemas/page_view/1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
del d["properties"]["properties"]["properties"]["path"]["pattern"]
json.dump(d, open(sys.argv[1], "w"), indent=2)
PY
kill -HUP "$FILTER_PID"
wait_log "$T/s2.log" 'msg="schemas reloaded"' 5
r=$(post /v1/events --data-binary "$ev")
check "after the fix and SIGHUP, the same event is accepted ($r)" \
  test "$r" = '200 {"accepted":1,"rejected":0}'
echo '{"properties": {"x": {"maxValue": 3}}}' >"$schemas/page_view/2.json"
kill -HUP "$FILTER_PID"
wait_log "$T/s2.log" 'msg="schema reload failed' 5
check "a broken reload is logged naming the file and path" \
  grep -q "page_view/2.json: x: unknown keyword 'maxValue'" "$T/s2.log"
r=$(post /v1/events --data-binary "$ev")
check "after a broken reload the previous schemas stay in use ($r)" \
  test "$r" = '200 {"accepted":1,"rejected":0}'
check "the failed reload is counted" \
  bash -c "curl -s '$FILTER_URL/metrics' | grep -q '^sluice_filter_schema_reloads_total{result=\"error\"} 1$'"
check "the filter is still up" kill -0 "$FILTER_PID"
stop_pid "$FILTER_PID"
check "SIGTERM after reloads exits 0" test $? -eq 0
reasons=$("$PY" "$HERE/verify.py" dump "$store" rejected | "$PY" -c "
import sys, json
print(' '.join(sorted(json.loads(l)['reason'] + ':' + json.loads(l)['message'] for l in sys.stdin)))")
check "rejections of the second filter ($reasons)" test "$reasons" = \
  'schema_violation:properties.path: does not match pattern ^/ unknown_event_type:no schema for event type "brand_new_event"'

# --- --input goes through the same schemas ---
store=$T/store3
rm -f "$schemas/page_view/2.json"
printf '%s\n' '{"event":"signup","id":"i1","user_id":"usr_0123456789ab","properties":{"method":"apple","phone":"1"}}' \
  '{"event":"signup","id":"i2","properties":{"method":"apple"}}' >"$T/in.ndjson"
"$BIN/sluice-filter" --store "file://$store" --input "$T/in.ndjson" --admin off \
  --schemas "$schemas" --redact-key-file "$T/key" 2>"$T/in.log"
check "--input with schemas exits 0" test $? -eq 0
check "--input counts one accepted, one rejected" grep -q '1 accepted, 1 rejected' "$T/in.log"
check "--input applies redaction" bash -c "! '$PY' '$HERE/verify.py' dump '$store' filtered | grep -q phone"

# --- raw/ objects too (checked on the raw/ worker with a reference to the set) ---
store=$T/store4
mkdir -p "$store/raw/firehose"
printf '%s\n' '{"event":"signup","id":"r1","user_id":"usr_0123456789ab","properties":{"method":"apple","phone":"555-0101"}}' \
  '{"event":"signup","id":"r2","properties":{"method":"apple","phone":"555-0202"}}' \
  >"$store/raw/firehose/part-1.ndjson"
"$BIN/sluice-filter" --store "file://$store" --once --admin off --schemas "$schemas" \
  --redact-key-file "$T/key" >"$T/raw.log" 2>&1
check "raw/ with schemas: one accepted, one rejected" grep -q 'accepted=1 rejected=1' "$T/raw.log"
{ "$PY" "$HERE/verify.py" dump "$store" filtered; "$PY" "$HERE/verify.py" dump "$store" rejected; } \
  >"$T/raw-out.ndjson"
check "raw/ applies redaction in filtered/ and rejected/" \
  bash -c "[ \$(wc -l <'$T/raw-out.ndjson') = 2 ] && ! grep -q 555-0 '$T/raw-out.ndjson'"

# --- configuration checked at start ---
mkdir -p "$T/broken/checkout_completed"
echo '{"properties": {"properties": {"properties": {"amount": {"type": "number", "maxValue": 1}}}}}' \
  >"$T/broken/checkout_completed/3.json"
"$BIN/sluice-filter" --store "file://$T/x" --listen 127.0.0.1:0 --admin off --raw=false \
  --schemas "$T/broken" >"$T/broken.log" 2>&1
rc=$?
check "a broken schema directory stops the start (exit $rc)" test "$rc" -ne 0
check "with a message naming the file and the path" grep -q \
  "cannot load schemas: $T/broken/checkout_completed/3.json: properties.amount: unknown keyword \"maxValue\"" \
  "$T/broken.log"
"$BIN/sluice-filter" --store "file://$T/x" --listen 127.0.0.1:0 --admin off --raw=false \
  --schemas "$schemas" >"$T/nokey.log" 2>&1
rc=$?
check "a schema that hashes without redact_key_file stops the start (exit $rc)" \
  bash -c "[ $rc -ne 0 ] && grep -q 'needs a key: configure redact_key_file' '$T/nokey.log'"
"$BIN/sluice-filter" --store "file://$T/x" --listen 127.0.0.1:0 --admin off --raw=false \
  --unknown-types reject >"$T/noschema.log" 2>&1
rc=$?
check "unknown_types=reject without schemas is a configuration error (exit $rc)" \
  bash -c "[ $rc -eq 2 ] && grep -q 'unknown_types=reject' '$T/noschema.log'"
"$BIN/sluice-filter" --help >"$T/help.txt"
check "no sanitizer report in any filter log (make asan)" \
  bash -c "! grep -l -e 'Sanitizer' -e 'runtime error' '$T'/*.log"
check "--help documents the schema flags" \
  bash -c "grep -q -- --schemas '$T/help.txt' && grep -q -- --unknown-types '$T/help.txt' && grep -q SLUICE_REDACT_KEY_FILE '$T/help.txt'"
finish
