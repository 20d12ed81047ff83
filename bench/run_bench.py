#!/usr/bin/env python3
"""Benchmark: this library (C ABI, bench_ijepa) against a PyTorch implementation of the
official train step (torch_step.py), alternating A/B/A/B in one run on identical configs,
thread counts and masks. Prints a table and writes bench/RESULTS.md.

usage: python3 bench/run_bench.py [--configs tiny32,...] [--threads 1,2] [--rounds 3] [--iters 5]
                                  [--scaling] [--out bench/RESULTS.md]
Run through `make bench`, which builds bench_ijepa against the staged install and installs
torch (CPU build) with pip when it is missing.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "build", "bench_ijepa")
TORCH = [sys.executable, os.path.join(HERE, "torch_step.py")]

# name: (img, patch, chans, dim, depth, heads, pdim, pdepth, batch)
#: Separates the part of RESULTS.md this script writes from the part it keeps.
KEEP_MARKER = "<!-- end of the part `make bench` rewrites: everything below is kept -->"

CONFIGS = {
    "tiny32": (32, 4, 3, 192, 6, 3, 96, 3, 32),
    "vit-tiny-64": (64, 8, 3, 192, 12, 3, 96, 6, 16),
    "vit-small-96": (96, 16, 3, 384, 12, 6, 192, 6, 16),
    "fmnist-tiny": (32, 4, 1, 192, 6, 3, 96, 4, 256),
}


def run(cmd, env=None):
    """Runs a child; returns its JSON line."""
    return run_rss(cmd, env)[0]


def run_rss(cmd, env=None):
    """Like run() but measures the child's peak RSS with wait4."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.close(r)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            os.execvpe(cmd[0], cmd, env or os.environ)
        finally:
            os._exit(127)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (status {status})")
    out = b"".join(chunks).decode()
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return json.loads(line), ru.ru_maxrss / 1024.0


def mask_dims(path, batch):
    with open(path, "rb") as f:
        data = f.read()
    (count,) = struct.unpack_from("<i", data, 0)
    off, dims = 4, []
    for _ in range(count):
        ne, ke, np_, kp = struct.unpack_from("<4i", data, off)
        off += 16 + 4 * (ne * batch * ke + np_ * batch * kp)
        dims.append((ne, ke, np_, kp))
    return dims


