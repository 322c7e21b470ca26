#!/usr/bin/env bash
# The deployment files, checked by the real tools: promtool (rule syntax and
# unit tests of every alert), the metric names of the rules and the Grafana
# dashboard against what running stages export, `kubectl kustomize` of the
# base and both overlays with every object validated against the Kubernetes
# schemas (kubernetes-models) and sluice's own rules, the configuration files
# accepted by every program, `make install` into a staged tree, and
# `systemd-analyze verify` / `security` on the installed units, whose
# command lines are then run as a pipeline that moves events.
. "$(dirname "$0")/lib.sh"

REPO=$(cd "$HERE/../.." && pwd)
D=$REPO/deploy
TD=$REPO/tests/deploy
MAKE_VARS=(BIN="$BIN" BUILD="${BUILD:-build}")

missing=()
for tool in promtool kubectl systemd-analyze node curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
"$PY" -c 'import yaml' 2>/dev/null || missing+=("python3-yaml")
[ -d "$REPO/tests/node/node_modules/kubernetes-models" ] || missing+=("tests/node: npm ci")
check "the deployment tools are installed (missing: ${missing[*]:-none})" test ${#missing[@]} -eq 0
[ ${#missing[@]} -eq 0 ] || { finish; exit 1; }

# ---- Prometheus rules ------------------------------------------------------
rules=("$D"/prometheus/*.rules.yml)
check "promtool check rules accepts ${#rules[@]} rule file(s)" promtool check rules "${rules[@]}"
promtool test rules "$TD/alerts.test.yml" >"$T/promtool-test.out" 2>&1
check "promtool test rules: every alert fires on its synthetic series, with its labels and annotations" \
  test $? -eq 0
grep -q SUCCESS "$T/promtool-test.out" || sed 's/^/# /' "$T/promtool-test.out" | head -40
sed "s|/etc/prometheus/sluice.rules.yml|$D/prometheus/sluice.rules.yml|" \
  "$D/prometheus/prometheus.example.yml" >"$T/prometheus.yml"
check "promtool check config accepts the example scrape configuration" \
  promtool check config "$T/prometheus.yml"

# Every alert: a severity, a runbook section that exists, and a unit test
# in which it fires.
"$PY" - "$D/prometheus/sluice.rules.yml" "$REPO/docs/runbook.md" "$TD/alerts.test.yml" \
  "$D/prometheus/scrape-kubernetes.yml" >"$T/alerts-meta.out" 2>&1 <<'EOF'
import re, sys, yaml
rules, runbook, tests, k8s = sys.argv[1:5]
alerts = [r for g in yaml.safe_load(open(rules))["groups"] for r in g["rules"] if "alert" in r]
text = open(runbook).read()
# GitHub-style anchors of the runbook's headings
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.*)$", text, re.M)}
fired = {a["exp_labels"]["alertname"] if "alertname" in a.get("exp_labels", {}) else t["alertname"]
         for case in yaml.safe_load(open(tests))["tests"] for t in case.get("alert_rule_test", [])
         for a in t.get("exp_alerts") or []}
bad = 0
for a in alerts:
    name = a["alert"]
    if a.get("labels", {}).get("severity") not in ("page", "ticket"):
        print(f"{name}: severity is not page or ticket"); bad += 1
    rb = a.get("annotations", {}).get("runbook", "")
    if not rb.startswith("docs/runbook.md#") or rb.split("#", 1)[1] not in anchors:
        print(f"{name}: runbook annotation {rb!r} names no heading of docs/runbook.md"); bad += 1
    if name not in fired:
        print(f"{name}: no unit test in which it fires"); bad += 1
job = [j for j in yaml.safe_load(open(k8s))["scrape_configs"] if j["job_name"] == "sluice-kubernetes"]
rel = job[0]["relabel_configs"] if job else []
if not any(r.get("target_label") == "job" and r.get("replacement") == "sluice-$1" for r in rel):
    print("scrape-kubernetes.yml does not name the job sluice-<stage>"); bad += 1
print(f"{len(alerts)} alerts, {bad} problems")
sys.exit(1 if bad else 0)
EOF
rc=$?
check "every alert has a severity, a runbook section and a unit test that fires it ($(tail -1 "$T/alerts-meta.out"))" \
  test $rc -eq 0
grep -v ' problems$' "$T/alerts-meta.out" | sed 's/^/# /'

# ---- make install ----------------------------------------------------------
make -s -C "$REPO" "${MAKE_VARS[@]}" install DESTDIR="$T/pkg" PREFIX=/usr >"$T/install.log" 2>&1
check "make install DESTDIR=... PREFIX=/usr succeeds" test $? -eq 0
want_files=(usr/bin/sluice-filter usr/bin/sluice-dispatcher usr/bin/sluice-combiner
  usr/bin/sluice-splitter usr/bin/sluicectl
  usr/lib/systemd/system/sluice-filter.service usr/lib/systemd/system/sluice-dispatcher.service
  usr/lib/systemd/system/sluice-combiner@.service usr/lib/systemd/system/sluice-splitter@.service
  usr/lib/systemd/system/sluice.target usr/lib/systemd/system/sluice-sweep.service
  usr/lib/systemd/system/sluice-sweep.timer etc/sluice/sluice.json etc/sluice/sluice.json.example
  usr/share/sluice/prometheus/sluice.rules.yml usr/share/sluice/grafana/sluice.json
  usr/share/doc/sluice/runbook.md)
absent=()
for f in "${want_files[@]}"; do [ -e "$T/pkg/$f" ] || absent+=("$f"); done
check "make install puts programs, units, config, rules, dashboard and runbook in place (missing: ${absent[*]:-none})" \
  test ${#absent[@]} -eq 0
check "installed programs are executable" test -x "$T/pkg/usr/bin/sluice-filter" -a -x "$T/pkg/usr/bin/sluicectl"
check "installed units run /usr/bin programs" \
  grep -q '^ExecStart=/usr/bin/sluice-combiner ' "$T/pkg/usr/lib/systemd/system/sluice-combiner@.service"
check "no installed unit still names /usr/local" \
  bash -c "! grep -l /usr/local '$T'/pkg/usr/lib/systemd/system/*"
echo '{"store": "file:///mine"}' >"$T/pkg/etc/sluice/sluice.json"
make -s -C "$REPO" "${MAKE_VARS[@]}" install DESTDIR="$T/pkg" PREFIX=/usr >>"$T/install.log" 2>&1
check "make install again keeps the operator's sluice.json" grep -q /mine "$T/pkg/etc/sluice/sluice.json"
make -s -C "$REPO" "${MAKE_VARS[@]}" uninstall DESTDIR="$T/pkg" PREFIX=/usr >>"$T/install.log" 2>&1
left=$(cd "$T/pkg" && find . -type f | sort | tr '\n' ' ')
check "make uninstall removes everything but the operator's config (left: $left)" \
  test "$left" = "./etc/sluice/sluice.json "

# ---- systemd ---------------------------------------------------------------
# Installed under $T itself (no DESTDIR), so the ExecStart paths exist.
root=$T/sys
make -s -C "$REPO" "${MAKE_VARS[@]}" install PREFIX="$root/usr" SYSCONFDIR="$root/etc" \
  >>"$T/install.log" 2>&1
units=$root/usr/lib/systemd/system
instances=(sluice-filter.service sluice-dispatcher.service sluice-combiner@1.service
  sluice-combiner@2.service sluice-splitter@1.service sluice-sweep.service sluice-sweep.timer
  sluice.target)
SYSTEMD_UNIT_PATH=$units: systemd-analyze verify "${instances[@]}" >"$T/verify.out" 2>&1
rc=$?
check "systemd-analyze verify passes every unit, without a warning" test $rc -eq 0 -a ! -s "$T/verify.out"
sed 's/^/# /' "$T/verify.out" | head -20
for u in sluice-filter.service sluice-dispatcher.service sluice-combiner@1.service \
  sluice-splitter@1.service sluice-sweep.service; do
  SYSTEMD_UNIT_PATH=$units: systemd-analyze security --offline=true --threshold=20 "$u" \
    >"$T/security.out" 2>&1
  rc=$?
  level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$T/security.out")
  check "systemd-analyze security: $u exposure ${level:-?} is at most 2.0" test $rc -eq 0
done
for u in sluice-filter.service sluice-dispatcher.service sluice-combiner@.service \
  sluice-splitter@.service sluice-sweep.service; do
  f=$units/$u
  ok_h=1
  for key in DynamicUser=yes ProtectSystem=strict StateDirectory=sluice NoNewPrivileges=yes \
    PrivateTmp=yes ProtectHome=yes CapabilityBoundingSet= SystemCallFilter=@system-service; do
    grep -qx "$key" "$f" || { ok_h=0; note "$u lacks $key"; }
  done
  [ "$u" = sluice-sweep.service ] || grep -qx Restart=on-failure "$f" || { ok_h=0; note "$u lacks Restart"; }
  check "$u is hardened and restarts on failure" test $ok_h -eq 1
done

# Run the installed units' command lines as systemd would (Environment=,
# %i, %l, ${SLUICE_ADMIN_HOST}), on a file:// store under $T instead of
# /var/lib/sluice and on admin ports they pick: they must start with the
# installed /etc/sluice/sluice.json and move events through the pipeline.
store=$T/unit-store
export SLUICE_STORE="file://$store" SLUICE_LEASES="local://$T/unit-leases" SLUICE_LISTEN=127.0.0.1:0
run_unit() { # run_unit UNIT INSTANCE LOGNAME
  local f=$units/$1 i=$2 log=$T/$3.log cmd
  cmd=$(sed -n 's/^ExecStart=//p' "$f")
  cmd=${cmd//%i/$i}
  cmd=${cmd//%l/$(hostname -s)}
  cmd=$(sed -E 's/\$\{SLUICE_ADMIN_HOST\}:[0-9%]+[0-9]*/127.0.0.1:0/' <<<"$cmd")
  local -a envs
  mapfile -t envs < <(sed -n 's/^Environment=//p' "$f")
  # shellcheck disable=SC2086 # the command line is split like systemd splits it
  env "${envs[@]}" $cmd >"$log" 2>&1 &
  PIDS+=("$!")
  UNIT_PID=$!
}
admin_port() { sed -n 's/.*msg="admin listening".* port=\([0-9]*\).*/\1/p' "$T/$1.log" | tail -1; }
run_unit sluice-filter.service "" u-filter; uf=$UNIT_PID
run_unit sluice-dispatcher.service "" u-dispatcher; ud=$UNIT_PID
run_unit sluice-combiner@.service 1 u-combiner; uc=$UNIT_PID
run_unit sluice-splitter@.service 1 u-splitter; us=$UNIT_PID
started=1
for s in u-filter u-dispatcher u-combiner u-splitter; do
  wait_log "$T/$s.log" 'msg="admin listening"' 10 || started=0
done
check "every unit's command line starts with the installed configuration" test $started -eq 1
ports=()
for s in u-filter u-dispatcher u-combiner u-splitter; do ports+=("$(admin_port $s)"); done
ready=1
for p in "${ports[@]}"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/readyz")" = 200 ] || ready=0
done
check "each unit's stage answers /readyz on its admin port" test $ready -eq 1
wait_log "$T/u-filter.log" 'msg="ingest listening"' 10
iport=$(sed -n 's/.*msg="ingest listening".* port=\([0-9]*\).*/\1/p' "$T/u-filter.log" | tail -1)
"$BIN/sluicectl" gen --count 500 --seed 7 >"$T/u-gen.ndjson"
"$BIN/sluicectl" send "$T/u-gen.ndjson" --url "http://127.0.0.1:$iport" --batch 100 2>"$T/u-send.log"
check "the units' filter acknowledges events" test $? -eq 0
check "the units' pipeline drains (everything filtered is combined and split)" wait_drained "$store" 60
env SLUICE_CONFIG="$root/etc/sluice/sluice.json" "$BIN/sluicectl" sweep --dry-run \
  >"$T/u-sweep.out" 2>&1
check "the sweep unit's command accepts the installed configuration" test $? -eq 0

# ---- metric names: rules and dashboard against what the stages export ------
urls=()
for p in "${ports[@]}"; do urls+=("http://127.0.0.1:$p/metrics"); done
"$PY" "$TD/metrics_check.py" scrape "${urls[@]}" >"$T/exported.txt"
n=$(grep -c '^sluice_' "$T/exported.txt")
check "the four stages export metrics ($n sluice_* names scraped)" test "$n" -gt 30
"$PY" "$TD/metrics_check.py" check "$T/exported.txt" "${rules[@]}" -- "$D/grafana/sluice.json" \
  >"$T/names.out" 2>&1
rc=$?
check "every metric in the alert rules and the dashboard is exported by a stage ($(tail -1 "$T/names.out" | sed 's/^# //'))" \
  test $rc -eq 0
grep -v '^# ' "$T/names.out" | sed 's/^/# /' | head -20
printf 'groups:\n- name: x\n  rules:\n  - alert: X\n    expr: sluice_filter_no_such_metric_total > 0\n' \
  >"$T/bogus.rules.yml"
"$PY" "$TD/metrics_check.py" check "$T/exported.txt" "$T/bogus.rules.yml" -- >/dev/null 2>&1
check "... and a rule naming a metric no stage exports is caught" test $? -eq 1
for s in "$uf" "$ud" "$uc" "$us"; do stop_pid "$s" >/dev/null 2>&1; done
unset SLUICE_STORE SLUICE_LEASES SLUICE_LISTEN

"$PY" - "$D/grafana/sluice.json" >"$T/grafana.out" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
exprs = []
def walk(ps):
    for p in ps:
        exprs.extend((p.get("title", ""), t["expr"]) for t in p.get("targets", []))
        walk(p.get("panels", []))
walk(d["panels"])
need = {
    "events per stage": lambda e: "sluice_filter_events_accepted_total" in e or "sluice_splitter_events_out_total" in e,
    "freshness": lambda e: "_freshness_seconds" in e,
    "rejects by reason": lambda e: "sluice_filter_events_rejected_total" in e and "reason" in e,
    "duplicates dropped": lambda e: "sluice_splitter_duplicates_dropped_total" in e,
    "store requests": lambda e: "sluice_store_requests_total" in e,
    "store errors": lambda e: "sluice_store_errors_total" in e,
    "latency": lambda e: "histogram_quantile" in e and "_bucket" in e,
}
missing = [k for k, f in need.items() if not any(f(e) for _, e in exprs)]
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)): missing.append("unique panel ids")
if not d.get("uid") or not d.get("title"): missing.append("uid and title")
print(f"{len(exprs)} queries; missing: {', '.join(missing) or 'none'}")
sys.exit(1 if missing else 0)
EOF
rc=$?
check "the Grafana dashboard parses and shows events, freshness, rejects by reason, duplicates, store requests and errors, latency ($(cat "$T/grafana.out"))" \
  test $rc -eq 0

