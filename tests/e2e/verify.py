#!/usr/bin/env python3
"""verify.py — reads what the pipeline wrote to a store and compares it with
what `sluicectl gen --manifest` says should be there. STORE is a directory:
a file:// store's root, or an s3rver bucket directory (with the store's
prefix), where the object for key K is the file K._S3rver_object next to
its K._S3rver_metadata.json and K._S3rver_object.md5.

  verify.py filtered STORE MANIFEST [--acked ACKED] [--at-least]
      every accepted line of MANIFEST is in filtered/ (as a multiset of
      (event, id); events without an id are counted per type), every
      rejected line is in rejected/ with the expected reason. With --acked
      (line ranges of acknowledged batches), only acknowledged lines must be
      present, and nothing beyond what was sent may appear (--at-least).
  verify.py dump STORE PREFIX   prints every event line under PREFIX
  verify.py keys STORE PREFIX   prints the keys under PREFIX, sorted
  verify.py json STORE PREFIX   prints each JSON object under PREFIX on a line
  verify.py drained STORE       exit 0 when every filtered object is combined,
      no combine or split job is pending, and every combined object is split
  verify.py ids STORE PREFIX WANT.TSV [--at-least]
      the events under PREFIX are exactly the (id, event) pairs of WANT.TSV
      ("id<TAB>event" lines), each once (--at-least: once or more), each
      under PREFIX/<event>/ when PREFIX is split
  verify.py split STORE GEN.NDJSON GEN.TSV
      split/ holds exactly the de-duplicated accepted events of the generator
      (ids as given; id-less events counted per type by distinct bytes), each
      in the file of its event type and received_at hour, and every combined
      and split manifest's ledger balances; no filtered object is in two
      combined manifests, and each split manifest splits its own job
Prints a short report; exits 1 on any difference."""
import collections, json, os, subprocess, sys


S3RVER_OBJECT = '._S3rver_object'
S3RVER_SIDECARS = ('._S3rver_metadata.json', '._S3rver_object.md5')


def walk(store, prefix):
    """(key, path) of every object under prefix, sorted by key. Reads both
    layouts: a file store (names starting with '.' are its temp files) and
    an s3rver directory (only the ._S3rver_object files are objects)."""
    out = []
    for d, _, files in os.walk(os.path.join(store, prefix)):
        for f in files:
            if f.endswith(S3RVER_SIDECARS):
                continue
            name = f[:-len(S3RVER_OBJECT)] if f.endswith(S3RVER_OBJECT) else f
            if name.startswith('.'):
                continue
            out.append((os.path.relpath(os.path.join(d, name), store), os.path.join(d, f)))
    out.sort()
    return out


def decoded(data):
    """data decompressed if it is zstd: it starts with a zstd frame, or with
    a skippable one (0x184D2A5?: the record filtered/ objects start with)."""
    if data[:4] == b'\x28\xb5\x2f\xfd' or (data[1:4] == b'\x2a\x4d\x18' and data[0] >> 4 == 5):
        data = subprocess.run(['zstd', '-dcq'], input=data, capture_output=True,
                              check=True).stdout
    return data


def objects(store, prefix):
    """(key, bytes) of every object under prefix, zstd objects decompressed."""
    for key, path in walk(store, prefix):
        yield key, decoded(open(path, 'rb').read())


def lines(store, prefix):
    for key, data in objects(store, prefix):
        for line in data.split(b'\n'):
            if line:
                yield key, line


def load_manifest(path, acked=None):
    rows = []
    with open(path, encoding='utf-8', errors='replace') as f:
        for raw in f:
            parts = raw.rstrip('\n').split('\t')
            if len(parts) < 5:
                continue
            no, fate, event, eid, reason = parts[:5]
            no = int(no)
            if acked is not None and not acked(no):
                continue
            rows.append((no, fate, event, eid, reason))
    return rows


def load_acked(path):
    ranges = []
    with open(path) as f:
        for raw in f:
            a, b = raw.split()[:2]
            ranges.append((int(a), int(b)))
    ranges.sort()
    import bisect
    starts = [a for a, _ in ranges]

    def acked(no):
        i = bisect.bisect_right(starts, no) - 1
        return i >= 0 and ranges[i][0] <= no <= ranges[i][1]
    return acked


