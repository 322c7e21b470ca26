# pg.sh — a throw-away PostgreSQL cluster for a test: initdb into a
# directory, a server on a loopback port it is given, stopped by stop_pg.
# Sourced by tests. As root the cluster runs as the `postgres` user (the
# server refuses to run as root); otherwise as the calling user.
#
#   start_pg       sets PG_URL (postgres://sluice@127.0.0.1:PORT/sluice),
#                  PG_PORT, PG_DIR; returns non-zero if it cannot start
#   stop_pg        fast shutdown; removes the cluster (its logs are kept in
#                  PG_DIR only while a test still needs them)
#   pg_sql SQL     runs SQL through psql, unaligned output without headers

PG_BINDIR=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_pg() {
  # Its own directory straight under /tmp: a test's scratch directory is
  # private (0700) and the postgres user could not enter it.
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pg.XXXXXX") || return 1
  chmod 755 "$PG_DIR"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$PG_DIR"; fi
  pg_as "$PG_BINDIR/initdb" -D "$PG_DIR/data" -U sluice --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # A probed free port may be taken by another process before the server
  # binds it: then the start fails, and another port is tried.
  local started=0
  for _ in 1 2 3; do
    PG_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
      -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start \
      >/dev/null && { started=1; break; }
  done
  [ "$started" = 1 ] || { cat "$PG_DIR/server.log" >&2; return 1; }
  pg_as "$PG_BINDIR/createdb" -h 127.0.0.1 -p "$PG_PORT" -U sluice sluice || return 1
  PG_URL="postgres://sluice@127.0.0.1:$PG_PORT/sluice"
}

stop_pg() {
  [ -n "${PG_DIR:-}" ] || return 0
  [ -d "$PG_DIR/data" ] && pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
  rm -rf "$PG_DIR"
  PG_DIR=
}

pg_sql() {
  psql -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U sluice -d sluice -v ON_ERROR_STOP=1 -c "$1"
}
