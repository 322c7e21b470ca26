#!/usr/bin/env bash
# run.sh — `make bench`: filter throughput per core of filter CPU, MB/s and
# acknowledgement latency over real HTTP, with same-run peers (the jansson
# reference validator, the zstd CLI); the whole pipeline, also side by side
# on the file store and on S3 (s3rver) + Redis with store requests per
# million events (tests/bench/backends.sh); issue 15's whole-pipeline job
# per stage with DuckDB as the peer (tests/bench/whole.sh); the highest
# rate the four daemons sustain with the load generator
# (tests/bench/sustain.sh), the latency at half of it (tests/bench/pipeline.sh
# EVENTS RATE) and the cost on S3 at scale and at rest (tests/bench/cost.sh);
# the dispatcher's LIST rate (tests/bench/lists.sh); the combiner, the splitter,
# the JSON scanner alone (tests/bench/bench_scan), the work no event of the
# raw/ job skips, each part alone (tests/bench/floor.sh),
# schema checking and the Redis de-duplication view. Prints tables and
# rewrites the figures section of docs/benchmarks.md. BENCH_RUNS (default 3)
# runs per configuration; the median is reported. Figures, never assertions.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
PY=${PYTHON3:-/usr/bin/python3}
work=$PWD/$BUILD/bench
mkdir -p "$work"
corpus=$work/corpus-1m.ndjson
tck=$(getconf CLK_TCK)
filter_pid=
. tests/support/servers.sh
trap '[ -n "$filter_pid" ] && kill -9 "$filter_pid" 2>/dev/null; srv_stop_all; true' EXIT

if [ ! -s "$corpus" ]; then
  echo "generating a 1M-event corpus (~600 bytes each) in $corpus"
  "$BIN/sluicectl" gen --count 1000000 --seed 7 --end 2026-11-01T00:00:00Z >"$corpus"
fi
avg=$(awk '{n += length($0) + 1} END {printf "%d", n / NR}' "$corpus")
echo "corpus: $(wc -l <"$corpus") events, $avg bytes on average"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one_run BATCH FLUSH_AGE EVENTS — prints "events cpu_s wall_s p50_ms p99_ms"
one_run() {
  local batch=$1 age=$2 events=$3 store=$work/store log=$work/filter.log
  rm -rf "$store"
  "$BIN/sluice-filter" --store "file://$store" --listen 127.0.0.1:0 --admin off --raw=false \
    --flush-age "$age" >"$log" 2>&1 &
  filter_pid=$!
  for _ in $(seq 100); do grep -q 'ingest listening' "$log" && break; sleep 0.05; done
  local port
  port=$(sed -n 's/.*ingest listening.* port=\([0-9]*\).*/\1/p' "$log")
  local t0
  t0=$(cpu_ticks "$filter_pid")
  head -n "$events" "$corpus" | "$BIN/sluicectl" send - --url "http://127.0.0.1:$port" \
    --batch "$batch" --concurrency 16 --stats "$work/stats.json" 2>/dev/null
  local t1
  t1=$(cpu_ticks "$filter_pid")
  kill -TERM "$filter_pid"
  wait "$filter_pid" || true
  filter_pid=
  "$PY" - "$work/stats.json" "$t0" "$t1" "$tck" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(s['accepted'] + s['rejected'], cpu, s['elapsed_s'], s['latency_p50_ms'], s['latency_p99_ms'], s['bytes'])
PY
}

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

results=$work/results.txt
: >"$results"
# name batch flush_age events
configs=(
  "throughput-b100 100 20ms 400000"
  "throughput-b500 500 20ms 1000000"
  "latency-b100-default 100 1s 48000"
  "latency-b500-default 500 1s 160000"
)
for c in "${configs[@]}"; do
  read -r name batch age events <<<"$c"
  : >"$work/$name.runs"
  for _ in $(seq "$RUNS"); do
    one_run "$batch" "$age" "$events" >>"$work/$name.runs"
  done
  "$PY" - "$work/$name.runs" "$name" "$batch" "$age" >>"$results" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
