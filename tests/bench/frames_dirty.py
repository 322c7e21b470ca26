#!/usr/bin/env python3
"""frames_dirty.py NDJSON OBJECTS FRAME_BYTES... — what the "frames by type"
design of issue 15 would leave the splitter to redo, on generated events.

The design: the filter writes each object grouped by event type as zstd
frames of at most FRAME_BYTES (uncompressed) with an index of ids; the
splitter copies a frame as it is unless it holds an event whose (event, id)
an earlier object of the job already holds (a repeat inside one object the
filter can set aside by itself). NDJSON is cut into OBJECTS equal objects in
order, as tests/bench/whole.sh lands them. Prints, per frame cap, the share
of frames and of bytes that hold such a repeat: those must be decoded and
compressed again. An analysis for docs/benchmarks.md, not a bench figure.
"""
import collections
import json
import sys


def main():
    path, objects = sys.argv[1], int(sys.argv[2])
    lines = [l for l in open(path, 'rb').read().split(b'\n') if l]
    per = (len(lines) + objects - 1) // objects
    for cap in map(int, sys.argv[3:]):
        seen = set()
        frames = dirty = 0
        nbytes = dirty_bytes = 0
        for o in range(objects):
            before = set(seen)
            groups = collections.defaultdict(list)
            local = set()
            for line in lines[o * per:(o + 1) * per]:
                e = json.loads(line)
                key = (e.get('event'), e.get('id'))
                seen.add(key)
                if key in local:
                    continue  # a repeat within the object: set aside by the filter
                local.add(key)
                groups[e.get('event')].append((key in before, len(line) + 1))
            for items in groups.values():
                size, hit = 0, False
                for i, (repeat, n) in enumerate(items):
                    size += n
                    hit = hit or repeat
                    if size >= cap or i == len(items) - 1:
                        frames += 1
                        nbytes += size
                        dirty += hit
                        dirty_bytes += size if hit else 0
                        size, hit = 0, False
        print(f"frames of at most {cap} bytes: {frames} frames, {100 * dirty / frames:.0f}% "
              f"of frames and {100 * dirty_bytes / nbytes:.0f}% of bytes hold a repeat "
              f"from an earlier object")


if __name__ == '__main__':
    main()
