#!/usr/bin/env bash
# install-deps.sh PURPOSE — installs the Debian packages that PURPOSE (build,
# test, demo, bench, lint) needs and that are missing. Both `make demo` and
# `make test` call it, so a fresh Debian 12 machine needs nothing by hand.
# For test and bench it also installs the pinned npm tools of tests/node
# (s3rver, kubernetes-models, DuckDB for the bench peer) with `npm ci`,
# which needs no root.
set -euo pipefail
purpose=${1:-build}

build=(build-essential pkg-config libjansson-dev libzstd-dev libuv1-dev
       libhiredis-dev libcmocka-dev libhttp-parser-dev libxxhash-dev libcurl4-openssl-dev
       libpcre2-dev libsodium-dev libpq-dev libexpat1-dev ca-certificates zlib1g-dev)
case "$purpose" in
  build) want=("${build[@]}") ;;
  demo)  want=("${build[@]}" curl python3) ;;
  test)  want=("${build[@]}" curl zstd python3 procps redis-server nodejs npm postgresql
               prometheus systemd python3-yaml kubernetes-client python3-sqlglot
               python3-botocore awscli openssl chromium) ;;
  bench) want=("${build[@]}" curl zstd python3 procps jq redis-server nodejs npm time
               python3-botocore) ;;
  lint)  want=("${build[@]}" clang-format cppcheck) ;;
  fuzz)  want=("${build[@]}" clang libclang-rt-14-dev) ;;
  *) echo "install-deps.sh: unknown purpose '$purpose' (build|test|demo|bench|lint|fuzz)" >&2; exit 2 ;;
esac

# installed PACKAGE — Debian says so; node, npm and kubectl also count when
# on PATH from elsewhere (NodeSource's nodejs bundles npm and conflicts with
# Debian's npm package; Kubernetes' own kubectl package conflicts with
# Debian's kubernetes-client).
installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' && return 0
  case $1 in
    nodejs) command -v node >/dev/null ;;
    npm) command -v npm >/dev/null ;;
    kubernetes-client) command -v kubectl >/dev/null ;;
    *) return 1 ;;
  esac
}

missing=()
for p in "${want[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -ne 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing Debian packages: ${missing[*]}" >&2
    echo "  run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The npm tools, when node_modules is missing or older than the lock file.
case "$purpose" in
  test | bench)
    node_dir=$(cd "$(dirname "$0")/../tests/node" && pwd)
    if [ ! -d "$node_dir/node_modules" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; then
      echo "install-deps.sh: npm ci in tests/node"
      (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
      touch "$node_dir/node_modules"
    fi
    ;;
esac
