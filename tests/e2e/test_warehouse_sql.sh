#!/usr/bin/env bash
# sluicectl warehouse sql: the Snowflake and Redshift load SQL equals its
# golden files in tests/data/golden/warehouse-*.sql, and is consistent with
# the schemas: every event type has a table (the one `schema ddl` prints), a
# pipe or COPY (Snowflake) and an INSERT with its history row (Redshift);
# every table column is selected, from the JSON key it holds, and nothing
# else is; identifiers and keys quoted per dialect read back as the names;
# the per-job script uses the job's split manifest. Bad flags are exit 2.
. "$(dirname "$0")/lib.sh"

ctl="$BIN/sluicectl"
GOLDEN=$(cd "$HERE/../data/golden" && pwd)
URL=s3://acme-events/sluice
JOB=g1-2024050112-0123456789abcdef

# ---- golden files ----
# Run from the schema directory, as the DDL goldens are.
golden() {
  local name=$1; shift
  (cd "$GOLDEN/schemas" && "$ctl" warehouse sql --dir . "$@") >"$T/$name.sql" 2>&1
  check "warehouse sql $* exits 0 and equals tests/data/golden/$name.sql" \
    diff -u "$GOLDEN/$name.sql" "$T/$name.sql"
}
golden warehouse-snowflake --dialect snowflake --url "$URL"
golden warehouse-snowflake-copy-checkout-ns --dialect snowflake --url "$URL/" --load copy \
  --namespace ANALYTICS --event checkout
golden warehouse-redshift --dialect redshift --url "$URL?region=eu-west-1" --job "$JOB" \
  --iam-role arn:aws:iam::123456789012:role/sluice-load
golden warehouse-redshift-load-ns --dialect redshift --url "$URL" --part load \
  --namespace Analytics --region eu-west-1

# ---- consistency with the schemas ----
# An awkward schema directory next to the golden one: an event name with '-'
# and '.', a key holding a double quote, a mixed-case key, an epoch-ms ts.
cp -r "$GOLDEN/schemas" "$T/schemas"
mkdir -p "$T/schemas/Odd-Name.v2"
cat >"$T/schemas/Odd-Name.v2/1.json" <<'EOF'
{"type": "object", "properties": {"we\"ird": {"type": "string"}, "MiXed": {"type": "integer"},
 "nested": {"type": "object"}, "secret": {"type": "string", "redact": "remove"}}}
EOF
for d in snowflake redshift; do
  "$ctl" schema ddl --dir "$T/schemas" --dialect $d >"$T/ddl-$d.sql" 2>&1
done
"$ctl" warehouse sql --dialect snowflake --dir "$T/schemas" --url "$URL" >"$T/sf-pipe.sql" 2>&1
check "snowflake (snowpipe) exits 0 on the awkward schemas" test $? -eq 0
"$ctl" warehouse sql --dialect snowflake --dir "$T/schemas" --url "$URL" --load copy \
  >"$T/sf-copy.sql" 2>&1
check "snowflake (copy) exits 0 on the awkward schemas" test $? -eq 0
"$ctl" warehouse sql --dialect redshift --dir "$T/schemas" --url "$URL" --job "$JOB" \
  >"$T/rs.sql" 2>&1
check "redshift exits 0 on the awkward schemas" test $? -eq 0

cat >"$T/consistent.py" <<'PY'
import json, os, re, sys

dialect, sql_path, ddl_path, schema_dir, mode = sys.argv[1:6]
sql = open(sql_path).read()
ddl = open(ddl_path).read()
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)

IDENT = r'"(?:[^"]|"")*"'
def unq(s):
    """A double-quoted identifier (or key) read back."""
    assert s[0] == '"' and s[-1] == '"', s
    return s[1:-1].replace('""', '"')
def idents(s):
    return [unq(m) for m in re.findall(IDENT, s)]
def split_statements(text):
    """Statements without comments, split on ';' outside quotes."""
    out, cur, q = [], [], None
    lines = [l for l in text.splitlines() if not l.startswith('--')]
    for ch in "\n".join(lines):
        if q:
            if ch == q:
                q = None
        elif ch in "'\"":
            q = ch
        elif ch == ';':
            out.append("".join(cur).strip()); cur = []; continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out

