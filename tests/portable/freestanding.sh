#!/usr/bin/env bash
# tests/portable/freestanding.sh SRC_DIR: common/ and the device library
# compile freestanding (-ffreestanding -nostdinc: only the compiler's own
# headers and a five-function string.h), and link against nothing but
# memcpy, memmove, memset, memcmp and strlen. A hosted header (stdio.h,
# stdlib.h, time.h, pthread.h, sys/...) or a libc call creeping into the
# portable code fails here.
set -euo pipefail
src=$(cd "${1:?usage: freestanding.sh SRC_DIR}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
list() { # the sources of $1 (common|device) from its sources.cmake
  sed -n '/^set(MQIM_[A-Z]*_SOURCES/,/)/p' "$src/$1/sources.cmake" | grep -o 'src/[A-Za-z0-9_]*\.c' |
    sed "s|^|$src/$1/|"
}
files=$(list common; list device)
[ -n "$files" ] || { echo "freestanding: no sources found" >&2; exit 1; }
for f in $files; do
  gcc -std=c99 -ffreestanding -nostdinc -isystem "$(gcc -print-file-name=include)" \
      -isystem "$src/tests/portable/freestanding" -I"$src/common/include" -I"$src/device/include" \
      -Wall -Wextra -Werror -pedantic -c "$f" -o "$tmp/$(basename "$f" .c).o"
done
bad=$(nm -u "$tmp"/*.o | awk 'NF == 2 { print $2 }' | sort -u |
      grep -vxE 'mqim_[A-Za-z0-9_]+|memcpy|memmove|memset|memcmp|strlen' || true)
if [ -n "$bad" ]; then
  echo "freestanding: the portable code calls outside itself:" $bad >&2
  exit 1
fi
echo "freestanding: $(echo $files | wc -w) files compile with -ffreestanding -nostdinc; external calls: memcpy memmove memset memcmp strlen only"
