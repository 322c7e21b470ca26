#!/usr/bin/env bash
# Real browsers: Debian's chromium, headless, loads a page from another
# loopback origin that uses the browser SDKs' builds from node_modules
# (@segment/analytics-next's standalone build as Segment's snippet loads it,
# @rudderstack/analytics-js over sendBeacon on page hide,
# @snowplow/browser-tracker POSTing with credentials and by GET /i) with their
# settings pointed at the harness. From the allowed origin every page, track
# and identify call arrives exactly once after the pipeline; from an origin
# not in cors_origins the browser's CORS check refuses them and none arrive.
. "$(dirname "$0")/lib.sh"

NODE_DIR=$(cd "$HERE/../node" && pwd)
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ] || [ ! -d "$NODE_DIR/node_modules/puppeteer-core" ]; then
  not_ok "chromium and puppeteer-core are installed (tools/install-deps.sh test)"
  exit 1
fi
store=$STORE_VIEW
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 100ms)
allowed=$(srv_free_port)
refused=$(srv_free_port)
start_filter filter "${common[@]}" --flush-age 200ms --api-keys '{"browser-key":"web"}' \
  --snowplow-channel web --cors-origins "https://shop.example, http://127.0.0.1:$allowed" ||
  { not_ok "filter starts"; exit 1; }

browse() { # browse PORT OUT — prints the harness's JSON summary
  (cd "$NODE_DIR" && node browser_sdks.mjs --url "$FILTER_URL" --port "$1" \
    --write-key browser-key --out "$2" --rounds "${BROWSER_ROUNDS:-5}") 2>>"$T/node.log"
}
field() { "$PY" -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$1" "$2"; }

sum=$(browse "$allowed" "$T/ids.tsv")
check "the allowed page ran its SDK calls ($(wc -l <"$T/ids.tsv") events)" test -s "$T/ids.tsv"
note "allowed: $sum"
check "the browser reported no CORS error on the allowed origin" test "$(field "$sum" "d['cors_errors']")" = 0
check "the page loaded analytics-next's standalone build as Segment's snippet does" \
  test "$(field "$sum" "d['served'].get('/analytics.js/v1/browser-key/analytics.min.js', False)")" = True
check "Snowplow's tracker with eventMethod 'get' sent its events by GET /i" \
  test "$(field "$sum" "sum(v for k, v in d['sent'].items() if k.startswith('GET /i '))")" -gt 0
check "RudderStack used sendBeacon to /beacon/v1/batch on page hide" \
  test "$(field "$sum" "d['beacons'].get('/beacon/v1/batch', 0)")" -gt 0
for ev in page product_viewed cart_viewed identify page_view struct link_click; do
  n=$(grep -c $'\t'"$ev"'$' "$T/ids.tsv")
  check "the SDKs made $ev calls ($n)" test "$n" -gt 0
done

sum=$(browse "$refused" "$T/refused.tsv")
note "refused: $(field "$sum" "{k: v for k, v in d.items() if k != 'console'}")"
check "the refused page made its calls too ($(wc -l <"$T/refused.tsv") events)" test -s "$T/refused.tsv"
check "the browser's CORS check refused the other origin" test "$(field "$sum" "d['cors_errors']")" -gt 0

stop_pid "$FILTER_PID"
check "the filter stops on SIGTERM with status 0" test $? -eq 0
check "dispatcher, combiner and splitter --once succeed" pipeline_once "${common[@]}"
check "split/ holds every allowed page's event exactly once, with the SDK's id, and nothing from the refused origin" \
  "$PY" "$HERE/verify.py" ids "$store" split "$T/ids.tsv"
"$PY" "$HERE/verify.py" dump "$store" filtered >"$T/filtered.ndjson"
leaked=$(cut -f1 "$T/refused.tsv" | grep -c -F -f - "$T/filtered.ndjson")
check "no event of the refused origin reached filtered/ ($leaked)" test "$leaked" -eq 0
check "browser events carry the web channel and the SDKs' library context" \
  bash -c "grep -q '\"channel\":\"web\"' '$T/filtered.ndjson' && grep -q 'analytics.js' '$T/filtered.ndjson' &&
           grep -q 'RudderLabs JavaScript SDK' '$T/filtered.ndjson' && grep -q '\"tv\":\"js-' '$T/filtered.ndjson'"
finish
