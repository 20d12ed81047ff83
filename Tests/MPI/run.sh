#!/usr/bin/env bash
# MPI data-parallel tests: N ranks x B/N images must equal 1 rank x B images, with uniform and
# with ragged contexts, and with every rank's shard run as micro-batches (--micro-batch: gradient
# accumulation, R ranks x K micro-batches = 1 rank x 1 batch).
#
#   bash Tests/MPI/run.sh            (after `make stage`; needs openmpi-bin + libopenmpi-dev:
#                                     `make -C examples/mpi deps`; mpi4py is optional)
#
# Builds examples/mpi_train.c with mpicc against the staged install (pkg-config, as users do),
# trains the same small model for 4 steps on a global batch of 8 with 1 rank (the reference)
# and with 2 (and 3) ranks in every mode, and compares the checkpoints that rank 0 saved
# (Tests/MPI/compare_ckpt.py: weights and target encoder within 1e-5 relative, same training
# position; or bitwise equal where the arithmetic is the same). Then the same for
# examples/mpi_train.py when mpi4py is installed. Every rank runs 1 thread.
# Environment: STAGE (default build/stage), PYTHON (python3), MPIRUN_ARGS (extra mpirun flags).
# Exits non-zero on any failure; the last line is "MPI tests: N passed, M failed[, K skipped]".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STAGE=${STAGE:-$ROOT/build/stage}
PYTHON=${PYTHON:-python3}
COMPARE="$PYTHON $ROOT/Tests/MPI/compare_ckpt.py"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ijepa-mpi.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PASSED=0 FAILED=0 SKIPPED=0
START=$SECONDS

pass() { echo "PASS  $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL  $1"; FAILED=$((FAILED + 1)); }
skip() { echo "SKIP  $1"; SKIPPED=$((SKIPPED + 1)); }
finish() {
    echo "MPI tests: $PASSED passed, $FAILED failed$([ "$SKIPPED" -gt 0 ] && echo ", $SKIPPED skipped") ($((SECONDS - START)) s)"
    [ "$FAILED" -eq 0 ]
    exit
}

# ---- prerequisites -------------------------------------------------------------------------
if [ ! -f "$STAGE/lib/pkgconfig/ijepa.pc" ]; then
    fail "no $STAGE/lib/pkgconfig/ijepa.pc: run 'make stage' first"; finish
fi
if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
    fail "mpicc/mpirun not found: install openmpi-bin and libopenmpi-dev (make -C examples/mpi deps)"; finish
fi
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
# shellcheck disable=SC2206
MPIRUN+=(${MPIRUN_ARGS:-})

# ---- build, as a user would ------------------------------------------------------------------
BIN=$WORK/mpi_train
export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig
# shellcheck disable=SC2046
if mpicc -std=c11 -Wall -Wextra -Werror -O2 "$ROOT/examples/mpi_train.c" -o "$BIN" \
        $(pkg-config --cflags --libs ijepa) $(pkg-config --libs zlib) -Wl,-rpath,"$STAGE/lib" -lm \
        >"$WORK/build.log" 2>&1; then
    pass "build examples/mpi_train.c with mpicc + pkg-config ijepa"
else
    cat "$WORK/build.log"; fail "build examples/mpi_train.c"; finish
fi

# The small config of the issue: image 32, patch 4, embed 64, depth 2, heads 4, predictor 32 x 2,
# min_keep 4; 4 steps of a global batch of 8; a fixed recipe so that split runs can resume.
COMMON=(--image 32 --patch 4 --embed 64 --depth 2 --heads 4 --pred-embed 32 --pred-depth 2
        --min-keep 4 --seed 7 --warmup 2 --total-steps 100 --batch 8 --threads 1 --log-every 4)
# The same with ragged contexts: the fmnist_tiny_ragged preset (ragged_context = 1, 1 channel)
# under the sizes above.
RAGGED=(--preset fmnist_tiny_ragged)

# run NAME NP CMD... : runs under mpirun with a timeout, output in $WORK/NAME.log
run() {
    local name=$1 np=$2; shift 2
    if ! timeout 120 "${MPIRUN[@]}" -np "$np" "$@" >"$WORK/$name.log" 2>&1; then
        echo "---- $name (np $np) failed; its output:"; tail -n 30 "$WORK/$name.log"
        return 1
    fi
    # Guard against N independent singletons (e.g. mpi4py built for another MPI than mpirun's):
    # each would train the whole batch alone and the comparisons would pass vacuously.
    if ! grep -q "^ranks $np x" "$WORK/$name.log"; then
        echo "---- $name: the program did not report $np ranks; its output:"; head -n 20 "$WORK/$name.log"
        return 1
    fi
}

