#!/usr/bin/env bash
# backends: s3
# TLS: the harness makes a CA and server certificates with openssl and puts
# the SigV4 verifier in front of s3rver over HTTPS. sluice verifies the
# certificate by default: with ca= (the private CA) it works; without it
# it fails with a clear certificate error; a certificate for another host
# name is refused even from the right CA; tls_verify=0 connects anyway and
# says so at start.
. "$(dirname "$0")/lib.sh"

pki=$T/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=sluice test CA' \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" >/dev/null 2>&1
# cert NAME SAN — a server certificate signed by the CA.
cert() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$pki/$1.key" \
    -out "$pki/$1.csr" >/dev/null 2>&1 &&
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
      -CAcreateserial -days 2 -extfile <(printf 'subjectAltName=%s\n' "$2") \
      -out "$pki/$1.pem" >/dev/null 2>&1
}
cert right 'IP:127.0.0.1,DNS:localhost' && cert other 'DNS:other.example' ||
  { not_ok "openssl makes a CA and two server certificates"; exit 1; }

s3verify_start "$T/tls-right" "$S3_RAW_ENDPOINT" --cert "$pki/right.pem" --key "$pki/right.key" ||
  { not_ok "the HTTPS verifier starts"; exit 1; }
right=127.0.0.1:$S3V_PORT
s3verify_start "$T/tls-other" "$S3_RAW_ENDPOINT" --cert "$pki/other.pem" --key "$pki/other.key" ||
  { not_ok "the second HTTPS verifier starts"; exit 1; }
other=127.0.0.1:$S3V_PORT
url() { echo "s3://$SRV_BUCKET/tls?endpoint=$1&retries=1${2:+&$2}"; }

# ls_ URL — sluicectl ls against URL; output in $T/ls.out, errors in $T/ls.err.
ls_() { "$BIN/sluicectl" ls --store "$1" >"$T/ls.out" 2>"$T/ls.err"; }

ls_ "$(url "$right" "ca=$pki/ca.pem")"
check "with ca= the private CA's certificate is accepted (listing works)" test $? -eq 0
printf '{"event":"tls_probe","id":"t1"}\n' >"$T/in.ndjson"
"$BIN/sluice-filter" --admin off --store "$(url "$right" "ca=$pki/ca.pem")" --input "$T/in.ndjson" \
  >"$T/filter.log" 2>&1
check "and the filter stores an event over HTTPS" test $? -eq 0
ls_ "$(url "$right" "ca=$pki/ca.pem")"
check "which is listed back" grep -q '^filtered/' "$T/ls.out"
check "every HTTPS request was verified (none refused)" \
  bash -c "grep -a -q '^ok .* PUT /sluice/tls/filtered/' '$T/tls-right/requests.log' && ! grep -a -q '^refused' '$T/tls-right/requests.log'"

ls_ "$(url "$right")"
rc=$?
check "without ca= the certificate is refused (exit $rc): a clear certificate error" \
  bash -c "[ $rc -ne 0 ] && grep -q 'TLS certificate not accepted talking to $right: SSL certificate problem' '$T/ls.err'"
check "and it is a configuration error, not retried as an outage" grep -q "bucket \"$SRV_BUCKET\" at $right" "$T/ls.err"

ls_ "$(url "$other" "ca=$pki/ca.pem")"
rc=$?
check "a certificate for another host name is refused, even from the trusted CA (exit $rc)" \
  bash -c "[ $rc -ne 0 ] && grep -q 'TLS certificate not accepted.*127.0.0.1' '$T/ls.err'"
check "and nothing reached that verifier" test ! -s "$T/tls-other/requests.log"

ls_ "$(url "$other" "tls_verify=0")"
check "tls_verify=0 connects anyway" test $? -eq 0
check "and warns at start that certificates are not verified" \
  grep -q 'level=warn.*TLS certificates are NOT verified (tls_verify=0)' "$T/ls.err"
finish
