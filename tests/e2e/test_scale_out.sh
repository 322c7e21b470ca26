#!/usr/bin/env bash
# backends: fs s3
# Scale-out: two filters, two dispatchers, three combiners and three
# splitters, each its own process with its own admin port, against one store
# (one bucket) and one lease and de-duplication backend (one Redis). Clients
# send to both filters. After the run every stage's /metrics is scraped: the
# work must be spread (more than one combiner and more than one splitter did
# jobs, both filters took requests, exactly one dispatcher was active) and
# add up (every job done at least once), and split/ must be exact.
. "$(dirname "$0")/lib.sh"

count=${SCALE_EVENTS:-20000}
[ "$BACKEND" = s3 ] && count=${SCALE_EVENTS:-12000}
store=$STORE_VIEW
common=(--store "$STORE_URL" --leases "$LEASE_URL" --poll 100ms)
declare -A pid admin

# up NAME PROGRAM ARGS... — starts one instance with an admin port.
up() {
  local name=$1 prog=$2; shift 2
  start_stage "$name" "$prog" "${common[@]}" --instance "$name" --admin 127.0.0.1:0 "$@"
  pid[$name]=$STAGE_PID
}

for f in filter1 filter2; do up "$f" filter --listen 127.0.0.1:0 --raw=false --flush-age 100ms; done
# Small jobs, so that there are many to share.
for d in dispatcher1 dispatcher2; do up "$d" dispatcher --max-wait 200ms --job-objects 4; done
for c in combiner1 combiner2 combiner3; do up "$c" combiner; done
for s in splitter1 splitter2 splitter3; do up "$s" splitter --dedup "$DEDUP_URL"; done
names=(filter1 filter2 dispatcher1 dispatcher2 combiner1 combiner2 combiner3 splitter1 splitter2 splitter3)
up_ok=1
for n in "${names[@]}"; do
  admin[$n]=$(admin_port "$T/$n.log") || { up_ok=0; note "$n has no admin port"; }
done
f_ports=()
for f in filter1 filter2; do f_ports+=("$(listen_port "$T/$f.log")") || up_ok=0; done
check "ten stage processes start, each with its own admin port" test "$up_ok" = 1
[ "$up_ok" = 1 ] || exit 1

"$BIN/sluicectl" gen --count "$count" --seed 33 --dup-rate 0.05 --bad-rate 0.02 --no-id-rate 0.02 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
half=$(($(wc -l <"$T/gen.ndjson") / 2))
head -n "$half" "$T/gen.ndjson" >"$T/part1.ndjson"
tail -n +"$((half + 1))" "$T/gen.ndjson" >"$T/part2.ndjson"
"$BIN/sluicectl" send "$T/part1.ndjson" --url "http://127.0.0.1:${f_ports[0]}" --batch 100 \
  --concurrency 2 --retries 1000 2>"$T/send1.log" &
s1=$!
"$BIN/sluicectl" send "$T/part2.ndjson" --url "http://127.0.0.1:${f_ports[1]}" --batch 100 \
  --concurrency 2 --retries 1000 2>"$T/send2.log" &
s2=$!
wait "$s1"; r1=$?
wait "$s2"; r2=$?
check "both clients get every batch acknowledged" test "$r1" = 0 -a "$r2" = 0
check "the pipeline drains" wait_drained "$store" 180
check "split/ holds exactly the expected events: nothing lost, nothing duplicated" \
  "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"

# scrape: each stage's /metrics into $T/NAME.metrics
for n in "${names[@]}"; do
  curl -s --max-time 5 "http://127.0.0.1:${admin[$n]}/metrics" >"$T/$n.metrics"
done
# metric NAME METRIC — the sum of METRIC's samples in NAME's scrape.
metric() {
  awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%d\n", s }' "$T/$1.metrics"
}
# spread METRIC NAMES... — sets s ("name=value ..."), busy (how many have
# a value above 0) and total.
spread() {
  local m=$1 n v
  shift
  s='' busy=0 total=0
  for n in "$@"; do
    v=$(metric "$n" "$m")
    s+="$n=$v "
    [ "$v" -gt 0 ] && busy=$((busy + 1))
    total=$((total + v))
  done
  s=${s% }
}
combined=$(store_keys manifests/combined | wc -l)
split=$(store_keys manifests/split | wc -l)

spread sluice_filter_requests_total filter1 filter2
check "both filters took requests ($s)" test "$busy" = 2
spread sluice_dispatcher_active dispatcher1 dispatcher2
check "exactly one dispatcher is active, the other stands by ($s)" test "$busy" = 1
spread sluice_dispatcher_jobs_total dispatcher1 dispatcher2
check "the dispatchers wrote a job per combined manifest at least ($s; $combined manifests)" \
  test "$total" -ge "$combined" -a "$combined" -gt 3
spread sluice_combiner_jobs_total combiner1 combiner2 combiner3
check "more than one combiner did jobs ($s)" test "$busy" -ge 2
check "the combiners did every combine job ($total jobs, $combined manifests)" \
  test "$total" -ge "$combined"
spread sluice_splitter_jobs_done_total splitter1 splitter2 splitter3
check "more than one splitter did jobs ($s)" test "$busy" -ge 2
check "the splitters did every split job ($total jobs, $split manifests)" test "$total" -ge "$split"
lease_busy=0
for n in combiner1 combiner2 combiner3 splitter1 splitter2 splitter3; do
  v=$(awk '$1 == "sluice_lease_events_total{result=\"acquired\"}" {print $2}' "$T/$n.metrics")
  [ "${v:-0}" -gt 0 ] && lease_busy=$((lease_busy + 1))
done
check "every combiner and splitter reports the leases it acquired (sluice_lease_events_total)" \
  test "$lease_busy" = 6
spread sluice_store_errors_total "${names[@]}"
note "store errors: $s"
spread sluice_store_requests_total "${names[@]}"
note "store requests: $total ($s)"

for n in "${names[@]}"; do
  stop_pid "${pid[$n]}"
  check "$n stops on SIGTERM with status 0" test $? -eq 0
done
finish
