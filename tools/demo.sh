#!/usr/bin/env bash
# demo.sh — the main job, end to end on the embedded default: a fresh
# file:// store and local leases, the four stages as daemons, 200,000
# generated events (with client retries and malformed ones) sent over HTTP,
# a wait until everything is split, a per-event-type summary, and a clean
# stop. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
PY=${PYTHON3:-/usr/bin/python3}
COUNT=${DEMO_EVENTS:-200000}
data=$PWD/demo-data
work=$(mktemp -d /tmp/sluice-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
port_of() { sed -n "s/.*$2 listening.* port=\([0-9]*\).*/\1/p" "$work/$1.log" | head -1; }

rm -rf "$data"
common=(--store "file://$data" --leases "local://$data-leases" --admin 127.0.0.1:0)
rm -rf "$data-leases"
say "starting the four stages on a fresh store: file://$data"
"$BIN/sluice-filter" "${common[@]}" --listen 127.0.0.1:0 >"$work/filter.log" 2>&1 &
pids+=($!)
for s in dispatcher combiner splitter; do
  "$BIN/sluice-$s" "${common[@]}" --poll 250ms >"$work/$s.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do grep -q 'ingest listening' "$work/filter.log" && break; sleep 0.1; done
port=$(port_of filter ingest)
[ -n "$port" ] || { cat "$work/filter.log"; exit 1; }
echo "  ingest:  http://127.0.0.1:$port/v1/events"
for s in filter dispatcher combiner splitter; do
  printf '  %-10s metrics: http://127.0.0.1:%s/metrics\n' "$s" "$(port_of "$s" admin)"
done

say "generating $COUNT events (2% client retries, 1% malformed, 2% without id)"
"$BIN/sluicectl" gen --count "$COUNT" --seed 42 --dup-rate 0.02 --bad-rate 0.01 \
  --no-id-rate 0.02 >"$work/events.ndjson"
ls -lh "$work/events.ndjson" | awk '{print "  " $5 " of NDJSON"}'

say "sending them over HTTP: batches of 500, 32 connections"
start=$(date +%s%N)
"$BIN/sluicectl" send "$work/events.ndjson" --url "http://127.0.0.1:$port" --batch 500 \
  --concurrency 32

say "waiting until every event is combined and split"
count() { "$BIN/sluicectl" ls "$1" --store "file://$data" 2>/dev/null | wc -l; }
drained() {
  local f
  f=$(count filtered/)
  [ "$f" -gt 0 ] && [ "$(count state/combine/)" -eq "$f" ] && [ "$(count jobs/)" -eq 0 ] &&
    [ "$(count manifests/split/)" -eq "$(count manifests/combined/)" ]
}
for _ in $(seq 600); do drained && break; sleep 0.5; done
echo "  drained $(( ($(date +%s%N) - start) / 1000000 )) ms after the first event was sent"

say "stopping every stage (SIGTERM: finish or abandon the work in hand, exit 0)"
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p" && echo "  pid $p exited 0"; done
pids=()

say "what is in the store"
"$BIN/sluicectl" status --store "file://$data"

say "per event type: split files, rows, duplicates dropped, rejected"
"$PY" - "$data" "$BIN" <<'PY'
import collections, glob, json, os, re, subprocess, sys
data, bin_ = sys.argv[1], sys.argv[2]
files = collections.Counter(); rows = collections.Counter(); dups = 0
for m in glob.glob(os.path.join(data, 'manifests/split/*.json')):
    doc = json.load(open(m))
    dups += doc['duplicates_dropped']
    for o in doc['outputs']:
        files[o['event']] += 1
        rows[o['event']] += o['rows']
incoming = collections.Counter()
def objects(prefix):
    out = subprocess.run([bin_ + '/sluicectl', 'ls', prefix, '--store', 'file://' + data],
                         capture_output=True, text=True).stdout.split()
    return out
for key in objects('combined/'):
    text = subprocess.run([bin_ + '/sluicectl', 'cat', key, '--store', 'file://' + data],
                          capture_output=True).stdout
    for line in text.splitlines():
        incoming[json.loads(line)['event']] += 1
rejected = collections.Counter()
for key in objects('rejected/'):
    text = subprocess.run([bin_ + '/sluicectl', 'cat', key, '--store', 'file://' + data],
                          capture_output=True).stdout
    for line in text.splitlines():
        r = json.loads(line)
        try:
            ev = json.loads(r.get('raw', '')).get('event')
            if not isinstance(ev, str) or not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,127}', ev):
                ev = '(invalid event type)'
        except Exception:
            ev = '(not an event)'
        rejected[ev] += 1
types = sorted(set(rows) | set(rejected), key=lambda t: (-rows[t], t))
print(f"  {'event type':<26}{'files':>7}{'rows':>10}{'dups dropped':>14}{'rejected':>10}")
for t in types:
    print(f"  {t:<26}{files[t]:>7}{rows[t]:>10}{incoming[t] - rows[t]:>14}{rejected[t]:>10}")
print(f"  {'total':<26}{sum(files.values()):>7}{sum(rows.values()):>10}{dups:>14}{sum(rejected.values()):>10}")
PY

say "the ledgers across stages (sluicectl reconcile)"
"$BIN/sluicectl" reconcile --store "file://$data" --from -2h --to now 2>&1 | tail -1 | sed 's/^/  /'

say "where the files are"
echo "  split files:  $data/split/<event>/dt=YYYY-MM-DD/hr=HH/<job>.ndjson.zst"
echo "  manifests:    $data/manifests/split/<job>.json (with Redshift COPY entries)"
echo "  rejections:   $data/rejected/ (original text + reason)"
first=$("$BIN/sluicectl" ls split/ --store "file://$data" | head -1)
echo "  e.g. $first:"
"$BIN/sluicectl" cat "$first" --store "file://$data" | awk 'NR == 1 { print "    " substr($0, 1, 300) "..." }'
