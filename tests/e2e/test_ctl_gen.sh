#!/usr/bin/env bash
# test_ctl_gen — `sluicectl gen` (determinism, counts, rates, manifest,
# malformed kinds) and `sluicectl send` against a tiny python3 HTTP stub that
# fails the first requests, to prove retries resend the same bytes.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
CTL=$BIN/sluicectl
# The system interpreter when there is one: version-manager shims can take
# seconds to start on a loaded machine, and this script starts many.
PY=${PYTHON3:-$(command -v /usr/bin/python3 || command -v python3)}
tmp=$(mktemp -d "${SLUICE_TEST_ROOT:-/tmp}/ctl-gen.XXXXXX")
stub_pid=
cleanup() {
  [ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
check() { # check NAME COMMAND...: runs the command, prints ok / not ok
  local name=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    echo "ok - $name"
  else
    echo "not ok - $name"
    sed 's/^/# /' "$tmp/out" | head -20
    fails=$((fails + 1))
  fi
}
exit_is() { # exit_is CODE COMMAND...
  local want=$1
  shift
  "$@" >/dev/null 2>&1
  local got=$?
  [ "$got" -eq "$want" ] || { echo "exit $got, want $want"; return 1; }
}

if [ ! -x "$CTL" ]; then
  echo "not ok - $CTL is built"
  exit 1
fi

END=2024-05-01T12:00:00Z
gen() { "$CTL" gen --end "$END" "$@"; }

# ---- determinism and counts ----
gen --seed 7 --count 2000 >"$tmp/a1"
gen --seed 7 --count 2000 >"$tmp/a2"
gen --seed 8 --count 2000 >"$tmp/b"
check "gen: same seed gives byte-identical output" bash -c "test -s '$tmp/a1' && cmp -s '$tmp/a1' '$tmp/a2'"
check "gen: a different seed gives different output" bash -c "! cmp -s '$tmp/a1' '$tmp/b'"
check "gen: --count sets the number of lines" test "$(wc -l <"$tmp/a1")" -eq 2000
check "gen: --count 0 writes nothing" test "$(gen --count 0 | wc -c)" -eq 0

check "gen: good events are JSON objects with event, unique id and ts in range" \
  "$PY" - "$tmp/a1" <<'EOF'
import json, sys, datetime, collections
ids, types = set(), collections.Counter()
end = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc).timestamp() * 1000
for n, line in enumerate(open(sys.argv[1], "rb"), 1):
    e = json.loads(line)
    assert isinstance(e, dict) and isinstance(e["event"], str), n
    assert e["id"] not in ids, ("repeated id", n)
    ids.add(e["id"])
    types[e["event"]] += 1
    ts = e["ts"]
    ms = ts if isinstance(ts, int) else datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000
    assert end - 600000 <= ms <= end, ("ts out of range", n, ts)
    assert isinstance(e["context"], dict) and isinstance(e["properties"], dict), n
assert len(types) >= 30, len(types)
top = types.most_common()
assert top[0][1] > 5 * top[-1][1], top  # skewed, not uniform
EOF

check "gen: average line size follows --size" "$PY" - "$tmp/a1" <<EOF
import subprocess, sys
sizes = [len(l) for l in open(sys.argv[1], "rb")]
avg = sum(sizes) / len(sizes)
assert 550 <= avg <= 700, avg
big = subprocess.run(["$CTL", "gen", "--count", "500", "--size", "3000"], capture_output=True, check=True).stdout
avg = len(big) / big.count(b"\n")
assert 2800 <= avg <= 3200, avg
EOF

check "gen: --types limits the distinct event types" "$PY" -c "
import json, subprocess
out = subprocess.run(['$CTL', 'gen', '--count', '3000', '--types', '5'], capture_output=True, check=True).stdout
types = {json.loads(l)['event'] for l in out.splitlines()}
assert len(types) == 5, types
"

# ---- rates and the manifest ----
gen --seed 3 --count 20000 --dup-rate 0.1 --bad-rate 0.05 --no-id-rate 0.02 \
  --manifest "$tmp/m.tsv" >"$tmp/mix"
check "gen: the manifest has one row per line, numbered in order" "$PY" - "$tmp/mix" "$tmp/m.tsv" <<'EOF'
import sys
lines = open(sys.argv[1], "rb").read().count(b"\n")
rows = [r.rstrip("\n").split("\t") for r in open(sys.argv[2])]
assert len(rows) == lines == 20000, (len(rows), lines)
for i, r in enumerate(rows, 1):
    assert len(r) == 5 and int(r[0]) == i, r
    assert r[1] in ("accepted", "rejected"), r
EOF

check "gen: --dup-rate, --bad-rate and --no-id-rate give about the asked fractions" \
  "$PY" - "$tmp/mix" "$tmp/m.tsv" <<'EOF'
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
rows = [r.rstrip("\n").split("\t") for r in open(sys.argv[2])]
n = len(rows)
bad = sum(r[1] == "rejected" for r in rows)
seen, dups, noid = set(), 0, 0
for line, r in zip(lines, rows):
    if r[1] != "accepted":
        continue
    if line in seen:
        dups += 1
        continue
    seen.add(line)
    if "id" not in json.loads(line):
        noid += 1
assert 0.04 <= bad / n <= 0.06, ("bad", bad / n)
assert 0.08 <= dups / n <= 0.12, ("dup", dups / n)
good = n - bad - dups
assert 0.01 <= noid / good <= 0.03, ("no id", noid / good)
EOF

check "gen: accepted rows are valid JSON with the manifest's event and id; repeats keep them" \
  "$PY" - "$tmp/mix" "$tmp/m.tsv" <<'EOF'
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
rows = [r.rstrip("\n").split("\t") for r in open(sys.argv[2])]
by_id = {}
for line, r in zip(lines, rows):
    if r[1] != "accepted":
        continue
    e = json.loads(line)
    assert e["event"] == r[2] and e.get("id", "-") == r[3] and r[4] == "-", (r, line[:120])
    if r[3] != "-":
        assert by_id.setdefault(r[3], line) == line, ("same id, other bytes", r)
EOF

gen --seed 4 --count 48 --bad-rate 1 --manifest "$tmp/bad.tsv" >"$tmp/bad"
check "gen: --bad-rate 1 cycles through every rejection reason" "$PY" - "$tmp/bad.tsv" <<'EOF'
import sys
want = {"not_json", "not_object", "missing_event", "bad_event_type", "bad_id", "bad_ts",
        "invalid_utf8", "too_deep", "bad_number", "bad_string", "duplicate_field", "too_large"}
rows = [r.rstrip("\n").split("\t") for r in open(sys.argv[1])]
assert all(r[1] == "rejected" for r in rows)
got = {r[4] for r in rows}
assert got == want, got ^ want
EOF

check "gen: each malformed line has the defect its reason names" "$PY" - "$tmp/bad" "$tmp/bad.tsv" <<'EOF'
import json, re, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
rows = [r.rstrip("\n").split("\t") for r in open(sys.argv[2])]
assert len(lines) == len(rows)
type_re = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
def depth(v):
    if isinstance(v, dict): return 1 + max(map(depth, v.values()), default=0)
    if isinstance(v, list): return 1 + max(map(depth, v), default=0)
    return 0
for line, r in zip(lines, rows):
    reason = r[4]
    if reason == "invalid_utf8":
        try: line.decode("utf-8"); raise AssertionError("valid utf-8")
        except UnicodeDecodeError: pass
        continue
    text = line.decode("utf-8")
    if reason == "not_json":
        try: json.loads(text); raise AssertionError(("parsed", text[:80]))
        except json.JSONDecodeError: pass
        continue
    pairs = []
    e = json.loads(text, object_pairs_hook=lambda kv: (pairs.append([k for k, _ in kv]), dict(kv))[1])
    if reason == "not_object": assert not isinstance(e, dict); continue
    assert isinstance(e, dict)
    if reason == "missing_event": assert "event" not in e
    elif reason == "bad_event_type": assert not type_re.match(e["event"]), e["event"]
    elif reason == "bad_id": i = e["id"]; assert not (isinstance(i, str) and 1 <= len(i) <= 128)
    elif reason == "bad_ts": assert type(e["ts"]) is not int, e["ts"]
    elif reason == "too_deep": assert depth(e) >= 100
    elif reason == "bad_number": assert "e400" in text or "e9999" in text
    elif reason == "bad_string": assert "\\u0000" in text
    elif reason == "duplicate_field": assert pairs[-1].count("id") == 2, pairs[-1]
    elif reason == "too_large": assert len(line) > 65536
    if reason != "missing_event" and reason != "bad_event_type":
        assert type_re.match(e["event"]) and e["event"] == r[2], r
EOF

# ---- command line ----
check "sluicectl --help exits 0 and lists gen and send" bash -c "'$CTL' --help | grep -q '^  send'"
check "sluicectl --version exits 0" exit_is 0 "$CTL" --version
check "gen --help exits 0" exit_is 0 "$CTL" gen --help
check "send --help exits 0" exit_is 0 "$CTL" send --help
check "an unknown command exits 2" exit_is 2 "$CTL" frobnicate
check "gen: an unknown flag exits 2" exit_is 2 "$CTL" gen --no-such-flag
check "send: an unknown flag exits 2" exit_is 2 "$CTL" send --no-such-flag
check "gen: a rate outside [0,1] exits 2" exit_is 2 "$CTL" gen --dup-rate 1.5
check "send: a missing input file exits 1" exit_is 1 "$CTL" send "$tmp/nonexistent"

# ---- send against a stub ----
cat >"$tmp/stub.py" <<'EOF'
# stub.py FAIL_FIRST STATUS LOG: answers STATUS to the first FAIL_FIRST
# requests, then 200 {"accepted":N,"rejected":0}; logs every body's hash.
import hashlib, http.server, json, sys, threading
fail_first, status, log = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "a")
lock, seen = threading.Lock(), [0]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            seen[0] += 1
            n = seen[0]
            log.write("%s %s %s %d %s %s\n" % (self.path, self.headers.get("Content-Type"),
                                               hashlib.sha256(body).hexdigest(), len(body),
                                               body[:4].hex(),
                                               self.headers.get("Content-Encoding", "-")))
            log.flush()
        out = b""
        if n <= fail_first:
            self.send_response(status)
            self.send_header("Retry-After", "0")
        else:
            out = json.dumps({"accepted": body.count(b"\n"), "rejected": 0}).encode()
            self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
