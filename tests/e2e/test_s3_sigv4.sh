#!/usr/bin/env bash
# backends: s3
# Signature V4 as an independent server checks it: every request here goes
# through the verifier (tests/support/sigv4_verify.py, botocore re-signs
# each one). A wrong secret gets 403 SignatureDoesNotMatch, an unknown key
# InvalidAccessKeyId, an unsigned request AccessDenied. Interoperability
# with Debian's awscli, both ways, on keys that need encoding: what sluice
# writes awscli lists and reads byte for byte; what awscli writes sluice
# lists and reads.
. "$(dirname "$0")/lib.sh"

AWS=${AWS_CLI:-/usr/bin/aws}
log=$S3V_DIR/requests.log
refused() { grep -a -c "^refused $1 " "$log"; }

# ---- the verifier refuses what is not signed right --------------------------
AWS_SECRET_ACCESS_KEY=not-the-secret "$BIN/sluicectl" ls --store "$STORE_URL" >/dev/null 2>"$T/wrong.err"
rc=$?
check "a wrong secret fails (exit $rc) with S3's 403 SignatureDoesNotMatch" \
  grep -q 'S3 error SignatureDoesNotMatch (HTTP 403)' "$T/wrong.err"
check "and the verifier is who refused it" test "$(refused SignatureDoesNotMatch)" -ge 1
AWS_ACCESS_KEY_ID=AKIANOBODY "$BIN/sluicectl" ls --store "$STORE_URL" >/dev/null 2>"$T/nokey.err"
check "an unknown key id fails with 403 InvalidAccessKeyId" \
  grep -q 'S3 error InvalidAccessKeyId (HTTP 403)' "$T/nokey.err"
code=$(curl -s -o "$T/anon.body" -w '%{http_code}' "http://$S3_ENDPOINT/$SRV_BUCKET?max-keys=1")
check "an unsigned request is refused (HTTP $code, AccessDenied)" \
  bash -c "[ '$code' = 403 ] && grep -q AccessDenied '$T/anon.body'"

# ---- sluice writes, awscli reads ---------------------------------------------
cat >"$T/aws-config" <<CFG
[default]
region = us-east-1
s3 =
    addressing_style = path
CFG
aws_() {
  AWS_CONFIG_FILE=$T/aws-config AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_PAGER='' \
    "$AWS" --endpoint-url "http://$S3_ENDPOINT" "$@"
}
start_filter f --store "$STORE_URL" --flush-age 50ms || { not_ok "filter starts"; exit 1; }
"$BIN/sluicectl" gen --count 600 --seed 7 >"$T/events.ndjson"
"$BIN/sluicectl" send "$T/events.ndjson" --url "$FILTER_URL" --batch 20 --concurrency 1 2>"$T/send.log"
check "sluice's filter stores 600 events through the verifier" test $? -eq 0
stop_pid "$FILTER_PID" >/dev/null
puts=$(grep -a -c '^ok 200 PUT /sluice/e2e/filtered/' "$log")
conns=$(grep -a '^ok 200 PUT /sluice/e2e/filtered/' "$log" | sed 's/.* conn=//' | sort -u | wc -l)
check "the filter reuses its connections ($puts PUTs over $conns connections)" \
  test "$puts" -ge 4 -a "$conns" -le $((puts / 2))
"$BIN/sluicectl" ls --store "$STORE_URL" filtered/ | sed 's|^|e2e/|' >"$T/sluice.keys"
aws_ s3api list-objects --bucket "$SRV_BUCKET" --prefix e2e/filtered/ --query 'Contents[].Key' \
  --output text 2>"$T/aws-ls.err" | tr '\t' '\n' | grep -v '^None$' >"$T/aws.keys"
check "awscli lists the $(wc -l <"$T/sluice.keys") objects sluice wrote, the same keys" \
  bash -c "[ -s '$T/sluice.keys' ] && cmp -s '$T/sluice.keys' '$T/aws.keys'"
first=$(head -1 "$T/sluice.keys")
aws_ s3 cp "s3://$SRV_BUCKET/$first" "$T/by-aws.zst" >/dev/null 2>"$T/aws-cp.err"
"$BIN/sluicectl" cat --store "$STORE_URL" "${first#e2e/}" >"$T/by-sluice.ndjson" 2>/dev/null
check "awscli reads an object sluice wrote, byte for byte" \
  bash -c "zstd -dc '$T/by-aws.zst' | cmp -s - '$T/by-sluice.ndjson' && [ -s '$T/by-sluice.ndjson' ]"

# ---- awscli writes, sluice reads ------------------------------------------------
printf '{"event":"aws_cli","id":"%s"}\n' a b c >"$T/from-aws.ndjson"
zstd -q -f "$T/from-aws.ndjson" -o "$T/from-aws.ndjson.zst"
keys=("raw/by aws/a+b=c%41.ndjson.zst" "raw/by aws/caf\xc3\xa9 \xe2\x82\xac.ndjson.zst"
  "raw/by aws/q?x&y#z.ndjson.zst")
for k in "${keys[@]}"; do
  k=$(printf '%b' "$k")
  aws_ s3 cp "$T/from-aws.ndjson.zst" "s3://$SRV_BUCKET/e2e/$k" >/dev/null 2>>"$T/aws-put.err" ||
    not_ok "awscli puts $k"
done
printf '%b\n' "${keys[@]}" | LC_ALL=C sort >"$T/want.keys"
"$BIN/sluicectl" ls --store "$STORE_URL" "raw/by aws/" >"$T/got.keys" 2>"$T/ls.err"
check "sluice lists the keys awscli wrote (space, +, =, %, ?, &, #, UTF-8), in byte order" \
  cmp -s "$T/want.keys" "$T/got.keys"
n=0
while IFS= read -r k; do
  "$BIN/sluicectl" cat --store "$STORE_URL" "$k" 2>>"$T/cat.err" | cmp -s - "$T/from-aws.ndjson" && n=$((n + 1))
done <"$T/want.keys"
check "sluice reads each object awscli wrote ($n of ${#keys[@]})" test "$n" -eq "${#keys[@]}"
check "awscli's own requests passed the verifier (no refusal beyond the 3 provoked)" \
  test "$(grep -a -c '^refused' "$log")" -eq 3
finish
