#!/usr/bin/env bash
# whole.sh [EVENTS] — the whole-pipeline job of issue 15, per stage and in
# total, in events per CPU-second (EVENTS default 1,000,000):
#   - raw:  `sluicectl gen --count EVENTS --seed 7 --dup-rate 0.01` (~600-byte
#           events, 1% client retries) landed as zstd NDJSON objects of 10,000
#           events under raw/ (as Firehose or Fluent Bit write them), then
#           sluice-filter, -dispatcher, -combiner and -splitter, each with
#           --once on a fresh file:// store with local leases;
#   - http: the same events sent with `sluicectl send` (batches of 500, 16
#           connections) to a filter daemon with --raw=false and default
#           settings, stopped with SIGTERM once every batch is acknowledged,
#           then the other three stages with --once (the client's CPU is not
#           counted: it is not sluice);
#   - duckdb: the peer, DuckDB with one thread doing the same job in one SQL
#           statement over the same landed objects (tests/node/duckdb_peer.mjs).
# CPU is user+sys of each stage's own process (/usr/bin/time; the filter
# daemon's too, all of its life), so other load on the machine does not
# count. BENCH_RUNS runs (default 3), medians. WHOLE_PARTS (default
# "raw http duckdb") picks the parts. Also prints, per part, the lines in
# split/ beside the expected unique count (a sanity line, not a check),
# and the split/ files and bytes. A stage that does not exit 0 stops the
# bench with status 1. Writes $BUILD/bench/whole/whole.md (run.sh puts it
# into docs/benchmarks.md) and prints it. Figures, never assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
PARTS=${WHOLE_PARTS:-raw http duckdb}
PY=${PYTHON3:-/usr/bin/python3}
events=${1:-1000000}
per_object=10000
root=$PWD
case $BUILD in
  /*) work=$BUILD/bench/whole ;;
  *) work=$root/$BUILD/bench/whole ;;
esac
data=$work/data-$events
mkdir -p "$work"
filter_pid=
trap '[ -n "$filter_pid" ] && kill -9 "$filter_pid" 2>/dev/null; true' EXIT

for tool in /usr/bin/time zstd split; do
  command -v "$tool" >/dev/null || { echo "whole.sh: $tool is needed (tools/install-deps.sh bench)" >&2; exit 1; }
done
case " $PARTS " in *" duckdb "*)
  [ -d tests/node/node_modules/@duckdb/node-api ] ||
    { echo "whole.sh: @duckdb/node-api is needed (tools/install-deps.sh bench)" >&2; exit 1; } ;;
esac

# The events, the generator's manifest and the landed raw/ objects, made once
# per EVENTS and kept (the seed and --end fix them).
if [ ! -s "$data/done" ]; then
  rm -rf "$data"
  mkdir -p "$data/raw/land"
  echo "generating $events events and landing them under raw/ ($per_object per object)"
  "$BIN/sluicectl" gen --count "$events" --seed 7 --dup-rate 0.01 --end 2026-11-01T00:00:00Z \
    --manifest "$data/events.tsv" >"$data/events.ndjson"
  (cd "$data/raw/land" && split -l "$per_object" -d -a 4 "$data/events.ndjson" part.)
  for f in "$data/raw/land"/part.*; do
    zstd -q -1 --rm "$f" -o "$f.ndjson.zst"
  done
  # distinct (event, id) among the accepted lines: what split/ should hold
  awk -F'\t' '$2 == "accepted" { print $3 "\t" $4 }' "$data/events.tsv" | sort -u | wc -l \
    >"$data/unique"
  echo "$events" >"$data/done"
fi
unique=$(cat "$data/unique")
raw_bytes=$(du -sb "$data/raw" | cut -f1)

runs=$work/runs.txt
: >"$runs"

# timed RUN PART STAGE CMD... — runs CMD under /usr/bin/time; appends
# "RUN PART STAGE user sys wall maxrss_kb" to $runs; a failure stops the bench.
timed() {
  local run=$1 part=$2 stage=$3 dir=$work/run
  shift 3
  if ! /usr/bin/time -f '%U %S %e %M' -o "$dir/$stage.time" "$@" >"$dir/$stage.log" 2>&1; then
    echo "whole.sh: $part run $run: $stage failed (log in $dir/$stage.log):" >&2
    tail -5 "$dir/$stage.log" >&2
    exit 1
  fi
  echo "$run $part $stage $(tail -1 "$dir/$stage.time")" >>"$runs"
}

# output RUN PART DIR — appends "RUN PART out lines files bytes" for the
# zstd NDJSON files under DIR.
output() {
  local lines files bytes
  lines=$(find "$3" -type f -name '*.zst' -print0 | xargs -0 -r zstd -dcq | wc -l)
  files=$(find "$3" -type f -name '*.zst' | wc -l)
  bytes=$(find "$3" -type f -name '*.zst' -printf '%s\n' | awk '{n += $1} END {print n + 0}')
  echo "$1 $2 out $lines $files $bytes" >>"$runs"
}

later_stages() {
  local run=$1 part=$2 s
  for s in dispatcher combiner splitter; do
    timed "$run" "$part" "$s" "$BIN/sluice-$s" "${common[@]}" --once
  done
  output "$run" "$part" "$store/split"
}

run_raw() {
  mkdir -p "$store"
  cp -al "$data/raw" "$store/raw"
  timed "$1" raw filter "$BIN/sluice-filter" "${common[@]}" --once
  later_stages "$1" raw
}

run_http() {
  local dir=$work/run tpid port
  /usr/bin/time -f '%U %S %e %M' -o "$dir/filter.time" "$BIN/sluice-filter" "${common[@]}" \
    --raw=false --listen 127.0.0.1:0 >"$dir/filter.log" 2>&1 &
  tpid=$!
  # The filter is /usr/bin/time's child: its pid, once it listens.
  for _ in $(seq 200); do
    if filter_pid=$(pgrep -P "$tpid") && grep -q 'ingest listening' "$dir/filter.log"; then
      break
    fi
    sleep 0.05
  done
  port=$(sed -n 's/.*ingest listening.* port=\([0-9]*\).*/\1/p' "$dir/filter.log")
  if [ -z "$port" ] || [ -z "$filter_pid" ]; then
    echo "whole.sh: the filter did not start ($dir/filter.log)" >&2
    exit 1
  fi
  if ! "$BIN/sluicectl" send "$data/events.ndjson" --url "http://127.0.0.1:$port" --batch 500 \
    --concurrency 16 >"$dir/send.log" 2>&1; then
    echo "whole.sh: http run $1: not every batch was acknowledged ($dir/send.log)" >&2
    exit 1
  fi
  kill -TERM "$filter_pid"
  local rc=0
  wait "$tpid" || rc=$?
  filter_pid=
  [ "$rc" -eq 0 ] || { echo "whole.sh: http run $1: the filter exited $rc on SIGTERM ($dir/filter.log)" >&2; exit 1; }
  echo "$1 http filter $(tail -1 "$dir/filter.time")" >>"$runs"
  later_stages "$1" http
}

