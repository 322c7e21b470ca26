#!/usr/bin/env bash
# test_combine_damage — a filtered/ object damaged in the store never reaches
# split/, and the job it is in stops with a reason and stays for an
# operator. Cut short, it stops its combine job (the combiner names the
# input). Bytes flipped inside a block: an input the combiner copies on its
# sluice record's word (the default for objects of 64 KiB and more) is not
# decoded there, so zstd's content checksum stops the split job when the
# splitter decodes the combined object; recompressed, the same input stops
# the combine job. Undamaged, the same objects go through exactly once.
. "$(dirname "$0")/lib.sh"

# setup ROOT — generated events filtered into two filtered/ objects of a
# few hundred KiB each (copied, not recompressed, by the combiner).
setup() {
  local root=$1 f
  mkdir -p "$root.in"
  split -n l/2 -d "$T/gen.ndjson" "$root.in/part."
  for f in "$root".in/part.*; do
    "$BIN/sluice-filter" --store "file://$root" --input "$f" --admin off \
      --instance "d-${f##*.}" >>"$root.log" 2>&1 || return 1
  done
}

run_stage() { # run_stage ROOT PROGRAM [ARGS] — one --once run, log appended
  local root=$1 prog=$2
  shift 2
  "$BIN/sluice-$prog" --store "file://$root" --leases "local://$root.leases" --admin off \
    --once "$@" >>"$root.log" 2>&1
}

# damage FILE flip|cut — flip: one byte in the middle of the first block of
# the frame after the record (found from the frame and block headers, so
# the frames stay whole); cut: the last 100 bytes dropped.
damage() {
  "$PY" - "$1" "$2" <<'EOF'
import sys
path, how = sys.argv[1], sys.argv[2]
b = bytearray(open(path, 'rb').read())
if how == 'cut':
    del b[-100:]
else:
    # skippable frame (the record): magic, size, payload
    assert b[1:4] == b'\x2a\x4d\x18' and b[0] >> 4 == 5, 'no record'
    f = 8 + int.from_bytes(b[4:8], 'little')
    assert b[f:f + 4] == b'\x28\xb5\x2f\xfd', 'no zstd frame after the record'
    fhd = b[f + 4]  # RFC 8878 3.1.1.1.1
    single = (fhd >> 5) & 1
    hdr = 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + ((single, 2, 4, 8)[fhd >> 6])
    bh = int.from_bytes(b[f + hdr:f + hdr + 3], 'little')
    assert (bh >> 1) & 3 == 2, 'first block is not a compressed block'
    b[f + hdr + 3 + (bh >> 3) // 2] ^= 0x10
open(path, 'wb').write(b)
EOF
}

first_filtered() { find "$1/filtered" -name '*.ndjson.zst' | LC_ALL=C sort | head -1; }
count() { find "$1" -type f ! -name '.*' 2>/dev/null | wc -l; }

"$BIN/sluicectl" gen --count 4000 --seed 11 --manifest "$T/gen.tsv" >"$T/gen.ndjson"

# --- undamaged: the control ---
A=$T/clean
setup "$A"
check "the filter writes two objects of 64 KiB or more (copied by auto mode)" \
  test "$(find "$A/filtered" -name '*.ndjson.zst' -size +64k | wc -l)" -eq 2
for st in dispatcher combiner splitter; do run_stage "$A" "$st"; done
check "undamaged, split/ holds exactly the generated events, each once" \
  "$PY" "$HERE/verify.py" split "$A" "$T/gen.ndjson" "$T/gen.tsv"

# --- a byte flipped inside a block, copied: the splitter stops it ---
B=$T/flip
setup "$B"
key=$(first_filtered "$B")
damage "$key" flip
check "zstd itself finds the damage" bash -c "! zstd -tq '$key' 2>/dev/null"
run_stage "$B" dispatcher
run_stage "$B" combiner
check "the combiner copies the input on its record's word (no decoding)" \
  test "$(count "$B/manifests/combined")" -eq 1
run_stage "$B" splitter
check "the splitter fails the job" test $? -ne 0
check "its log names the job, the combined object and why" \
  grep -q 'msg="cannot split job" job=g1-.* key=combined/.* err="data corrupt"' "$B.log"
check "nothing reaches split/" test "$(count "$B/split")" -eq 0
check "no split manifest is committed" test "$(count "$B/manifests/split")" -eq 0
check "the split job stays for an operator" test "$(count "$B/jobs/split")" -eq 1

# combine_refused NAME HOW [COMBINER ARGS] — a fresh store whose first
# filtered/ object is damaged (HOW: flip or cut); the combiner must fail its
# job, name the input and why, and commit nothing.
combine_refused() {
  local root=$T/$1 how=$2 key rc what
  shift 2
  what="$how, ${*:-default mode}"
  setup "$root"
  key=$(first_filtered "$root")
  damage "$key" "$how"
  run_stage "$root" dispatcher
  run_stage "$root" combiner "$@"
  rc=$?
  check "$what: the combiner fails the job" test "$rc" -ne 0
  check "$what: its log names the input and why" \
    grep -q "msg=\"job input cannot be decoded; job left in place\" job=g1-.* key=${key#"$root"/} why=\"a bad or cut-short zstd frame\"" \
    "$root.log"
  check "$what: nothing is combined" test "$(count "$root/combined")" -eq 0
  check "$what: the combine job stays for an operator" \
    test "$(count "$root/jobs/combine")" -eq 1
}

# --- the same input recompressed: the combiner stops it ---
combine_refused flip-recompress flip --mode recompress
# --- cut short: the combiner stops it without decoding ---
combine_refused cut cut

finish
