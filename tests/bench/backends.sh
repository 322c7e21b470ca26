#!/usr/bin/env bash
# backends.sh [EVENTS] — the whole pipeline on both backends, side by side
# (EVENTS default 150000, about 5 minutes on 2 cores with 3 runs each):
# the embedded default (file:// store, local leases, local dedup) and S3
# (s3rver) with leases and de-duplication in Redis, both servers started
# here on loopback (tests/support/servers.sh). Each run starts the four
# stages as daemons with default settings, sends the first tenth of EVENTS
# as a warm-up and waits until it is split (so that one-off costs — the
# dispatcher's start-up sweep, the de-duplication view built from an empty
# Redis — stay out of the figures), then sends the rest (16 connections,
# batches of 500), waits until everything is split and takes, for that part:
#   - CPU seconds of the four stages, and separately of s3rver and
#     redis-server (on real S3 the server's cost is not ours);
#   - every stage's store requests by operation, from its /metrics
#     (sluice_store_requests_total{op=...});
#   - Redis INFO commandstats (reset after the warm-up) and used_memory;
#   - the same counters again after BENCH_IDLE seconds of idling (default
#     10): the fixed cost of a pipeline polling a store with nothing new.
# Every run is checked with verify.py split (exactly the de-duplicated
# events, ledgers balanced); a broken run stops the bench with status 1
# and no figures. BENCH_RUNS runs per backend (default 3), alternating;
# medians. Writes $BUILD/bench/backends/backends.md (run.sh puts it into
# docs/benchmarks.md) and prints it.
# For tests/bench/cost.sh: BENCH_BACKENDS (default "fs s3") picks the
# backends; BENCH_RATE offers the measured part at that many events/s
# (`sluicectl send --rate`, connections by bench_conns) instead of as fast
# as acknowledgements allow; BENCH_DISPATCHER_ARGS adds flags to the
# dispatcher; BENCH_WORK moves the results (default $BUILD/bench/backends).
# Each run's JSON line also holds the sender's stats, the filter's flushes,
# the dispatcher's jobs and the split files of the measured part (per job,
# from its manifests/split/).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE:-10}
BACKENDS=${BENCH_BACKENDS:-fs s3}
RATE=${BENCH_RATE:-0}
PY=${PYTHON3:-/usr/bin/python3}
events=${1:-150000}
warm=$((events / 10))
root=$PWD
work=${BENCH_WORK:-$root/$BUILD/bench/backends}
corpus=$root/$BUILD/bench/corpus-backends-$events.ndjson
mkdir -p "$work"
rm -rf "$work"/run-*
. tests/support/servers.sh
. tests/bench/daemons.sh
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; srv_stop_all' EXIT

if ! srv_have_redis || ! srv_have_s3rver; then
  echo "backends.sh: redis-server and s3rver are needed (tools/install-deps.sh bench)" >&2
  exit 1
fi
# 1% client retries, so that de-duplication across objects has work to do
# and verify.py can tell that it did it.
if [ ! -s "$corpus" ] || [ ! -s "$corpus.tsv" ]; then
  "$BIN/sluicectl" gen --count "$events" --seed 7 --end 2026-11-01T00:00:00Z --dup-rate 0.01 \
    --manifest "$corpus.tsv" >"$corpus"
fi

# scrape DIR TAG — every stage's store counters into DIR/TAG.STAGE.prom;
# with Redis, its commandstats and memory into DIR/TAG.redis.
scrape() {
  local s
  for s in filter dispatcher combiner splitter; do
    curl -sf "http://127.0.0.1:${admin[$s]}/metrics" | grep -E '^sluice_(store_|filter_flushes_total|dispatcher_jobs_total|splitter_(outputs_written|bytes_out|jobs_done)_total)' >"$1/$2.$s.prom"
  done
  if [ "$3" = s3 ]; then
    redis_cli "$1/redis" info commandstats >"$1/$2.redis"
    redis_cli "$1/redis" info memory >>"$1/$2.redis"
  fi
}

# send_part DIR PORT FIRST LAST [RATE] — sends lines FIRST..LAST of the
# corpus, at RATE events/s if given; its stats into DIR/send.json.
send_part() {
  local rate=${5:-0}
  sed -n "$3,$4p" "$corpus" | "$BIN/sluicectl" send - --url "http://127.0.0.1:$2" --batch 500 \
    --concurrency "$(bench_conns "$rate" 500)" --rate "$rate" --stats "$1/send.json" \
    2>>"$1/send.log" || { echo "send failed ($1/send.log)" >&2; return 1; }
}
# drain VIEW — until everything filtered is split (at most 10 minutes).
drain() {
  local i
  for ((i = 0; i < 2400; i++)); do
    "$PY" tests/e2e/verify.py drained "$1" && return 0
    sleep 0.25
  done
  return 1
}

