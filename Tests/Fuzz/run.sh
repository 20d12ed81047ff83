#!/usr/bin/env bash
# Tests/Fuzz/run.sh [SECONDS] — build the checkpoint fuzzer and run it for SECONDS (default 120).
#
#   1. builds libijepa with coverage (inline 8-bit counters, PC table, compare tracing) and
#      AddressSanitizer in the Swift code (swift build --scratch-path .build-fuzz), so libFuzzer
#      is guided by the Swift parser's branches; if that build fails, the staged library is used
#      (then only the harness is instrumented and the run says so);
#   2. builds the harness (fuzz_checkpoint.c, clang -fsanitize=fuzzer,address,undefined) and the
#      seed generator (make_seeds.c, against build/stage), writes the seeds (real checkpoints of a
#      tiny model + crafted files) into build/seeds;
#   3. replays every input in regressions/ with all checks on: an input listed in
#      regressions/KNOWN_FAILING must still fail (XFAIL: a reported library bug), any other must
#      pass; a listed input that passes is an error too (XPASS: delete its line);
#   4. runs every seed once, then fuzzes for SECONDS with the known bugs' checks skipped
#      (IJEPA_FUZZ_SKIP), the corpus kept in build/corpus between runs;
#   5. prints executions, coverage and corpus size, and exits non-zero on any crash, leak,
#      sanitizer report, timeout, out-of-memory or violated invariant. A crashing input is saved
#      in build/artifacts/: copy it into regressions/ (and report the bug).
#
# Environment: FUZZ_CLANG (a clang with libFuzzer), FUZZ_INSTRUMENT=0 (skip step 1), FUZZ_JOBS=N
# (fuzz with N worker processes, libFuzzer -fork=N), FUZZ_ARGS (more libFuzzer flags), STAGE.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$HERE/build
SECS=${1:-120}
STAGE=${STAGE:-$ROOT/build/stage}
JOBS=${FUZZ_JOBS:-1}
export PATH="$PATH:/opt/swift/usr/bin"
mkdir -p "$OUT/logs" "$OUT/corpus" "$OUT/artifacts"

say() { printf '== fuzz: %s\n' "$*"; }
die() { printf '== fuzz: ERROR: %s\n' "$*" >&2; exit 1; }

# ---- the staged library (headers, and the library the seed generator uses) ---------------------
if [ ! -f "$STAGE/lib/pkgconfig/ijepa.pc" ]; then
    say "no $STAGE; running make stage"
    make -C "$ROOT" --no-print-directory stage >"$OUT/logs/stage.log" 2>&1 || die "make stage failed (see $OUT/logs/stage.log)"
fi

# ---- a clang with libFuzzer ---------------------------------------------------------------------
CLANG=""
for c in ${FUZZ_CLANG:-} /opt/swift/usr/bin/clang clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
    command -v "$c" >/dev/null 2>&1 || continue
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$OUT/probe.c"
    if "$c" -fsanitize=fuzzer,address "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1; then CLANG=$(command -v "$c"); break; fi
done
[ -n "$CLANG" ] || die "no clang with libFuzzer (-fsanitize=fuzzer) found; set FUZZ_CLANG or install clang + libfuzzer (Debian: clang libclang-rt-dev)"
LD_FLAG=""
"$CLANG" -fuse-ld=lld -fsanitize=fuzzer,address "$OUT/probe.c" -o "$OUT/probe" >/dev/null 2>&1 && LD_FLAG="-fuse-ld=lld"
say "clang: $CLANG"

