#!/usr/bin/env bash
# tests/portable/big_endian.sh SRC_DIR: the unit tests of common/ and the
# device library, cross-compiled for s390x (big-endian) and run under
# qemu-user: the MQTT codec's byte order, the outbox's keys and every
# other layout assumption are checked on the other endianness.
set -euo pipefail
src=$(cd "${1:?usage: big_endian.sh SRC_DIR}" && pwd)
cc=s390x-linux-gnu-gcc
qemu=qemu-s390x
command -v $cc >/dev/null && command -v $qemu >/dev/null ||
  { echo "big_endian: $cc and $qemu are needed: run scripts/deps" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
list() {
  sed -n '/^set(MQIM_[A-Z]*_SOURCES/,/)/p' "$src/$1/sources.cmake" | grep -o 'src/[A-Za-z0-9_]*\.c' |
    sed "s|^|$src/$1/|"
}
flags=(-std=c99 -O1 -static -Wall -Wextra -Werror -I"$src/common/include" -I"$src/device/include" -I"$src/tests/unit")
# the library once, then each test against it
objs=()
for f in $(list common; list device); do
  o="$tmp/lib_$(basename "$f" .c).o"
  $cc "${flags[@]}" -c "$f" -o "$o"
  objs+=("$o")
done
# make sure the target really is big-endian (a wrong compiler would pass silently)
printf '#include <stdio.h>\nint main(void){unsigned u=1;printf("%%d\\n",*(unsigned char*)&u);return 0;}\n' > "$tmp/endian.c"
$cc -static "$tmp/endian.c" -o "$tmp/endian"
[ "$($qemu "$tmp/endian")" = 0 ] || { echo "big_endian: $cc does not target a big-endian machine" >&2; exit 1; }
failed=0
for t in test_common test_mqtt_codec test_inflight test_ram_outbox test_session test_client; do
  $cc "${flags[@]}" "$src/tests/unit/$t.c" "${objs[@]}" -o "$tmp/$t"
  if out=$($qemu "$tmp/$t" 2>&1); then
    echo "big_endian: $t: $(echo "$out" | tail -n 1)"
  else
    echo "big_endian: $t FAILED:"; echo "$out" | tail -n 20
    failed=1
  fi
done
exit $failed