# compare NAME REF OTHER [--exact]
compare() {
    local name=$1 ref=$2 other=$3; shift 3
    if $COMPARE "$ref" "$other" "$@" >"$WORK/cmp.log" 2>&1; then
        pass "$name"; sed 's/^/      /' "$WORK/cmp.log"
    else
        fail "$name"; sed 's/^/      /' "$WORK/cmp.log"
    fi
}

# expect_failure NAME PATTERN NP CMD... : the run must fail, printing PATTERN
expect_failure() {
    local name=$1 pattern=$2 np=$3; shift 3
    if timeout 120 "${MPIRUN[@]}" -np "$np" "$@" >"$WORK/neg.log" 2>&1; then
        fail "$name (the run succeeded)"
    elif grep -q "$pattern" "$WORK/neg.log"; then
        pass "$name"
    else
        tail -n 20 "$WORK/neg.log"; fail "$name (failed without '$pattern')"
    fi
}

# suite LABEL PROGRAM... : the runs and comparisons, for the C or the Python program
suite() {
    local L=$1; shift
    local P=("$@") D=$WORK/$L
    mkdir -p "$D"

    if run "$L-ref" 1 "${P[@]}" "${COMMON[@]}" --steps 4 --save "$D/ref.safetensors"; then
        pass "$L: 1 rank x 8 images, 4 steps (reference)"
    else
        fail "$L: reference run"; return
    fi
    if run "$L-seed" 2 "${P[@]}" "${COMMON[@]}" --steps 4 --init seed --save "$D/seed.safetensors"; then
        compare "$L: 2 ranks x 4 images, --init seed == reference (1e-5 relative)" "$D/ref.safetensors" "$D/seed.safetensors"
    else
        fail "$L: 2 ranks, --init seed"
    fi
    if run "$L-bcast" 2 "${P[@]}" "${COMMON[@]}" --steps 4 --init bcast --save "$D/bcast.safetensors" \
            && grep -q "before it the ranks differed" "$WORK/$L-bcast.log"; then
        compare "$L: 2 ranks x 4 images, --init bcast == reference (1e-5 relative)" "$D/ref.safetensors" "$D/bcast.safetensors"
        compare "$L: --init bcast == --init seed (bitwise)" "$D/seed.safetensors" "$D/bcast.safetensors" --exact
    else
        fail "$L: 2 ranks, --init bcast"
    fi
    # Local masks and the rank-ordered reduction: for 2 ranks the same additions, so bitwise.
    if run "$L-det" 2 "${P[@]}" "${COMMON[@]}" --steps 4 --masks local --deterministic --save "$D/det.safetensors"; then
        compare "$L: 2 ranks, --masks local --deterministic == allreduce run (bitwise)" "$D/seed.safetensors" "$D/det.safetensors" --exact
    else
        fail "$L: 2 ranks, --masks local --deterministic"
    fi
    # 3 ranks: unequal shards of 3, 3 and 2 images, weighted.
    if run "$L-np3" 3 "${P[@]}" "${COMMON[@]}" --steps 4 --deterministic --check-every 1 --save "$D/np3.safetensors"; then
        compare "$L: 3 ranks x 3/3/2 images, --deterministic == reference (1e-5 relative)" "$D/ref.safetensors" "$D/np3.safetensors"
    else
        fail "$L: 3 ranks, unequal shards"
    fi
    # Rank 0's checkpoint after 2 steps, resumed by 2 ranks for 2 more: the 4-step run exactly.
    if run "$L-half" 2 "${P[@]}" "${COMMON[@]}" --steps 2 --save "$D/half.safetensors" \
            && run "$L-resume" 2 "${P[@]}" --threads 1 --batch 8 --steps 2 --resume "$D/half.safetensors" \
                   --save "$D/resumed.safetensors"; then
        compare "$L: 2 + 2 steps via --save/--resume == 4 steps (bitwise)" "$D/seed.safetensors" "$D/resumed.safetensors" --exact
    else
        fail "$L: save after 2 steps and resume"
    fi
    # The checks catch ranks that were started differently (an MPMD launch, one command line
    # per rank): another seed (the weights, or with --init bcast the mask generator, differ) and
    # another option (which would otherwise deadlock in a different collective).
    expect_failure "$L: different seeds with --init seed are detected after setup" "replicas DIFFER after setup" \
        1 "${P[@]}" "${COMMON[@]}" --steps 1 --data-seed 0 --seed 1 : \
        -np 1 "${P[@]}" "${COMMON[@]}" --steps 1 --data-seed 0 --seed 2
    expect_failure "$L: different seeds with --init bcast are detected at the masks" "mask generators disagree" \
        1 "${P[@]}" "${COMMON[@]}" --steps 1 --data-seed 0 --init bcast --seed 1 : \
        -np 1 "${P[@]}" "${COMMON[@]}" --steps 1 --data-seed 0 --init bcast --seed 2
    expect_failure "$L: different options (--deterministic on one rank) are detected" "different configs, options" \
        1 "${P[@]}" "${COMMON[@]}" --steps 1 --deterministic : -np 1 "${P[@]}" "${COMMON[@]}" --steps 1

    # Gradient accumulation: every rank's shard as micro-batches (weights b_k / b_r), then the
    # rank weighting and the all-reduce. R ranks x K micro-batches == 1 rank x 1 batch.
    if run "$L-micro1" 1 "${P[@]}" "${COMMON[@]}" --steps 4 --micro-batch 3 --save "$D/micro1.safetensors" \
            && grep -q "in micro-batches of 3" "$WORK/$L-micro1.log"; then
        compare "$L: 1 rank x micro-batches 3+3+2 == reference (1e-5 relative)" "$D/ref.safetensors" "$D/micro1.safetensors"
    else
        fail "$L: 1 rank, --micro-batch 3"
    fi
    if run "$L-micro2" 2 "${P[@]}" "${COMMON[@]}" --steps 4 --micro-batch 2 --save "$D/micro2.safetensors"; then
        compare "$L: 2 ranks x 2 micro-batches of 2 == reference (1e-5 relative)" "$D/ref.safetensors" "$D/micro2.safetensors"
    else
        fail "$L: 2 ranks, --micro-batch 2"
    fi
    if run "$L-micro3" 3 "${P[@]}" "${COMMON[@]}" --steps 4 --micro-batch 2 --deterministic --save "$D/micro3.safetensors"; then
        compare "$L: 3 ranks x 3/3/2 images in micro-batches of 2 == reference (1e-5 relative)" "$D/ref.safetensors" "$D/micro3.safetensors"
    else
        fail "$L: 3 ranks, --micro-batch 2"
    fi
    # A micro-batch as large as the shard is the plain forward_backward: the same arithmetic.
    if run "$L-microall" 2 "${P[@]}" "${COMMON[@]}" --steps 4 --micro-batch 4 --save "$D/microall.safetensors"; then
        compare "$L: --micro-batch >= the shard == no --micro-batch (bitwise)" "$D/seed.safetensors" "$D/microall.safetensors" --exact
    else
        fail "$L: 2 ranks, --micro-batch 4"
    fi

    # Ragged contexts (--preset fmnist_tiny_ragged: ragged_context = 1): the global batch's ragged
    # masks, each rank its images' rows with their own lengths, gradients weighted by the ranks'
    # shares of the loss elements (b_r / B: every image has the same target rows).
    if run "$L-rref" 1 "${P[@]}" "${COMMON[@]}" "${RAGGED[@]}" --steps 4 --save "$D/rref.safetensors" \
            && grep -q "masks ragged" "$WORK/$L-rref.log"; then
        pass "$L: ragged contexts, 1 rank x 8 images, 4 steps (reference)"
    else
        fail "$L: ragged reference run"; return
    fi
    if run "$L-r2" 2 "${P[@]}" "${COMMON[@]}" "${RAGGED[@]}" --steps 4 --save "$D/r2.safetensors"; then
        compare "$L: ragged, 2 ranks x 4 images == ragged reference (1e-5 relative)" "$D/rref.safetensors" "$D/r2.safetensors"
    else
        fail "$L: ragged, 2 ranks"
    fi
    if run "$L-r3" 3 "${P[@]}" "${COMMON[@]}" "${RAGGED[@]}" --steps 4 --deterministic --check-every 1 --save "$D/r3.safetensors"; then
        compare "$L: ragged, 3 ranks x 3/3/2 images, --deterministic == ragged reference (1e-5 relative)" "$D/rref.safetensors" "$D/r3.safetensors"
    else
        fail "$L: ragged, 3 ranks"
    fi
    if run "$L-r2local" 2 "${P[@]}" "${COMMON[@]}" "${RAGGED[@]}" --steps 4 --masks local --deterministic \
            --save "$D/r2local.safetensors"; then
        compare "$L: ragged, 2 ranks, --masks local --deterministic == broadcast masks (bitwise)" "$D/r2.safetensors" "$D/r2local.safetensors" --exact
    else
        fail "$L: ragged, 2 ranks, --masks local"
    fi
    if run "$L-rmicro1" 1 "${P[@]}" "${COMMON[@]}" "${RAGGED[@]}" --steps 4 --micro-batch 3 --save "$D/rmicro1.safetensors"; then
        compare "$L: ragged, 1 rank x micro-batches 3+3+2 == ragged reference (1e-5 relative)" "$D/rref.safetensors" "$D/rmicro1.safetensors"
    else
        fail "$L: ragged, 1 rank, --micro-batch 3"
    fi
    if run "$L-rmicro2" 2 "${P[@]}" "${COMMON[@]}" "${RAGGED[@]}" --steps 4 --micro-batch 3 --save "$D/rmicro2.safetensors"; then
        compare "$L: ragged, 2 ranks x micro-batches 3+1 == ragged reference (1e-5 relative)" "$D/rref.safetensors" "$D/rmicro2.safetensors"
    else
        fail "$L: ragged, 2 ranks, --micro-batch 3"
    fi
    if run "$L-rhalf" 2 "${P[@]}" "${COMMON[@]}" "${RAGGED[@]}" --steps 2 --micro-batch 3 --save "$D/rhalf.safetensors" \
            && run "$L-rresume" 2 "${P[@]}" --threads 1 --batch 8 --micro-batch 3 --steps 2 --resume "$D/rhalf.safetensors" \
                   --save "$D/rresumed.safetensors"; then
        compare "$L: ragged, micro-batches, 2 + 2 steps via --save/--resume == 4 steps (bitwise)" "$D/rmicro2.safetensors" "$D/rresumed.safetensors" --exact
    else
        fail "$L: ragged, save after 2 steps and resume"
    fi
    expect_failure "$L: --micro-batch -1 is refused" "micro-batch" 1 "${P[@]}" "${COMMON[@]}" --steps 1 --micro-batch -1
}

