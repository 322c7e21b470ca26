#!/usr/bin/env bash
# sustain.sh [RATE...] — the highest event rate that the four stages as
# daemons (default settings, file:// store, local leases and de-duplication)
# and the load generator sustain together on this machine over HTTP.
# Each step starts the daemons on a fresh store and offers RATE events/s
# with `sluicectl send --rate` (batches of 500, 1000 past 100k/s;
# connections by bench_conns in daemons.sh) for
# SUSTAIN_SECONDS (default 60), sampling every second the backlog: events
# the filter accepted that the splitter has not read yet
# (sluice_filter_events_accepted_total - sluice_splitter_events_in_total).
# A step is sustained when the sender got every batch acknowledged at the
# offered rate (its last acknowledgement came at most 2 s after the last
# batch was due: the filter acknowledges after a flush, flush_age 1s) AND
# the backlog did not grow: its mean over the last quarter of the step
# exceeds that of the second quarter by less than 1.5 s of offered events
# (a pipeline 5% short of the rate grows it by that much in the 30 s
# between the two at the default 60 s) AND it drained after the load.
# Steps go up the list (default below) until one is not sustained, then
# one step halfway back is tried.
# For every step: CPU of each daemon and of the sender as a share of one
# core, and of everything else on the machine (other load shares the
# cores: read the rate against it), and how long the backlog took to drain
# after the load stopped. Writes $BUILD/bench/sustain/steps.txt
# ("rate ack_rate ack_lag_s q2_backlog q4_backlog drain_s filter dispatcher combiner
# splitter send others sustained"; CPU in % of a core) and prints it.
# Figures, never assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
PY=${PYTHON3:-/usr/bin/python3}
SECS=${SUSTAIN_SECONDS:-60}
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(20000 40000 60000 80000 100000 120000 150000 200000)
work=$PWD/$BUILD/bench/sustain
corpus=$work/corpus.ndjson
mkdir -p "$work"
. tests/bench/daemons.sh
pids=()
declare -A admin
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done; true' EXIT

# corpus_for EVENTS — makes sure the corpus holds at least EVENTS lines.
corpus_for() {
  local have=0
  [ -s "$corpus.count" ] && have=$(cat "$corpus.count")
  [ "$have" -ge "$1" ] && return 0
  local n=1000000
  while [ "$n" -lt "$1" ]; do n=$((n * 2)); done
  "$BIN/sluicectl" gen --count "$n" --seed 7 --end 2026-11-01T00:00:00Z >"$corpus"
  echo "$n" >"$corpus.count"
}
# machine_busy — busy ticks of the whole machine (every core) so far.
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
backlog() {
  echo "$(($(bench_metric filter sluice_filter_events_accepted_total) -
    $(bench_metric splitter sluice_splitter_events_in_total)))"
}

# step RATE — one step; appends its line to $work/steps.txt, returns 1 when
# it was not sustained.
step() {
  local rate=$1 dir=$work/step-$1 events=$(($1 * SECS)) tck batch=500 conns
  [ "$rate" -gt 100000 ] && batch=1000
  conns=$(bench_conns "$rate" "$batch")
  tck=$(getconf CLK_TCK)
  corpus_for "$events"
  rm -rf "$dir"
  mkdir -p "$dir"
  bench_start_stages "$dir" "file://$dir/store" "local://$dir/leases" local || return 2
  local c0=() p m0 t0
  for p in "${pids[@]}"; do c0+=("$(ticks "$p")"); done
  m0=$(machine_busy)
  t0=$(date +%s%N)
  (
    TIMEFORMAT='%U %S'
    time head -n "$events" "$corpus" | "$BIN/sluicectl" send - --url "http://127.0.0.1:$INGEST_PORT" \
      --batch "$batch" --concurrency "$conns" --rate "$rate" --stats "$dir/send.json" 2>"$dir/send.log"
  ) 2>"$dir/send.time" &
  local sender=$! now
  : >"$dir/backlog.txt"
  while kill -0 "$sender" 2>/dev/null; do
    now=$(date +%s%N)
    echo "$(((now - t0) / 1000000)) $(backlog)" >>"$dir/backlog.txt"
    sleep 1
  done
  local send_ok=0
  wait "$sender" || send_ok=$?
  local t1 m1 c1=()
  t1=$(date +%s%N)
  m1=$(machine_busy)
  for p in "${pids[@]}"; do c1+=("$(ticks "$p")"); done
  local drain=never i
  for ((i = 0; i < 600; i++)); do
    if [ "$(backlog)" -le 0 ] && [ "$(bench_metric dispatcher sluice_dispatcher_backlog_objects)" -eq 0 ]; then
      drain=$(awk -v a="$t1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
      break
    fi
    sleep 0.2
  done
  bench_stop_stages || exit 1 # a stage that fails on SIGTERM stops the bench
  "$PY" - "$dir" "$rate" "$SECS" "$tck" "$((t1 - t0))" "$((m1 - m0))" "$send_ok" "$drain" \
    "${c0[*]}" "${c1[*]}" <<'PY' | tee -a "$work/steps.txt"
import json, statistics, sys
d, rate, secs, tck, wall_ns, busy, send_rc, drain = sys.argv[1:9]
rate, secs, tck, wall = int(rate), int(secs), int(tck), int(wall_ns) / 1e9
c0, c1 = map(int, sys.argv[9].split()), map(int, sys.argv[10].split())
cpu = [(b - a) / tck for a, b in zip(c0, c1)]
su, ss = map(float, open(d + '/send.time').read().split()[-2:])
send = su + ss
others = max(0.0, int(busy) / tck - sum(cpu) - send)
samples = [tuple(map(int, l.split())) for l in open(d + '/backlog.txt') if l.strip()]
def quarter(q):
    xs = [b for t, b in samples if q * secs / 4 <= t / 1000 < (q + 1) * secs / 4]
    return statistics.mean(xs) if xs else float('nan')
q2, q4 = quarter(1), quarter(3)
ack_rate, lag = 0, float('inf')
try:
    ack = json.load(open(d + '/send.json'))
    if ack['failures'] == 0:
        ack_rate = ack['accepted'] / ack['elapsed_s']
        # the last batch is due once all the others were offered
        lag = ack['elapsed_s'] - (ack['events'] - ack['events'] / ack['batches']) / rate
except (OSError, ValueError, KeyError):
    pass
ok = send_rc == '0' and lag <= 2 and q4 - q2 < 1.5 * rate and drain != 'never'
pct = lambda s: f'{100 * s / wall:.0f}'
print(rate, f'{ack_rate:.0f}', f'{lag:.1f}', f'{q2:.0f}', f'{q4:.0f}', drain, *map(pct, cpu),
      pct(send), pct(others), 'yes' if ok else 'no')
PY
  rm -rf "$dir/store"
  [ "$(tail -1 "$work/steps.txt" | awk '{print $NF}')" = yes ]
}

: >"$work/steps.txt"
# Up the rates until one is not sustained, then one step halfway back (its
# row says whether it held; the table is the result).
best=0
for r in "${rates[@]}"; do
  if step "$r"; then
    best=$r
    continue
  fi
  mid=$(((best + r) / 2 / 1000 * 1000))
  if [ "$best" -gt 0 ] && step "$mid"; then
    best=$mid
  fi
  break
done
echo "highest rate sustained: $best events/s"
