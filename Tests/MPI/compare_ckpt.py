#!/usr/bin/env python3
"""Compares two libijepa checkpoints (safetensors, parsed with json + numpy only).

    compare_ckpt.py REFERENCE OTHER [--rtol 1e-5] [--exact]

Default: the trainable weights ("encoder.*" + "predictor.*") and the target encoder
("target_encoder.*") must each agree to max|a - b| / max|ref| <= rtol over the whole group (as
examples/data_parallel_split.c measures it), the training position (step, mask generator) must be
the same and so must the config (n_threads aside). AdamW moments are reported, not judged: Adam
divides by sqrt(v) + eps, so gradients that are ~0 mathematically (e.g. attention key biases)
turn float rounding into large RELATIVE differences in m and v.

--exact: every tensor, AdamW included, must be bitwise equal.
Exit status 0 when the files agree, 1 when they do not, 2 on a bad file.
"""

import argparse
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}
POSITION_KEYS = ("ijepa.step", "ijepa.mask_counter", "ijepa.mask_rng", "ijepa.override")


def read(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
    except (OSError, ValueError, struct.error) as e:
        print("compare_ckpt: cannot read %s: %s" % (path, e), file=sys.stderr)
        sys.exit(2)
    meta = header.pop("__metadata__", {})
    body = memoryview(raw)[8 + n:]
    tensors = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        dt = DTYPES.get(info["dtype"])
        if dt is None:
            print("compare_ckpt: %s: tensor %s has dtype %s" % (path, name, info["dtype"]), file=sys.stderr)
            sys.exit(2)
        tensors[name] = np.frombuffer(body[lo:hi], dtype=dt).reshape(info["shape"])
    return meta, tensors


def group_of(name):
    for prefix, group in (("adam_m.", "adam_m"), ("adam_v.", "adam_v"), ("target_encoder.", "target"),
                          ("encoder.", "params"), ("predictor.", "params")):
        if name.startswith(prefix):
            return group
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("other")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--exact", action="store_true")
    a = ap.parse_args()

    meta_r, ref = read(a.reference)
    meta_o, oth = read(a.other)
    ok = True
    if set(ref) != set(oth):
        print("  tensor names differ: only in reference %s, only in other %s"
              % (sorted(set(ref) - set(oth))[:5], sorted(set(oth) - set(ref))[:5]))
        return 1

    cfg_r = json.loads(meta_r.get("ijepa.config", "{}"))
    cfg_o = json.loads(meta_o.get("ijepa.config", "{}"))
    for c in (cfg_r, cfg_o):
        c.pop("n_threads", None)
    if cfg_r != cfg_o:
        diff = {k: (cfg_r.get(k), cfg_o.get(k)) for k in set(cfg_r) | set(cfg_o) if cfg_r.get(k) != cfg_o.get(k)}
        print("  configs differ: %s" % diff)
        ok = False
    for k in POSITION_KEYS:
        if meta_r.get(k) != meta_o.get(k):
            print("  %s differs: %r vs %r" % (k, meta_r.get(k), meta_o.get(k)))
            ok = False

    stats = {}  # group -> [max|diff|, max|ref|, worst tensor rel, worst tensor name, n bitwise-different]
    for name in sorted(ref):
        r, o = ref[name], oth[name]
        if r.shape != o.shape or r.dtype != o.dtype:
            print("  %s: %s %s vs %s %s" % (name, r.shape, r.dtype, o.shape, o.dtype))
            ok = False
            continue
        g = stats.setdefault(group_of(name), [0.0, 0.0, 0.0, "", 0])
        r64, o64 = r.astype(np.float64), o.astype(np.float64)
        d = float(np.max(np.abs(r64 - o64))) if r.size else 0.0
        m = float(np.max(np.abs(r64))) if r.size else 0.0
        g[0] = max(g[0], d)
        g[1] = max(g[1], m)
        if m > 0 and d / m > g[2]:
            g[2], g[3] = d / m, name
        if r.tobytes() != o.tobytes():
            g[4] += 1

    for group in ("params", "target", "adam_m", "adam_v", "other"):
        if group not in stats:
            continue
        d, m, worst, worst_name, nbad = stats[group]
        rel = d / m if m > 0 else (0.0 if d == 0 else float("inf"))
        judged = a.exact or group in ("params", "target")
        verdict = ""
        if a.exact:
            verdict = "bitwise equal" if nbad == 0 else "%d tensors NOT bitwise equal" % nbad
            ok &= nbad == 0
        elif judged:
            verdict = "ok" if rel <= a.rtol else "EXCEEDS rtol %g" % a.rtol
            ok &= rel <= a.rtol
        print("  %-7s max|diff| %.3e / max|ref| %.3e = %.2e relative%s; worst tensor %.2e (%s)%s"
              % (group, d, m, rel, "" if judged else " (not judged)", worst, worst_name or "-",
                 (" -> " + verdict) if verdict else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