# ---- Kubernetes --------------------------------------------------------------
y2j() { "$PY" -c 'import sys, yaml, json; json.dump([o for o in yaml.safe_load_all(sys.stdin) if o], sys.stdout)'; }
declare -A external=([base]="--external Secret/sluice-aws --external Secret/sluice-api-keys"
  [overlays/production]="--external Secret/sluice-aws --external Secret/sluice-api-keys"
  [overlays/dev]="")
for k in base overlays/dev overlays/production; do
  kubectl kustomize "$D/k8s/$k" >"$T/k8s.yaml" 2>"$T/k8s.err"
  rc=$?
  check "kubectl kustomize deploy/k8s/$k renders" test $rc -eq 0
  [ $rc -eq 0 ] || { sed 's/^/# /' "$T/k8s.err"; continue; }
  y2j <"$T/k8s.yaml" >"$T/k8s-${k//\//-}.json"
  # shellcheck disable=SC2086 # external is a list of flags
  node "$TD/validate-k8s.mjs" "$T/k8s-${k//\//-}.json" ${external[$k]} >"$T/k8s.out" 2>&1
  rc=$?
  check "deploy/k8s/$k: every object is valid against the Kubernetes schemas and sluice's rules ($(tail -1 "$T/k8s.out" | sed 's/^# //'))" \
    test $rc -eq 0
  grep -v 'objects checked' "$T/k8s.out" | head -20