def med(i): return statistics.median(r[i] for r in rows)
per_core = statistics.median(r[0] / r[1] for r in rows if r[1] > 0)
mb_core = statistics.median(r[5] / r[1] / 1e6 for r in rows if r[1] > 0)
wall = statistics.median(r[0] / r[2] for r in rows)
print(f"{sys.argv[2]}|{int(sys.argv[3])}|{sys.argv[4]}|{int(med(0))}|{per_core:,.0f}|{mb_core:,.1f}|{wall:,.0f}|{med(3):.1f}|{med(4):.1f}|{len(rows)}")
PY
  tail -1 "$results"
done

echo "SDK-format (Segment) batches beside the native API, same client, same events"
tests/bench/sdk.sh "$corpus" 400000 | tee "$work/sdk.txt"

echo "whole pipeline, default settings (200k events, 16 connections, batches of 500)"
: >"$work/pipeline.runs"
for _ in $(seq "$RUNS"); do
  tests/bench/pipeline.sh 200000 >>"$work/pipeline.runs"
done
pipeline=$("$PY" - "$work/pipeline.runs" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
per_core = statistics.median(r[0] / r[1] for r in rows)
print(f"| {int(rows[0][0])} | {per_core:,.0f} | {statistics.median(r[0] / r[2] for r in rows):,.0f} "
      f"| {statistics.median(r[3] for r in rows):.1f} | {statistics.median(r[4] for r in rows):.1f} | {len(rows)} |")
PY
)
echo "  $pipeline"

echo "whole pipeline on the file store and on S3 (s3rver) + Redis, side by side"
BIN=$BIN BUILD=$BUILD tests/bench/backends.sh 150000

echo "whole-pipeline job (issue 15): raw/ and HTTP through the four stages with --once, DuckDB as the peer"
BIN=$BIN BUILD=$BUILD tests/bench/whole.sh 1000000

echo "sustained throughput: four daemons and the load generator, the offered rate stepped up"
BIN=$BIN BUILD=$BUILD tests/bench/sustain.sh
sustained=$(awk '$NF == "yes" && $1 > b { b = $1 } END { print b + 0 }' "$work/sustain/steps.txt")
half=$((sustained / 2))
latency="| – | – | – | – | – | 0 |"
if [ "$half" -gt 0 ]; then
  lat_events=$((half * 40 < 1000000 ? half * 40 : 1000000))
  echo "latency at half the sustained rate: $lat_events events at $half events/s"
  : >"$work/latency.runs"
  for _ in $(seq "$RUNS"); do
    tests/bench/pipeline.sh "$lat_events" "$half" >>"$work/latency.runs"
  done
  latency=$("$PY" - "$work/latency.runs" "$half" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = statistics.median
print(f"| {int(sys.argv[2]):,} | {int(rows[0][0]):,} | {med(r[0] / r[1] for r in rows):,.0f} "
      f"| {med(r[3] for r in rows):.1f} | {med(r[4] for r in rows):.1f} | {len(rows)} |")
PY
  )
  echo "  $latency"
fi

echo "cost on S3 (s3rver + Redis): requests per million events at scale, split files per job, idle"
BIN=$BIN BUILD=$BUILD tests/bench/cost.sh

echo "dispatcher polling: idle LIST/s and a late object's delay (file store)"
tests/bench/lists.sh | tee "$work/lists.txt"
echo "the whole pipeline idle: LIST/s of the four daemons, pick-up delay of a new event"
BIN=$BIN tests/bench/lists.sh pipeline | tee "$work/lists-pipeline.txt"

echo "combiner, per mode"
tests/bench/combine.sh | tee "$work/combine.txt"

echo "splitter (zstd in and out) and its peer"
BIN=$BIN "$BUILD/tests/bench/bench_split" 1000000 "$RUNS" | tee "$work/bench_split.txt"

echo "splitter: ids crafted to collide against random ids"
"$BUILD/tests/bench/bench_collide" 16384 5 | tee "$work/bench_collide.txt"

echo "peers on the same corpus (one core each)"
peer_zstd=$("$PY" - "$corpus" <<'PY'
import subprocess, sys, time
t = time.process_time(); start = time.time()
p = subprocess.run(['zstd', '-1', '-c', '-T1', sys.argv[1]], stdout=subprocess.DEVNULL)
n = sum(1 for _ in open(sys.argv[1], 'rb'))
print(f"{n / (time.time() - start):,.0f}")
PY
)
echo "  zstd -1 CLI compression: $peer_zstd events/s"
"$BUILD/tests/bench/bench_event" | tee "$work/bench_event.txt"

