#!/usr/bin/env bash
# sluicectl schema check, openapi and ddl. Every compatibility case of
# tests/data/schema-compat/cases.tsv (OLD, NEW, mode, expected exit and a
# substring of the output) is run; --dir compares each type's last two
# versions (the _all modes: the highest against every earlier one); schema
# files are read with the filter's limits; the OpenAPI document has the
# structure SDK generators need; the DDL of each dialect equals its golden
# file in tests/data/golden/.
. "$(dirname "$0")/lib.sh"

ctl="$BIN/sluicectl"
DATA=$(cd "$HERE/../data" && pwd)
COMPAT=$DATA/schema-compat
GOLDEN=$DATA/golden

# ---- compatibility cases ----
# Run from the cases' directory: messages name files as given.
total=0
bad=0
while IFS=$'\t' read -r name mode want sub; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  total=$((total + 1))
  out=$(cd "$COMPAT" && "$ctl" schema check "$name/old.json" "$name/new.json" --mode "$mode" \
    2>"$T/stderr")
  got=$?
  all="$out"$'\n'"$(cat "$T/stderr")"
  why=""
  if [ "$got" -ne "$want" ]; then
    why="exit $got, want $want"
  elif [ "$sub" != "-" ] && ! grep -qF -- "$sub" <<<"$all"; then
    why="output lacks '$sub'"
  elif [ "$sub" = "-" ] && [ -n "$out" ]; then
    why="a compatible change printed '$out'"
  elif [ "$want" -eq 1 ] && grep -qvE '^[^:]+: .+: (old|new) data may not be readable by (new|old) readers$' <<<"$out"; then
    why="a line is not PATH: CHANGE: CONSEQUENCE"
  fi
  if [ -n "$why" ]; then
    not_ok "schema check $name --mode $mode: $why"
    echo "# stdout: $out" | head -5
    bad=$((bad + 1))
  fi
done <"$COMPAT/cases.tsv"
check "all $total compatibility cases give their exit status and message ($bad failed)" \
  test "$bad" -eq 0 -a "$total" -gt 100
kinds=$(cut -f1 "$COMPAT/cases.tsv" | grep -v '^#' | sort -u | wc -l)
check "the cases cover at least 40 kinds of change ($kinds)" test "$kinds" -ge 40

# FULL reports both directions of a change that breaks both ways.
out=$(cd "$COMPAT" && "$ctl" schema check change_type/old.json change_type/new.json 2>/dev/null)
check "full mode is the default and names both directions of a two-way break" \
  test "$(grep -c 'readable' <<<"$out")" -eq 2
"$ctl" schema check "$COMPAT/identical/old.json" >/dev/null 2>&1
check "one file only is a usage error (exit 2)" test $? -eq 2
"$ctl" schema check "$COMPAT/identical/old.json" "$COMPAT/identical/new.json" --mode sideways \
  >/dev/null 2>&1
check "an unknown --mode is a usage error (exit 2)" test $? -eq 2
"$ctl" schema check "$COMPAT/identical/old.json" "$T/missing.json" >/dev/null 2>&1
check "a missing file is exit 2" test $? -eq 2

# ---- --dir ----
"$ctl" schema check --dir "$GOLDEN/schemas" >"$T/dir.out" 2>"$T/dir.err"
check "check --dir on compatible schemas exits 0" test $? -eq 0
check "check --dir reports what it compared" grep -q '3 event types, 1 with a previous version' \
  "$T/dir.err"
cp -r "$GOLDEN/schemas" "$T/broken"
cp "$COMPAT/narrow_number_to_integer/old.json" "$T/broken/checkout/3.json"
cp "$COMPAT/narrow_number_to_integer/new.json" "$T/broken/checkout/10.json"
mkdir -p "$T/broken/page_view" && cp "$GOLDEN/schemas/page_view/1.json" "$T/broken/page_view/2.json"
"$ctl" schema check --dir "$T/broken" >"$T/dir.out" 2>"$T/dir.err"
check "check --dir exits 1 on a breaking change" test $? -eq 1
check "check --dir compares the highest version (10) with the previous one (3), not 2" \
  grep -qF 'checkout v3->v10: properties.amount: type narrowed from number to integer' "$T/dir.out"
check "check --dir reports only the breaking type" test "$(wc -l <"$T/dir.out")" -eq 1
mkdir -p "$T/badname/page_view" && cp "$GOLDEN/schemas/page_view/1.json" "$T/badname/page_view/01.json"
"$ctl" schema check --dir "$T/badname" >/dev/null 2>"$T/badname.err"
check "a schema file not named N.json is exit 2" test $? -eq 2
check "... and the message names it" grep -q 'page_view/01.json' "$T/badname.err"

