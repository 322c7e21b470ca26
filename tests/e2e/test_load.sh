#!/usr/bin/env bash
# Warehouse load: a pipeline run on a file:// store is loaded into a real
# PostgreSQL cluster started here. Every split file loads exactly once and
# every split event is one row: through kill -9 of the loader mid-load,
# loading twice, and replaying the split stage and loading again.
. "$(dirname "$0")/lib.sh"
. "$HERE/../support/pg.sh"
trap 'stop_pg; cleanup' EXIT

store=$T/store
common=(--store "file://$store" --leases "local://$T/leases" --admin off)
start_pg || { not_ok "a PostgreSQL cluster starts"; exit 1; }

# Typed columns come from the schemas: purchase declares a few fields.
mkdir -p "$T/schemas/purchase"
cat >"$T/schemas/purchase/1.json" <<'EOF'
{"type": "object", "properties": {
  "user_id": {"type": "string"}, "anonymous_id": {"type": "string"},
  "properties": {"type": "object"}, "context": {"type": "object"}}}
EOF

# A schema that disagrees with the data (a type declared after events were
# accepted): the column stays NULL, the value stays in data, the file loads.
mkdir -p "$T/schemas/page_view"
echo '{"type": "object", "properties": {"properties": {"type": "integer"},
  "anonymous_id": {"type": "boolean"}}}' >"$T/schemas/page_view/1.json"

"$BIN/sluicectl" gen --count "${LOAD_EVENTS:-30000}" --seed 11 --dup-rate 0.05 --bad-rate 0.01 \
  --manifest "$T/gen.tsv" >"$T/gen.ndjson"
"$BIN/sluice-filter" "${common[@]}" --raw=false --input "$T/gen.ndjson" >"$T/filter.log" 2>&1
for s in dispatcher combiner splitter; do
  extra=()
  [ "$s" = dispatcher ] && extra=(--max-wait 0s)
  "$BIN/sluice-$s" "${common[@]}" --once "${extra[@]}" >>"$T/stages.log" 2>&1
done
check "the pipeline splits the events" "$PY" "$HERE/verify.py" split "$store" "$T/gen.ndjson" "$T/gen.tsv"

load() { "$BIN/sluicectl" load "${common[@]}" --warehouse "$PG_URL" --schemas "$T/schemas" "$@"; }
files_total=$("$PY" - "$store" <<'EOF'
import json, os, sys
root = os.path.join(sys.argv[1], 'manifests/split')
print(sum(len(json.load(open(os.path.join(d, f)))['outputs'])
          for d, _, fs in os.walk(root) for f in fs if f.endswith('.json')))
EOF
)
note "split files: $files_total"

# kill -9 part-way through, three times: once a run has loaded a file or
# more, a random few milliseconds later. A trigger that sleeps in each
# file's history insert (test-side only) makes every file's transaction
# last ~100 ms, so most kills land inside one, after its rows went in.
# Each run resumes where the history says the last stopped.
"$BIN/sluicectl" load --store "file://$T/empty" --warehouse "$PG_URL" >/dev/null 2>&1
pg_sql "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
          'BEGIN PERFORM pg_sleep(0.1); RETURN NEW; END';
        CREATE TRIGGER slow BEFORE INSERT ON sluice_load_history
          FOR EACH ROW EXECUTE FUNCTION slow()"
loaded() { pg_sql "SELECT count(*) FROM sluice_load_history"; }
partial=0
for round in 1 2 3; do
  before=$(loaded)
  load --log-level warn >"$T/load.$round.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 500); do
    n=$(loaded)
    [ "$n" -gt "$before" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  sleep "0.0$((RANDOM % 6))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  n=$(loaded)
  [ "$n" -gt "$before" ] && [ "$n" -lt "$files_total" ] && partial=$((partial + 1))
done
note "loader killed part-way $partial times of 3"
check "the loader was killed part-way through" test "$partial" -ge 2
pg_sql "DROP TRIGGER slow ON sluice_load_history"
load >"$T/load.final.out" 2>"$T/load.final.log"
check "a final load after the kills completes" test $? -eq 0
check "every split file is in the load history" \
  test "$(pg_sql "SELECT count(*) FROM sluice_load_history")" -eq "$files_total"

# Compare the warehouse with split/ event by event.
"$PY" "$HERE/verify.py" dump "$store" split/ >"$T/split.ndjson"
pg_sql "SELECT string_agg(format('SELECT event, id FROM %I', table_name), ' UNION ALL ')
        FROM (SELECT DISTINCT table_name FROM sluice_load_history) t" >"$T/union.sql"
pg_sql "$(cat "$T/union.sql")" | LC_ALL=C sort >"$T/pg.ids"
"$PY" -c '
import json, sys
for line in open(sys.argv[1], "rb"):
    e = json.loads(line)
    print(e["event"] + "|" + e["id"])' "$T/split.ndjson" | LC_ALL=C sort >"$T/split.ids"
check "the warehouse holds exactly the split events (event, id)" cmp -s "$T/pg.ids" "$T/split.ids"
check "no event is in two rows" test "$(uniq -d "$T/pg.ids" | wc -l)" -eq 0
check "each file's rows match its manifest and the table" test "$(pg_sql "
  SELECT count(*) FROM sluice_load_history h
  WHERE h.inserted <> h.rows" )" -eq 0
check "typed columns come from the schema" test "$(pg_sql "
  SELECT count(*) FROM purchase WHERE user_id IS DISTINCT FROM data->>'user_id'
     OR jsonb_typeof(properties) <> 'object'")" -eq 0
check "a value of the wrong JSON type leaves its column NULL and the row loads" test "$(pg_sql "
  SELECT count(*) FILTER (WHERE properties IS NULL AND anonymous_id IS NULL
                           AND data->'properties' IS NOT NULL) = count(*) AND count(*) > 0
  FROM page_view")" = t
check "envelope columns are typed" test "$(pg_sql "
  SELECT count(*) FROM page_view WHERE received_at IS NULL OR ts IS NULL")" -eq 0

snapshot() {
  pg_sql "SELECT string_agg(format('SELECT %L, count(*), md5(string_agg(id || _file, '','' ORDER BY id)) FROM %I',
            table_name, table_name), ' UNION ALL ') FROM (SELECT DISTINCT table_name FROM sluice_load_history) t" \
    >"$T/snap.sql"
  { pg_sql "$(cat "$T/snap.sql")" | sort; pg_sql "SELECT file, rows, inserted FROM sluice_load_history ORDER BY file"; }
}
snapshot >"$T/snap.1"
load >"$T/load.again.out" 2>&1
check "loading twice loads nothing" grep -q '^loaded 0 files' "$T/load.again.out"
snapshot >"$T/snap.2"
check "loading twice changes nothing" cmp -s "$T/snap.1" "$T/snap.2"