start_stub() { # start_stub FAIL_FIRST STATUS: sets stub_pid and port
  [ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null && wait "$stub_pid" 2>/dev/null
  : >"$tmp/req.log"
  coproc STUB { exec "$PY" "$tmp/stub.py" "$1" "$2" "$tmp/req.log"; }
  stub_pid=$STUB_PID
  read -r port <&"${STUB[0]}"
}

gen --count 250 >"$tmp/send.ndjson"
start_stub 2 503
"$CTL" send "$tmp/send.ndjson" --url "http://127.0.0.1:$port" --batch 100 --concurrency 1 \
  --stats "$tmp/stats.json" --acked "$tmp/acked.tsv" 2>"$tmp/send.err"
rc=$?
check "send: exits 0 once every batch is acknowledged after 503s" test "$rc" -eq 0
check "send: retries resend the same bytes to /v1/events as NDJSON" "$PY" - "$tmp/req.log" <<'EOF'
import sys
reqs = [l.split() for l in open(sys.argv[1])]
assert len(reqs) == 5, reqs  # 2 x 503, then 3 batches
assert all(r[0] == "/v1/events" and r[1] == "application/x-ndjson" for r in reqs)
assert reqs[0][2] == reqs[1][2] == reqs[2][2], "retried body differs"
assert len({r[2] for r in reqs[2:]}) == 3
EOF
check "send: --stats counts batches, events, accepted and retries" "$PY" - "$tmp/stats.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
assert (s["batches"], s["events"], s["accepted"], s["retries"], s["failures"]) == (3, 250, 250, 2, 0), s
assert s["latency_p99_ms"] >= s["latency_p50_ms"] > 0, s
EOF
check "send: --acked lists the line range of every batch" \
  diff <(sort -n "$tmp/acked.tsv") <(printf '1\t100\n101\t200\n201\t250\n')

start_stub 1 400
"$CTL" send "$tmp/send.ndjson" --url "http://127.0.0.1:$port" --batch 100 --concurrency 2 \
  --stats "$tmp/stats400.json" 2>"$tmp/send400.err"
rc=$?
check "send: a 400 fails its batch without retrying, and the exit is 1" "$PY" - "$rc" "$tmp/req.log" "$tmp/stats400.json" <<'EOF'
import json, sys
assert sys.argv[1] == "1", sys.argv[1]
assert len(open(sys.argv[2]).readlines()) == 3
s = json.load(open(sys.argv[3]))
assert (s["batches"], s["failures"], s["retries"]) == (2, 1, 0), s
EOF

start_stub 0 200
"$CTL" send --url "http://127.0.0.1:$port" --zstd --batch 1000 <"$tmp/send.ndjson" 2>/dev/null
rc=$?
check "send: --zstd reads stdin and sends one zstd frame of the input" "$PY" - "$rc" "$tmp/req.log" <<'EOF'
import sys
assert sys.argv[1] == "0", sys.argv[1]
reqs = [l.split() for l in open(sys.argv[2])]
assert len(reqs) == 1, reqs
assert reqs[0][4] == "28b52ffd" and reqs[0][5] == "zstd", reqs  # zstd frame magic
EOF

for url in "ftp://127.0.0.1:$port" "http://" "http://127.0.0.1:$port/?x=1" "127.0.0.1:$port"; do
  check "send: --url $url is a usage error (exit 2) saying why, nothing sent" bash -c '
    : >"$1/req.log"
    "$2" send "$1/send.ndjson" --url "$3" 2>"$1/url.err"
    rc=$?
    [ "$rc" -eq 2 ] && grep -q -- "--url" "$1/url.err" && [ ! -s "$1/req.log" ]' _ "$tmp" "$CTL" "$url"
done
: >"$tmp/req.log"
"$CTL" send "$tmp/send.ndjson" --url "http://127.0.0.1:$port/v1/events/" --batch 1000 2>/dev/null
rc=$?
check "send: a --url already ending in /v1/events (trailing / dropped) is used as it is" \
  "$PY" - "$rc" "$tmp/req.log" <<'EOF'
import sys
assert sys.argv[1] == "0", sys.argv[1]
reqs = [l.split() for l in open(sys.argv[2])]
assert [r[0] for r in reqs] == ["/v1/events"], reqs
EOF

[ "$fails" -eq 0 ]
