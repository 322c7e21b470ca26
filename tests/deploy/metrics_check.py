#!/usr/bin/python3
"""metrics_check.py — checks that the monitoring files name only metrics the
stages really export.

  metrics_check.py scrape URL...            prints every metric name served at
                                            the /metrics URLs (histograms also
                                            as _bucket, _sum, _count)
  metrics_check.py check EXPORTED RULES... -- DASHBOARD...
                                            every metric named in the rules'
                                            and dashboards' PromQL must be
                                            exported, recorded by a rule, or
                                            Prometheus's own `up`; exit 1 and
                                            one line per unknown name if not

The PromQL scan is lexical: string literals, label matchers, ranges and
grouping clauses are removed, and what remains that is an identifier but not
a function, an aggregation or a keyword is a metric name.
"""
import json
import re
import sys
import urllib.request

import yaml

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan", "atan2",
}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values", "group",
}
BUILTIN = {"up"}


def scrape(urls):
    names = set()
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        for line in text.splitlines():
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                names.add(m.group(1))
                if m.group(2) == "histogram":
                    names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
            if m and not line.startswith("#"):
                names.add(m.group(1))
    for n in sorted(names):
        print(n)


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word in KEYWORDS or word in AGGREGATIONS:
            continue
        if re.fullmatch(r"e\d+", word):  # exponent of a number
            continue
        names.add(word)
    return names


def rule_exprs(path):
    recorded, exprs = set(), []
    with open(path) as f:
        doc = yaml.safe_load(f)
    for g in doc.get("groups", []):
        for r in g.get("rules", []):
            if "record" in r:
                recorded.add(r["record"])
            exprs.append((f"{path}: {r.get('record') or r.get('alert')}", r["expr"]))
    return recorded, exprs


def dashboard_exprs(path):
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if "expr" in t:
                    exprs.append((f"{path}: panel '{p.get('title')}'", t["expr"]))
            walk(p.get("panels", []))

    with open(path) as f:
        walk(json.load(f).get("panels", []))
    return exprs


def check(exported_file, rule_files, dashboards):
    with open(exported_file) as f:
        exported = {l.strip() for l in f if l.strip()}
    known, exprs = set(exported) | BUILTIN, []
    for p in rule_files:
        rec, ex = rule_exprs(p)
        known |= rec
        exprs += ex
    for p in dashboards:
        exprs += dashboard_exprs(p)
    bad = 0
    for where, expr in exprs:
        names = metric_names(expr)
        if not names:
            print(f"{where}: names no metric at all: {expr!r}")
            bad += 1
        for n in sorted(names - known):
            print(f"{where}: '{n}' is not exported by any stage")
            bad += 1
    print(f"# {len(exprs)} expressions, {bad} problems")
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "scrape":
        scrape(argv[1:])
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        rest = argv[2:]
        cut = rest.index("--") if "--" in rest else len(rest)
        return check(argv[1], rest[:cut], rest[cut + 1:])
    if len(argv) == 2 and argv[0] == "names":  # debugging: names in one expression
        print(" ".join(sorted(metric_names(argv[1]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
