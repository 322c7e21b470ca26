#!/usr/bin/env bash
# combine.sh — the combiner in each --mode (and auto at its default
# --concat-min) over one job of 60 filtered objects of ~1.2 MB stored, 200
# of ~120 KB and 1000 of ~4 KB: combiner CPU, MB/s per core, combined
# object size, and the CPU of the splitter that reads it; called by run.sh.
# Prints markdown table rows.
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
import glob, json, resource, subprocess, sys
bin_, work, mode, objects = sys.argv[1:5]
common = ['--store', 'file://' + work + '/s', '--leases', 'local://' + work + '/leases',
          '--admin', 'off', '--once']
def cpu_of(argv):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
cpu = cpu_of([bin_ + '/sluice-combiner', *common, '--mode', mode, '--max-input', '1GiB'])
split = cpu_of([bin_ + '/sluice-splitter', *common])
m = json.load(open(glob.glob(work + '/s/manifests/combined/*.json')[0]))
mb = m['uncompressed_bytes'] / 1e6
stored = sum(i['size'] for i in m['inputs']) / int(objects) / 1000
label = mode if mode != 'auto' else 'auto (default)'
print(f"| {objects} × {mb / int(objects) * 1000:,.0f} KB ({stored:,.0f} KB stored) | {label} "
      f"| {cpu:.2f} | {mb / cpu:,.0f} | {m['bytes'] / 1e6:.2f} MB | {split:.2f} |")
PY
  done
}
run 60 10000
run 200 1000
run 1000 22