# Replay the split stage: same keys, same bytes; the warehouse stays as it was.
"$BIN/sluicectl" replay split --store "file://$store" --leases "local://$T/leases" \
  --from -1d >"$T/replay.log" 2>&1
check "the split stage is replayed" test $? -eq 0
check "the replay re-issued split jobs" test -n "$(ls "$store/jobs/split" 2>/dev/null)"
"$BIN/sluice-splitter" "${common[@]}" --once >>"$T/stages.log" 2>&1
load >"$T/load.replay.out" 2>&1
check "after a split replay the load loads nothing new" grep -q '^loaded 0 files' "$T/load.replay.out"
snapshot >"$T/snap.3"
check "after a split replay the warehouse is unchanged" cmp -s "$T/snap.1" "$T/snap.3"

# Reconciliation against the warehouse: clean now; a file whose rows went
# missing is named.
rec() { "$BIN/sluicectl" reconcile --store "file://$store" --from -1d --warehouse "$PG_URL"; }
rec >"$T/rec.out" 2>&1
check "reconcile with the warehouse finds no difference after the load" test $? -eq 0
check "reconcile prints rows split and loaded per type and hour" \
  grep -Eq "^total +[0-9]+ +[0-9]+$" "$T/rec.out"
victim=$(pg_sql "SELECT _file FROM page_view LIMIT 1")
pg_sql "DELETE FROM page_view WHERE id IN (SELECT id FROM page_view WHERE _file = '$victim' LIMIT 2)"
rec >"$T/rec2.out" 2>&1
check "reconcile fails when the warehouse lost rows" test $? -eq 1
check "and names the file that differs" grep -q "split file $victim: .* the table holds" "$T/rec2.out"

# --follow: a daemon that loads new split files as they come and exports
# how many wait and how old the newest loaded event is.
"$BIN/sluicectl" load --store "file://$store" --leases "local://$T/leases" --follow \
  --admin 127.0.0.1:0 --poll 200ms --warehouse "$PG_URL" >"$T/follow.log" 2>&1 &
follow=$!
PIDS+=("$follow")
admin=$(admin_port "$T/follow.log")
metric() { curl -s "http://127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# The gauges are set by the daemon's first pass (the age reads 0 before).
first_pass() { "$PY" -c "import sys; sys.exit(not float('$(metric sluice_loader_newest_event_age_seconds)' or 0) > 0)"; }
wait_until 30 first_pass
check "the loader exports the files waiting (none)" test "$(metric sluice_loader_files_waiting)" = 0
age=$(metric sluice_loader_newest_event_age_seconds)
check "and the age of the newest loaded event" "$PY" -c "import sys; sys.exit(not 0 < float('$age') < 3600)"
"$BIN/sluicectl" gen --count 500 --seed 12 >"$T/gen2.ndjson"
"$BIN/sluice-filter" "${common[@]}" --raw=false --input "$T/gen2.ndjson" >>"$T/filter.log" 2>&1
for s in dispatcher combiner splitter; do
  extra=()
  [ "$s" = dispatcher ] && extra=(--max-wait 0s)
  "$BIN/sluice-$s" "${common[@]}" --once "${extra[@]}" >>"$T/stages.log" 2>&1
done
rows_before=$(pg_sql "SELECT sum(rows) FROM sluice_load_history")
more_rows() { [ "$(pg_sql "SELECT sum(rows) FROM sluice_load_history")" -gt "$rows_before" ]; }
wait_until 60 more_rows
check "the daemon loads files split after it started" \
  test "$(pg_sql "SELECT sum(rows) FROM sluice_load_history")" -gt "$rows_before"
check "and counts them" test "$(metric sluice_loader_files_loaded_total)" -gt 0
stop_pid "$follow"
check "the daemon stops cleanly on SIGTERM" test $? -eq 0

# A warehouse that is down: a clear error and a failing exit status.
"$BIN/sluicectl" load "${common[@]}" --warehouse "postgres://sluice@127.0.0.1:1/sluice" \
  >"$T/down.out" 2>&1
check "an unreachable warehouse fails with exit 1" test $? -eq 1
check "and says why" grep -q 'connect' "$T/down.out"
finish
