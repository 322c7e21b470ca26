#!/usr/bin/env bash
# SPEC §5.7 at start: every program refuses settings that would lose or
# duplicate data, with exit status 2 and a message naming both settings —
# state/dedup/ swept before the splitters' de-duplication window or before
# the replay horizon (the retention of filtered/ and combined/) — and the
# settings several programs must agree on (dedup_window, retention) are
# read from one place: the top level of the config file, never a
# program's section.
. "$(dirname "$0")/lib.sh"

store=$T/store
S=(--store "file://$store" --leases "local://$T/leases" --admin off --log-level error)

# refused NAME WANT_TEXT... -- CMD... — CMD exits 2 and its stderr holds
# every WANT_TEXT.
refused() {
  local name=$1 want=() out=$T/refused.err
  shift
  while [ "$1" != "--" ]; do want+=("$1"); shift; done
  shift
  "$@" >/dev/null 2>"$out"
  local rc=$?
  local ok=1
  [ "$rc" -eq 2 ] || ok=0
  for w in "${want[@]}"; do grep -qF -- "$w" "$out" || ok=0; done
  if [ "$ok" = 1 ]; then
    ok "$name"
  else
    not_ok "$name (exit $rc: $(head -c 300 "$out"))"
  fi
}

# --- flags: one program's own settings contradict each other ---
refused "the splitter refuses an index retention shorter than its window" \
  "retention.dedup (1d)" "dedup_window (2d)" -- \
  "$BIN/sluice-splitter" "${S[@]}" --once --dedup-window 48h --retention '{"dedup":"1d"}'
refused "the dispatcher refuses an index retention shorter than the replay horizon" \
  "retention.dedup (2d)" "retention.combined (30d)" -- \
  "$BIN/sluice-dispatcher" "${S[@]}" --once --retention '{"dedup":"2d"}'
refused "sluicectl sweep refuses it too" \
  "retention.dedup (2d)" "retention.filtered (3d)" -- \
  "$BIN/sluicectl" sweep --store "file://$store" \
  --retention '{"dedup":"2d","filtered":"3d","combined":"1d"}'
refused "the splitter refuses a filtered/ retention under an hour" \
  "retention for filtered/ is 30m" -- \
  "$BIN/sluice-splitter" "${S[@]}" --once --retention '{"filtered":"30m"}'

# --- the config file: shared settings at the top level only ---
cat >"$T/section.json" <<EOF
{"store": "file://$store", "sluice-splitter": {"dedup_window": "48h"}}
EOF
refused "a shared setting in a program's section is refused, naming it and the section" \
  "'dedup_window' in section 'sluice-splitter'" "top level" -- \
  "$BIN/sluice-splitter" -c "$T/section.json" --leases "local://$T/leases" --admin off --once
cat >"$T/section2.json" <<EOF
{"store": "file://$store", "sluice-dispatcher": {"retention": {"filtered": "2d"}}}
EOF
refused "... retention too, in the dispatcher's section" \
  "'retention' in section 'sluice-dispatcher'" -- \
  "$BIN/sluice-dispatcher" -c "$T/section2.json" --leases "local://$T/leases" --admin off --once

cat >"$T/bad.json" <<EOF
{"store": "file://$store", "dedup_window": "48h", "retention": {"dedup": "1d"}}
EOF
for prog in splitter dispatcher; do
  refused "one top-level contradiction stops sluice-$prog" "retention.dedup (1d)" "dedup_window (2d)" -- \
    "$BIN/sluice-$prog" -c "$T/bad.json" --leases "local://$T/leases" --admin off --once
done
refused "... and sluicectl sweep" "retention.dedup (1d)" "dedup_window (2d)" -- \
  "$BIN/sluicectl" sweep -c "$T/bad.json"

# One window, one range: every program that reads dedup_window refuses the
# same value (a window the splitters refuse must not run the sweep).
cat >"$T/long.json" <<EOF
{"store": "file://$store", "dedup_window": "100d", "retention": {"dedup": "100d"}}
EOF
for prog in splitter dispatcher; do
  refused "sluice-$prog refuses a window past the shared range" \
    "dedup_window: '100d' is out of range (1m to 90d)" -- \
    "$BIN/sluice-$prog" -c "$T/long.json" --leases "local://$T/leases" --admin off --once
done
refused "... and sluicectl sweep the same" "dedup_window: '100d' is out of range (1m to 90d)" -- \
  "$BIN/sluicectl" sweep -c "$T/long.json"

cat >"$T/good.json" <<EOF
{"store": "file://$store", "dedup_window": "48h",
 "retention": {"filtered": "3d", "combined": "3d", "dedup": "3d"}}
EOF
: >"$T/empty.ndjson"
"$BIN/sluice-filter" -c "$T/good.json" --admin off --input "$T/empty.ndjson" >"$T/good.log" 2>&1
check "a program that takes no shared setting skips them (the filter starts)" test $? -eq 0
for prog in dispatcher combiner splitter; do
  "$BIN/sluice-$prog" -c "$T/good.json" --leases "local://$T/leases" --admin off --once \
    >>"$T/good.log" 2>&1
  check "sluice-$prog starts with the shared top-level settings" test $? -eq 0
done
"$BIN/sluicectl" sweep -c "$T/good.json" >>"$T/good.log" 2>&1
check "sluicectl sweep runs with them" test $? -eq 0

finish
