#!/usr/bin/env bash
# Tests/ABI/check.sh STAGE — holds the C ABI still (make abi-test, part of make test).
#
#  1. The ABI of include/ijepa.h (types and signatures, from a -g stub library built by stub.py)
#     against the committed baseline (baseline/libijepa.abi) with libabigail's abidiff: only
#     added functions and fields appended to the structs in ijepa.abignore pass. Any other
#     change fails, unless the SONAME moved with it (ABI in the Makefile, IJEPA_ABI_VERSION in
#     the header): then regenerate the baseline with `make abi-baseline`.
#  2. The library exports exactly the header's functions.
#  3. compat.c, compiled against the baseline header, runs against the staged library.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STAGE=${1:-$ROOT/build/stage}
OUT=$ROOT/build/abi
mkdir -p "$OUT/tmp"
say() { printf '== abi: %s\n' "$*"; }
fail=0

if ! command -v abidiff >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    say "installing abigail-tools"
    { $SUDO apt-get install -y -qq abigail-tools || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq abigail-tools; }; } >/dev/null 2>&1
fi
command -v abidiff >/dev/null 2>&1 || { say "FAIL: abidiff (abigail-tools) is not installed and could not be installed"; exit 1; }

abi=$(sed -n 's/^ABI := *//p' "$ROOT/Makefile")
hdr=$(sed -n 's/^#define IJEPA_ABI_VERSION *//p' "$ROOT/include/ijepa.h")
[ "$abi" = "$hdr" ] || { say "FAIL: the Makefile's ABI ($abi) and the header's IJEPA_ABI_VERSION ($hdr) differ"; fail=1; }

# 1. the header's ABI against the baseline
python3 "$HERE/stub.py" "$ROOT/include/ijepa.h" > "$OUT/stub.c" || { say "FAIL: stub.py"; exit 1; }
gcc -std=c11 -g -O0 -shared -fPIC -Wall -Wextra -Wno-unused-parameter -Werror -I"$ROOT/include" \
    -Wl,-soname,libijepa.so.$abi -o "$OUT/libijepa.so.$abi" "$OUT/stub.c" || { say "FAIL: building the ABI stub"; exit 1; }
base_soname=$(sed -n "s/.*soname='\([^']*\)'.*/\1/p" "$HERE/baseline/libijepa.abi" | head -1)
if [ "$base_soname" != "libijepa.so.$abi" ]; then
    say "the SONAME moved ($base_soname -> libijepa.so.$abi): an incompatible change on purpose; run make abi-baseline"
else
    abidiff --no-added-syms --suppressions "$HERE/ijepa.abignore" "$HERE/baseline/libijepa.abi" "$OUT/libijepa.so.$abi" \
        > "$OUT/abidiff.txt" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        say "abidiff against the baseline: compatible"
    else
        say "FAIL: abidiff exit $rc: include/ijepa.h breaks the ABI of $base_soname:"
        sed 's/^/    /' "$OUT/abidiff.txt" | head -60
        say "(keep old fields and functions; append fields only to structs with a caller-set struct_size; or move ABI and IJEPA_ABI_VERSION and run make abi-baseline)"
        fail=1
    fi
fi

# 2. the library exports the header's functions, no more, no fewer
nm -D --defined-only "$OUT/libijepa.so.$abi" | awk '$3 ~ /^ijepa_/ {print $3}' | sort > "$OUT/header.syms"
nm -D --defined-only "$STAGE/lib/libijepa.so.$abi" | awk '$3 ~ /^ijepa_/ {print $3}' | sort > "$OUT/library.syms"
if diff "$OUT/header.syms" "$OUT/library.syms" > "$OUT/syms.diff"; then
    say "the library exports the header's $(wc -l < "$OUT/header.syms") functions"
else
    say "FAIL: exports differ from the header (< header only, > library only):"; sed 's/^/    /' "$OUT/syms.diff"; fail=1
fi

# 3. a program built against the baseline header runs against this library
if gcc -std=c11 -O1 -Wall -Wextra -Werror -I"$HERE/baseline" -o "$OUT/compat" "$HERE/compat.c" \
       -L"$STAGE/lib" -lijepa -Wl,-rpath,"$STAGE/lib" -lm; then
    "$OUT/compat" "$ROOT/Tests/Fixtures" "$OUT/tmp" || fail=1
else
    say "FAIL: compat.c does not build against the baseline header"; fail=1
fi
[ $fail -eq 0 ] && say "PASS" || say "FAIL"
exit $fail
