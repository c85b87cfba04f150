#!/bin/sh
# Checks an installed libotpengine against the header installed beside it:
# the shared library's soname, pkg-config's abi_version and what a program
# linked with -lotpengine needs at run time all carry OTPENGINE_ABI_VERSION.
# Usage: check-soname.sh HEADER LIBDIR PROGRAM
set -eu
header=$1 libdir=$2 program=$3
abi=$(sed -n 's/^#define OTPENGINE_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$header")
[ -n "$abi" ] || { echo "ERROR: $header declares no OTPENGINE_ABI_VERSION" >&2; exit 1; }
want="libotpengine.so.$abi"
soname=$(readelf -d "$libdir/$want" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ "$soname" = "$want" ] || { echo "ERROR: $libdir/$want has soname '$soname', the header wants $want" >&2; exit 1; }
[ "$(readlink "$libdir/libotpengine.so")" = "$want" ] || { echo "ERROR: $libdir/libotpengine.so does not link to $want" >&2; exit 1; }
pc=$(pkg-config --variable=abi_version otpengine)
[ "$pc" = "$abi" ] || { echo "ERROR: otpengine.pc says abi_version '$pc', the header $abi" >&2; exit 1; }
readelf -d "$program" | grep -q "Shared library: \[$want\]" ||
  { echo "ERROR: $program does not need $want:" >&2; readelf -d "$program" | grep NEEDED >&2; exit 1; }
echo "soname $want: matches the header, pkg-config and $program"
