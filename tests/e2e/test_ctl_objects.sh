#!/usr/bin/env bash
# sluicectl ls, cat and status against a file:// store built by hand:
# key order and paging, prefixes, --long sizes, zstd decompression (multi
# frame, larger than one decoder chunk), missing keys, counts and bytes per
# prefix checked against numbers computed here, and store failures.
. "$(dirname "$0")/lib.sh"

ctl="$BIN/sluicectl"
root=$T/store
store="file://$root"
now=$(date +%s)

# put KEY FILE — places FILE at KEY, with an mtime of $2 seconds ago (default 0).
put_file() {
  mkdir -p "$(dirname "$root/$1")"
  cp "$2" "$root/$1"
  touch -d "@$((now - ${3:-0}))" "$root/$1"
}

# --- the store ---
python3 - "$T" <<'EOF'
import json, sys
t = sys.argv[1]
def nd(path, n, tag):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"event": "page_view", "id": f"{tag}-{i}", "n": i}) + "\n")
nd(f"{t}/a.ndjson", 5, "a")
nd(f"{t}/b.ndjson", 7, "b")
nd(f"{t}/big.ndjson", 40000, "big")   # ~2 MB: many decoder output chunks
with open(f"{t}/raw.ndjson", "w") as f:
    f.write('{"event":"x","id":"r1"}\n{"event":"x","id":"r2"}\n{"event":"x","id":"r3"}')
with open(f"{t}/manifest.json", "w") as f:
    json.dump({"job": "j1", "events": 12}, f)
EOF
zstd -q -3 "$T/a.ndjson" -o "$T/a.zst"
zstd -q -1 "$T/b.ndjson" -o "$T/b.zst"
zstd -q -1 "$T/big.ndjson" -o "$T/big.zst"
cat "$T/a.zst" "$T/b.zst" >"$T/ab.zst" # two concatenated frames
cat "$T/a.ndjson" "$T/b.ndjson" >"$T/ab.ndjson"

put_file raw/landed-1.ndjson "$T/raw.ndjson" 7200
put_file filtered/dt=2026-11-22/hr=17/f-a.ndjson.zst "$T/a.zst" 3600
put_file filtered/dt=2026-11-22/hr=17/f-b.ndjson.zst "$T/b.zst" 600
put_file filtered/dt=2026-11-22/hr=18/f-ab.ndjson.zst "$T/ab.zst" 60
put_file combined/dt=2026-11-22/hr=17/j1.ndjson.zst "$T/big.zst" 30
put_file manifests/combined/j1.json "$T/manifest.json" 30
put_file split/page_view/dt=2026-11-22/hr=17/j1.ndjson.zst "$T/a.zst" 10
# More than one page (the listing asks for 1000 keys at a time).
mkdir -p "$root/jobs/combine"
for i in $(seq -w 1 2500); do echo "{\"job\":\"$i\"}" >"$root/jobs/combine/job-$i.json"; done