declare -A admin
# one_run BACKEND N — one measured run; appends a JSON line to $work/runs.jsonl.
one_run() {
  local backend=$1 n=$2 dir=$work/run-$1-$2 store_url lease_url dedup_url view began=$SECONDS
  mkdir -p "$dir"
  if [ "$backend" = s3 ]; then
    redis_start "$dir/redis" >/dev/null || return 1
    s3rver_start "$dir/s3" >/dev/null || return 1
    store_url=$(s3_store_url bench)
    lease_url=$REDIS_URL
    dedup_url=$REDIS_URL
    view=$S3_BUCKET_DIR/bench
  else
    store_url=file://$dir/store
    lease_url=local://$dir/leases
    dedup_url=local
    view=$dir/store
  fi
  bench_start_stages "$dir" "$store_url" "$lease_url" "$dedup_url" || return 1
  local port=$INGEST_PORT
  local ready=$SECONDS
  send_part "$dir" "$port" 1 "$warm" || return 1
  drain "$view" || { echo "$backend run $n: the warm-up did not drain in 10 minutes" >&2; return 1; }
  [ "$backend" = s3 ] && redis_cli "$dir/redis" config resetstat >/dev/null
  scrape "$dir" start "$backend" || return 1
  "$PY" tests/e2e/verify.py keys "$view" manifests/split >"$dir/start.split.keys"
  local c0 s0=0 r0=0 t0
  c0=$(stage_ticks)
  if [ "$backend" = s3 ]; then s0=$(ticks "$S3_PID"); r0=$(ticks "$REDIS_PID"); fi
  t0=$(date +%s%N)
  send_part "$dir" "$port" $((warm + 1)) "$events" "$RATE" || return 1
  drain "$view" || { echo "$backend run $n did not drain in 10 minutes" >&2; return 1; }
  local t1 c1 s1=0 r1=0
  t1=$(date +%s%N)
  c1=$(stage_ticks)
  if [ "$backend" = s3 ]; then s1=$(ticks "$S3_PID"); r1=$(ticks "$REDIS_PID"); fi
  scrape "$dir" end "$backend" || return 1
  sleep "$IDLE"
  scrape "$dir" idle "$backend" || return 1
  bench_stop_stages || return 1
  if [ "$backend" = s3 ]; then
    redis_stop "$dir/redis"
    s3rver_stop "$dir/s3"
  fi
  local verified=$SECONDS
  if ! "$PY" tests/e2e/verify.py split "$view" "$corpus" "$corpus.tsv" >"$dir/verify.txt"; then
    echo "$backend run $n is broken, no figures (scratch kept in $dir):" >&2
    cat "$dir/verify.txt" >&2
    return 1
  fi
  "$PY" - "$dir" "$backend" "$((events - warm))" "$(getconf CLK_TCK)" "$IDLE" \
    "$((c1 - c0))" "$((s1 - s0))" "$((r1 - r0))" "$(((t1 - t0) / 1000000))" "$view" "$RATE" \
    >>"$work/runs.jsonl" <<'PY'
import json, re, sys
sys.path.insert(0, 'tests/e2e')
import verify
d, backend, events, tck, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
stage_t, s3_t, redis_t, wall_ms = map(int, sys.argv[6:10])
view, rate = sys.argv[10], int(sys.argv[11])
def prom(tag, stage):
    out = {}
    for line in open(f'{d}/{tag}.{stage}.prom'):
        m = re.match(r'sluice_store_(requests|errors)_total\{op="(\w+)"\} (\d+)', line)
        if m:
            out[m[1] + ':' + m[2]] = int(m[3])
        m = re.match(r'sluice_(\w+)_total (\d+)', line)
        if m:
            out[m[1]] = int(m[2])
    return out
# The split files of the jobs split in the measured part: per job, its
# files' sizes and its events (rows written plus duplicates dropped).
before = set(open(f'{d}/start.split.keys').read().split())
jobs = []
for key, doc in verify.json_docs(view, 'manifests/split'):
    if key not in before:
        outs = doc['outputs']
        jobs.append({'files': [o['bytes'] for o in outs],
                     'events': sum(o['rows'] for o in outs) + doc.get('duplicates_dropped', 0)})
def redis(tag):
    cmds, mem = {}, None
    try:
        for line in open(f'{d}/{tag}.redis'):
            m = re.match(r'cmdstat_(\S+):calls=(\d+)', line)
            if m:
                cmds[m[1]] = int(m[2])
            if line.startswith('used_memory:'):
                mem = int(line.split(':')[1])
    except FileNotFoundError:
        pass
    return cmds, mem
stages = {}
for s in ('filter', 'dispatcher', 'combiner', 'splitter'):
    a, b, c = prom('start', s), prom('end', s), prom('idle', s)
    stages[s] = {'run': {k: b[k] - a.get(k, 0) for k in b}, 'idle': {k: c[k] - b.get(k, 0) for k in c}}
rs, ms = redis('start')
re_, me = redis('end')
ri, _ = redis('idle')
print(json.dumps({
    'backend': backend, 'events': events, 'wall_s': wall_ms / 1000, 'idle_s': idle,
    'cpu_stages_s': stage_t / tck, 'cpu_s3rver_s': s3_t / tck, 'cpu_redis_s': redis_t / tck,
    'stages': stages,
    # less the two INFOs of each scrape in between
    'redis_run': {k: v - rs.get(k, 0) - 2 * (k == 'info') for k, v in re_.items()},
    'redis_idle': {k: v - re_.get(k, 0) - 2 * (k == 'info') for k, v in ri.items()},
    'redis_mem_start': ms, 'redis_mem_end': me,
    'rate': rate, 'send': json.load(open(f'{d}/send.json')), 'split_jobs': jobs,
}))
PY
  echo "  $backend run $n: $(head -1 "$dir/verify.txt" | sed 's/^# //'); measured part" \
    "$(((t1 - t0) / 1000000)) ms; start $((ready - began)) s, to verify $((verified - ready)) s," \
    "verify $((SECONDS - verified)) s" >&2
  rm -rf "$dir"
}