echo "== C: examples/mpi_train.c"
suite c "$BIN"

FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ -f "$FMNIST" ]; then
    if run c-fmnist 2 "$BIN" "${COMMON[@]}" --steps 2 --fmnist --save "$WORK/c-fmnist.safetensors"; then
        pass "c: 2 ranks on Fashion-MNIST (--fmnist)"
    else
        fail "c: 2 ranks on Fashion-MNIST (--fmnist)"
    fi
else
    skip "c: --fmnist ($FMNIST not installed: apt-get install dataset-fashion-mnist)"
fi

echo "== Python: examples/mpi_train.py"
export IJEPA_LIBRARY=$STAGE/lib/libijepa.so.1
export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH}
if "$PYTHON" -c "import mpi4py.MPI, numpy" >/dev/null 2>&1; then
    suite py "$PYTHON" "$ROOT/examples/mpi_train.py"
    # Same images, masks and library: the Python program must train the C program's model.
    compare "py: the Python reference == the C reference (1e-5 relative)" "$WORK/c/ref.safetensors" "$WORK/py/ref.safetensors"
    # The same arithmetic in both programs (weights passed as the same float32): bitwise.
    for r in micro2 micro3 rref r3 rmicro2; do
        compare "py: $r == the C program's $r (bitwise)" "$WORK/c/$r.safetensors" "$WORK/py/$r.safetensors" --exact
    done
    if [ -f "$FMNIST" ]; then
        if run py-fmnist 2 "$PYTHON" "$ROOT/examples/mpi_train.py" "${COMMON[@]}" --steps 2 --fmnist \
                --save "$WORK/py-fmnist.safetensors"; then
            compare "py: --fmnist == the C program's --fmnist (1e-5 relative)" "$WORK/c-fmnist.safetensors" "$WORK/py-fmnist.safetensors"
        else
            fail "py: 2 ranks on Fashion-MNIST (--fmnist)"
        fi
    fi
else
    skip "py: mpi4py is not installed (pip install mpi4py) - the Python MPI tests did not run"
fi

finish