echo "the JSON scanner alone (pipe_json_scan), the filter's and the splitter's way"
"$BUILD/tests/bench/bench_scan" "$corpus" 200000 5 | tee "$work/bench_scan.txt"

echo "the work no event of the raw/ job skips, each part alone (issue 15's floor)"
BUILD=$BUILD tests/bench/floor.sh "$corpus" 500000 | tee "$work/floor.txt"

echo "schema checking per event"
"$BUILD/tests/bench/bench_schema" | tee "$work/bench_schema.txt"
"$BUILD/tests/bench/bench_hset" | tee "$work/bench_hset.txt"

echo "Redis de-duplication view: memory per key and claim speed (200k keys, a scratch redis-server)"
redis_start "$work/redis-dedup" >/dev/null
"$BUILD/tests/bench/bench_dedup_redis" "$REDIS_URL" 200000 | tee "$work/bench_dedup_redis.txt"
# servers.sh is not written for set -e (its stop can return 1 when all went well).
redis_stop "$work/redis-dedup" || true

{
  echo "<!-- figures: written by tests/bench/run.sh -->"
  echo "Run on $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -m)), $RUNS runs per row, medians."
  echo "Command: \`make bench\` (BENCH_RUNS=$RUNS). Corpus: 1M generated events, $avg bytes on average."
  echo
  echo "| configuration | batch | flush age | events | events/s per filter core | MB/s per filter core | events/s wall | ack p50 ms | ack p99 ms | runs |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  awk -F'|' '{ line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line }' "$results"
  echo
  echo "Segment-format batches (\`POST /v1/batch\`, each event a track call) beside the native"
  echo "API in the same run (\`tests/bench/sdk.sh CORPUS 400000\`): the same events, the same"
  echo "Node client (16 keep-alive connections, batches of 500), flush age 20ms, the forms"
  echo "taking turns; filter busy is the filter's CPU over the sending's wall time:"
  echo
  echo "| form | path | body | events | events/s per filter core | MB/s per filter core | events/s wall | filter busy | runs |"
  echo "|---|---|---|---|---|---|---|---|---|"
  awk -F'|' '{ line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line }' "$work/sdk.txt"
  echo
  echo "Whole pipeline with default settings (four stages as daemons, \`tests/bench/pipeline.sh 200000\`):"
  echo "events/s per core counts the CPU of all four stages; latency is from an event's"
  echo "\`received_at\` to the write of the split file holding it."
  echo
  echo "| events | events/s per core (all stages) | events/s wall | latency p50 s | latency p99 s | runs |"
  echo "|---|---|---|---|---|---|"
  echo "$pipeline"
  echo
  cat "$work/backends/backends.md"
  echo
  echo "Whole-pipeline job (\`tests/bench/whole.sh 1000000\`, see \"The whole-pipeline job\""
  echo "below): each stage once with \`--once\`, one after the other; DuckDB as the peer:"
  echo
  cat "$work/whole/whole.md"

  echo "Sustained throughput (\`tests/bench/sustain.sh\`, SUSTAIN_SECONDS=${SUSTAIN_SECONDS:-60}): the four"
  echo "daemons (default settings, file store) and \`sluicectl send --rate\` on the same cores, one step"
  echo "per offered rate; CPU in % of one core over the step; *other load* is everything else the"
  echo "machine ran meanwhile (the rate a step sustains depends on it); backlog in events accepted"
  echo "but not yet split, mean of the second and of the last quarter of the step:"
  echo
  echo "| offered events/s | acked events/s | last ack after due s | backlog Q2 | backlog Q4 | drained after s | filter % | dispatcher % | combiner % | splitter % | sender % | other load % | sustained |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk '{ line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line }' \
    "$work/sustain/steps.txt"
  echo
  echo "Latency at half the highest sustained rate (\`tests/bench/pipeline.sh EVENTS RATE\`, default"
  echo "settings): from an event's \`received_at\` to the write of its split file."
  echo
  echo "| offered events/s | events | events/s per core (all stages) | latency p50 s | latency p99 s | runs |"
  echo "|---|---|---|---|---|---|"
  echo "$latency"
  echo
  cat "$work/cost/cost.md"
  echo
  echo "Dispatcher polling (\`tests/bench/lists.sh\`): LIST requests per second while idle at"
  echo "--poll 1s, the design's bound, and how long a late object in a lookback hour that is"
  echo "not hot waits to be combined (--full-scan 1h, so it is the lookback that finds it):"
  echo
  echo "| idle LIST/s | bound LIST/s | late object combined after | --lookback-every |"
  echo "|---|---|---|---|"
  cat "$work/lists.txt"
  echo
  echo "The whole pipeline idle (\`tests/bench/lists.sh pipeline\`): the four daemons with their"
  echo "default settings (poll 1s, raw_poll 10s, idle_list 60s) over 130 s after their work is"
  echo "done, LIST/s by stage, the S3 price of that per 30 days, and how long one new event"
  echo "sent over HTTP takes to reach split/ (median of 5, min–max):"
  echo
  echo "| idle LIST/s | by stage (filter, dispatcher, combiner, splitter) | \$ per 30 days | pick-up delay |"
  echo "|---|---|---|---|"
  cat "$work/lists-pipeline.txt"
  echo
  echo "Combiner (\`tests/bench/combine.sh\`): one job over the inputs, CPU of the combiner"
  echo "process; MB are uncompressed NDJSON; split CPU s is the splitter's on that output."
  echo
  echo "| inputs | mode | CPU s | MB/s per core | output | split CPU s |"
  echo "|---|---|---|---|---|---|"
  cat "$work/combine.txt"
  echo
  echo "Splitter, zstd in and out (\`$BUILD/tests/bench/bench_split\`):"
  echo
  echo '```'
  cat "$work/bench_split.txt"
  echo '```'
  echo
  echo "Crafted collisions (\`$BUILD/tests/bench/bench_collide 16384 5\`): the splitter's"
  echo "routing pass over ids whose keys share their low bits, against random ids; tables"
  echo "keyed by client bytes are seeded per process, so the two should cost about the same:"
  echo
  echo '```'
  cat "$work/bench_collide.txt"
  echo '```'
  echo
  echo "Peers measured in the same run:"
  echo
  echo "- zstd -1 (CLI, one thread) compressing the corpus: $peer_zstd events/s"
  echo "- the validating fast path against jansson (\`$BUILD/tests/bench/bench_event\`):"
  echo
  echo '```'
  cat "$work/bench_event.txt"
  echo '```'
  echo
  echo "The JSON scanner alone (\`$BUILD/tests/bench/bench_scan CORPUS 200000 5\`, CORPUS the"
  echo "first 200,000 generated events above), per CPU-second, as the filter calls it (strict,"
  echo "compacting into a buffer) and as the splitter does (lenient, validate only):"
  echo
  cat "$work/bench_scan.txt"
  echo
  echo "The floor of the whole-pipeline job (\`tests/bench/floor.sh CORPUS 500000\`): the zstd"
  echo "CLI (the stages' libzstd, one thread, user CPU) and bench_scan on the first 500,000"
  echo "events, each part of the work every event of the raw/ job does, alone:"
  echo
  cat "$work/floor.txt"
  echo
  echo "Schema checking (\`$BUILD/tests/bench/bench_schema\`): what validating each event against"
  echo "its type's schema (docs/schemas.md) adds to the envelope checks, per core:"
  echo
  echo '```'
  cat "$work/bench_schema.txt"
  cat "$work/bench_hset.txt"
  echo '```'
  echo
  echo "Redis de-duplication view (\`$BUILD/tests/bench/bench_dedup_redis URL 200000\`): Redis"
  echo "used_memory per key and claims per second (store index objects included) by bucket count:"
  echo
  echo '```'
  cat "$work/bench_dedup_redis.txt"
  echo '```'
  echo "<!-- /figures -->"
} >"$work/figures.md"
if [ -f docs/benchmarks.md ] && grep -q '<!-- figures' docs/benchmarks.md; then
  "$PY" - docs/benchmarks.md "$work/figures.md" <<'PY'
import re, sys
doc = open(sys.argv[1]).read()
new = open(sys.argv[2]).read().rstrip('\n')
doc = re.sub(r'<!-- figures.*?<!-- /figures -->', lambda m: new, doc, flags=re.S)
open(sys.argv[1], 'w').write(doc)
PY
  echo "updated docs/benchmarks.md"
else
  cat "$work/figures.md"
fi