: >"$work/runs.jsonl"
echo "backends: $events events per run, $RUNS runs per backend ($BACKENDS, alternating)" >&2
for r in $(seq "$RUNS"); do
  for b in $BACKENDS; do
    one_run "$b" "$r" || exit 1
  done
done
"$PY" - "$work/runs.jsonl" "$events" >"$work/backends.md" <<'PY'
import json, statistics, sys, textwrap
sys.path.insert(0, 'tests/bench')
from s3cost import OPS, PRICE, STAGES, fmt, per_m
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
total = int(sys.argv[2])  # events per run, warm-up included
NAMES = {'fs': 'file store, local leases + dedup', 's3': 'S3 (s3rver), Redis leases + dedup'}
backends = [b for b in ('fs', 's3') if any(r['backend'] == b for r in runs)]
by = {b: [r for r in runs if r['backend'] == b] for b in backends}
med = statistics.median


def per_m_all(r, op):
    return sum(per_m(r, s, op) for s in STAGES)


def cost(counts):
    return sum(counts[op] * PRICE[op] for op, _ in OPS)


measured = runs[0]['events']
print(f'Whole pipeline on both backends (`tests/bench/backends.sh {total}`): the four stages as '
      'daemons with default')
print(f'settings; {total - measured:,} events as a warm-up, then {measured:,} events measured '
      '(1% client retries), 16')
print(f'connections, batches of 500, until everything is split. Medians of {len(by[backends[0]])} '
      'runs per backend; every')
print('run checked with `verify.py split`. s3rver is a Node.js test server: its speed says nothing '
      'about S3,')
print('its request counts are what matter.')
print()
print('| backend | events/s per core (4 stages) | stage CPU s | s3rver CPU s | redis-server CPU s '
      '| events/s per core (stages + servers) | events/s wall |')
print('|---|---|---|---|---|---|---|')
for b in backends:
    rs = by[b]
    pc = med(r['events'] / r['cpu_stages_s'] for r in rs)
    allc = med(r['events'] / (r['cpu_stages_s'] + r['cpu_s3rver_s'] + r['cpu_redis_s']) for r in rs)
    s3cpu, rcpu = ('–', '–')
    if b == 's3':
        s3cpu = f"{med(r['cpu_s3rver_s'] for r in rs):.1f}"
        rcpu = f"{med(r['cpu_redis_s'] for r in rs):.2f}"
    print(f"| {NAMES[b]} | {pc:,.0f} | {med(r['cpu_stages_s'] for r in rs):.1f} | {s3cpu} | {rcpu} "
          f"| {allc:,.0f} | {med(r['events'] / r['wall_s'] for r in rs):,.0f} |")