def verify_filtered(store, manifest, acked_path=None, at_least=False):
    acked = load_acked(acked_path) if acked_path else None
    rows = load_manifest(manifest, acked)
    want_ids = collections.Counter()
    want_noid = collections.Counter()
    want_reasons = collections.Counter()
    for _, fate, event, eid, reason in rows:
        if fate == 'accepted':
            if eid and eid != '-':
                want_ids[(event, eid)] += 1
            else:
                want_noid[event] += 1
        else:
            want_reasons[reason] += 1
    got_ids = collections.Counter()
    got_noid = collections.Counter()
    bad = 0
    for path, line in lines(store, 'filtered'):
        try:
            ev = json.loads(line)
        except ValueError:
            bad += 1
            continue
        for k in ('event', 'id', 'received_at', 'channel'):
            if k not in ev:
                bad += 1
        # An id the generator did not write was derived by the filter.
        if (ev.get('event'), ev.get('id')) in want_ids:
            got_ids[(ev.get('event'), ev.get('id'))] += 1
        else:
            got_noid[ev.get('event')] += 1
    got_reasons = collections.Counter()
    for path, line in lines(store, 'rejected'):
        r = json.loads(line)
        got_reasons[r['reason']] += 1
        # a quarantined raw/ object is recorded by key, not by its text
        if 'raw' not in r and 'raw_base64' not in r and 'raw_key' not in r:
            bad += 1
    problems = []
    if bad:
        problems.append(f'{bad} malformed output lines')
    if at_least:
        missing = want_ids - got_ids
        missing_noid = want_noid - got_noid
        if missing:
            problems.append(f'{sum(missing.values())} acknowledged events missing, e.g. '
                            f'{list(missing)[:3]}')
        if missing_noid:
            problems.append(f'acknowledged id-less events missing: {dict(missing_noid)}')
        if want_reasons - got_reasons:
            problems.append(f'acknowledged rejections missing: {dict(want_reasons - got_reasons)}')
    else:
        if got_ids != want_ids:
            problems.append(f'filtered ids differ: missing {sum((want_ids - got_ids).values())}, '
                            f'unexpected {sum((got_ids - want_ids).values())}; e.g. '
                            f'{list((want_ids - got_ids).items())[:2]} '
                            f'{list((got_ids - want_ids).items())[:2]}')
        if got_noid != want_noid:
            problems.append(f'id-less events differ: want {dict(want_noid)} got {dict(got_noid)}')
        if got_reasons != want_reasons:
            problems.append(f'rejections differ: want {dict(want_reasons)} got {dict(got_reasons)}')
    print(f'# filtered: {sum(got_ids.values()) + sum(got_noid.values())} events, '
          f'rejected: {sum(got_reasons.values())} '
          f'(expected {sum(want_ids.values()) + sum(want_noid.values())} / '
          f'{sum(want_reasons.values())})')
    for p in problems:
        print('# ' + p)
    return not problems


def keys_under(store, prefix):
    return [k for k, _ in walk(store, prefix)]


def json_docs(store, prefix):
    """(key, parsed JSON) of every object under prefix."""
    for key, data in objects(store, prefix):
        yield key, json.loads(data)


def drained(store):
    filtered = keys_under(store, 'filtered')
    done = set(keys_under(store, 'state/combine'))
    for k in filtered:
        marker = 'state/combine/' + k[len('filtered/'):-len('.ndjson.zst')]
        if marker not in done:
            return False
    if keys_under(store, 'jobs/combine') or keys_under(store, 'jobs/split'):
        return False
    combined = {os.path.basename(k) for k in keys_under(store, 'manifests/combined')}
    split = {os.path.basename(k) for k in keys_under(store, 'manifests/split')}
    return combined == split