# Expected figures, computed from the tree.
# (names starting with '.' are the file store's temp files, never objects)
expect_count() { find "$root/$1" -type f ! -name '.*' 2>/dev/null | wc -l; }
expect_bytes() { find "$root/$1" -type f ! -name '.*' -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
all_keys() { (cd "$root" && find . -type f ! -name '.*' | sed 's|^\./||' | LC_ALL=C sort); }

# --- ls ---
"$ctl" ls --store "$store" >"$T/ls.out"
check "ls exits 0" test $? -eq 0
check "ls lists every key in byte-wise order, across pages" \
  diff <(all_keys) "$T/ls.out"
check "ls lists $(all_keys | wc -l) keys" test "$(wc -l <"$T/ls.out")" -eq "$(all_keys | wc -l)"

"$ctl" ls --store "$store" filtered/ >"$T/ls.f"
check "ls with a prefix lists only that prefix" \
  diff <(all_keys | grep '^filtered/') "$T/ls.f"
"$ctl" ls --store "$store" filtered/dt=2026-11-22/hr=17/ >"$T/ls.f17"
check "ls with a deeper prefix lists one hour" test "$(wc -l <"$T/ls.f17")" -eq 2
"$ctl" ls --store "$store" nothing/here >"$T/ls.none"
check "ls of an empty prefix prints nothing and exits 0" \
  test $? -eq 0 -a ! -s "$T/ls.none"

"$ctl" ls --store "$store" jobs/ --limit 1500 >"$T/ls.lim"
check "ls --limit stops after N keys, in order, across a page boundary" \
  diff <(all_keys | grep '^jobs/' | head -1500) "$T/ls.lim"

"$ctl" ls --store "$store" --long filtered/ >"$T/ls.long"
want=$(for k in $(all_keys | grep '^filtered/'); do echo "$(stat -c %s "$root/$k") $k"; done)
got=$(awk '{print $1, $3}' "$T/ls.long")
check "ls --long shows each object's size next to its key" test "$got" = "$want"
rfc='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
check "ls --long shows an RFC 3339 mtime on every line" \
  bash -c "! awk '{print \$2}' '$T/ls.long' | grep -Eqv '$rfc'"
mt=$(awk 'NR==1 {print $2}' "$T/ls.long")
check "ls --long's mtime is the file's ($mt)" \
  test "$(date -u -d "$mt" +%s)" -eq $((now - 3600))

SLUICE_STORE="$store" "$ctl" ls raw/ >"$T/ls.env"
check "SLUICE_STORE selects the store" test "$(cat "$T/ls.env")" = "raw/landed-1.ndjson"
(cd "$T" && mkdir -p sluice-data/raw && echo x >sluice-data/raw/here && "$ctl" ls) >"$T/ls.def"
check "the default store is ./sluice-data" test "$(cat "$T/ls.def")" = "raw/here"

"$ctl" ls --store "fault:list_fail=1:$store" >/dev/null 2>"$T/ls.err"
check "ls exits 1 when the store cannot be listed" test $? -eq 1
check "ls says why listing failed ($(head -c 120 "$T/ls.err"))" grep -q 'cannot list' "$T/ls.err"
"$ctl" ls --store "nosuch://x" >/dev/null 2>"$T/ls.err2"
check "ls exits 1 when the store cannot be opened" test $? -eq 1
check "ls says the store cannot be opened ($(head -c 120 "$T/ls.err2"))" \
  grep -q 'cannot open the store' "$T/ls.err2"
"$ctl" ls --store "$store" a b 2>/dev/null
check "ls with two prefixes is a usage error (exit 2)" test $? -eq 2

# --- cat ---
"$ctl" cat --store "$store" filtered/dt=2026-11-22/hr=17/f-a.ndjson.zst >"$T/cat.a"
check "cat decompresses a zstd object" cmp "$T/a.ndjson" "$T/cat.a"
"$ctl" cat --store "$store" filtered/dt=2026-11-22/hr=18/f-ab.ndjson.zst >"$T/cat.ab"
check "cat decompresses every frame of a multi-frame object" cmp "$T/ab.ndjson" "$T/cat.ab"
"$ctl" cat --store "$store" combined/dt=2026-11-22/hr=17/j1.ndjson.zst >"$T/cat.big"
check "cat streams a large object byte for byte" cmp "$T/big.ndjson" "$T/cat.big"
"$ctl" cat --store "$store" raw/landed-1.ndjson manifests/combined/j1.json >"$T/cat.plain"
check "cat copies plain objects as they are, in order" \
  cmp <(cat "$T/raw.ndjson" "$T/manifest.json") "$T/cat.plain"
"$ctl" cat --store "$store" --raw filtered/dt=2026-11-22/hr=17/f-b.ndjson.zst >"$T/cat.raw"
check "cat --raw writes the stored bytes" cmp "$T/b.zst" "$T/cat.raw"

"$ctl" cat --store "$store" missing/key.json filtered/dt=2026-11-22/hr=17/f-b.ndjson.zst \
  >"$T/cat.miss" 2>"$T/cat.miss.err"
check "cat of a missing key exits 1" test $? -eq 1
check "the message names the missing key ($(cat "$T/cat.miss.err"))" \
  grep -q 'missing/key.json' "$T/cat.miss.err"
check "cat goes on with the other keys after a missing one" cmp "$T/b.ndjson" "$T/cat.miss"

"$ctl" cat --store "$store" --lines filtered/dt=2026-11-22/hr=18/f-ab.ndjson.zst \
  raw/landed-1.ndjson >"$T/cat.lines"
check "cat --lines counts decompressed lines (a last line without \\n counts)" \
  test "$(cat "$T/cat.lines")" = "12 filtered/dt=2026-11-22/hr=18/f-ab.ndjson.zst
3 raw/landed-1.ndjson"

printf 'garbage' | cat "$T/a.zst" - >"$T/bad.zst"
head -c -5 "$T/big.zst" >"$T/cut.zst"
put_file corrupt/bad.ndjson.zst "$T/bad.zst"
put_file corrupt/cut.ndjson.zst "$T/cut.zst"
for k in bad cut; do
  "$ctl" cat --store "$store" corrupt/$k.ndjson.zst >/dev/null 2>"$T/cat.$k"
  rc=$?
  check "cat of a $k zstd object exits 1 and says it is corrupt ($(cat "$T/cat.$k"))" \
    bash -c "[ $rc -eq 1 ] && grep -q 'corrupt' '$T/cat.$k'"
done
rm -rf "$root/corrupt"
"$ctl" cat --store "$store" --max-bytes 1k combined/dt=2026-11-22/hr=17/j1.ndjson.zst \
  >/dev/null 2>"$T/cat.cap"
rc=$?
check "cat refuses an object over --max-bytes ($(cat "$T/cat.cap"))" \
  bash -c "[ $rc -eq 1 ] && grep -q 'max-bytes' '$T/cat.cap'"
"$ctl" cat --store "$store" 2>/dev/null
check "cat without a key is a usage error (exit 2)" test $? -eq 2

# --- status ---
"$ctl" status --store "$store" >"$T/st.out" 2>"$T/st.err"
check "status exits 0" test $? -eq 0
check "status prints no progress when stderr is not a terminal" test ! -s "$T/st.err"
prefixes="raw/ filtered/ rejected/ jobs/combine/ combined/ manifests/combined/ split/ manifests/split/"
bad=""
for p in $prefixes; do
  line=$(awk -v p="$p" '$1 == p' "$T/st.out")
  n=$(echo "$line" | awk '{print $2}') b=$(echo "$line" | awk '{print $3}')
  [ "$n" = "$(expect_count "$p")" ] && [ "$b" = "$(expect_bytes "$p")" ] || bad="$bad $p($n/$b)"
done
check "status table: objects and bytes per prefix match the tree${bad:+ (wrong:$bad)}" test -z "$bad"
check "status table lists every prefix once, plus a total" \
  test "$(awk 'NR > 1 {print $1}' "$T/st.out" | tr '\n' ' ')" = "$prefixes total "
tot=$(awk '$1 == "total" {print $2, $3}' "$T/st.out")
check "status total ($tot) counts every object" \
  test "$tot" = "$(all_keys | wc -l) $(expect_bytes .)"
ages=$(awk '$1 == "raw/" {print $4, $5}' "$T/st.out")
check "status shows the age of the only raw object ($ages: 2h, minutes at most)" \
  bash -c "[[ '$ages' =~ ^2h([0-9]+m)?\ 2h([0-9]+m)?$ ]]"
ages=$(awk '$1 == "filtered/" {print $4, $5}' "$T/st.out")
check "status shows oldest/newest ages of filtered/ ($ages: 1h, 1m and seconds)" \
  bash -c "[[ '$ages' =~ ^1h\ 1m([0-9]+s)?$ ]]"
check "status shows - for an empty prefix" \
  test "$(awk '$1 == "rejected/" {print $2, $3, $4, $5}' "$T/st.out")" = "0 0 - -"
check "status columns are aligned" \
  bash -c "[ \$(awk '{print length(\$0)}' '$T/st.out' | sort -u | wc -l) -eq 1 ]"

"$ctl" status --store "$store" --json >"$T/st.json"
check "status --json exits 0" test $? -eq 0
python3 - "$T/st.json" "$root" "$now" <<'EOF' >"$T/st.py" 2>&1
import json, os, sys
doc = json.load(open(sys.argv[1]))
root, now = sys.argv[2], int(sys.argv[3])
want = ["raw/", "filtered/", "rejected/", "jobs/combine/", "combined/",
        "manifests/combined/", "split/", "manifests/split/"]
assert [r["prefix"] for r in doc["prefixes"]] == want, doc["prefixes"]
tn = tb = 0
for r in doc["prefixes"]:
    files = []
    for d, _, names in os.walk(os.path.join(root, r["prefix"])):
        files += [os.path.join(d, n) for n in names]
    n, b = len(files), sum(os.path.getsize(f) for f in files)
    assert (r["objects"], r["bytes"]) == (n, b), (r, n, b)
    tn, tb = tn + n, tb + b
    if n == 0:
        assert r["oldest_age_ms"] is None and r["newest_mtime"] is None, r
        continue
    mts = [int(os.path.getmtime(f)) for f in files]
    # Ages are from the command's own clock: allow for the seconds it ran.
    assert 0 <= r["oldest_age_ms"] - (now - min(mts)) * 1000 < 60000, r
    assert 0 <= r["newest_age_ms"] - (now - max(mts)) * 1000 < 60000, r
assert (doc["total"]["objects"], doc["total"]["bytes"]) == (tn, tb), doc["total"]
assert doc["total"]["oldest_age_ms"] >= 7200 * 1000, doc["total"]
print("ok")
EOF
check "status --json parses and agrees with the tree ($(tail -1 "$T/st.py"))" \
  test "$(tail -1 "$T/st.py")" = ok

"$ctl" status --store "fault:list_fail=1:$store" >/dev/null 2>"$T/st.err2"
check "status exits 1 when the store cannot be listed" test $? -eq 1
check "status says why ($(head -c 120 "$T/st.err2"))" grep -q 'cannot list' "$T/st.err2"

# --- help ---
for c in ls cat status; do
  "$ctl" "$c" --help >"$T/help.$c"
  check "$c --help exits 0" test $? -eq 0
  check "$c --help mentions --store" grep -q -- '--store' "$T/help.$c"
done

finish