print()
print('Store requests per million events (all four stages) and what they would cost on AWS S3 '
      'Standard at')
print('us-east-1 request prices (assumed as of 2025-01: PUT/COPY/POST/LIST $0.005 per 1,000, '
      'GET/HEAD $0.0004')
print('per 1,000, DELETE free; storage and transfer not included):')
print()
print('| backend | ' + ' | '.join(n for _, n in OPS) + ' | total | $ per million events '
      '| $ per billion events |')
print('|---|' + '---|' * (len(OPS) + 3))
for b in backends:
    rs = by[b]
    counts = {op: med(per_m_all(r, op) for r in rs) for op, _ in OPS}
    c = med(cost({op: per_m_all(r, op) for op, _ in OPS}) for r in rs)
    print(f'| {NAMES[b]} | ' + ' | '.join(fmt(counts[op]) for op, _ in OPS) +
          f' | {fmt(med(sum(per_m_all(r, op) for op, _ in OPS) for r in rs))} | {c:.4f} '
          f'| {c * 1000:,.2f} |')
print()
print('By stage (requests per million events):')
print()
print('| backend | stage | ' + ' | '.join(n for _, n in OPS) + ' | $ per million events |')
print('|---|---|' + '---|' * (len(OPS) + 1))
for b in backends:
    rs = by[b]
    for s in STAGES:
        counts = {op: med(per_m(r, s, op) for r in rs) for op, _ in OPS}
        c = med(cost({op: per_m(r, s, op) for op, _ in OPS}) for r in rs)
        print(f'| {b} | {s} | ' + ' | '.join(fmt(counts[op]) for op, _ in OPS) + f' | {c:.4f} |')
errs = {b: sum(v for r in by[b] for s in STAGES for k, v in r['stages'][s]['run'].items()
               if k.startswith('errors:')) for b in backends}
print()
print('Store request errors in the measured parts (all runs, all stages): ' +
      ', '.join(f'{b} {errs[b]}' for b in backends) + '.')
print()
idle = runs[0]['idle_s']
print(f'Idle (the {idle:.0f} s after draining): store requests per second of all four stages, and '
      'what that polling')
print('alone would cost on S3 in 30 days:')
print()
print('| backend | ' + ' | '.join(n + '/s' for _, n in OPS) + ' | LIST/s by stage (filter, '
      'dispatcher, combiner, splitter) | $ per 30 days |')
print('|---|' + '---|' * (len(OPS) + 2))
for b in backends:
    rs = by[b]
    def rate(r, op, stages=STAGES):
        return sum(r['stages'][s]['idle'].get('requests:' + op, 0) for s in stages) / r['idle_s']
    rates = {op: med(rate(r, op) for r in rs) for op, _ in OPS}
    lists = ', '.join(f"{med(rate(r, 'list', (s,)) for r in rs):.1f}" for s in STAGES)
    print(f'| {b} | ' + ' | '.join(f'{rates[op]:.1f}' for op, _ in OPS) +
          f' | {lists} | {cost(rates) * 86400 * 30:,.2f} |')
if 's3' in by:
    rs = by['s3']
    names = sorted({k for r in rs for k in r['redis_run']} - {'config|resetstat'})
    calls = {k: med(r['redis_run'].get(k, 0) * 1e6 / r['events'] for r in rs) for k in names}
    calls = {k: v for k, v in calls.items() if v > 0}
    top = sorted(calls.items(), key=lambda kv: -kv[1])
    scripts = calls.get('evalsha', 0) + calls.get('eval', 0)
    idle_calls = med(sum(r['redis_idle'].values()) / r['idle_s'] for r in rs)
    mem_end = med(r['redis_mem_end'] for r in rs)
    mem_grow = med(r['redis_mem_end'] - r['redis_mem_start'] for r in rs)
    print()
    print(textwrap.fill(f'Redis (leases and de-duplication), per million events: {fmt(scripts)} script calls '
          f'(EVALSHA, EVAL), {fmt(sum(calls.values()))} commands counted by `INFO commandstats`, '
          'those run inside the scripts included (' +
          ', '.join(f'{k.upper()} {fmt(v)}' for k, v in top[:8]) + f'); {idle_calls:.1f} '
          f'commands/s idle. used_memory at the end {mem_end / 1e6:.1f} MB, {mem_grow / 1e6:.1f} MB '
          f'more than after the warm-up ({mem_grow / measured:.0f} bytes per measured event).',
                        width=100, break_long_words=False, break_on_hyphens=False))
PY
cat "$work/backends.md"