def verify_split(store, gen_ndjson, gen_tsv):
    fates = {}
    for row in load_manifest(gen_tsv):
        fates[row[0]] = row
    want = collections.Counter()
    with open(gen_ndjson, 'rb') as f:
        for no, line in enumerate(f, 1):
            row = fates.get(no)
            if not row or row[1] != 'accepted':
                continue
            _, _, event, eid, _ = row
            key = (event, eid) if eid and eid != '-' else (event, 'bytes:' + line.rstrip(b'\n').hex())
            want[key] = 1
    want_ids = {k for k in want if not k[1].startswith('bytes:')}
    want_noid = collections.Counter(k[0] for k in want if k[1].startswith('bytes:'))
    got = collections.Counter()
    misplaced = 0
    for key, line in lines(store, 'split'):
        ev = json.loads(line)
        got[(ev['event'], ev['id'])] += 1
        rel = key.split('/')
        hour = ev['received_at'][:13]
        if rel[1] != ev['event'] or rel[2] != 'dt=' + hour[:10] or rel[3] != 'hr=' + hour[11:13]:
            misplaced += 1
    problems = []
    dups = sum(c - 1 for c in got.values() if c > 1)
    if dups:
        problems.append(f'{dups} duplicate events in split/')
    got_ids = {k for k in got if k in want_ids}
    missing = want_ids - got_ids
    if missing:
        problems.append(f'{len(missing)} events missing from split/, e.g. {sorted(missing)[:3]}')
    got_noid = collections.Counter(k[0] for k in got if k not in want_ids)
    if got_noid != want_noid:
        problems.append(f'id-less events per type differ: want {dict(want_noid)} got {dict(got_noid)}')
    if misplaced:
        problems.append(f'{misplaced} events in the wrong event/hour file')
    inputs = collections.Counter()
    for _, m in json_docs(store, 'manifests/combined'):
        for i in m['inputs']:
            inputs[i['key']] += 1
    twice = [k for k, n in inputs.items() if n > 1]
    if twice:
        problems.append(f'{len(twice)} filtered objects combined by two jobs, e.g. {twice[:2]}')
    for k, m in json_docs(store, 'manifests/split'):
        if os.path.basename(k)[:-5] not in m['input_key']:
            problems.append(f'{k} splits {m["input_key"]}, not its own job')
    for kind in ('combined', 'split'):
        for k, m in json_docs(store, 'manifests/' + kind):
            l = m['ledger']
            if l['in'] != l['out'] + l['rejected'] + l['duplicates']:
                problems.append(f'unbalanced ledger in {k}: {l}')
    print(f'# split: {sum(got.values())} events (expected {len(want)})')
    for p in problems:
        print('# ' + p)
    return not problems


def verify_ids(store, prefix, want_tsv, at_least):
    want = set()
    for line in open(want_tsv):
        eid, event = line.rstrip('\n').split('\t')
        want.add((event, eid))
    got = collections.Counter()
    misplaced = 0
    for key, line in lines(store, prefix):
        ev = json.loads(line)
        got[(ev['event'], ev['id'])] += 1
        if prefix == 'split' and key.split('/')[1] != ev['event']:
            misplaced += 1
    problems = []
    missing = want - set(got)
    extra = set(got) - want
    dups = sum(c - 1 for c in got.values() if c > 1)
    if missing:
        problems.append(f'{len(missing)} events missing, e.g. {sorted(missing)[:3]}')
    if extra:
        problems.append(f'{len(extra)} unexpected events, e.g. {sorted(extra)[:3]}')
    if dups and not at_least:
        problems.append(f'{dups} duplicate events')
    if misplaced:
        problems.append(f'{misplaced} events in another event type\'s files')
    print(f'# {prefix}: {sum(got.values())} events, {len(got)} distinct (expected {len(want)}); '
          f'{dups} repeats')
    for p in problems:
        print('# ' + p)
    return not problems


def main():
    args = sys.argv[1:]
    if args and args[0] == 'filtered' and len(args) >= 3:
        acked = None
        if '--acked' in args:
            acked = args[args.index('--acked') + 1]
        sys.exit(0 if verify_filtered(args[1], args[2], acked, '--at-least' in args) else 1)
    if args and args[0] == 'dump' and len(args) == 3:
        for _, line in lines(args[1], args[2]):
            sys.stdout.buffer.write(line + b'\n')
        return
    if args and args[0] == 'keys' and len(args) == 3:
        for k in keys_under(args[1], args[2]):
            print(k)
        return
    if args and args[0] == 'json' and len(args) == 3:
        for _, doc in json_docs(args[1], args[2]):
            print(json.dumps(doc, sort_keys=True))
        return
    if args and args[0] == 'drained' and len(args) == 2:
        sys.exit(0 if drained(args[1]) else 1)
    if args and args[0] == 'ids' and len(args) >= 4:
        sys.exit(0 if verify_ids(args[1], args[2], args[3], '--at-least' in args) else 1)
    if args and args[0] == 'split' and len(args) == 4:
        sys.exit(0 if verify_split(args[1], args[2], args[3]) else 1)
    print(__doc__)
    sys.exit(2)


if __name__ == '__main__':
    main()