stmts = split_statements(sql)
creates = {}
for s in split_statements(ddl):
    m = re.match(r'CREATE TABLE IF NOT EXISTS (' + IDENT + r') \(', s)
    if m:
        creates[unq(m.group(1))] = s
events = sorted(e for e in os.listdir(schema_dir) if os.path.isdir(os.path.join(schema_dir, e)))

def table_name(event):
    t = event.lower().replace('.', '_').replace('-', '_')
    return t.upper() if dialect == 'snowflake' else t

def columns_of(create):
    """(name, type) of each column of a CREATE TABLE statement."""
    cols = []
    for line in create.splitlines()[1:]:
        m = re.match(r'\s+(' + IDENT + r') (.+?)(?: NOT NULL)?,?$', line.rstrip())
        if m and not line.strip().startswith('PRIMARY KEY'):
            cols.append((unq(m.group(1)), m.group(2)))
    return cols

def key_column(key):
    return key.upper() if dialect == 'snowflake' else key.lower()

def check_select(event, cols, exprs, doc):
    """Each select expression reads the key of its column."""
    need(len(cols) == len(exprs), "%s: %d columns but %d expressions" % (event, len(cols), len(exprs)))
    for (name, typ), e in zip(cols, exprs):
        e = e.strip()
        if e == doc:
            need(name.lower() == 'data', "%s: the whole event goes to %s, not data" % (event, name))
            continue
        m = re.match(re.escape(doc) + (r':' if dialect == 'snowflake' else r'\.') + '(' + IDENT + ')', e)
        if not m and e.startswith('CASE'):
            m = re.search(re.escape(doc) + r'\.(' + IDENT + ')', e)
        need(m is not None, "%s: expression %r reads no key" % (event, e))
        if not m:
            continue
        key = unq(m.group(1))
        need(key_column(key) == name, "%s: column %s is filled from key %r" % (event, name, key))
        semi = 'VARIANT' if dialect == 'snowflake' else 'SUPER'
        if typ == semi:
            need(e == m.group(0), "%s: %s is %s and is not cast" % (event, name, semi))
        elif key != 'ts':
            need(e.endswith('::' + typ), "%s: %s is cast to its type %s (%r)" % (event, name, typ, e))

table_of = {}
for event in events:
    t = table_name(event)
    table_of[event] = t
    mine = [s for s in stmts if re.match(r'CREATE TABLE IF NOT EXISTS (?:' + IDENT + r'\.)?' + re.escape('"%s"' % t.replace('"', '""')) + r' \(', s)]
    need(len(mine) == 1, "%s: one CREATE TABLE %s (%d)" % (event, t, len(mine)))
    need(t in creates, "%s: schema ddl has table %s" % (event, t))
    if not mine or t not in creates:
        continue
    need(mine[0] == creates[t], "%s: the table is the one schema ddl prints" % event)
    cols = columns_of(mine[0])
    need(len(cols) >= 6, "%s: columns parsed" % event)
    names = [c for c, _ in cols]
    if dialect == 'snowflake':
        copies = [s for s in stmts if 'COPY INTO "%s"' % t.replace('"', '""') in s]
        need(len(copies) == 1, "%s: one COPY INTO (%d)" % (event, len(copies)))
        if not copies:
            continue
        c = copies[0]
        if mode == 'snowpipe':
            need(c.startswith('CREATE PIPE IF NOT EXISTS "%s_PIPE"' % t) and 'AUTO_INGEST = TRUE' in c,
                 "%s: the COPY is an auto-ingest pipe" % event)
        else:
            need(c.startswith('COPY INTO'), "%s: a batch COPY" % event)
        head = re.search(r'COPY INTO ' + IDENT + r' \((.*)\)\nFROM \(\n    SELECT\n(.*)\n    FROM (@\S+)\n\)', c, re.S)
        need(head is not None, "%s: COPY INTO ... FROM (SELECT ... FROM @stage/path/)" % event)
        if not head:
            continue
        need(idents(head.group(1)) == names, "%s: COPY column list = table columns" % event)
        check_select(event, cols, head.group(2).split(',\n'), '$1')
        need(head.group(3) == '@"SLUICE_SPLIT"/%s/' % event, "%s: from the stage path of the type (%s)" % (event, head.group(3)))
        need(c.rstrip().endswith("FILE_FORMAT = (FORMAT_NAME = '\"SLUICE_JSON_ZSTD\"')"), "%s: JSON/ZSTD format" % event)
    else:
        ins = [s for s in stmts if s.startswith('INSERT INTO "%s" (' % t.replace('"', '""'))]
        need(len(ins) == 1, "%s: one INSERT (%d)" % (event, len(ins)))
        if not ins:
            continue
        m = re.match(r'INSERT INTO ' + IDENT + r' \((.*)\)\nSELECT\n(.*)\nFROM "sluice_staging" s\nWHERE (.*)', ins[0], re.S)
        need(m is not None, "%s: INSERT ... SELECT ... FROM staging" % event)
        if not m:
            continue
        need(idents(m.group(1)) == names, "%s: INSERT column list = table columns" % event)
        check_select(event, cols, m.group(2).split(',\n'), 's."doc"')
        where = m.group(3)
        need(where.startswith('s."doc"."event"::VARCHAR = \'%s\'' % event), "%s: only events of the type" % event)
        need('h."job_id" = \'%s\' AND h."event" = \'%s\'' % (os.environ['JOB'], event) in where, "%s: skips a loaded job" % event)
        need(('FROM "%s" t WHERE t."id" = s."doc"."id"::VARCHAR' % t) in where, "%s: skips loaded ids" % event)
        hist = [s for s in stmts if s.startswith('INSERT INTO "sluice_load_history"') and ("'%s'" % event) in s]
        need(len(hist) == 1, "%s: one history row" % event)