# ---- transitive modes: the highest version against every earlier one ----
# v1 and v2 have coupon as a string, v3 drops it, v4 brings it back as an
# integer: each step is compatible, but events of v1 and v2 (late mobile
# events carry old versions) no longer pass v4, nor v4's events old readers.
mkdir -p "$T/trans/checkout"
coupon='"coupon":{"type":"string"},'
for v in 1 2 3 4; do
  case $v in 3) c="" ;; 4) c='"coupon":{"type":"integer"},' ;; *) c=$coupon ;; esac
  echo "{\"type\":\"object\",\"properties\":{$c\"amount\":{\"type\":\"number\"}},\"required\":[\"amount\"]}" \
    >"$T/trans/checkout/$v.json"
done
cp -r "$GOLDEN/schemas/page_view" "$T/trans/"
for m in backward forward full; do
  "$ctl" schema check --dir "$T/trans" --mode "$m" >"$T/t-$m.out" 2>"$T/t-$m.err"
  check "--mode $m passes a chain whose every step is compatible (v3->v4)" test $? -eq 0
  "$ctl" schema check --dir "$T/trans" --mode "${m}_all" >"$T/t-$m-all.out" 2>"$T/t-$m-all.err"
  check "--mode ${m}_all fails it (exit 1)" test $? -eq 1
  check "... naming the breaking change against v1 and v2, oldest first, not v3" \
    bash -c "grep -o '^checkout v[0-9]*->v[0-9]*: coupon: type changed from string to integer' \
      '$T/t-$m-all.out' | cut -d: -f1 | uniq | tr '\n' ' ' | grep -qx 'checkout v1->v4 checkout v2->v4 '"
  check "... and every line is EVENT vOLD->vNEW: PATH: CHANGE: CONSEQUENCE" \
    bash -c "! grep -qvE '^checkout v[12]->v4: coupon: .+: (old|new) data may not be readable by (new|old) readers$' '$T/t-$m-all.out'"
  check "... and says how many pairs it compared" \
    grep -q '2 event types, 1 with a previous version compared against every earlier version (3 pairs), ' \
    "$T/t-$m-all.err"
done
check "backward_all names the backward break only" \
  bash -c "test \$(grep -c 'old data may not be readable by new readers' '$T/t-backward-all.out') -eq 2 &&
    ! grep -q 'new data' '$T/t-backward-all.out'"
check "forward_all names the forward break only" \
  bash -c "test \$(grep -c 'new data may not be readable by old readers' '$T/t-forward-all.out') -eq 2 &&
    ! grep -q 'old data' '$T/t-forward-all.out'"
check "full_all names both directions against both versions" test "$(wc -l <"$T/t-full-all.out")" -eq 4
"$ctl" schema check --dir "$GOLDEN/schemas" --mode full_all >/dev/null 2>&1
check "full_all passes the compatible golden schemas" test $? -eq 0
"$ctl" schema check --dir "$T/trans" --mode full_al >/dev/null 2>"$T/badmode.err"
check "a misspelt transitive mode is a usage error (exit 2) listing the modes" \
  bash -c "grep -q 'full_all' '$T/badmode.err'"
"$ctl" schema check "$T/trans/checkout/3.json" "$T/trans/checkout/4.json" --mode full_all \
  >/dev/null 2>&1
check "with two files a transitive mode is its plain mode (one earlier version)" test $? -eq 0

# ---- one loader: the filter's limits and layout rules ----
mkdir -p "$T/big/checkout"
"$PY" -c "import json; print(json.dumps({'type': 'object', 'description': 'x' * (1 << 20)}))" \
  >"$T/big/checkout/1.json"
"$ctl" schema check --dir "$T/big" >/dev/null 2>"$T/big.err"
check "a schema file over 1 MiB is refused as the filter refuses it (exit 2)" test $? -eq 2
check "... with the filter's message" grep -q 'checkout/1.json: over 1 MiB' "$T/big.err"
mkdir -p "$T/badtype/bad name" && cp "$GOLDEN/schemas/page_view/1.json" "$T/badtype/bad name/1.json"
"$ctl" schema ddl --dir "$T/badtype" --dialect postgres >/dev/null 2>"$T/badtype.err"
check "a directory that is not an event type fails the command (exit 2)" test $? -eq 2
check "... and the message names it" grep -q 'bad name: not an event type' "$T/badtype.err"

