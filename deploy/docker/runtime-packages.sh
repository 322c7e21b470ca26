#!/bin/sh
# runtime-packages.sh BINARY... — prints the Debian packages that hold the
# shared libraries the binaries load, one per line: what the runtime image
# must install (ca-certificates aside: libcurl verifies S3's certificate
# against the system CA store, and the Dockerfile installs it). Libraries
# outside any package are left out.
set -eu
# With merged /usr, dpkg may know a library under /lib or under /usr/lib,
# by its ldd path or its real path: ask for every spelling in one call.
ldd "$@" | awk '/=> \// { print $3 }' | sort -u | while read -r lib; do
  real=$(readlink -f "$lib")
  printf '%s\n' "$lib" "$real" "/usr$lib" "/usr$real" "${lib#/usr}" "${real#/usr}"
done | sort -u | xargs dpkg -S 2>/dev/null | sed 's/:.*//; s/, /\n/g' | sed 's/:.*//' | sort -u || true