# ---- the library: instrumented if possible --------------------------------------------------------
LIBDIR="$STAGE/lib"
GUIDED="harness only (library not instrumented)"
if [ "${FUZZ_INSTRUMENT:-1}" != 0 ] && command -v swift >/dev/null 2>&1; then
    say "building libijepa with -sanitize=address -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp (.build-fuzz)"
    start=$(date +%s)
    if (cd "$ROOT" && swift build -c release --product ijepa --scratch-path .build-fuzz \
            -Xswiftc -target-cpu -Xswiftc "${TARGET_CPU:-haswell}" -Xswiftc -static-stdlib \
            -Xswiftc -sanitize=address \
            -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
            -Xlinker "--version-script=$ROOT/ijepa.map") >"$OUT/logs/swift-build.log" 2>&1; then
        mkdir -p "$OUT/lib"
        cp "$ROOT/.build-fuzz/release/libijepa.so" "$OUT/lib/libijepa.so"
        LIBDIR="$OUT/lib"
        GUIDED="harness + Swift library (ASan + coverage)"
        say "instrumented library built in $(( $(date +%s) - start )) s"
    else
        say "WARNING: the instrumented Swift build failed (see $OUT/logs/swift-build.log); fuzzing the staged library"
    fi
fi

# ---- harness and seeds ----------------------------------------------------------------------------
"$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $LD_FLAG \
    -std=gnu11 -Wall -Wextra -Werror "$HERE/fuzz_checkpoint.c" -I"$STAGE/include" \
    -L"$LIBDIR" -lijepa -Wl,-rpath,"$LIBDIR" -ldl -lm -o "$OUT/fuzz_checkpoint" \
    2> >(grep -v "Cannot export local symbol" >&2) || die "building the harness failed"
${CC:-gcc} -std=gnu11 -O1 -g -Wall -Wextra -Werror "$HERE/make_seeds.c" -I"$STAGE/include" \
    -L"$STAGE/lib" -lijepa -Wl,-rpath,"$STAGE/lib" -lm -o "$OUT/make_seeds" || die "building make_seeds failed"
rm -rf "$OUT/seeds"
"$OUT/make_seeds" "$OUT/seeds" >/dev/null || die "make_seeds failed"
# the pretrained-encoder fixtures (Hugging Face v4 and v5 names, timm, official names)
for f in hf_v4 hf_v5 timm; do cp "$ROOT/Tests/Fixtures/encoders/$f/model.safetensors" "$OUT/seeds/encoder-$f.safetensors"; done
cp "$ROOT/Tests/Fixtures/encoders/official.safetensors" "$OUT/seeds/encoder-official.safetensors"
say "$(ls "$OUT/seeds" | wc -l) seed files"

# Round-trip saves go to a RAM directory of this run, removed at the end (also after -fork workers).
FUZZ_TMP=$(mktemp -d "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}" )/ijepa-fuzz-run-XXXXXX")
trap 'rm -rf "$FUZZ_TMP"' EXIT
export IJEPA_FUZZ_TMP="$FUZZ_TMP"

export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1:handle_abort=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
COMMON=(-timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=64 -artifact_prefix="$OUT/artifacts/")
FUZZER="$OUT/fuzz_checkpoint"

# ---- 1. regressions -------------------------------------------------------------------------------
declare -A KNOWN=()
if [ -f "$HERE/regressions/KNOWN_FAILING" ]; then
    while read -r f bug _; do
        case "$f" in ''|'#'*) continue;; esac
        KNOWN[$f]=$bug
    done <"$HERE/regressions/KNOWN_FAILING"