# ---- openapi ----
"$ctl" schema openapi --dir "$GOLDEN/schemas" --title "Acme events" --server https://ev.example.com \
  >"$T/openapi.json" 2>"$T/openapi.err"
check "schema openapi exits 0" test $? -eq 0
cat >"$T/oas.py" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
need(d.get("openapi", "").startswith("3.0."), "openapi 3.0.x")
need(d["info"]["title"] == "Acme events" and d["info"].get("version"), "info.title/version")
need(d["servers"] == [{"url": "https://ev.example.com"}], "servers")
post = d["paths"]["/v1/events"]["post"]
need(set(post["responses"]) >= {"200", "400", "401", "413", "503"}, "status codes")
for code, r in post["responses"].items():
    need("description" in r, "description of %s" % code)
need("Retry-After" in post["responses"]["503"].get("headers", {}), "Retry-After on 503")
body = post["requestBody"]["content"]
need({"application/json", "application/x-ndjson"} <= set(body), "body forms")
need(len(body["application/json"]["schema"]["oneOf"]) == 2, "array and {events} forms")
for p in ("/healthz", "/readyz", "/metrics"):
    need("get" in d["paths"].get(p, {}), p)
sec = d["components"]["securitySchemes"]["ApiKey"]
need(sec == {"type": "apiKey", "in": "header", "name": "X-Api-Key"}, "X-Api-Key scheme")
need(post["security"] == [{"ApiKey": []}], "security on POST")
s = d["components"]["schemas"]
ev = s["SluiceEvent"]
types = ["app.Launch", "checkout", "page_view"]
need(ev["discriminator"]["propertyName"] == "event", "discriminator on event")
need(sorted(ev["discriminator"]["mapping"]) == types, "mapping of every type")
need(sorted(x["$ref"].split("/")[-1] for x in ev["oneOf"]) == types, "oneOf of every type")
for t in types:
    need(s[t]["properties"]["event"] == {"type": "string", "enum": [t]}, "event pinned in " + t)
    need("event" in s[t]["required"], "event required in " + t)
need({"checkout.v1", "checkout.v2", "page_view.v1", "app.Launch.v1"} <= set(s), "per-version")
need("phone" not in s["checkout.v1"]["properties"], "v1 is v1")
need(s["checkout"]["properties"]["phone"].get("x-sluice-redact") == "hash", "redact mapped")
text = json.dumps(d)
need('"redact"' not in text, "no bare redact keyword left")
need('"$schema"' not in text, "no $schema left")
def walk(x, names=False):
    # names: x maps property names to schemas (a property may be called "type")
    if isinstance(x, dict) and names:
        for v in x.values():
            walk(v)
    elif isinstance(x, dict):
        t = x.get("type")
        need(t is None or isinstance(t, str), "type arrays are gone: %r" % t)
        need(t != "null", "no null type")
        if "$ref" in x:
            name = x["$ref"].split("/")[-1]
            need(x["$ref"].startswith("#/components/schemas/") and name in s, "ref " + x["$ref"])
        for k, v in x.items():
            walk(v, k == "properties")
    elif isinstance(x, list):
        for v in x:
            walk(v)
walk(d)
c = s["checkout"]["properties"]["coupon"]
need(c.get("type") == "string" and c.get("nullable") is True, "[string,null] -> nullable")
need(len(s["checkout"]["properties"]["revenue"]["anyOf"]) == 2, "union -> anyOf")
# The SDKs' drop-in endpoints (docs/clients.md): each with its CORS preflight.
sdk_posts = ["/v1/batch", "/v1/import", "/v1/b", "/beacon/v1/batch", "/com.snowplowanalytics.snowplow/tp2"]
sdk_posts += ["/v1/" + c for c in ("track", "identify", "page", "screen", "group", "alias")]
sdk_posts += ["/v1/" + c for c in "tipsga"]
for p in sdk_posts:
    op = d["paths"].get(p, {}).get("post", {})
    need(set(op.get("responses", {})) >= {"200", "400", "401", "413", "503"}, "SDK POST " + p)
    need("options" in d["paths"].get(p, {}), "preflight on " + p)
for p in ("/pixel/v1/track", "/pixel/v1/page", "/i"):
    r = d["paths"].get(p, {}).get("get", {}).get("responses", {})
    need("image/gif" in r.get("200", {}).get("content", {}), "GIF answer on " + p)
