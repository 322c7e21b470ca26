# servers.sh — real servers for the tests, on loopback: redis-server and
# s3rver (an S3-compatible server from npm, pinned in tests/node). Sourced
# by tests/run.sh and tests/e2e/lib.sh.
#
# Each server lives in a directory of its own (DIR) that remembers its port,
# pid and log, so that a restart comes back on the same port (and, for
# s3rver, with the same data). Every server started is registered: call
# srv_stop_all from the caller's exit trap. A watchdog process also stops
# them if the calling shell dies without running its traps (kill -9).
#
#   redis_start DIR       start (or start again, EMPTY, on DIR's port); sets
#                         REDIS_PORT REDIS_PID REDIS_URL (redis://127.0.0.1:P/0)
#                         and REDIS_UNIX_URL (unix://DIR/redis.sock; empty
#                         when that path is too long for a socket)
#   redis_stop DIR        stop it (nothing is saved: --save '' --appendonly no)
#   redis_restart DIR     stop, then start empty on the same port
#   redis_cli DIR ARGS..  redis-cli against it
#   s3rver_start DIR      start (or start again on DIR's port and data) s3rver
#                         and, in front of it, the SigV4 verifier
#                         (s3verify_start; SLUICE_TEST_S3_VERIFY=0: none);
#                         sets S3_PORT S3_PID S3_RAW_ENDPOINT (s3rver itself,
#                         unsigned requests pass) S3_ENDPOINT (the verifier,
#                         127.0.0.1:P) S3_BUCKET_DIR (where object K is the
#                         file K._S3rver_object)
#   s3rver_stop DIR / s3rver_restart DIR
#   s3verify_start DIR UPSTREAM [ARGS]  a SigV4 verifier alone (see below)
#   fakecreds_start DIR KEYS LIFETIME WEB_TOKEN CONTAINER_TOKEN  fake STS,
#                         container credentials and IMDSv2 (see below)
#   s3_store_url [PREFIX] s3://sluice/PREFIX?endpoint=$S3_ENDPOINT&tls=0
#   srv_stop_all          stop every server this shell started
#   srv_have_redis / srv_have_s3rver   the programs are installed
#
# s3rver 3.7.1 falls short of S3 in ways that fail correct clients: it
# writes an object in place, so a LIST or GET during a PUT sees it half
# written (a LIST reported a new filtered object with size 0, and the
# combine job made from that listing could never run); a GET takes the size
# and the bytes from two different versions; a LIST walks directories, so
# "a/b" comes before "a-c" and marker pagination skips keys; and a DELETE
# races with a PUT in the same directory. s3rver_start therefore preloads
# a patch (srv_s3rver_patch) that replaces those four store methods: PUT
# writes a temp file and renames it into place after its metadata, GET
# reads from one open file, LIST sorts full keys bytewise, DELETE removes
# the object first. SLUICE_TEST_S3RVER_RAW=1 runs s3rver unpatched.
#
# SLUICE_TEST_S3_VERBOSE=1 keeps s3rver's per-request log (it is silent
# otherwise: logging every request slows it down noticeably).
SRV_PY=${PYTHON3:-/usr/bin/python3}
SRV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRV_S3RVER=${SLUICE_TEST_S3RVER:-$SRV_ROOT/tests/node/node_modules/.bin/s3rver}
SRV_BUCKET=sluice
SRV_DIRS=() # directories of the servers started, for srv_stop_all
SRV_WATCH=  # file the watchdog reads: one "PID TOKEN" line per live server
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_SESSION_TOKEN

srv_have_redis() { command -v redis-server >/dev/null && command -v redis-cli >/dev/null; }
srv_have_s3rver() { [ -x "$SRV_S3RVER" ] && command -v node >/dev/null; }

