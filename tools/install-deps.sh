#!/usr/bin/env bash
# install-deps.sh PURPOSE — installs the Debian packages that PURPOSE (build,
# test, demo, bench, lint) needs and that are missing. Both `make demo` and
# `make test` call it, so a fresh Debian 12 machine needs nothing by hand.
set -euo pipefail
purpose=${1:-build}

build=(build-essential pkg-config libs3-dev libjansson-dev libzstd-dev libuv1-dev
       libhiredis-dev libcmocka-dev libhttp-parser-dev libxxhash-dev libcurl4-openssl-dev
       libpcre2-dev libsodium-dev)
case "$purpose" in
  build) want=("${build[@]}") ;;
  demo)  want=("${build[@]}" curl python3) ;;
  test)  want=("${build[@]}" curl zstd python3 procps) ;;
  bench) want=("${build[@]}" curl zstd python3 procps jq) ;;
  lint)  want=("${build[@]}" clang-format cppcheck) ;;
  fuzz)  want=("${build[@]}" clang libclang-rt-14-dev) ;;
  *) echo "install-deps.sh: unknown purpose '$purpose' (build|test|demo|bench|lint|fuzz)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: missing Debian packages: ${missing[*]}" >&2
  echo "  run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