if dialect == 'snowflake':
    fmt = [s for s in stmts if s.startswith('CREATE FILE FORMAT')]
    need(len(fmt) == 1 and 'TYPE = JSON' in fmt[0] and 'COMPRESSION = ZSTD' in fmt[0] and 'STRIP_OUTER_ARRAY = FALSE' in fmt[0], "file format JSON/ZSTD")
    st = [s for s in stmts if s.startswith('CREATE STAGE')]
    need(len(st) == 1 and ("URL = '%s/split/'" % os.environ['URL']) in st[0] and 'STORAGE_INTEGRATION = "SLUICE_S3_INTEGRATION"' in st[0], "stage on split/")
    need(len([s for s in stmts if s.startswith('CREATE TABLE')]) == len(events), "a table per type, no other")
    need(len([s for s in stmts if 'COPY INTO' in s]) == len(events), "a COPY per type, no other")
else:
    manifest = "%s/manifests/split/%s.json" % (os.environ['URL'], os.environ['JOB'])
    copy = [s for s in stmts if s.startswith('COPY ')]
    need(len(copy) == 1, "one COPY per job")
    if copy:
        need(copy[0] == "COPY \"sluice_staging\"\nFROM '%s'\nIAM_ROLE default\nFORMAT JSON 'noshred'\nZSTD\nMANIFEST" % manifest, "the COPY reads the job's split manifest: %r" % copy[0])
    need(len([s for s in stmts if s.startswith('CREATE TABLE IF NOT EXISTS')]) == len(events) + 1, "a table per type and the history")
    order = [s.split('\n')[0] for s in stmts]
    need(order.index('BEGIN') < min(i for i, s in enumerate(order) if s.startswith('INSERT')) and order.index('COMMIT') > max(i for i, s in enumerate(order) if s.startswith('INSERT')), "every INSERT inside one transaction")
    need(any(s.startswith('LOCK "sluice_load_history"') for s in stmts), "the history is locked")
if errors:
    print("\n".join(errors))
    sys.exit(1)
PY
export URL JOB
check "snowflake pipes: a table, pipe and COPY per type; every column selected from its key" \
  "$PY" "$T/consistent.py" snowflake "$T/sf-pipe.sql" "$T/ddl-snowflake.sql" "$T/schemas" snowpipe
check "snowflake copy: a table and COPY per type; every column selected from its key" \
  "$PY" "$T/consistent.py" snowflake "$T/sf-copy.sql" "$T/ddl-snowflake.sql" "$T/schemas" copy
check "redshift: a table and INSERT per type from the job's manifest; every column from its key" \
  "$PY" "$T/consistent.py" redshift "$T/rs.sql" "$T/ddl-redshift.sql" "$T/schemas" -
