#!/usr/bin/env bash
# A real Prometheus (Debian's) on loopback scrapes the admin ports of a
# running pipeline (file:// store) and evaluates deploy/prometheus's rules:
# while everything runs no alert fires and the recording rules see the events
# flowing; when the only splitter stops, SluiceStageDown fires for
# job="sluice-splitter"; when it is back on its port, the alert clears.
#
# The rules are the shipped ones with two test-only changes, made on a copy
# in $T: every `for:` is 1s and every group evaluates every 1s (the shipped
# 2m-10m holds would make the test take minutes; promtool's unit tests in
# tests/deploy/alerts.test.yml check the real durations). Scrapes are every 1s.
. "$(dirname "$0")/lib.sh"

REPO=$(cd "$HERE/../.." && pwd)
command -v prometheus >/dev/null && "$PY" -c 'import yaml' 2>/dev/null
check "prometheus and python3-yaml are installed" test $? -eq 0 || { finish; exit 1; }

store=$T/store
common=(--store "file://$store" --leases "local://$T/leases" --poll 100ms --admin 127.0.0.1:0)
declare -A port pid
start() { # start STAGE [ADMIN_ADDR]
  local s=$1 admin=${2:-127.0.0.1:0} extra=()
  [ "$s" = filter ] && extra=(--listen 127.0.0.1:0 --flush-age 200ms --raw=false)
  [ "$s" = dispatcher ] && extra=(--max-wait 300ms)
  "$BIN/sluice-$s" "${common[@]}" --admin "$admin" "${extra[@]}" >>"$T/$s.log" 2>&1 &
  pid[$s]=$!
  PIDS+=("$!")
  wait_log "$T/$s.log" 'msg="admin listening"' 10 || return 1
  port[$s]=$(sed -n 's/.*msg="admin listening".* port=\([0-9]*\).*/\1/p' "$T/$s.log" | tail -1)
}
started=1
for s in filter dispatcher combiner splitter; do start $s || started=0; done
check "the four stages start with admin ports (${port[*]})" test $started -eq 1 || { finish; exit 1; }

# Prometheus: generated config and the test variant of the rules.
"$PY" - "$REPO/deploy/prometheus/sluice.rules.yml" "$T/rules.yml" <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for g in doc["groups"]:
    g["interval"] = "1s"
    for r in g["rules"]:
        if "for" in r:
            r["for"] = "1s"
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
EOF
{
  printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n'
  printf 'rule_files:\n  - %s\n' "$T/rules.yml"
  printf 'scrape_configs:\n'
  for s in filter dispatcher combiner splitter; do
    printf '  - job_name: sluice-%s\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' \
      "$s" "${port[$s]}"
  done
} >"$T/prometheus.yml"
# prom_ready — Prometheus answers on $P (fails at once if it exited).
prom_ready() {
  kill -0 "$prom_pid" 2>/dev/null || return 2
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$P/-/ready")" = 200 ]
}
# A probed free port may be taken by another process before Prometheus binds
# it (it then exits): up to three ports are tried.
for _ in 1 2 3; do
  pport=$(srv_free_port)
  P="http://127.0.0.1:$pport"
  prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$pport" >>"$T/prometheus.log" 2>&1 &
  prom_pid=$!
  PIDS+=("$prom_pid")
  for ((i = 0; i < 300; i++)); do
    prom_ready
    case $? in 0 | 2) break ;; esac
    sleep 0.1
  done
  kill -0 "$prom_pid" 2>/dev/null && break
done

# q EXPR — instant query; prints one line per series: labels as k=v, value.
q() {
  curl -s --get "$P/api/v1/query" --data-urlencode "query=$1" | "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:  # not up yet
    d = {}
for r in d.get("data", {}).get("result", []):
    print(" ".join(f"{k}={v}" for k, v in sorted(r["metric"].items())), r["value"][1])'
}
# alerts STATE — "alertname job" of every alert in that state.
alerts() {
  curl -s "$P/api/v1/alerts" | "$PY" -c '
import json, sys
try:
    got = json.load(sys.stdin)["data"]["alerts"]
except (ValueError, KeyError):
    got = []
for a in got:
    if a["state"] == sys.argv[1]:
        print(a["labels"]["alertname"], a["labels"].get("job", "-"))' "$1" | sort
}
# until_true SECONDS CMD... — polls CMD every 0.25 s.
until_true() {
  local limit=$1 i; shift
  for ((i = 0; i < limit * 4; i++)); do "$@" && return 0; sleep 0.25; done
  return 1
}
all_up() { [ "$(q 'sum(up{job=~"sluice-.*"})')" = " 4" ]; }
check "Prometheus starts and scrapes all four stages as up" until_true 30 all_up

"$BIN/sluicectl" gen --count 2000 --seed 3 >"$T/gen.ndjson"
fport=$(sed -n 's/.*msg="ingest listening".* port=\([0-9]*\).*/\1/p' "$T/filter.log" | tail -1)
"$BIN/sluicectl" send "$T/gen.ndjson" --url "http://127.0.0.1:$fport" --batch 200 2>"$T/send.log"
check "events are acknowledged" test $? -eq 0
check "the pipeline drains" wait_drained "$store" 30
flowing() {
  local v
  v=$(q 'sluice:stage_events:rate5m{stage="splitter"}' | awk '{print $NF}')
  [ -n "$v" ] && "$PY" -c "import sys; sys.exit(0 if float('$v') > 0 else 1)"
}
check "the recording rules see the events flowing through the splitter" until_true 15 flowing
sleep 2
firing=$(alerts firing | tr '\n' ';')
check "a healthy pipeline fires no alert (firing: ${firing:-none})" test -z "$firing"

# Stop the only splitter: the stage has no live instance.
stop_pid "${pid[splitter]}"
check "the splitter stops on SIGTERM with status 0" test $? -eq 0
t0=$SECONDS
down_fires() { alerts firing | grep -qx 'SluiceStageDown sluice-splitter'; }
check "SluiceStageDown fires for job=sluice-splitter once it is stopped" until_true 30 down_fires
note "fired after $((SECONDS - t0)) s; firing: $(alerts firing | tr '\n' ';')"
check "... and for no other stage" \
  bash -c "[ \"\$(curl -s '$P/api/v1/alerts' | grep -o '\"alertname\":\"SluiceStageDown\"' | wc -l)\" -eq 1 ]"

# Start it again on the same admin port: the alert clears.
start splitter "127.0.0.1:${port[splitter]}"
check "the splitter restarts on its admin port ${port[splitter]}" test $? -eq 0
t0=$SECONDS
down_clears() { ! alerts firing | grep -q '^SluiceStageDown ' && ! alerts pending | grep -q '^SluiceStageDown '; }
check "SluiceStageDown clears once the splitter is back" until_true 30 down_clears
note "cleared after $((SECONDS - t0)) s"
check "all four stages are up again" until_true 10 all_up

kill -TERM "$prom_pid" 2>/dev/null
for s in filter dispatcher combiner splitter; do stop_pid "${pid[$s]}" >/dev/null 2>&1; done
finish
