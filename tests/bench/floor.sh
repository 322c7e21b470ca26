#!/usr/bin/env bash
# floor.sh CORPUS [LINES] — the work every event of issue 15's raw/ job
# cannot skip in today's design, each part timed alone on the same events,
# and what the sum leaves for everything else (figures, never assertions):
#   - zstd decode, twice: the landed raw/ object (filter) and the combined
#     object (splitter);
#   - zstd level-1 compression, twice: the filtered/ object, kept inside
#     combined/ (filter: events as they come) and the split files
#     (splitter: the same events grouped by type, as split/ holds them,
#     which compresses faster);
#   - the JSON scan, twice: the filter's strict, compacting scan and the
#     splitter's validate-only scan (bench_scan).
# The zstd parts are the zstd CLI (the same libzstd as the stages, one
# thread) over the first LINES lines (default 500,000) of CORPUS; CPU is the
# process's user time (/usr/bin/time: its reads and writes left out, so the
# sum is a lower bound), BENCH_RUNS runs (default 3), medians. Prints a
# markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
corpus=${1:?usage: floor.sh CORPUS [LINES]}
lines=${2:-500000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

head -n "$lines" "$corpus" >"$work/events.ndjson"
bytes=$(stat -c %s "$work/events.ndjson")

# cpu CMD... — user seconds of CMD, BENCH_RUNS times, the median.
cpu() {
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f '%U' -o "$work/t" "$@"
    cat "$work/t"
  done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# The generated events start with their "event" member: a stable sort on
# it groups them by type in their order of arrival.
sort -s -t'"' -k4,4 "$work/events.ndjson" >"$work/grouped.ndjson"
zc=$(cpu zstd -q -f -1 -T1 "$work/events.ndjson" -o "$work/events.zst")
zg=$(cpu zstd -q -f -1 -T1 "$work/grouped.ndjson" -o "$work/grouped.zst")
zd=$(cpu zstd -q -f -d "$work/events.zst" -o /dev/null)
scan=$("$BUILD/tests/bench/bench_scan" "$work/events.ndjson" "$lines" "$RUNS")
scan_f=$(awk -F'|' '/^\| filter/ { gsub(/ /, "", $5); print $5 }' <<<"$scan")
scan_s=$(awk -F'|' '/^\| splitter/ { gsub(/ /, "", $5); print $5 }' <<<"$scan")

"${PYTHON3:-/usr/bin/python3}" - "$lines" "$bytes" "$zc" "$zg" "$zd" "$scan_f" "$scan_s" <<'PY'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
zc, zg, zd = (float(v) * 1e6 / n for v in sys.argv[3:6])
sf, ss = float(sys.argv[6]) / 1000, float(sys.argv[7]) / 1000
rows = [
    ("zstd decode of the landed raw/ object (filter)", zd),
    ("JSON scan, strict and compacting (filter)", sf),
    ("zstd level-1 compression of the filtered/ object (filter)", zc),
    ("zstd decode of the combined object (splitter)", zd),
    ("JSON scan, validate only (splitter)", ss),
    ("zstd level-1 compression of the split files, grouped by type (splitter)", zg),
]
total = sum(us for _, us in rows)
print(f"{n:,} events, {size / n:.0f} bytes on average; per event, each part alone:")
print()
print("| work | µs per event |")
print("|---|---|")
for what, us in rows:
    print(f"| {what} | {us:.2f} |")
print(f"| **sum** | **{total:.2f}** |")
print()
print(f"The sum alone allows at most {1e6 / total:,.0f} events per CPU-second; "
      f"250,000 means 4.00 µs per event for everything, which leaves "
      f"{4.0 - total:.2f} µs for reading and writing the objects, routing, "
      f"de-duplication and bookkeeping.")
PY
