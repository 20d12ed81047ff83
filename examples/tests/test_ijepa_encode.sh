#!/usr/bin/env bash
# test_ijepa_encode.sh — checks ijepa-encode end to end (run by `make -C examples run`).
#
#   tests/test_ijepa_encode.sh BUILD_DIR      (BUILD_DIR holds ijepa-encode and make_images)
#
# Weights: $IJEPA_ENCODE_WEIGHTS if set, else Tests/Fixtures/encoders/hf_v5 (a Hugging Face
# IJepaModel directory) if it exists, else a "tiny32" checkpoint written by make_images.
# Checks: exit statuses (0 / 2 / 1), failed files named on stderr, the .npy header and shape
# (numpy), the --list rows, rows equal to make_images' one-image ijepa_encoder_encode of the
# same preprocessed pixels, --batch not changing the rows (1e-5), --last-k, atomic output.
# Exits 1 if any check fails.
set -u

BUILD=$(cd "${1:?usage: test_ijepa_encode.sh BUILD_DIR}" && pwd)
ENC=$BUILD/ijepa-encode
HELPER=$BUILD/make_images
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FAILS=0

pass() { echo "  ok    $1"; }
bad() { echo "  FAIL  $1" >&2; FAILS=$((FAILS + 1)); }
# check "what" command...: passes when the command succeeds.
check() { local what=$1; shift; if "$@"; then pass "$what"; else bad "$what"; fi; }
# status "what" expected command...: runs the command (stderr to $TMP/err), compares its exit status.
status() {
    local what=$1 want=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"; local got=$?
    if [ "$got" = "$want" ]; then pass "$what (exit $got)"
    else bad "$what: exit $got, expected $want"; sed 's/^/        /' "$TMP/err" >&2; fi
}
# py "what" code args...: a numpy check; the code asserts.
py() { local what=$1 code=$2; shift 2; check "$what" python3 -c "import sys, numpy as np
$code" "$@"; }

echo "== ijepa-encode"
"$HELPER" images "$TMP" || { echo "make_images failed" >&2; exit 1; }
printf 'this is not an image\n' >"$TMP/corrupt.png"
head -c 200 "$TMP/b.jpg" >"$TMP/truncated.jpg"
W=${IJEPA_ENCODE_WEIGHTS:-$HERE/../../Tests/Fixtures/encoders/hf_v5}
if [ ! -e "$W" ]; then
    W=$TMP/tiny32.safetensors
    "$HELPER" checkpoint "$W" || { echo "make_images checkpoint failed" >&2; exit 1; }
fi
echo "  weights: $W"
GOOD=("$TMP/a.png" "$TMP/b.jpg" "$TMP/c.png" "$TMP/d.png")

# Mixed inputs: two bad files among good ones -> exit 2, named on stderr, the rest encoded.
status "corrupt and missing files skipped" 2 \
    "$ENC" "$W" "$TMP/a.png" "$TMP/corrupt.png" "$TMP/b.jpg" "$TMP/missing.png" "$TMP/c.png" "$TMP/d.png" \
    --batch 3 -o "$TMP/mixed.npy" --list "$TMP/mixed.txt"
check "corrupt.png reported" grep -q "corrupt.png: " "$TMP/err"
check "missing.png reported" grep -q "missing.png: No such file" "$TMP/err"
check "summary line printed" grep -q "encoded 4/6 images" "$TMP/err"
printf '%s\n' "${GOOD[@]}" >"$TMP/want.txt"
check "--list names the rows in input order" cmp -s "$TMP/want.txt" "$TMP/mixed.txt"
check "no temporary file left" bash -c "! ls '$TMP' | grep -q '\.tmp\.'"

py "npy header: version 1.0, '<f4', C order, 64-byte aligned" '
raw = open(sys.argv[1], "rb").read()
assert raw[:8] == b"\x93NUMPY\x01\x00", raw[:8]
hlen = int.from_bytes(raw[8:10], "little")
assert (10 + hlen) % 64 == 0 and raw[9 + hlen:10 + hlen] == b"\n"
a = np.load(sys.argv[1])
assert a.dtype == np.dtype("<f4") and a.flags.c_contiguous and a.ndim == 2 and a.shape[0] == 4, (a.dtype, a.shape)
assert len(raw) == 10 + hlen + a.size * 4
assert np.isfinite(a).all() and (np.abs(a).sum(1) > 0).all()
' "$TMP/mixed.npy"

# All-good inputs -> exit 0; other batch sizes must give the same rows.
for b in 1 4 8; do
    status "--batch $b, all images good" 0 "$ENC" "$W" "${GOOD[@]}" --batch "$b" -q -o "$TMP/b$b.npy"
done
py "rows independent of --batch (1e-5) and of skipped files" '
ref = np.load(sys.argv[1])
for p in sys.argv[2:]:
    a = np.load(p)
    assert a.shape == ref.shape, (p, a.shape)
    assert np.allclose(a, ref, rtol=0, atol=1e-5), (p, np.abs(a - ref).max())
' "$TMP/b1.npy" "$TMP/b4.npy" "$TMP/b8.npy" "$TMP/mixed.npy"

# Rows equal ijepa_encoder_encode of the same preprocessed pixels, one image at a time.
if "$HELPER" reference "$W" "$TMP/ref.f32" "${GOOD[@]}"; then
    py "rows equal make_images reference (ijepa_encoder_encode, 1e-5)" '
ref = np.fromfile(sys.argv[1], dtype=np.float32)
a = np.load(sys.argv[2])
assert ref.size == a.size, (ref.size, a.shape)
ref = ref.reshape(a.shape)
assert np.allclose(a, ref, rtol=0, atol=1e-5), np.abs(a - ref).max()
' "$TMP/ref.f32" "$TMP/b4.npy"
else bad "make_images reference"; fi

# --last-k 2: (rows, 2*D), earliest block first, so the last D columns are the pooled output.
status "--last-k 2" 0 "$ENC" "$W" "${GOOD[@]}" --last-k 2 --batch 2 -q -o "$TMP/k2.npy"
py "--last-k 2 shape and last block == pooled (1e-5)" '
k2, p = np.load(sys.argv[1]), np.load(sys.argv[2])
D = p.shape[1]
assert k2.shape == (p.shape[0], 2 * D), (k2.shape, p.shape)
assert np.allclose(k2[:, D:], p, rtol=0, atol=1e-5), np.abs(k2[:, D:] - p).max()
assert not np.allclose(k2[:, :D], p, rtol=0, atol=1e-5)
' "$TMP/k2.npy" "$TMP/b1.npy"

# Preprocessing options: another crop (a grid other than the weights') and explicit stats.
status "--resize/--crop/--mean/--std/--threads/--encoder" 0 "$ENC" "$W" "${GOOD[@]}" --resize 40 --crop=36 \
    --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25 --threads 2 --encoder target -q -o "$TMP/crop.npy"
py "--crop output shape and differs from the default" '
a, p = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == p.shape and np.isfinite(a).all() and not np.allclose(a, p, atol=1e-3)
' "$TMP/crop.npy" "$TMP/b1.npy"
status "--resize 0 (crop only)" 0 "$ENC" "$W" "${GOOD[@]}" --resize 0 --crop 16 -q -o "$TMP/r0.npy"

# Nothing encodable -> exit 1 and an existing output left untouched (atomic write).
cp "$TMP/b1.npy" "$TMP/keep.npy"
status "only bad images" 1 "$ENC" "$W" "$TMP/corrupt.png" "$TMP/missing.png" "$TMP/truncated.jpg" -o "$TMP/keep.npy"
check "existing output untouched on failure" cmp -s "$TMP/b1.npy" "$TMP/keep.npy"
check "truncated.jpg reported" grep -q "truncated.jpg: " "$TMP/err"

# --save: the encoder file alone, then given as WEIGHTS: the same rows as the weights themselves.
status "--save without images" 0 "$ENC" "$W" --save "$TMP/enc.safetensors"
check "  ... wrote the encoder file" test -s "$TMP/enc.safetensors"
status "the saved encoder file as WEIGHTS" 0 "$ENC" "$TMP/enc.safetensors" "${GOOD[@]}" -o "$TMP/saved.npy"
status "the weights, for comparison" 0 "$ENC" "$W" "${GOOD[@]}" -o "$TMP/direct.npy" --save "$TMP/enc2.safetensors"
check "  ... the same rows from the encoder file" cmp -s "$TMP/saved.npy" "$TMP/direct.npy"
check "  ... saved while encoding" cmp -s "$TMP/enc.safetensors" "$TMP/enc2.safetensors"
status "--save to a directory that does not exist" 1 "$ENC" "$W" --save "$TMP/no/such/enc.safetensors"
check "  ... message names the file" grep -q "no/such/enc.safetensors" "$TMP/err"

# Usage errors and fatal errors -> exit 1 with a message, never a crash.
status "--help" 0 "$ENC" --help
check "  ... prints the usage" grep -q "^usage: ijepa-encode" "$TMP/out"
status "no arguments" 1 "$ENC"
status "no images" 1 "$ENC" "$W" -o "$TMP/x.npy"
status "no -o" 1 "$ENC" "$W" "$TMP/a.png"
for bad_opt in "--batch 0" "--batch -3" "--batch abc" "--batch 12x" "--batch 99999999999" "--threads 0" \
               "--last-k 0" "--heads -1" "--crop 0" "--resize -1" "--mean 1,2" "--mean a,b,c" \
               "--std 0.2,0,0.2" "--std 1,2,3,4" "--encoder both" "--frobnicate 1" "-x"; do
    # shellcheck disable=SC2086
    status "usage error: $bad_opt" 1 "$ENC" "$W" "$TMP/a.png" -o "$TMP/x.npy" $bad_opt
    grep -q "ijepa-encode: " "$TMP/err" || bad "  ... no message for $bad_opt"
done
status "missing option value" 1 "$ENC" "$W" "$TMP/a.png" -o "$TMP/x.npy" --batch
status "--last-k larger than the depth" 1 "$ENC" "$W" "$TMP/a.png" --last-k 1000 -o "$TMP/x.npy"
status "weights that do not exist" 1 "$ENC" "$TMP/nope.safetensors" "$TMP/a.png" -o "$TMP/x.npy"
check "  ... message names the weights" grep -q "nope.safetensors" "$TMP/err"
status "weights that are not weights" 1 "$ENC" "$TMP/a.png" "$TMP/a.png" -o "$TMP/x.npy"
status "output directory that does not exist" 1 "$ENC" "$W" "$TMP/a.png" -o "$TMP/no/such/dir.npy"
check "no x.npy written by the failed runs" test ! -e "$TMP/x.npy"

if [ "$FAILS" -ne 0 ]; then echo "test_ijepa_encode: $FAILS check(s) FAILED" >&2; exit 1; fi
echo "test_ijepa_encode: all checks passed"
