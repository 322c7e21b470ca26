#!/usr/bin/env bash
# combine.sh — combiner MB/s per core in each --mode over 60 filtered
# objects of ~1 MiB stored (and 1000 of ~3 KB), and the output size; called by
# run.sh. Prints markdown table rows.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
PY=${PYTHON3:-/usr/bin/python3}
corpus=$PWD/$BUILD/bench/corpus-1m.ndjson
work=$PWD/$BUILD/bench/combine
run() { # run OBJECTS LINES_EACH
  local objects=$1 each=$2 src=$work/src-$1
  if [ ! -d "$src" ]; then
    mkdir -p "$work"
    for i in $(seq 0 $((objects - 1))); do
      sed -n "$((i * each + 1)),$(((i + 1) * each))p;$(((i + 1) * each))q" "$corpus" \
        >"$work/slice.ndjson"
      "$BIN/sluice-filter" --store "file://$src" --admin off --instance "b$i" \
        --input "$work/slice.ndjson" 2>/dev/null
    done
  fi
  for mode in recompress concat auto; do
    rm -rf "$work/s" "$work/leases"
    cp -r "$src" "$work/s"
    "$BIN/sluice-dispatcher" --store "file://$work/s" --leases "local://$work/leases" \
      --admin off --once --job-objects "$objects" --job-bytes 4GiB 2>/dev/null
    "$PY" - "$BIN" "$work" "$mode" "$objects" <<'PY'
import glob, os, resource, subprocess, sys
bin_, work, mode, objects = sys.argv[1:5]
subprocess.run([bin_ + '/sluice-combiner', '--store', 'file://' + work + '/s', '--leases',
                'local://' + work + '/leases', '--admin', 'off', '--once', '--mode', mode,
                '--max-input', '1GiB'], check=True, stderr=subprocess.DEVNULL)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
import json
m = json.load(open(glob.glob(work + '/s/manifests/combined/*.json')[0]))
mb = m['uncompressed_bytes'] / 1e6
stored = sum(i['size'] for i in m['inputs']) / int(objects) / 1000
print(f"| {objects} × {mb / int(objects) * 1000:,.0f} KB ({stored:,.0f} KB stored) | {mode} | {cpu:.2f} | {mb / cpu:,.0f} | {m['bytes'] / 1e6:.2f} MB |")
PY
  done
}
run 60 10000
run 1000 22