need(d["components"]["securitySchemes"].get("WriteKey", {}).get("scheme") == "basic", "WriteKey scheme")
need(s["SluiceSegmentBatch"]["properties"]["batch"]["items"]["$ref"].endswith("SluiceSegmentMessage"),
     "Segment batch schema")
if errors:
    print("\n".join(sorted(set(errors))))
    sys.exit(1)
PY
check "the OpenAPI document has the ingest API and every event type's schema" \
  "$PY" "$T/oas.py" "$T/openapi.json"
# swagger-parser (pinned in tests/node, installed by tools/install-deps.sh test)
SWAGGER_PARSER_DIR=${SWAGGER_PARSER_DIR:-$(cd "$HERE/../node" && pwd)}
check "swagger-parser validates the OpenAPI document" \
  bash -c "cd '$SWAGGER_PARSER_DIR' && node -e \"require('@apidevtools/swagger-parser').validate('$T/openapi.json').catch(e => { console.error(e.message); process.exit(1) })\""
mkdir -p "$T/empty"
"$ctl" schema openapi --dir "$T/empty" >"$T/empty.json" 2>/dev/null
check "without schemas, events are the generic envelope" \
  "$PY" -c "import json,sys; d=json.load(open('$T/empty.json')); sys.exit(d['components']['schemas']['SluiceEvent'] != {'\$ref': '#/components/schemas/SluiceEnvelope'})"
mkdir -p "$T/clash/a" "$T/clash/a.v1"
echo '{"type":"object"}' >"$T/clash/a/1.json"
echo '{"type":"object"}' >"$T/clash/a.v1/1.json"
"$ctl" schema openapi --dir "$T/clash" >/dev/null 2>"$T/clash.err"
check "component names that collide fail with a message" grep -q 'two components' "$T/clash.err"

# ---- ddl ----
for d in snowflake redshift postgres bigquery; do
  (cd "$GOLDEN/schemas" && "$ctl" schema ddl --dir . --dialect "$d") >"$T/ddl-$d.sql" 2>&1
  check "ddl --dialect $d exits 0 and equals tests/data/golden/ddl-$d.sql" \
    diff -u "$GOLDEN/ddl-$d.sql" "$T/ddl-$d.sql"
done
(cd "$GOLDEN/schemas" && "$ctl" schema ddl --dir . --dialect bigquery --event checkout \
  --namespace analytics) >"$T/ddl-ns.sql" 2>&1
check "ddl --event and --namespace select and qualify one table" \
  diff -u "$GOLDEN/ddl-bigquery-checkout-ns.sql" "$T/ddl-ns.sql"
"$ctl" schema ddl --dir "$GOLDEN/schemas" --dialect oracle >/dev/null 2>&1
check "an unknown dialect is exit 2" test $? -eq 2
"$ctl" schema ddl --dir "$GOLDEN/schemas" --dialect postgres --event nope >/dev/null 2>&1
check "an event type without a schema is exit 1" test $? -eq 1
mkdir -p "$T/cols/x"
echo '{"type":"object","properties":{"userId":{"type":"string"},"userid":{"type":"integer"}}}' \
  >"$T/cols/x/1.json"
"$ctl" schema ddl --dir "$T/cols" --dialect redshift >/dev/null 2>"$T/cols.err"
check "two properties folding to one Redshift column fail (exit 1) and say which" \
  bash -c "grep -q 'userId' '$T/cols.err' && grep -q 'userid' '$T/cols.err'"
"$ctl" schema ddl --dir "$T/cols" --dialect postgres >"$T/cols.sql" 2>&1
check "... while PostgreSQL keeps both (quoted names keep their case)" \
  bash -c "grep -q '\"userId\" text' '$T/cols.sql' && grep -q '\"userid\" bigint' '$T/cols.sql'"
mkdir -p "$T/quote/q"
echo '{"type":"object","properties":{"we\"ird`name":{"type":"string"}}}' >"$T/quote/q/1.json"
"$ctl" schema ddl --dir "$T/quote" --dialect postgres >"$T/q.sql" 2>&1
check "a double quote in a name is doubled in PostgreSQL" grep -qF '"we""ird`name" text' "$T/q.sql"
"$ctl" schema ddl --dir "$T/quote" --dialect bigquery >"$T/q.sql" 2>&1
check "BigQuery column names keep only letters, digits and _" grep -qF '`we_ird_name` STRING' \
  "$T/q.sql"
finish