def train_flops(cfg, dims):
    """Matmul FLOPs of one train step (forward + backward), averaged over the mask batches."""
    img, patch, C, D, depth, H, Dp, pdepth, B = cfg
    N = (img // patch) ** 2
    P = C * patch * patch
    hid, phid = 4 * D, 4 * Dp
    total = 0.0
    for ne, kc, npd, kt in dims:
        def stack(tokens, seqs, T, W, hidden, L):
            per = 2 * tokens * (3 * W * W + W * W + 2 * W * hidden) + 4 * seqs * T * T * W
            return L * per
        target = 2 * B * N * P * D + stack(B * N, B, N, D, hid, depth)
        mc = ne * B * kc
        ctx = 3 * stack(mc, ne * B, kc, D, hid, depth) + 2 * 2 * mc * P * D
        sp, tp = npd * ne * B, kc + kt
        predf = 3 * (2 * mc * D * Dp + stack(sp * tp, sp, tp, Dp, phid, pdepth) + 2 * sp * kt * Dp * D)
        total += target + ctx + predf
    return total / len(dims)


def encode_flops(cfg):
    img, patch, C, D, depth, H, Dp, pdepth, B = cfg
    N = (img // patch) ** 2
    return 2 * B * N * C * patch * patch * D + depth * (2 * B * N * 12 * D * D + 4 * B * N * N * D)


def median(xs):
    return statistics.median(xs)


def machine():
    cpu = "unknown"
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args()
    env = dict(os.environ)
    rows, lines = [], []
    peaks = {}
    for t in map(int, a.threads.split(",")):
        e = dict(env, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t))
        s = run([BIN, "sgemm", "2048", str(t), "5"], e)
        peaks[t] = 2 * 2048 ** 3 / median(s["times"]) / 1e9
        print(f"sgemm 2048^3 peak, {t} thread(s): {peaks[t]:.1f} GFLOP/s", flush=True)
    import torch  # noqa: F401  (fail early with a clear message)
    for name in a.configs.split(","):
        cfg = CONFIGS[name]
        args = [str(x) for x in cfg]
        mpath = os.path.join(HERE, "build", f"masks-{name}.bin")
        subprocess.run([BIN, "masks", *args, "8", mpath], check=True)
        tf, ef = train_flops(cfg, mask_dims(mpath, cfg[-1])), encode_flops(cfg)
        allocs = run([BIN, "allocs", *args, "2", "1", mpath], dict(env))
        print(f"{name:13s} steady-state heap allocations inside the library: {allocs['train_allocs_per_step']:.0f} per train step "
              f"({allocs['train_bytes_per_step']:.0f} bytes), {allocs['encode_allocs_per_call']:.0f} per encode "
              f"({allocs['encode_bytes_per_call']:.0f} bytes)", flush=True)
        for t in map(int, a.threads.split(",")):
            e = dict(env, OMP_NUM_THREADS=str(t))
            res = {"ijepa": {"train": [], "encode": [], "rss": 0}, "torch": {"train": [], "encode": [], "rss": 0}}
            for _ in range(a.rounds):
                for impl in ("ijepa", "torch"):
                    for mode in ("train", "encode"):
                        base = [BIN] if impl == "ijepa" else TORCH
                        cmd = base + [mode, *args, str(t), str(a.iters)] + ([mpath] if mode == "train" else [])
                        out, rss = run_rss(cmd, e)
                        res[impl][mode] += out["times"]
                        res[impl]["rss"] = max(res[impl]["rss"], rss)
            B = cfg[-1]
            r = {"config": name, "threads": t, "allocs": allocs}
            for impl in ("ijepa", "torch"):
                r[f"{impl}_train_s"] = median(res[impl]["train"])
                r[f"{impl}_encode_s"] = median(res[impl]["encode"])
                r[f"{impl}_rss"] = res[impl]["rss"]
            r["train_ratio"] = r["torch_train_s"] / r["ijepa_train_s"]
            r["encode_ratio"] = r["torch_encode_s"] / r["ijepa_encode_s"]
            r["ijepa_gflops"] = tf / r["ijepa_train_s"] / 1e9
            r["torch_gflops"] = tf / r["torch_train_s"] / 1e9
            r["peak_pct"] = 100 * r["ijepa_gflops"] / peaks[t]
            r["ijepa_img_s"] = B / r["ijepa_train_s"]
            r["torch_img_s"] = B / r["torch_train_s"]
            r["ijepa_enc_img_s"] = B / r["ijepa_encode_s"]
            r["torch_enc_img_s"] = B / r["torch_encode_s"]
            rows.append(r)
            print(f"{name:13s} t={t}: train {r['ijepa_img_s']:7.1f} vs {r['torch_img_s']:7.1f} img/s "
                  f"(x{r['train_ratio']:.2f}, {r['ijepa_gflops']:.0f} GFLOP/s = {r['peak_pct']:.0f}% of sgemm peak); "
                  f"encode x{r['encode_ratio']:.2f}; RSS {r['ijepa_rss']:.0f} vs {r['torch_rss']:.0f} MiB", flush=True)
    scaling = []
    write_results(a.out, rows, peaks, scaling)   # the main table first; scaling appended below
    with open(os.path.join(HERE, "build", "rows.json"), "w") as f:
        json.dump({"rows": rows, "peaks": peaks}, f)
    if a.scaling:
        for img in (32, 64, 96, 128, 224):
            cfg = (img, 8, 3, 192, 6, 3, 96, 3, 8)
            args = [str(x) for x in cfg]
            mpath = os.path.join(HERE, "build", f"masks-scale-{img}.bin")
            subprocess.run([BIN, "masks", *args, "4", mpath], check=True)
            out, _ = run_rss([BIN, "train", *args, "2", str(a.iters), mpath], env)
            dims = mask_dims(mpath, 8)
            N = (img // 8) ** 2
            attn = sum(4 * 8 * N * N * 192 for _ in range(1)) * 6
            scaling.append((img, N, median(out["times"]), train_flops(cfg, dims) / median(out["times"]) / 1e9,
                            attn / encode_flops(cfg)))
            print(f"scaling img {img}: N={N} step {median(out['times'])*1e3:.1f} ms", flush=True)
        for B in (8, 16, 32, 64, 128):
            cfg = (32, 4, 3, 192, 6, 3, 96, 3, B)
            args = [str(x) for x in cfg]
            mpath = os.path.join(HERE, "build", f"masks-batch-{B}.bin")
            subprocess.run([BIN, "masks", *args, "4", mpath], check=True)
            out, _ = run_rss([BIN, "train", *args, "2", str(a.iters), mpath], env)
            scaling.append(("batch", B, median(out["times"]), train_flops(cfg, mask_dims(mpath, B)) / median(out["times"]) / 1e9, None))
            print(f"scaling batch {B}: step {median(out['times'])*1e3:.1f} ms", flush=True)
    write_results(a.out, rows, peaks, scaling)


def write_results(path, rows, peaks, scaling):
    import torch
    L = []
    L.append("# Benchmark results\n")
    L.append(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    L.append(f"- machine: {machine()}")
    L.append(f"- torch {torch.__version__} (CPU), Python {platform.python_version()}; this library through its C ABI")
    L.append("- method: `make bench` (bench/run_bench.py): separate processes, alternating ijepa/torch per round, "
             "medians of all timed iterations after 2 warm-up steps; identical configs, threads and masks "
             "(8 mask batches from the official collator, cycled); FLOPs counted from the matmul shapes.")
    L.append("- sgemm peak (2048³, same run): " + ", ".join(f"{t} thread(s) {p:.0f} GFLOP/s" for t, p in peaks.items()))
    L.append("")
    L.append("| config | threads | ijepa img/s | torch img/s | train ratio | ijepa GFLOP/s | % sgemm peak | encode ratio | RSS ijepa / torch (MiB) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        L.append(f"| {r['config']} | {r['threads']} | {r['ijepa_img_s']:.1f} | {r['torch_img_s']:.1f} | "
                 f"{r['train_ratio']:.2f}x | {r['ijepa_gflops']:.0f} | {r['peak_pct']:.0f}% | {r['encode_ratio']:.2f}x | "
                 f"{r['ijepa_rss']:.0f} / {r['torch_rss']:.0f} |")
    L.append("\n## Heap allocations in a steady-state step (this library, counted by bench_ijepa's malloc)\n")
    L.append("| config | train: allocations / step | bytes / step | encode: allocations / call | bytes / call |")
    L.append("|---|---|---|---|---|")
    seen = set()
    for r in rows:
        if r["config"] in seen:
            continue
        seen.add(r["config"])
        a = r["allocs"]
        L.append(f"| {r['config']} | {a['train_allocs_per_step']:.0f} | {a['train_bytes_per_step']:.0f} | "
                 f"{a['encode_allocs_per_call']:.0f} | {a['encode_bytes_per_call']:.0f} |")
    if scaling:
        L.append("\n## Scaling (this library, 2 threads)\n")
        L.append("| image | patches N | step ms | GFLOP/s | attention share of encoder FLOPs |")
        L.append("|---|---|---|---|---|")
        for s in scaling:
            if s[0] == "batch":
                continue
            L.append(f"| {s[0]} | {s[1]} | {s[2]*1e3:.1f} | {s[3]:.0f} | {100*s[4]:.0f}% |")
        L.append("\n| batch (tiny32) | step ms | ms / image | GFLOP/s |")
        L.append("|---|---|---|---|")
        for s in scaling:
            if s[0] != "batch":
                continue
            L.append(f"| {s[1]} | {s[2]*1e3:.1f} | {s[2]*1e3/s[1]:.2f} | {s[3]:.0f} |")
    # the generated part is replaced; what follows the marker (hand-written notes, older runs,
    # the encoder benchmark's sections) is kept
    tail = ""
    if os.path.exists(path):
        old = open(path).read()
        if KEEP_MARKER in old:
            tail = old[old.index(KEEP_MARKER) + len(KEEP_MARKER):]
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n\n" + KEEP_MARKER + tail)
    print("wrote", path)


if __name__ == "__main__":
    main()
