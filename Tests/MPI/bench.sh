#!/usr/bin/env bash
# Data-parallel speed-up of examples/mpi_train.c on this machine (not part of the tests).
#
#   bash Tests/MPI/bench.sh [ROUNDS=3] [STEPS=10]
#
# The config of docs/distributed.md: image 32, patch 4, encoder 192 x 6, predictor 96 x 4,
# global batch 64, synthetic data. Runs 1 rank x 1 thread, 2 ranks x 1 thread and, for
# comparison, 1 rank x 2 threads, interleaved ROUNDS times (so that other load on the machine
# hits all three alike), and prints every run's images/s (the first step untimed) and the median.
set -euo pipefail
ROUNDS=${1:-3}
STEPS=${2:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STAGE=${STAGE:-$ROOT/build/stage}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ijepa-mpi-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig
# shellcheck disable=SC2046
mpicc -std=c11 -O2 "$ROOT/examples/mpi_train.c" -o "$WORK/mpi_train" \
    $(pkg-config --cflags --libs ijepa) $(pkg-config --libs zlib) -Wl,-rpath,"$STAGE/lib" -lm
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
ARGS=(--image 32 --patch 4 --embed 192 --depth 6 --heads 3 --pred-embed 96 --pred-depth 4 --min-keep 4
      --batch 64 --steps "$STEPS" --warmup 2 --total-steps 1000 --log-every 1000)

declare -A RES
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for setup in "1 1" "2 1" "1 2"; do
        read -r np th <<<"$setup"
        bind=()
        [ "$th" -gt 1 ] && bind=(--bind-to none)
        line=$("${MPIRUN[@]}" -np "$np" "${bind[@]}" "$WORK/mpi_train" "${ARGS[@]}" --threads "$th" | grep '^throughput\|^time per step\|^CPU time' | tr '\n' ' ')
        ips=$(sed -n 's/^throughput: \([0-9.]*\) images.*/\1/p' <<<"$line")
        echo "round $r  ${np} rank(s) x ${th} thread(s): $ips images/s   [${line#*\) }]"
        RES["$np x $th"]+="$ips "
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
for k in "1 x 1" "2 x 1" "1 x 2"; do
    med=$(tr ' ' '\n' <<<"${RES[$k]}" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "median $k: $med images/s"
done
