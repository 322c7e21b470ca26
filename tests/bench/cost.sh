#!/usr/bin/env bash
# cost.sh — store requests per million events by stage and operation on S3
# (s3rver) + Redis, priced as S3 Standard, at a sustained rate and at the
# job sizes of a higher one; split files per job and their sizes there; and
# the idle pipeline's requests per second. Called by run.sh; figures, never
# assertions. Both runs are tests/bench/backends.sh on S3 only, the measured
# part offered with `sluicectl send --rate` (every run checked with
# verify.py split):
#   measured  COST_RATE events/s (default 20000) for COST_SECONDS (default
#             30), then COST_IDLE seconds (default 130: two idle_list
#             periods of the stages) idle;
#   derived   the job sizes that the dispatcher's default cut gives at
#             COST_HIGH events/s (default 100000), which 2 shared cores cannot
#             offer: at any rate past ~14k/s the filter's objects are cut by
#             flush_bytes (8 MiB) and a job by max_wait (2 s, at the next
#             pass, poll 1 s: ~2.5 s of events, far below job_bytes 128 MiB
#             and job_objects 1000), so COST_RATE is offered again with the
#             dispatcher's --max-wait stretched to (2.5 s x COST_HIGH /
#             COST_RATE - 0.5 s): the same objects and the same events per
#             job, for COST_DERIVED_SECONDS (default 90: ~7 such jobs).
#             Requests per event come from that run, except the filter's and
#             the dispatcher's LISTs: those are per pass (raw_poll, poll), not
#             per event or job, so their rate per second in that run is
#             re-priced per event at COST_HIGH.
# Writes $BUILD/bench/cost/cost.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
PY=${PYTHON3:-/usr/bin/python3}
rate=${COST_RATE:-20000}
high=${COST_HIGH:-100000}
secs=${COST_SECONDS:-30}
dsecs=${COST_DERIVED_SECONDS:-90}
idle=${COST_IDLE:-130}
work=$PWD/$BUILD/bench/cost
mkdir -p "$work"
stretch=$(((2500 * high / rate) - 500))

# backends.sh sends a tenth of its events as an unpaced warm-up first.
BENCH_BACKENDS=s3 BENCH_RATE=$rate BENCH_IDLE=$idle BENCH_WORK=$work/measured \
  BIN=$BIN BUILD=$BUILD tests/bench/backends.sh $((rate * secs * 10 / 9 + 1)) >/dev/null
BENCH_BACKENDS=s3 BENCH_RATE=$rate BENCH_IDLE=5 BENCH_WORK=$work/derived \
  BENCH_DISPATCHER_ARGS="--max-wait ${stretch}ms" \
  BIN=$BIN BUILD=$BUILD tests/bench/backends.sh $((rate * dsecs * 10 / 9 + 1)) >/dev/null

"$PY" - "$work" "$rate" "$high" "$secs" "$stretch" "$dsecs" >"$work/cost.md" <<'PY'
import json, statistics, sys, textwrap
sys.path.insert(0, 'tests/bench')
from s3cost import OPS, PRICE, STAGES, fmt, per_m
work, rate, high, secs, stretch, dsecs = sys.argv[1], *map(int, sys.argv[2:7])
med = statistics.median


def para(text):
    print(textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False))


load = lambda name: [json.loads(l) for l in open(f'{work}/{name}/runs.jsonl') if l.strip()]
meas, der = load('measured'), load('derived')


def idle_rate(r, s, op):
    return r['stages'][s]['idle'].get('requests:' + op, 0) / r['idle_s']


# Per pass, whatever the rate: the filter's LIST of raw/ and the dispatcher's
# LISTs (2.4-3.5/s under load in every run here, with 50,000 or 250,000
# events per job); the combiner's and the splitter's follow their jobs.
PER_SECOND = {('filter', 'list'), ('dispatcher', 'list')}


def per_s(r, s, op):
    return r['stages'][s]['run'].get('requests:' + op, 0) / r['wall_s']


idle_of = {(s, op): med(idle_rate(r, s, op) for r in meas) for s in STAGES for op, _ in OPS}
rows = {}
for s in STAGES:
    for op, _ in OPS:
        m = med(per_m(r, s, op) for r in meas)
        if (s, op) in PER_SECOND:
            d = med(per_s(r, s, op) for r in der) * 1e6 / high
        else:
            d = med(per_m(r, s, op) for r in der)
        rows[s, op] = (m, d)


def cost(i, stages=STAGES):
    return sum(rows[s, op][i] * PRICE[op] for s in stages for op, _ in OPS)


def send_line(rs):
    return (f"acknowledged {med(r['send']['events_per_s'] for r in rs):,.0f} events/s over "
            f"{med(r['send']['elapsed_s'] for r in rs):.0f} s, ack p99 "
            f"{med(r['send']['latency_p99_ms'] for r in rs):,.0f} ms")