run_duckdb() {
  local dir=$work/run out
  if ! out=$(node tests/node/duckdb_peer.mjs --input "$data/raw" --output "$dir/duckdb" \
    2>"$dir/duckdb.log"); then
    echo "whole.sh: duckdb run $1 failed ($dir/duckdb.log):" >&2
    tail -5 "$dir/duckdb.log" >&2
    exit 1
  fi
  echo "$1 duckdb peer $out" >>"$runs"
  output "$1" duckdb "$dir/duckdb"
}

for run in $(seq "$RUNS"); do
  for part in $PARTS; do
    rm -rf "$work/run"
    mkdir -p "$work/run"
    store=$work/run/store
    common=(--store "file://$store" --leases "local://$work/run/leases" --admin off)
    "run_$part" "$run"
    echo "run $run $part: $(grep "^$run $part " "$runs" | awk '$3 != "out" {c += $4 + $5} END {printf "%.2f", c}') CPU s"
  done
done

"$PY" - "$runs" "$events" "$unique" "$raw_bytes" "$RUNS" "$work/whole.md" <<'PY'
import collections, datetime, statistics, sys
runs_path, events, unique, raw_bytes, nruns, md_path = sys.argv[1:7]
events, unique, raw_bytes = int(events), int(unique), int(raw_bytes)
cpu = collections.defaultdict(list)    # (part, stage) -> [cpu s per run]
rss = collections.defaultdict(list)
out = collections.defaultdict(list)    # part -> [(lines, files, bytes)]
total = collections.defaultdict(lambda: collections.defaultdict(float))
for line in open(runs_path):
    f = line.split()
    run, part, stage = f[0], f[1], f[2]
    if stage == 'out':
        out[part].append(tuple(int(x) for x in f[3:6]))
        continue
    c = float(f[3]) + float(f[4])
    cpu[part, stage].append(c)
    rss[part, stage].append(int(f[6]))
    total[part][run] += c
def rate(c):  # under 5 clock ticks a quotient is noise
    return f'{events / c:,.0f}' if c >= 0.05 else '—'
names = {'raw': 'raw/ objects → split/', 'http': 'HTTP (`sluicectl send`) → split/',
         'duckdb': 'DuckDB peer, one thread'}
md = []
day = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d')
md.append(f'{events:,} events ({unique:,} distinct accepted), landed as {raw_bytes / 1e6:,.1f} MB '
          f'of zstd NDJSON; medians of {nruns} runs on {day}; CPU is user+sys of each process.')
md.append('')
md.append('| job | stage | CPU s | events per CPU-second | max RSS MB |')
md.append('|---|---|---|---|---|')
for part in ('raw', 'http', 'duckdb'):
    if part not in total:
        continue
    stages = [s for (p, s) in cpu if p == part]
    for s in stages:
        c = statistics.median(cpu[part, s])
        md.append(f'| {names[part]} | {s} | {c:.2f} | {rate(c)} | {statistics.median(rss[part, s]) / 1024:,.0f} |')
    if len(stages) > 1:
        c = statistics.median(total[part].values())
        md.append(f'| {names[part]} | **all {len(stages)}** | {c:.2f} | **{rate(c)}** | |')
md.append('')
md.append('| job | lines out (expected unique) | files | MB out |')
md.append('|---|---|---|---|')
for part in ('raw', 'http', 'duckdb'):
    if part in out:
        lines, files, nbytes = (statistics.median(x[i] for x in out[part]) for i in range(3))
        md.append(f'| {names[part]} | {lines:,.0f} ({unique:,}) | {files:,.0f} | {nbytes / 1e6:,.1f} |')
text = '\n'.join(md) + '\n'
open(md_path, 'w').write(text)
print(text, end='')
PY