fi
SKIP=$(printf '%s\n' "${KNOWN[@]}" | sort -u | paste -sd, -)
reg_pass=0; reg_xfail=0; reg_fail=0
for f in "$HERE"/regressions/*; do
    name=$(basename "$f")
    case "$name" in KNOWN_FAILING|*.md|*.txt) continue;; esac
    log="$OUT/logs/regression-$name.log"
    env -u IJEPA_FUZZ_SKIP IJEPA_FUZZ_MEM_MB=0 "$FUZZER" "${COMMON[@]}" -runs=1 "$f" >"$log" 2>&1
    rc=$?
    why=$(grep -m1 -E "FUZZ INVARIANT VIOLATED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|Fatal error" "$log" | cut -c1-160)
    if [ -n "${KNOWN[$name]:-}" ]; then
        if [ $rc -ne 0 ]; then reg_xfail=$((reg_xfail+1)); say "regression $name: XFAIL (known bug ${KNOWN[$name]}: ${why:-exit $rc})"
        else reg_fail=$((reg_fail+1)); say "regression $name: XPASS — bug ${KNOWN[$name]} looks fixed: delete its line in regressions/KNOWN_FAILING"; fi
    else
        if [ $rc -eq 0 ]; then reg_pass=$((reg_pass+1)); say "regression $name: pass"
        else reg_fail=$((reg_fail+1)); say "regression $name: FAIL (${why:-exit $rc}; log $log)"; fi
    fi
done

# ---- 2. seeds, 3. fuzzing -------------------------------------------------------------------------
export IJEPA_FUZZ_SKIP="$SKIP"
say "known bugs skipped while fuzzing: ${SKIP:-none}"
seed_log="$OUT/logs/seeds.log"
"$FUZZER" "${COMMON[@]}" -runs=0 "$OUT/seeds" >"$seed_log" 2>&1
seed_rc=$?
[ $seed_rc -eq 0 ] && say "seeds: all $(ls "$OUT/seeds" | wc -l) pass" || say "seeds: FAIL (see $seed_log)"

fuzz_rc=0
fuzz_log="$OUT/logs/fuzz.log"
if [ $seed_rc -eq 0 ] && [ "$SECS" -gt 0 ]; then
    say "fuzzing for $SECS s ($GUIDED, $JOBS job(s))"
    extra=()
    [ "$JOBS" -gt 1 ] && extra=(-fork="$JOBS")
    start=$(date +%s)
    "$FUZZER" "${COMMON[@]}" "${extra[@]}" -max_total_time="$SECS" -max_len=32768 -dict="$HERE/checkpoint.dict" \
        -print_final_stats=1 ${FUZZ_ARGS:-} "$OUT/corpus" "$OUT/seeds" >"$fuzz_log" 2>&1
    fuzz_rc=$?
    elapsed=$(( $(date +%s) - start ))
    modules=$(grep -m1 "inline 8-bit counters" "$fuzz_log" | sed -E 's/.*\(([0-9]+) inline 8-bit counters\).*/\1/')
    last=$(grep -E "^#[0-9]+.*cov: " "$fuzz_log" | tail -1)
    execs=$(grep -m1 "stat::number_of_executed_units" "$fuzz_log" | awk '{print $2}')
    [ -n "$execs" ] || execs=$(printf '%s' "$last" | sed -E 's/^#([0-9]+).*/\1/')
    cov=$(printf '%s' "$last" | sed -nE 's/.*cov: ([0-9]+).*/\1/p')
    ft=$(printf '%s' "$last" | sed -nE 's/.*ft: ([0-9]+).*/\1/p')
    corp=$(printf '%s' "$last" | sed -nE 's/.*corp: ([0-9]+).*/\1/p')
    say "executions: ${execs:-?} in ${elapsed} s ($(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) ))/s); coverage: ${cov:-?} of ${modules:-?} edges (features ${ft:-?}); corpus: ${corp:-?} inputs"
    if [ $fuzz_rc -ne 0 ]; then
        grep -E "FUZZ INVARIANT VIOLATED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY|Test unit written" "$fuzz_log" | head -8
        say "CRASH: the input is in $OUT/artifacts/; reproduce with $FUZZER <file>, then copy it into $HERE/regressions/"
    fi
fi

ok=1
[ $reg_fail -eq 0 ] && [ $seed_rc -eq 0 ] && [ $fuzz_rc -eq 0 ] || ok=0
say "regressions: $reg_pass passed, $reg_xfail known failures (XFAIL), $reg_fail failed; seeds: $([ $seed_rc -eq 0 ] && echo pass || echo FAIL); fuzzing: $([ $fuzz_rc -eq 0 ] && echo "no crash" || echo CRASH)"
[ $ok -eq 1 ] && say "PASS" || say "FAIL"
[ $ok -eq 1 ]
