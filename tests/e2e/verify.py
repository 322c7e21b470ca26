#!/usr/bin/env python3
"""verify.py — reads what the pipeline wrote to a file:// store and compares
it with what `sluicectl gen --manifest` says should be there.

  verify.py filtered STORE MANIFEST [--acked ACKED] [--at-least]
      every accepted line of MANIFEST is in filtered/ (as a multiset of
      (event, id); events without an id are counted per type), every
      rejected line is in rejected/ with the expected reason. With --acked
      (line ranges of acknowledged batches), only acknowledged lines must be
      present, and nothing beyond what was sent may appear (--at-least).
  verify.py dump STORE PREFIX   prints every event line under PREFIX
Prints a short report; exits 1 on any difference."""
import collections, json, os, subprocess, sys


def objects(store, prefix):
    root = os.path.join(store, prefix)
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.startswith('.'):
                continue
            path = os.path.join(d, f)
            data = open(path, 'rb').read()
            if data[:4] == b'\x28\xb5\x2f\xfd':
                data = subprocess.run(['zstd', '-dcq'], input=data, capture_output=True,
                                      check=True).stdout
            yield path, data


def lines(store, prefix):
    for path, data in objects(store, prefix):
        for line in data.split(b'\n'):
            if line:
                yield path, line


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
        if 'raw' not in r and 'raw_base64' not in r:
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
    print(__doc__)
    sys.exit(2)


if __name__ == '__main__':
    main()