# The checker must be able to fail: drop one select expression.
sed '0,/\$1:"channel"::VARCHAR(64),/{//d}' "$T/sf-pipe.sql" >"$T/sf-broken.sql"
"$PY" "$T/consistent.py" snowflake "$T/sf-broken.sql" "$T/ddl-snowflake.sql" "$T/schemas" \
  snowpipe >"$T/broken.out" 2>&1
check "... and the check fails when a column is not selected" grep -q 'columns but' "$T/broken.out"

# An independent parser, Debian's python3-sqlglot (make test installs it): every
# statement parses in its dialect (pipes and stages as opaque commands), and
# each Snowflake COPY's SELECT list and Redshift INSERT have as many
# expressions as columns.
if "$PY" -c 'import sqlglot' 2>/dev/null; then
  cat >"$T/parse.py" <<'PY'
import re, sys, sqlglot
dialect, path = sys.argv[1:3]
text = "\n".join(l for l in open(path).read().splitlines() if not l.startswith('--'))
stmts, cur, q = [], [], None
for ch in text:
    if q:
        if ch == q:
            q = None
    elif ch in "'\"":
        q = ch
    elif ch == ';':
        stmts.append("".join(cur).strip()); cur = []; continue
    cur.append(ch)
bad = 0
for s in filter(None, stmts):
    try:
        # sqlglot 10 knows neither Snowflake's COPY INTO (its SELECT is parsed
        # below) nor LOCK (it takes "LOCK x" for an alias)
        skip = s.startswith('COPY INTO') or s.startswith('LOCK ')
        e = None if skip else sqlglot.parse_one(s, read=dialect)
    except Exception as ex:
        print("does not parse: %s: %s" % (s.splitlines()[0], ex)); bad += 1; continue
    m = re.search(r'COPY INTO \S+ \((.*?)\)\nFROM \(\n(    SELECT\n.*?)\n    FROM @\S+\n\)', s, re.S)
    if m:
        sel = sqlglot.parse_one(m.group(2) + "\nFROM t", read=dialect)
        if len(sel.expressions) != len(m.group(1).split(', ')):
            print("select list length differs: " + s.splitlines()[0]); bad += 1
    if isinstance(e, sqlglot.exp.Insert) and isinstance(e.expression, sqlglot.exp.Select):
        if len(e.this.expressions) != len(e.expression.expressions):
            print("insert list length differs: " + s.splitlines()[0]); bad += 1
sys.exit(1 if bad or not stmts else 0)
PY
  # The golden outputs: sqlglot 10 (Debian's) does not read "" inside a
  # quoted identifier, which the awkward schemas have.
  for f in warehouse-snowflake warehouse-snowflake-copy-checkout-ns warehouse-redshift \
    warehouse-redshift-load-ns; do
    d=snowflake; [[ $f == *redshift* ]] && d=redshift
    check "sqlglot parses every statement of $f.sql" "$PY" "$T/parse.py" $d "$T/$f.sql"
  done
else
  not_ok "python3-sqlglot is installed for the independent parse (tools/install-deps.sh test)"
fi

# ---- quoting ----
check "snowflake: a key with a double quote is doubled as column and as key" \
  bash -c "grep -qF '\"WE\"\"IRD\" VARCHAR' '$T/sf-pipe.sql' && grep -qF '\$1:\"we\"\"ird\"::VARCHAR,' '$T/sf-pipe.sql'"
check "snowflake: a mixed-case key keeps its case in the path, the column is upper case" \
  grep -qF '$1:"MiXed"::NUMBER(38,0),' "$T/sf-pipe.sql"
check "snowflake: the awkward event's pipe reads its own stage path" \
  bash -c "grep -qF 'CREATE PIPE IF NOT EXISTS \"ODD_NAME_V2_PIPE\"' '$T/sf-pipe.sql' && grep -qF 'FROM @\"SLUICE_SPLIT\"/Odd-Name.v2/' '$T/sf-pipe.sql'"
check "redshift: keys keep their case and quotes in SUPER paths" \
  bash -c "grep -qF 's.\"doc\".\"MiXed\"::BIGINT,' '$T/rs.sql' && grep -qF 's.\"doc\".\"we\"\"ird\"::VARCHAR(65535),' '$T/rs.sql'"
check "redshift: the awkward event is selected by its exact name" \
  grep -qF "WHERE s.\"doc\".\"event\"::VARCHAR = 'Odd-Name.v2'" "$T/rs.sql"