srv_free_port() {
  "$SRV_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# srv_watchdog — once per shell: a detached process (not a child that the
# caller's `wait` would wait for) that stops the servers still listed in
# $SRV_WATCH once this shell is gone. It checks each pid's command line
# still holds the server's token, so a reused pid is never killed.
srv_watchdog() {
  [ -n "$SRV_WATCH" ] && return 0
  SRV_WATCH=$(mktemp "${TMPDIR:-/tmp}/sluice-srv-watch.XXXXXX")
  local owner=$$
  (
    (
      trap '' INT TERM HUP
      while kill -0 "$owner" 2>/dev/null; do sleep 2; done
      while read -r pid token; do
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$token" && kill -9 "$pid"
      done <"$SRV_WATCH"
      rm -f "$SRV_WATCH"
    ) </dev/null >/dev/null 2>&1 &
  )
}

# srv_register PID DIR TOKEN — TOKEN: a string in the server's command line
# (redis-server rewrites its own to "redis-server 127.0.0.1:PORT").
# srv_unregister PID
srv_register() {
  srv_watchdog
  echo "$1 $3" >>"$SRV_WATCH"
  local d
  for d in "${SRV_DIRS[@]:-}"; do [ "$d" = "$2" ] && return 0; done
  SRV_DIRS+=("$2")
}
srv_unregister() {
  [ -n "$SRV_WATCH" ] && [ -f "$SRV_WATCH" ] || return 0
  grep -v "^$1 " "$SRV_WATCH" >"$SRV_WATCH.new" || true # no line left is fine
  mv "$SRV_WATCH.new" "$SRV_WATCH"
}

# srv_kill DIR — stops the server whose pid is in DIR/pid: SIGTERM, then
# SIGKILL after 5 s; returns once it is gone.
srv_kill() {
  local dir=$1 pid i
  pid=$(cat "$dir/pid" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  srv_unregister "$pid"
  rm -f "$dir/pid"
}

srv_stop_all() {
  local d
  for d in "${SRV_DIRS[@]:-}"; do [ -n "$d" ] && srv_kill "$d"; done
  SRV_DIRS=()
  [ -n "$SRV_WATCH" ] && : >"$SRV_WATCH"
  return 0
}

# ---- redis-server ----

# A first start probes a free port (redis-server cannot take port 0 and say
# which it got); another process may bind it first, so a first start that
# fails tries again on a new port. A restart stays on its port.
redis_start() {
  if [ -f "$1/port" ]; then
    srv_redis_start1 "$1"
    return
  fi
  for _ in 1 2 3; do
    srv_redis_start1 "$1" && return 0
    srv_kill "$1"
    rm -f "$1/port"
  done
  return 1
}

srv_redis_start1() {
  local dir=$1 port i
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  port=$(cat "$dir/port" 2>/dev/null) || port=$(srv_free_port)
  echo "$port" >"$dir/port"
  rm -f "$dir/dump.rdb" "$dir/redis.sock"
  # A unix socket too, unless its path is past the 107 bytes sun_path holds.
  local sock=() sock_path=$dir/redis.sock
  if [ ${#sock_path} -lt 100 ]; then
    sock=(--unixsocket "$sock_path" --unixsocketperm 700)
    REDIS_UNIX_URL="unix://$sock_path"
  else
    sock_path='' REDIS_UNIX_URL=''
  fi
  redis-server --port "$port" --bind 127.0.0.1 "${sock[@]}" --dir "$dir" --save '' \
    --appendonly no --daemonize no --logfile '' >>"$dir/redis.log" 2>&1 &
  REDIS_PID=$!
  echo "$REDIS_PID" >"$dir/pid"
  srv_register "$REDIS_PID" "$dir" "127.0.0.1:$port"
  REDIS_PORT=$port
  REDIS_URL="redis://127.0.0.1:$port/0"
  for ((i = 0; i < 200; i++)); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && { [ -z "$sock_path" ] || [ -S "$sock_path" ]; } &&
      return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "# redis-server in $dir did not answer on port $port" >&2
  tail -5 "$dir/redis.log" >&2
  return 1
}

redis_stop() { srv_kill "$1"; }
redis_restart() { redis_stop "$1" && redis_start "$1"; }
redis_cli() {
  local dir=$1; shift
  redis-cli -p "$(cat "$dir/port")" "$@"
}

# ---- s3rver ----

# srv_s3rver_patch FILE — writes the preload module described at the top.
srv_s3rver_patch() {
  local lib
  lib=$(dirname "$(readlink -f "$SRV_S3RVER")")/../lib/stores/filesystem.js
  cat >"$1" <<EOF
'use strict';
// Preloaded by tests/support/servers.sh into s3rver, so that it keeps the
// promises of S3 the tests rely on: a PUT is atomic, a GET reads one version
// whole, a LIST is in byte order of the full keys and never shows an object
// before its PUT is complete, and DELETE does not race with PUT.
// Modules resolve from s3rver's own file, so that the class patched is the
// one s3rver uses and fs-extra is found.
const req = require('module').createRequire('$lib');
const crypto = req('crypto');
const fs = req('fs-extra');
const path = req('path');
const Store = req('$lib');
const S3Object = req('../models/object');
const OBJECT = '._S3rver_object';
const bytewise = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function writeTemp(dir, object) {
  for (let attempt = 0; ; attempt++) {
    await fs.mkdirp(dir);
    // A dot name: neither a listed object nor one verify.py reads.
    const tmp = path.join(dir, '.s3rver-tmp-' + crypto.randomBytes(8).toString('hex'));
    try {
      return await new Promise((resolve, reject) => {
        const out = fs.createWriteStream(tmp);
        const md5 = crypto.createHash('md5');
        let size = 0;
        out.on('error', reject);
        out.on('finish', () => resolve([tmp, size, md5.digest('hex')]));
        if (Buffer.isBuffer(object.content)) {
          md5.update(object.content);
          size = object.content.length;
          out.end(object.content);
        } else {
          object.content.on('error', reject);
          object.content.on('data', chunk => {
            md5.update(chunk);
            size += chunk.length;
          });
          object.content.pipe(out);
        }
      });
    } catch (err) {
      // A concurrent DELETE removed the directory it had found empty; a
      // stream body cannot be read twice, so only a buffer is retried.
      if (err.code !== 'ENOENT' || attempt >= 5 || !Buffer.isBuffer(object.content)) throw err;
    }
  }
}

Store.prototype.putObject = async function (object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  const [tmp, size, md5] = await writeTemp(path.dirname(objectPath), object);
  try {
    await this.putMetadata(object.bucket, object.key, object.metadata, md5);
    await fs.rename(tmp, objectPath);
  } catch (err) {
    await fs.unlink(tmp).catch(() => {});
    throw err;
  }
  return { size, md5 };
};

// The size and content come from one open file, so that a PUT renaming a
// new version into place cannot mix two versions in one answer.
Store.prototype.getObject = async function (bucket, key, options) {
  let fd;
  try {
    fd = await fs.open(this.getResourcePath(bucket, key, 'object'), 'r');
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
  try {
    const stat = await fs.fstat(fd);
    const metadata = {
      ...(await this.getMetadata(bucket, key)),
      'content-length': stat.size,
      'last-modified': stat.mtime.toUTCString(),
    };
    const lastByte = Math.max(0, stat.size - 1);
    const range = {
      start: (options && options.start) || 0,
      end: Math.min((options && options.end) || Infinity, lastByte),
    };
    const ranged = options && (options.start !== undefined || options.end);
    if (range.start < 0 || range.end < range.start) {
      await fs.close(fd);
      const object = new S3Object(bucket, key, null, metadata);
      if (ranged) object.range = range;
      return object;
    }
    const content = fs.createReadStream(null, { fd, start: range.start, end: range.end });
    const object = new S3Object(bucket, key, content, metadata);
    if (ranged) object.range = range;
    return object;
  } catch (err) {
    await fs.close(fd).catch(() => {});
    if (err.code === 'ENOENT') return null;
    throw err;
  }
};

// Every key under the prefix, sorted bytewise (s3rver walks directories,
// which puts "a/b" before "a-c"), then marker, delimiter and max-keys.
Store.prototype.listObjects = async function (bucket, options) {
  const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
  const keys = [];
  const walk = async (dir, rel) => {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return;
      throw err;
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        const sub = rel + e.name + '/';
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) await walk(path.join(dir, e.name), sub);
      } else if (e.name.endsWith(OBJECT)) {
        const key = rel + e.name.slice(0, -OBJECT.length);
        if (key.startsWith(prefix)) keys.push(key);
      }
    }
  };
  await walk(this.getBucketPath(bucket), '');
  keys.sort(bytewise);
  const commonPrefixes = new Set();
  const picked = [];
  let isTruncated = false;
  for (const key of keys) {
    if (startAfter && bytewise(key, startAfter) <= 0) continue;
    if (delimiter) {
      const idx = key.indexOf(delimiter, prefix.length);
      if (idx !== -1) {
        commonPrefixes.add(key.slice(0, idx + delimiter.length));
        continue;
      }
    }
    if (picked.length >= maxKeys) {
      isTruncated = true;
      break;
    }
    picked.push(key);
  }
  const metadata = await Promise.all(
    picked.map(key =>
      this.getMetadata(bucket, key).catch(err => {
        if (err.code === 'ENOENT') return undefined; // deleted meanwhile
        throw err;
      }),
    ),
  );
  const objects = [];
  picked.forEach((key, i) => {
    if (metadata[i] !== undefined) objects.push(new S3Object(bucket, key, null, metadata[i]));
  });
  return {
    objects,
    commonPrefixes: [...commonPrefixes].sort(bytewise),
    isTruncated: isTruncated && objects.length > 0,
  };
};

Store.prototype.deleteObject = async function (bucket, key) {
  // The object first: from then on it is gone for LIST and GET alike.
  for (const resource of ['object', 'object.md5', 'metadata.json']) {
    await fs.unlink(this.getResourcePath(bucket, key, resource)).catch(err => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  const parts = key.split('/');
  parts.pop();
  for (; parts.length; parts.pop()) {
    try {
      await fs.rmdir(path.join(this.getBucketPath(bucket), ...parts));
    } catch (err) {
      break; // not empty, or already gone: leave the rest alone
    }
  }
};
EOF
}

s3rver_start() {
  local dir=$1 port='' i
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/port" ] && port=$(cat "$dir/port")
  local quiet=(--silent)
  [ "${SLUICE_TEST_S3_VERBOSE:-0}" = 1 ] && quiet=()
  local before node_args=()
  if [ "${SLUICE_TEST_S3RVER_RAW:-0}" != 1 ]; then
    srv_s3rver_patch "$dir/atomic.js"
    node_args=(-r "$dir/atomic.js")
  fi
  before=$(wc -l 2>/dev/null <"$dir/s3rver.log" || echo 0)
  node "${node_args[@]}" "$SRV_S3RVER" --directory "$dir/data" --port "${port:-0}" --address 127.0.0.1 \
    --allow-mismatched-signatures --configure-bucket "$SRV_BUCKET" "${quiet[@]}" \
    >>"$dir/s3rver.log" 2>&1 &
  S3_PID=$!
  echo "$S3_PID" >"$dir/pid"
  srv_register "$S3_PID" "$dir" "$dir/data"
  for ((i = 0; i < 400; i++)); do
    port=$(tail -n +$((before + 1)) "$dir/s3rver.log" 2>/dev/null |
      sed -n 's/.*S3rver listening on [0-9.]*:\([0-9]*\).*/\1/p' | tail -1)
    [ -n "$port" ] && break
    kill -0 "$S3_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "# s3rver in $dir did not start" >&2
    tail -5 "$dir/s3rver.log" >&2
    return 1
  fi
  echo "$port" >"$dir/port"
  S3_PORT=$port
  S3_ENDPOINT=127.0.0.1:$port
  S3_BUCKET_DIR=$dir/data/$SRV_BUCKET
  S3_RAW_ENDPOINT=$S3_ENDPOINT
  for ((i = 0; i < 200; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$S3_ENDPOINT/$SRV_BUCKET?max-keys=1")" = 200 ] &&
      break
    sleep 0.05
  done
  if [ "$i" -eq 200 ]; then
    echo "# s3rver in $dir does not answer on port $port" >&2
    return 1
  fi
  [ "${SLUICE_TEST_S3_VERIFY:-1}" = 0 ] && return 0
  s3verify_start "$dir/verify" "$S3_RAW_ENDPOINT" || return 1
  S3_ENDPOINT=127.0.0.1:$S3V_PORT
}

# srv_wait_listening FILE PID — prints the port from the "listening on PORT"
# line a helper of tests/support writes to FILE, once it is there (nothing
# if PID dies or 10 s pass).
srv_wait_listening() {
  local i port
  for ((i = 0; i < 200; i++)); do
    port=$(sed -n 's/^listening on //p' "$1")
    [ -n "$port" ] && { echo "$port"; return 0; }
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# s3verify_start DIR UPSTREAM [ARGS...] — starts (or starts again on DIR's
# port) tests/support/sigv4_verify.py in front of UPSTREAM (HOST:PORT): it
# re-signs every request with botocore and refuses any it does not match
# (403 SignatureDoesNotMatch, ...), so the tests prove the signatures, which
# s3rver does not check. Credentials it accepts: DIR/keys ("ID SECRET", plus
# "ID SECRET TOKEN EXPIRY" lines a fake credentials endpoint appends),
# seeded with the harness's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. One
# line per request in DIR/requests.log. ARGS go to the proxy (--cert PEM
# --key PEM for HTTPS). Sets S3V_PORT S3V_PID S3V_DIR.
s3verify_start() {
  local dir=$1 upstream=$2 port=0
  shift 2
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/port" ] && port=$(cat "$dir/port")
  [ -f "$dir/keys" ] || echo "$AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY" >"$dir/keys"
  : >"$dir/listening"
  "$SRV_PY" "$SRV_ROOT/tests/support/sigv4_verify.py" --port "$port" --upstream "$upstream" \
    --keys "$dir/keys" --log "$dir/requests.log" --upstream-key "$AWS_ACCESS_KEY_ID" "$@" \
    >"$dir/listening" 2>>"$dir/verify.log" &
  S3V_PID=$!
  echo "$S3V_PID" >"$dir/pid"
  srv_register "$S3V_PID" "$dir" "$dir/keys"
  port=$(srv_wait_listening "$dir/listening" "$S3V_PID")
  if [ -z "$port" ]; then
    echo "# the SigV4 verifier in $dir did not start" >&2
    tail -5 "$dir/verify.log" >&2
    return 1
  fi
  echo "$port" >"$dir/port"
  S3V_PORT=$port S3V_DIR=$dir
}

# fakecreds_start DIR KEYS LIFETIME WEB_TOKEN CONTAINER_TOKEN — starts
# tests/support/fake_aws_creds.py: STS AssumeRoleWithWebIdentity (POST /),
# container credentials (GET /container, Authorization CONTAINER_TOKEN) and
# IMDSv2, each handing out credentials that live LIFETIME seconds, appended
# to KEYS (a verifier's keys file). Its log (DIR/creds.log) has one "issued
# SOURCE KEY_ID" line per credential. Sets FAKECREDS_PORT.
fakecreds_start() {
  local dir=$1 keys=$2 lifetime=$3 web=$4 container=$5 port pid
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  "$SRV_PY" -B "$SRV_ROOT/tests/support/fake_aws_creds.py" --keys "$keys" --log "$dir/creds.log" \
    --lifetime "$lifetime" --web-token "$web" --container-token "$container" \
    >"$dir/listening" 2>>"$dir/err.log" &
  pid=$!
  echo "$pid" >"$dir/pid"
  srv_register "$pid" "$dir" "$dir/creds.log"
  port=$(srv_wait_listening "$dir/listening" "$pid")
  [ -n "$port" ] || { tail -5 "$dir/err.log" >&2; return 1; }
  FAKECREDS_PORT=$port
}

s3rver_stop() {
  [ -d "$1/verify" ] && srv_kill "$1/verify"
  srv_kill "$1"
}
s3rver_restart() { s3rver_stop "$1" && s3rver_start "$1"; }
s3_store_url() { echo "s3://$SRV_BUCKET${1:+/$1}?endpoint=$S3_ENDPOINT&tls=0"; }