para(f'Cost on S3 (`tests/bench/cost.sh`, s3rver + Redis, {len(meas)} run(s) per row, medians): '
      f'**measured** at {rate:,} events/s offered for {secs} s ({send_line(meas)}); '
      f'**derived** for {high:,} events/s from a run at {rate:,} events/s with the dispatcher\'s '
      f'--max-wait {stretch / 1000:g}s for {dsecs} s ({send_line(der)}), so that each job holds the events a '
      f'default 2 s cut holds at {high:,}/s; the filter\'s and the dispatcher\'s LISTs, which are per '
      f'pass, re-priced per second at {high:,}/s.')
print()
print('Store requests per million events, by stage and operation, and their price:')
print()
print('| events/s | figures | stage | ' + ' | '.join(n for _, n in OPS) + ' | total | $ per million events |')
print('|---|---|---|' + '---|' * (len(OPS) + 2))
for i, (at, how) in enumerate(((rate, 'measured'), (high, 'derived'))):
    for s in STAGES + ('**all four**',):
        st = STAGES if s not in STAGES else (s,)
        n = {op: sum(rows[x, op][i] for x in st) for op, _ in OPS}
        c = f'{cost(i, st):.4f}'
        print(f'| {at:,} | {how} | {s} | ' + ' | '.join(fmt(n[op]) for op, _ in OPS) +
              f' | {fmt(sum(n.values()))} | ' + (f'**{c}**' if s not in STAGES else c) + ' |')
print()
para(f'At those rates: ${cost(0) * rate * 86400 / 1e6:,.2f} per day at {rate:,} events/s '
      f'(measured), ${cost(1) * high * 86400 / 1e6:,.2f} per day at {high:,} events/s (derived); '
      'requests only (no storage, no transfer).')
print()
# The runs last minutes, so the hour partitions the dispatcher lists stay
# within one LIST page (1,000 keys). Over a whole hour it lists
# filtered/<hour> and state/combine/<hour> whole on every pass that finds
# new objects (every 1 s pass at these rates), and each grows to
# rate x 3600 / (events per object) keys: on average half that many keys,
# i.e. keys / 1000 / 2 pages more per listing than in these runs.
epo = med(r['events'] / max(1, r['stages']['filter']['run'].get('filter_flushes', 0)) for r in meas)
extra = 2 * 3600 / (2 * 1000 * epo) * 1e6
para(f'Not in the table, derived: over a whole hour the dispatcher lists `filtered/<hour>` and '
      f'`state/combine/<hour>` whole on each 1 s pass that finds new objects, 1,000 keys a page, '
      f'and each fills to one key per filter object ({epo:,.0f} events each here): on average '
      f'~{extra:,.0f} more LISTs per million events than these minutes-long runs show, at any rate '
      f'where every pass finds new objects (+${extra * PRICE["list"]:.4f} per million events).')
print()


def jobs_line(name, rs, at):
    jobs = [j for r in rs for j in r['split_jobs']]
    files = sorted(len(j['files']) for j in jobs)
    sizes = sorted(b for j in jobs for b in j['files'])
    evs = sorted(j['events'] for j in jobs)
    q = lambda xs, p: xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0
    return (f'| {name} | {at} | {len(jobs)} | {q(evs, 0.5):,} | {q(files, 0.5)} | '
            f'{q(sizes, 0.1) / 1024:,.0f} | {q(sizes, 0.5) / 1024:,.0f} | {q(sizes, 0.9) / 1024:,.0f} | '
            f'{max(sizes, default=0) / 1048576:,.1f} | {sum(sizes) / max(1, sum(evs)):.0f} |')


para('Split files per job (one per event type and hour of the job\'s events; the corpus has 40 '
      'Zipf-skewed types in one hour):')
print()
print('| row | offered events/s | jobs | events per job (median) | split files per job (median) '
      '| file KiB p10 | p50 | p90 | largest MiB | split bytes per event |')
print('|---|---|---|---|---|---|---|---|---|---|')
print(jobs_line('measured', meas, f'{rate:,}'))
print(jobs_line(f'derived (jobs as at {high:,}/s)', der, f'{rate:,}'))
print()
para(f'Idle, the {meas[0]["idle_s"]:.0f} s after the measured part drained (all four daemons, '
      'default settings):')
print()
print('| stage | ' + ' | '.join(n + '/s' for _, n in OPS) + ' | $ per 30 days |')
print('|---|' + '---|' * (len(OPS) + 1))
month = 86400 * 30
for s in STAGES:
    print(f'| {s} | ' + ' | '.join(f'{idle_of[s, op]:.2f}' for op, _ in OPS) +
          f' | {sum(idle_of[s, op] * PRICE[op] for op, _ in OPS) * month:,.2f} |')
print('| **all four** | ' + ' | '.join(f'{sum(idle_of[s, op] for s in STAGES):.2f}' for op, _ in OPS)
      + f' | **{sum(idle_of[s, op] * PRICE[op] for s in STAGES for op, _ in OPS) * month:,.2f}** |')
PY
cat "$work/cost.md"