check "a redact remove field has no column and is not selected" \
  bash -c "! grep -qi 'secret' '$T/sf-pipe.sql' && ! grep -qi 'secret' '$T/rs.sql'"

# ---- the job placeholder ----
"$ctl" warehouse sql --dialect redshift --dir "$T/schemas" --url "$URL" >"$T/rs-ph.sql" 2>&1
check "without --job the script has the \${JOB_ID} placeholder" grep -qF "split/\${JOB_ID}.json'" \
  "$T/rs-ph.sql"
check "... and substituting it gives the --job script" \
  bash -c "sed 's/\${JOB_ID}/$JOB/g' '$T/rs-ph.sql' | diff -q - '$T/rs.sql' >/dev/null"
"$ctl" warehouse sql --dialect redshift --dir "$T/schemas" --url "$URL" --part setup \
  >"$T/rs-setup.sql" 2>&1
check "--part setup has the tables and no load" \
  bash -c "grep -q 'CREATE TABLE' '$T/rs-setup.sql' && ! grep -q 'COPY\|INSERT' '$T/rs-setup.sql'"
"$ctl" warehouse sql --dialect snowflake --dir "$T/schemas" --url "$URL/prefix/?endpoint=x:1" \
  --part load >"$T/sf-load.sql" 2>&1
check "--part load has no tables; a ?query and trailing / of --url are dropped" \
  bash -c "! grep -q 'CREATE TABLE\|CREATE STAGE' '$T/sf-load.sql' && grep -qF '$URL/prefix/split/' '$T/sf-load.sql'"

# ---- errors ----
usage() {
  local why=$1; shift
  "$ctl" warehouse sql "$@" >"$T/u.out" 2>"$T/u.err"
  local rc=$?
  check "$why: exit 2 with a message" bash -c "[ $rc -eq 2 ] && [ -s '$T/u.err' ] && [ ! -s '$T/u.out' ]"
}
S=$GOLDEN/schemas
usage "no --url" --dialect snowflake --dir "$S"
usage "dialect postgres (that is sluicectl load)" --dialect postgres --dir "$S" --url "$URL"
usage "an http URL" --dialect snowflake --dir "$S" --url https://example.com/x
usage "a quote in the URL" --dialect snowflake --dir "$S" --url "s3://b/it's"
usage "a bucketless URL" --dialect redshift --dir "$S" --url s3:///x
usage "--job with snowflake" --dialect snowflake --dir "$S" --url "$URL" --job "$JOB"
usage "--load with redshift" --dialect redshift --dir "$S" --url "$URL" --load copy
usage "a job id that is no name" --dialect redshift --dir "$S" --url "$URL" --job "x';drop"
usage "a bad --part" --dialect redshift --dir "$S" --url "$URL" --part tables
usage "an IAM role with a quote" --dialect redshift --dir "$S" --url "$URL" --iam-role "a'b"
usage "a missing schema directory" --dialect redshift --dir "$T/nope" --url "$URL"
usage "a stray argument" --dialect redshift --dir "$S" --url "$URL" extra
"$ctl" warehouse nope >/dev/null 2>&1
check "an unknown warehouse subcommand is exit 2" test $? -eq 2
"$ctl" warehouse sql --help >"$T/help.out" 2>&1
check "warehouse sql --help exits 0 and lists the flags" \
  bash -c "[ $? -eq 0 ] && grep -q -- '--iam-role' '$T/help.out' && grep -q -- '--integration' '$T/help.out'"
"$ctl" warehouse --help >/dev/null 2>&1
check "warehouse --help exits 0" test $? -eq 0
"$ctl" warehouse sql --dialect snowflake --dir "$S" --url "$URL" --event nope >/dev/null 2>&1
check "an event type without a schema is exit 1" test $? -eq 1
mkdir -p "$T/cols/x"
echo '{"type":"object","properties":{"userId":{"type":"string"},"userid":{"type":"integer"}}}' \
  >"$T/cols/x/1.json"
"$ctl" warehouse sql --dialect redshift --dir "$T/cols" --url "$URL" >"$T/cols.out" 2>"$T/cols.err"
check "properties folding to one Redshift column: exit 1, nothing printed" \
  bash -c "[ $? -eq 1 ] && [ ! -s '$T/cols.out' ] && grep -q userId '$T/cols.err'"
finish
