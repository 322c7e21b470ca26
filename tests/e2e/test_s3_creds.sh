#!/usr/bin/env bash
# backends: s3
# The AWS credential chain against fake endpoints that hand out short-lived
# credentials (tests/support/fake_aws_creds.py): Kubernetes web identity
# (STS AssumeRoleWithWebIdentity), the container credentials endpoint and
# IMDSv2. For each, a filter runs for longer than the credentials live and
# keeps acknowledging; the verifier in front of s3rver, which refuses
# expired credentials and checks the session token, accepts every request,
# each with a token; and new credentials were fetched before the old ones
# expired. Then: the chain's order, and clear errors for a wrong token.
. "$(dirname "$0")/lib.sh"

lifetime=${CREDS_LIFETIME:-8}
run_for=$((lifetime * 2 + 2))
web_token="web-identity-$$-$RANDOM"
container_token="Bearer container-$$-$RANDOM"
role=arn:aws:iam::123456789012:role/sluice
printf '%s\n' "$web_token" >"$T/web-token"
fakecreds_start "$T/creds" "$S3V_DIR/keys" "$lifetime" "$web_token" "$container_token" ||
  { not_ok "the fake credentials endpoint starts"; exit 1; }
fake=http://127.0.0.1:$FAKECREDS_PORT
creds_log=$T/creds/creds.log
# Only the source under test: no keys, no file, no metadata service.
bare=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE
  AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_EC2_METADATA_DISABLED=true)
web_env=(AWS_WEB_IDENTITY_TOKEN_FILE="$T/web-token" AWS_ROLE_ARN="$role" AWS_ENDPOINT_URL_STS="$fake/")
container_env=(AWS_CONTAINER_CREDENTIALS_FULL_URI="$fake/container"
  AWS_CONTAINER_AUTHORIZATION_TOKEN="$container_token")
imds_env=(AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT="$fake")

issued() { grep -c "^issued $1 " "$creds_log" 2>/dev/null; }

# run_source NAME SOURCE ENV... — a filter on prefix creds-NAME, with only
# ENV for credentials, fed a batch every 0.5 s for run_for seconds.
run_source() {
  local name=$1 source=$2 code bad=0 posts=0 before
  shift 2
  before=$(issued "$source")
  local url
  url=$(s3_store_url "creds-$name")
  "${bare[@]}" "$@" "$BIN/sluice-filter" --listen 127.0.0.1:0 --admin off --raw=false \
    --store "$url" --flush-age 50ms >"$T/filter-$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_log "$T/filter-$name.log" 'msg="ingest listening"' 10; then
    not_ok "$name: the filter starts with credentials from the $source endpoint"
    return
  fi
  local port
  port=$(sed -n 's/.*msg="ingest listening".* port=\([0-9]*\).*/\1/p' "$T/filter-$name.log" | tail -1)
  local end=$((SECONDS + run_for))
  while [ "$SECONDS" -lt "$end" ]; do
    posts=$((posts + 1))
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST \
      "http://127.0.0.1:$port/v1/events" -H 'Content-Type: application/x-ndjson' \
      --data-binary "{\"event\":\"creds_probe\",\"id\":\"$name-$posts\"}")
    [ "$code" = 200 ] || bad=$((bad + 1))
    sleep 0.5
  done
  stop_pid "$pid"
  check "$name: all $posts batches over ${run_for}s acknowledged ($bad not)" test "$bad" -eq 0
  local got=$(($(issued "$source") - before))
  check "$name: credentials fetched again before they expired ($got fetches for ${run_for}s of ${lifetime}s credentials)" \
    test "$got" -ge 2
  local ours
  ours=$(grep -a " /$SRV_BUCKET/creds-$name/" "$S3V_DIR/requests.log")
  local n_ok n_tok
  n_ok=$(grep -c '^ok ' <<<"$ours")
  n_tok=$(grep -c '^ok .* key=ASIATEST[0-9]* token=yes ' <<<"$ours")
  check "$name: the verifier accepted all $n_ok requests (none refused)" \
    test "$n_ok" -ge "$posts" -a "$(grep -c '^refused' <<<"$ours")" -eq 0
  check "$name: every request carried its session token, signed ($n_tok of $n_ok)" test "$n_tok" -eq "$n_ok"
  check "$name: the filter logged no store error" \
    test "$(grep -c 'level=error\|level=warn' "$T/filter-$name.log")" -eq 0
}

run_source web "sts" "${web_env[@]}"
run_source container "container" "${container_env[@]}"
run_source imds "imds" "${imds_env[@]}"

# The chain's order: web identity before the container endpoint; the
# environment's keys before both.
before_sts=$(issued sts) before_container=$(issued container)
"${bare[@]}" "${web_env[@]}" "${container_env[@]}" "$BIN/sluicectl" ls --store "$(s3_store_url creds-web)" \
  filtered/ >"$T/ls-order.out" 2>"$T/ls-order.err"
check "web identity is asked before the container endpoint" \
  test "$(issued sts)" -eq $((before_sts + 1)) -a "$(issued container)" -eq "$before_container"
check "and what it lists is what the web identity run wrote" test -s "$T/ls-order.out"
before_sts=$(issued sts)
env "${web_env[@]}" "$BIN/sluicectl" ls --store "$(s3_store_url creds-web)" filtered/ >/dev/null 2>&1
check "environment keys come before web identity (no STS call)" test "$(issued sts)" -eq "$before_sts"

# Wrong web identity token: a clear error naming STS and its answer.
printf 'not-the-token\n' >"$T/web-token-bad"
"${bare[@]}" AWS_WEB_IDENTITY_TOKEN_FILE="$T/web-token-bad" AWS_ROLE_ARN="$role" \
  AWS_ENDPOINT_URL_STS="$fake/" "$BIN/sluicectl" ls --store "$(s3_store_url creds-web)" filtered/ \
  >/dev/null 2>"$T/ls-bad.err"
check "a refused web identity token fails with STS's reason" grep -q 'web identity: STS at .*AccessDenied (HTTP 403)' "$T/ls-bad.err"
"${bare[@]}" AWS_CONTAINER_CREDENTIALS_FULL_URI="$fake/container" \
  AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer wrong" "$BIN/sluicectl" ls \
  --store "$(s3_store_url creds-web)" filtered/ >/dev/null 2>"$T/ls-bad2.err"
check "a refused container token fails naming the endpoint and status" grep -q 'container credentials endpoint: GET .*/container: HTTP 401' "$T/ls-bad2.err"
finish