done
# Production reaches AWS with web identity (IRSA), not stored keys.
"$PY" - "$T/k8s-overlays-production.json" <<'EOF'
import json, sys
objs = json.load(open(sys.argv[1]))
sa = [o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "sluice"]
role = sa and sa[0]["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "")
text = json.dumps([o for o in objs if o["kind"] in ("ConfigMap", "Secret")])
store = [v for o in objs if o["kind"] == "ConfigMap" for k, v in o.get("data", {}).items() if k == "SLUICE_STORE"]
sys.exit(0 if role.startswith("arn:aws:iam::") and "AWS_SECRET_ACCESS_KEY" not in text
         and store and "tls=0" not in store[0] and "tls_verify" not in store[0] else 1)
EOF
check "deploy/k8s/overlays/production: the service account names an IAM role (web identity), no AWS keys are configured, TLS stays verified" \
  test $? -eq 0
"$PY" - "$T/k8s-overlays-dev.json" "$T/k8s-bad.json" <<'EOF'
import json, sys
objs = json.load(open(sys.argv[1]))
for o in objs:
    if o["kind"] == "Deployment" and o["metadata"]["name"] == "sluice-combiner":
        c = o["spec"]["template"]["spec"]["containers"][0]
        c["ports"][0]["containerPort"] = "9100"   # schema: must be an integer
        del c["readinessProbe"]
    if o["kind"] == "Deployment" and o["metadata"]["name"] == "sluice-filter":
        o["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    if o["kind"] == "CronJob":
        o["apiVersion"] = "batch/v1beta1"         # removed API in these schemas? else still valid
        o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
json.dump(objs, open(sys.argv[2], "w"))
EOF
node "$TD/validate-k8s.mjs" "$T/k8s-bad.json" >"$T/k8s-bad.out" 2>&1
rc=$?
nbad=0
for pat in 'containerPort must be integer' 'readinessProbe is not GET /readyz' \
  'grace 1s is not longer than flush age' 'root filesystem is writable'; do
  grep -q "$pat" "$T/k8s-bad.out" && nbad=$((nbad + 1))
done
check "the validator rejects a broken render, naming each of 4 faults ($nbad found)" \
  test $rc -eq 1 -a $nbad -eq 4

# The Kubernetes config file is accepted by every program (URLs from
# sluice-env replaced by local ones, API keys as the Secret would give them).
kstore=$T/k8s-store
for p in filter dispatcher combiner splitter; do
  env SLUICE_CONFIG="$D/k8s/base/sluice.json" SLUICE_STORE="file://$kstore" \
    SLUICE_LEASES="local://$T/k8s-leases" SLUICE_DEDUP=local SLUICE_ADMIN=off \
    SLUICE_API_KEYS='{"k":"web"}' "$BIN/sluice-$p" --once >"$T/k8s-$p.log" 2>&1
  check "sluice-$p runs --once with deploy/k8s/base/sluice.json" test $? -eq 0
done
for c in "status" "sweep --dry-run" "replay split --from -1h --dry-run"; do
  # shellcheck disable=SC2086 # c is a command and its flags
  env SLUICE_CONFIG="$D/k8s/base/sluice.json" SLUICE_STORE="file://$kstore" \
    SLUICE_LEASES="local://$T/k8s-leases" "$BIN/sluicectl" $c >"$T/k8s-ctl.log" 2>&1
  check "sluicectl $c reads deploy/k8s/base/sluice.json (as in a pod)" test $? -eq 0
done

# ---- container image (not built here: no container engine) -----------------
df=$D/docker/Dockerfile
check "the Dockerfile builds on Debian 12 from Debian's packages only (no libs3 from source), runs as a non-root user and declares the store volume" \
  bash -c "grep -q '^ARG DEBIAN_IMAGE=debian:12' '$df' && grep -q '^USER 10001' '$df' && grep -q '^VOLUME' '$df' && ! grep -qi 'libs3\|curl -fsSL' '$df' && grep -q 'ca-certificates' '$df'"
srcs_ok=1
while read -r src; do
  [ -e "$REPO/$src" ] || { srcs_ok=0; note "Dockerfile copies $src, which does not exist"; }
done < <(sed -n 's/^COPY \([^-][^ ]*\) .*/\1/p' "$df" | grep -v '^\.$')
check "every file the Dockerfile copies exists" test $srcs_ok -eq 1
"$D/docker/runtime-packages.sh" "$BIN"/sluice-* "$BIN/sluicectl" >"$T/runtime-packages" 2>&1
nlib=$(ldd "$BIN"/sluice-* "$BIN/sluicectl" | awk '/=> \//{print $3}' | sort -u | wc -l)
check "runtime-packages.sh maps the programs' $nlib libraries to Debian packages ($(wc -l <"$T/runtime-packages") packages)" \
  bash -c "grep -qx libc6 '$T/runtime-packages' && grep -qx libjansson4 '$T/runtime-packages' && grep -qx libzstd1 '$T/runtime-packages'"
finish
