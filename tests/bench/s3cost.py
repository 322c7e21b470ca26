"""s3cost — what the benches that price store requests share
(tests/bench/backends.sh, tests/bench/cost.sh): the S3 request prices, the
operations and stages they count, and the per-million and number formats."""

# AWS S3 Standard request prices, US East (N. Virginia), as listed on
# aws.amazon.com/s3/pricing: PUT, COPY, POST, LIST $0.005 per 1,000; GET
# and all other requests (HEAD: the store's stat) $0.0004 per 1,000; DELETE
# free. Unchanged since 2018; current in 2026-02 (CloudCostKit's S3 request
# guide, reviewed 2026-02-07). Not re-read on each bench date.
PRICE = {'list': 0.005e-3, 'put': 0.005e-3, 'get': 0.0004e-3, 'stat': 0.0004e-3, 'delete': 0.0}
OPS = [('list', 'LIST'), ('put', 'PUT'), ('get', 'GET'), ('stat', 'HEAD'), ('delete', 'DELETE')]
STAGES = ('filter', 'dispatcher', 'combiner', 'splitter')


def per_m(run, stage, op):
    """A stage's requests of one operation per million events of a run
    (a JSON line of backends.sh)."""
    return run['stages'][stage]['run'].get('requests:' + op, 0) * 1e6 / run['events']


def fmt(x):
    return f'{x:,.0f}' if x >= 10 or x == 0 else f'{x:,.1f}'
