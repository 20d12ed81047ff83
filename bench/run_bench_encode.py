#!/usr/bin/env python3
"""Inference speed of pretrained encoders: this library's ijepa.Encoder against PyTorch
(transformers IJepaModel) and ONNX Runtime, same weights, same images, same thread count.
Prints a table and appends a dated section to bench/RESULTS.md.

usage: python3 bench/run_bench_encode.py [--rows vit-b16-b1,...] [--rounds 3] [--iters N]
           [--warmup N] [--quick] [--engines ijepa,torch,ort,ort-int8] [--no-int8]
           [--threads 2] [--timeout 3600] [--out bench/RESULTS.md] [--no-write]
Run through `make bench-encode` (stages the library first; BENCH_ENCODE_ARGS passes options).

What it does:
- per model (ViT-S/16, ViT-B/16, ViT-H/14 at 224 px): a random-init transformers IJepaModel with
  the official sin-cos position table, saved with save_pretrained into
  bench/build/encode-models/<name>/ (bench/encode_make_model.py), its ONNX export (wrapper
  whose output is the mean over tokens; torch.onnx.export dynamo=False, opset 17, dynamic batch)
  and a dynamically quantized int8 copy (bench/encode_export_onnx.py), each made once in its own
  process and reused by later runs; and this library's encoder file of it (Encoder.save), made
  again by every run in its own process (the "ijepa file" engine loads it: mapped, not read);
- one .npy of images per batch size, read by every engine;
- the sgemm peak of this run: 2048^3 with 2 threads through the OpenBLAS the library links to
  (cblas_sgemm via ctypes) and torch.mm, each in its own process;
- per row and round, each engine in its own process (bench/encode_worker.py), order rotated
  between rounds, its weight files read once just before (page cache warm for every engine): load,
  first call (its features are compared), warm-up, timed calls.

dev-only: torch, transformers, onnx and onnxruntime are pip-installed when missing (torch pinned:
an unpinned pip pulls the CUDA build); the library itself never needs them.
"""
import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(HERE, "build", "encode-models")
RUN = os.path.join(HERE, "build", "encode-run")
WORKER = os.path.join(HERE, "encode_worker.py")
STAGED_LIB = os.path.join(ROOT, "build", "stage", "lib", "libijepa.so.1")

# name: (label, embed dim, depth, heads, MLP width, patch); all 224 px, eps 1e-6, exact gelu
MODELS = {
    "vit-s16": ("ViT-S/16", 384, 12, 6, 1536, 16),
    "vit-b16": ("ViT-B/16", 768, 12, 12, 3072, 16),
    "vit-h14": ("ViT-H/14", 1280, 32, 16, 5120, 14),
}
IMAGE = 224
# row: (model, batch, default warm-up calls, default timed calls per process)
ROWS = {
    "vit-b16-b1": ("vit-b16", 1, 3, 20),
    "vit-b16-b8": ("vit-b16", 8, 1, 5),
    "vit-h14-b1": ("vit-h14", 1, 1, 5),
    "vit-h14-b8": ("vit-h14", 8, 1, 3),
    "vit-s16-b32": ("vit-s16", 32, 1, 5),
}
ENGINES = ("ijepa", "ijepa-file", "torch", "ort", "ort-int8")
CORE = ("ijepa", "ijepa-file", "torch", "ort")  # a failure of these fails the run; ort-int8 is for reference
LABEL = {"ijepa": "ijepa", "ijepa-file": "ijepa file", "torch": "torch", "ort": "ORT", "ort-int8": "ORT int8"}
PIP = {"torch": "torch=={torch}", "transformers": "transformers==5.25.0", "onnx": "onnx",
       "onnxruntime": "onnxruntime", "numpy": "numpy", "safetensors": "safetensors"}


# ---- helpers ------------------------------------------------------------------------------
def log(msg):
    print(msg, flush=True)


def ensure_deps():
    """pip-installs what is missing (dev-only packages of the benchmark)."""
    missing = [m for m in PIP if importlib.util.find_spec(m) is None]
    if not missing:
        return
    specs = [PIP[m].format(torch=os.environ.get("TORCH_VERSION", "2.13.0")) for m in missing]
    log(f"== installing {' '.join(specs)}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *specs], check=True)
    importlib.invalidate_caches()


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def encode_flops(model):
    """Matmul FLOPs of one image through the encoder: patch embedding, then per block qkv,
    QK^T, AV, proj, fc1, fc2 (2 FLOPs per multiply-add)."""
    _, D, depth, _, M, p = MODELS[model]
    N = (IMAGE // p) ** 2
    patch = 2 * N * (3 * p * p) * D
    block = 2 * N * D * 3 * D + 2 * N * N * D + 2 * N * N * D + 2 * N * D * D + 2 * N * D * M + 2 * N * M * D
    return patch + depth * block


def signame(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return str(n)


def last_line(path):
    t = tail(path, 1)
    return ": " + t[6:][:300] if t else ""


def tail(path, n=12):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
    except OSError:
        return ""
    return "\n".join("    | " + l for l in lines[-n:])


class ChildFailed(Exception):
    pass


def cpu_busy_seconds():
    """CPU-seconds spent busy by all processes since boot, summed over the cores (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")


def warm_page_cache(target):
    """Reads the weight files of an engine's target once (a model directory's files, or the files
    beside an ONNX model: its external data), so that no engine's load pays a disk read that
    another engine's load of the same file would not."""
    d = target if os.path.isdir(target) else os.path.dirname(target)
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass


def run_child(cmd, env, timeout, log_path):
    """Runs cmd with stdout to a file and stderr to log_path, killed after `timeout` seconds.
    Returns (JSON of its last '{' line, spawn time (monotonic, just before the fork), peak RSS in
    MiB from wait4, cores used by other processes meanwhile on average (all busy CPU time from
    /proc/stat minus the child's own user+system time, over the wall time; None if unknown)).
    Raises ChildFailed with the reason and the end of its stderr."""
    with open(log_path, "w") as err, tempfile.TemporaryFile(mode="w+") as out:
        busy0 = cpu_busy_seconds()
        t_spawn = time.monotonic()
        p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timed_out = False
        try:
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - t_spawn > timeout:
                    timed_out = True
                    p.kill()  # not reaped yet, so the pid is still this child's
                    _, status, ru = os.wait4(p.pid, 0)
                    break
                time.sleep(0.05)
        except BaseException:
            p.kill()
            os.wait4(p.pid, 0)
            p.returncode = -9
            raise
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        wall, busy1 = time.monotonic() - t_spawn, cpu_busy_seconds()
        others = None
        if busy0 is not None and busy1 is not None and wall > 0.5:
            others = max(0.0, (busy1 - busy0 - ru.ru_utime - ru.ru_stime) / wall)
        rss = ru.ru_maxrss / 1024.0
        what = os.path.basename(cmd[1]) + " " + " ".join(cmd[2:4])
        if timed_out:
            raise ChildFailed(f"{what}: timed out after {timeout:.0f} s (killed); log {log_path}\n{tail(log_path)}")
        if p.returncode != 0:
            code = p.returncode
            why = (f"killed by {signame(-code)}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
                   if code < 0 else f"exit status {code}")
            raise ChildFailed(f"{what}: {why}, peak RSS {rss:.0f} MiB{last_line(log_path)} (log {log_path})\n{tail(log_path)}")
        out.seek(0)
        lines = [l for l in out.read().splitlines() if l.startswith("{")]
        if not lines:
            raise ChildFailed(f"{what}: printed no result line; log {log_path}\n{tail(log_path)}")
        return json.loads(lines[-1]), t_spawn, rss, others


def child_env(threads):
    e = dict(os.environ)
    t = str(threads)
    e.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, PYTHONUNBUFFERED="1",
             TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
    return e


def machine():
    cpu, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name") and cpu == "unknown":
                    cpu = l.split(":", 1)[1].strip()
                elif l.startswith("flags") and not flags:
                    flags = set(l.split(":", 1)[1].split())
    except OSError:
        pass
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        vec = "AVX-512 (F/BW/DQ/VL" + (", VNNI" if "avx512_vnni" in flags else "") + \
              (", BF16" if "avx512_bf16" in flags else "") + ")"
    elif "avx2" in flags:
        vec = "AVX2" + (" + FMA" if "fma" in flags else "")
    else:
        vec = "no AVX2"
    return f"{cpu}, {os.cpu_count()} cores, {vec}, {platform.platform()}"


def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def library_line(lib, ijepa_info):
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "Sources", "include", "Package.swift")
    ver = ijepa_info.get("version", "?") if ijepa_info else "?"
    built = "?"
    try:
        built = datetime.datetime.fromtimestamp(os.path.getmtime(os.path.realpath(lib)),
                                                datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        pass
    return (f"ijepa {ver}, commit {commit}" + (" + uncommitted changes in Sources/" if dirty else "")
            + f", {os.path.relpath(os.path.realpath(lib), ROOT)} built {built}")


def openblas_of(lib):
    """The libopenblas the library is linked against (from ldd), or the soname."""
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"(libopenblas[^\s]*)\s+=>\s+(\S+)", out)
        if m:
            return m.group(2)
    except (OSError, subprocess.SubprocessError):
        pass
    return "libopenblas.so.0"


def fmt(x, spec, suffix="", missing="–"):
    return missing if x is None else format(x, spec) + suffix


# ---- preparation (each step in its own process, cached) ------------------------------------
def stamp_of(path):
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def prepare_model(name, env, timeout):
    """bench/build/encode-models/<name>/{config.json, model.safetensors}; made when missing."""
    _, D, depth, H, M, p = MODELS[name]
    d = os.path.join(CACHE, name)
    want = {"dim": D, "depth": depth, "heads": H, "mlp": M, "patch": p, "image": IMAGE, "seed": 0}
    if read_json(os.path.join(d, "bench-model.json")) == want and os.path.exists(os.path.join(d, "model.safetensors")):
        return d
    log(f"== {name}: writing a random-init IJepaModel to {os.path.relpath(d, ROOT)}")
    t = time.time()
    run_child([sys.executable, os.path.join(HERE, "encode_make_model.py"), d, "--dim", str(D), "--depth", str(depth),
               "--heads", str(H), "--mlp", str(M), "--patch", str(p), "--image", str(IMAGE)],
              env, timeout, os.path.join(RUN, f"make-{name}.log"))
    log(f"   done in {time.time() - t:.0f} s")
    return d


def prepare_onnx(name, model_dir, kind, env, timeout):
    """model_dir/onnx/model.onnx (kind fp32) or model_dir/onnx-int8/model.onnx (int8), made when
    missing or older than what it is made from. Returns (path, seconds it took or 0 if cached)."""
    src = os.path.join(model_dir, "model.safetensors") if kind == "fp32" else os.path.join(model_dir, "onnx", "model.onnx")
    out_dir = os.path.join(model_dir, "onnx" if kind == "fp32" else "onnx-int8")
    path = os.path.join(out_dir, "model.onnx")
    stamp_path = os.path.join(out_dir, "bench-stamp.json")
    if os.path.exists(path) and read_json(stamp_path) == stamp_of(src):
        return path, 0.0
    log(f"== {name}: {'exporting ONNX (torch.onnx.export, dynamo=False, opset 17)' if kind == 'fp32' else 'quantizing ONNX to int8 (quantize_dynamic)'}")
    t = time.time()
    arg = model_dir if kind == "fp32" else src
    res, _, rss, _ = run_child([sys.executable, os.path.join(HERE, "encode_export_onnx.py"), kind, arg, out_dir],
                            env, timeout, os.path.join(RUN, f"onnx-{kind}-{name}.log"))
    with open(stamp_path, "w") as f:
        json.dump(stamp_of(src), f)
    secs = time.time() - t
    log(f"   done in {secs:.0f} s ({res.get('bytes', 0) / 2**20:.0f} MiB on disk, peak RSS {rss:.0f} MiB)")
    return path, secs


def prepare_encoder_file(name, model_dir, env, timeout):
    """model_dir/ijepa/encoder.safetensors, saved by this library from the model directory in its
    own process (every run: the staged library decides the file's layout)."""
    out = os.path.join(model_dir, "ijepa", "encoder.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    log(f"== {name}: saving this library's encoder file")
    t = time.time()
    res, _, rss, _ = run_child([sys.executable, WORKER, "ijepa-save", model_dir, out, "--threads", env["OMP_NUM_THREADS"]],
                               env, timeout, os.path.join(RUN, f"save-{name}.log"))
    log(f"   done in {time.time() - t:.0f} s ({res.get('bytes', 0) / 2**20:.0f} MiB, peak RSS {rss:.0f} MiB)")
    return out


def make_images(batch):
    import numpy as np
    path = os.path.join(RUN, f"images-{IMAGE}-b{batch}.npy")
    x = np.random.default_rng(1000 + batch).standard_normal((batch, 3, IMAGE, IMAGE), dtype=np.float32)
    np.save(path, x)
    return path


def sgemm_peak(engine, lib, env, timeout):
    cmd = [sys.executable, WORKER, engine] + ([lib] if lib else []) + ["--threads", env["OMP_NUM_THREADS"]]
    try:
        res, _, _, _ = run_child(cmd, env, timeout, os.path.join(RUN, f"{engine}.log"))
    except ChildFailed as e:
        log(f"sgemm peak ({engine}) failed: {e}")
        return None, {}
    return res["flop"] / statistics.median(res["times"]) / 1e9, res["info"]


# ---- main ---------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default=",".join(ROWS), help="subset of " + ",".join(ROWS))
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3; 1 with --quick)")
    ap.add_argument("--iters", type=int, default=None, help="timed calls per process (default: per row)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up calls per process, >= 1 (default: per row)")
    ap.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed calls, 1 round: for testing")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 ONNX Runtime column")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a child process is killed")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print only; do not append to --out")
    a = ap.parse_args()

    rows = [r.strip() for r in a.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    bad_e = [e for e in engines if e not in ENGINES]
    if bad or bad_e or not rows or not engines:
        ap.error(f"unknown rows {bad} / engines {bad_e}; rows: {', '.join(ROWS)}; engines: {', '.join(ENGINES)}")
    if a.no_int8 and "ort-int8" in engines:
        engines.remove("ort-int8")
    rounds = a.rounds if a.rounds is not None else (1 if a.quick else 3)
    if rounds < 1 or (a.iters is not None and a.iters < 1) or (a.warmup is not None and a.warmup < 1):
        ap.error("--rounds, --iters and --warmup must be >= 1")

    lib = os.environ.get("IJEPA_LIBRARY") or STAGED_LIB
    if ("ijepa" in engines or "ijepa-file" in engines) and not os.path.exists(lib):
        raise SystemExit(f"libijepa not found at {lib}: run `make stage` or set IJEPA_LIBRARY")
    ensure_deps()
    os.makedirs(CACHE, exist_ok=True)
    os.makedirs(RUN, exist_ok=True)
    env = child_env(a.threads)
    env["IJEPA_LIBRARY"] = os.path.abspath(lib)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    log(f"machine: {machine()}; load average {load_start[0]:.2f}")
    failures, notes = [], []

    # models, ONNX exports, images (prepared before any timing)
    model_dirs, engine_files, prep = {}, {}, {}
    for name in dict.fromkeys(ROWS[r][0] for r in rows):
        try:
            model_dirs[name] = prepare_model(name, env, a.timeout)
        except ChildFailed as e:
            failures.append(f"{name}: making the model failed: {e}")
            log(failures[-1])
            continue
        for kind, eng in (("fp32", "ort"), ("int8", "ort-int8")):
            if eng not in engines and not (kind == "fp32" and "ort-int8" in engines):
                continue
            if kind == "int8" and (name, "ort") in prep and isinstance(prep[(name, "ort")], str):
                prep[(name, eng)] = "the fp32 export failed"
                continue
            try:
                engine_files[(name, eng)], secs = prepare_onnx(name, model_dirs[name], kind, env, a.timeout)
                prep[(name, eng)] = secs
            except ChildFailed as e:
                prep[(name, eng)] = str(e).split("\n")[0]
                (failures if eng in engines and eng in CORE else notes).append(
                    f"{name}: {'ONNX export' if kind == 'fp32' else 'int8 quantization'} failed: {e}")
                log(("" if eng in CORE else "(reference column only) ") + f"{name}: {kind} ONNX failed: {e}")
        if "ijepa-file" in engines:
            try:
                engine_files[(name, "ijepa-file")] = prepare_encoder_file(name, model_dirs[name], env, a.timeout)
            except ChildFailed as e:
                prep[(name, "ijepa-file")] = str(e).split("\n")[0]
                failures.append(f"{name}: saving the encoder file failed: {e}")
                log(failures[-1])
    images = {b: make_images(b) for b in sorted({ROWS[r][1] for r in rows})}

    blas = openblas_of(lib)
    peaks = [sgemm_peak("sgemm-openblas", blas, env, a.timeout)]
    tpeak, tpeak_info = sgemm_peak("sgemm-torch", None, env, a.timeout)
    peak, peak_info = peaks[0]
    log(f"sgemm 2048^3 peak, {a.threads} threads: {fmt(peak, '.0f')} GFLOP/s ({peak_info.get('blas', 'OpenBLAS')}, "
        f"{peak_info.get('core', '?')} kernels, as linked by the library: {blas}); torch.mm {fmt(tpeak, '.0f')} GFLOP/s")

    results, ijepa_info, torch_info, ort_info, foreign = [], {}, {}, {}, []
    for row in rows:
        model, B, w_def, i_def = ROWS[row]
        warmup = a.warmup or (1 if a.quick else w_def)
        iters = a.iters or (2 if a.quick else i_def)
        r = {"row": row, "model": model, "label": MODELS[model][0], "batch": B, "warmup": warmup, "iters": iters,
             "gflop_per_image": encode_flops(model) / 1e9, "engines": {}}
        for e in engines:
            r["engines"][e] = {"times": [], "rss": [], "first": [], "load": [], "error": None, "features": None}
        if model not in model_dirs:
            for e in engines:
                r["engines"][e]["error"] = "the model could not be made"
        for e in ("ort", "ort-int8", "ijepa-file"):
            if e in engines and isinstance(prep.get((model, e)), str):
                r["engines"][e]["error"] = prep[(model, e)]
        for k in range(rounds):
            order = engines[k % len(engines):] + engines[:k % len(engines)]
            for e in order:
                st = r["engines"][e]
                if st["error"]:
                    continue
                target = model_dirs[model] if e in ("ijepa", "torch") else engine_files[(model, e)]
                feats = os.path.join(RUN, f"features-{row}-{e}.npy")
                cmd = [sys.executable, WORKER, e, target, "--images", images[B], "--features", feats,
                       "--warmup", str(warmup), "--iters", str(iters), "--threads", str(a.threads)]
                warm_page_cache(target)
                try:
                    res, t_spawn, rss, others = run_child(cmd, env, a.timeout, os.path.join(RUN, f"{row}-{e}-r{k + 1}.log"))
                except ChildFailed as ex:
                    st["error"] = str(ex)
                    msg = f"{row}: {LABEL[e]} failed in round {k + 1}: {ex}"
                    (failures if e in CORE else notes).append(msg)
                    log(msg)
                    continue
                st["times"] += res["times"]
                st["rss"].append(rss)
                st["first"].append(res["t_first"] - t_spawn)
                st["load"].append(res["t_load"] - t_spawn)
                st["features"] = feats
                if others is not None:
                    foreign.append(others)
                {"ijepa": ijepa_info, "ijepa-file": ijepa_info, "torch": torch_info}.get(e, ort_info).update(res["info"])
                log(f"{row:12s} round {k + 1}/{rounds} {LABEL[e]:8s}: {B / statistics.median(res['times']):7.2f} img/s "
                    f"(median of {len(res['times'])}), first features after {res['t_first'] - t_spawn:5.1f} s "
                    f"(loaded at {res['t_load'] - t_spawn:4.1f} s), peak RSS {rss:6.0f} MiB; other processes used "
                    f"{fmt(others, '.2f')} cores meanwhile")
        results.append(r)

    # the peak again at the end (the better of the two is the reference: a busy core lowers it)
    peaks.append(sgemm_peak("sgemm-openblas", blas, env, a.timeout))
    measured = [p for p, _ in peaks if p]
    peak = max(measured) if measured else None
    peak_info = peak_info or peaks[-1][1]
    log(f"sgemm peak again at the end: {fmt(peaks[-1][0], '.0f')} GFLOP/s; reference {fmt(peak, '.0f')} GFLOP/s\n")
    for r in results:
        summarize(r, peak)
        print_row(r)

    load_end = os.getloadavg()
    busy = statistics.mean(foreign) if foreign else None
    if busy is not None and busy > 0.1:
        notes.append(f"the machine was not idle: other processes used {busy:.2f} cores on average (max "
                     f"{max(foreign):.2f}) of {os.cpu_count()} while the engines ran; the numbers are noisy")
        log("warning: " + notes[-1])
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "load": (load_start[0], load_end[0]), "foreign": (busy, max(foreign) if foreign else None), "library": library_line(lib, ijepa_info),
        "versions": {d: version(d) for d in ("torch", "transformers", "onnxruntime", "onnx", "numpy")},
        "python": platform.python_version(), "threads": a.threads, "rounds": rounds,
        "peak": peak, "peak_info": peak_info, "peaks": [p for p, _ in peaks], "blas": blas, "torch_peak": tpeak, "torch_peak_info": tpeak_info,
        "torch_info": torch_info, "ort_info": ort_info, "engines": engines,
        "argv": " ".join(sys.argv[1:]), "failures": failures, "notes": notes,
    }
    text = render(results, meta)
    print("\n" + text)
    with open(os.path.join(RUN, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": results}, f, indent=1, default=str)
    if not a.no_write:
        with open(a.out, "a") as f:
            f.write("\n" + text + "\n")
        log(f"appended to {a.out}")
    if failures:
        log(f"\n{len(failures)} failure(s):\n" + "\n".join("- " + f.split("\n")[0] for f in failures))
        sys.exit(1)


def summarize(r, peak):
    import numpy as np
    ref = None
    t = r["engines"].get("torch")
    if t and t["features"] and not t["error"]:
        ref = np.load(t["features"]).astype(np.float64)
    B = r["batch"]
    for e, st in r["engines"].items():
        ok = bool(st["times"])
        st["img_s"] = B / statistics.median(st["times"]) if ok else None
        st["rss_mib"] = max(st["rss"]) if ok else None
        st["first_s"] = statistics.median(st["first"]) if ok else None
        st["load_s"] = statistics.median(st["load"]) if ok else None
        st["rel_diff"] = None
        if ok and ref is not None and st["features"]:
            f = np.load(st["features"]).astype(np.float64)
            if f.shape == ref.shape:
                st["rel_diff"] = float(np.abs(f - ref).max() / np.abs(ref).max())
            else:
                st["rel_diff"] = float("nan")
    g = r["engines"].get("ijepa", {})
    ips = g.get("img_s")
    r["ijepa_gflops"] = ips * r["gflop_per_image"] if ips else None
    r["peak_pct"] = 100 * r["ijepa_gflops"] / peak if (r["ijepa_gflops"] and peak) else None
    for other in ("ort", "torch"):
        o = r["engines"].get(other, {}).get("img_s")
        r[f"ratio_{other}"] = ips / o if (ips and o) else None


def cell(r, e, key, spec):
    st = r["engines"].get(e)
    if st is None:
        return "–"
    if st.get(key) is None:
        return "failed" if st["error"] else "–"
    return format(st[key], spec)


def triple(r, key, spec, engines=("ijepa", "torch", "ort")):
    return " / ".join(cell(r, e, key, spec) for e in engines)


def print_row(r):
    log(f"{r['row']:12s} => img/s ijepa {cell(r, 'ijepa', 'img_s', '.2f')}, torch {cell(r, 'torch', 'img_s', '.2f')}, "
        f"ORT {cell(r, 'ort', 'img_s', '.2f')}; ijepa/ORT {fmt(r['ratio_ort'], '.2f', 'x')}, ijepa/torch "
        f"{fmt(r['ratio_torch'], '.2f', 'x')}; {fmt(r['ijepa_gflops'], '.0f')} GFLOP/s = {fmt(r['peak_pct'], '.0f', '%')} of sgemm peak; "
        f"max rel diff vs torch: ijepa {cell(r, 'ijepa', 'rel_diff', '.1e')}, ORT {cell(r, 'ort', 'rel_diff', '.1e')}\n")


def render(results, m):
    v = m["versions"]
    L = [f"# Encoder inference: this library vs PyTorch vs ONNX Runtime (`make bench-encode`, {m['date']})", ""]
    L.append(f"- machine: {m['machine']}; load average {m['load'][0]:.2f} at the start, {m['load'][1]:.2f} at the end; "
             f"other processes used {fmt(m['foreign'][0], '.2f')} cores on average (max {fmt(m['foreign'][1], '.2f')}) while the "
             f"engines ran (/proc/stat busy time minus the engine's own CPU time)")
    L.append(f"- library: {m['library']}")
    L.append(f"- PyTorch: torch {v['torch']} + transformers {v['transformers']} `IJepaModel` "
             f"(attention: {m['torch_info'].get('attn_implementation', '?')}); ONNX Runtime {v['onnxruntime']} "
             f"(CPUExecutionProvider; onnx {v['onnx']}); numpy {v['numpy']}, Python {m['python']}")
    pi = m["peak_info"]
    L.append(f"- sgemm peak of this run (2048³, {m['threads']} threads, median of 5, the better of a measurement "
             f"before the rows ({fmt(m['peaks'][0], '.0f')}) and after them ({fmt(m['peaks'][-1], '.0f')})): "
             f"**{fmt(m['peak'], '.0f')} GFLOP/s** "
             f"with {pi.get('blas', 'OpenBLAS')} ({pi.get('core', '?')} kernels; `{m['blas']}`, the OpenBLAS the "
             f"library links to, `cblas_sgemm` through ctypes), the reference of \"% sgemm peak\"; "
             f"torch.mm {fmt(m['torch_peak'], '.0f')} GFLOP/s")
    L.append(f"- weights: random-init `IJepaModel` (transformers' init, seed 0) with the official sin-cos position "
             f"table, `save_pretrained(safe_serialization=True)` into bench/build/encode-models/<model>/; torch loads "
             f"it with `from_pretrained`, this library with `ijepa.Encoder.load(dir, n_threads={m['threads']})`, ORT "
             f"runs its `torch.onnx.export(dynamo=False, opset_version=17)` export (dynamic batch axis) of a wrapper "
             f"whose output is the mean over tokens of `last_hidden_state`; 224 px, LayerNorm eps 1e-6, exact gelu; "
             f"float32 NCHW inputs N(0, 1), the same .npy for every engine")
    L.append(f"- method: {m['rounds']} round(s); in each, every engine in its own process, order rotated between "
             f"rounds ({' / '.join(m['engines'])}); per process: load, warm-up calls, timed calls "
             f"(warm-up/timed per row below); img/s = batch / median of all timed calls of all rounds. "
             f"Threads: {m['threads']} everywhere (OMP_NUM_THREADS, MKL_NUM_THREADS and OPENBLAS_NUM_THREADS={m['threads']}; "
             f"torch.set_num_threads({m['threads']}), interop 1; ORT intra_op {m['threads']}, inter_op 1, ORT_ENABLE_ALL; "
             f"the library's n_threads={m['threads']}). GFLOP/s of ijepa from the matmul shapes per image (patch "
             f"embedding, qkv, QK^T, AV, proj, fc1, fc2) × img/s. Peak RSS: wait4 ru_maxrss of the engine's process "
             f"(max over rounds; includes the interpreter, the imports and the images). First features: from just "
             f"before the parent spawns the process (interpreter start, imports, loading included) to the end of the "
             f"first call, median over rounds; the engine's weight files are read once just before its process "
             f"starts (page cache warm for every engine). Max rel diff: max|a − b| / max|b| of the pooled features against torch's.")
    L.append(f"- command: `python3 bench/run_bench_encode.py {m['argv']}`".rstrip() + "")
    L.append("")
    L.append("| row | GFLOP / image | warm-up + timed | ijepa img/s | torch img/s | ORT img/s | ijepa / ORT | ijepa / torch "
             "| ijepa GFLOP/s | % sgemm peak | peak RSS MiB ijepa / torch / ORT | first features s ijepa / torch / ORT "
             "| max rel diff vs torch: ijepa / ORT |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        L.append(f"| {r['label']} batch {r['batch']} | {r['gflop_per_image']:.1f} | {r['warmup']} + {r['iters']} "
                 f"| {cell(r, 'ijepa', 'img_s', '.2f')} | {cell(r, 'torch', 'img_s', '.2f')} | {cell(r, 'ort', 'img_s', '.2f')} "
                 f"| {fmt(r['ratio_ort'], '.2f', '×')} | {fmt(r['ratio_torch'], '.2f', '×')} | {fmt(r['ijepa_gflops'], '.0f')} "
                 f"| {fmt(r['peak_pct'], '.0f', '%')} | {triple(r, 'rss_mib', '.0f')} | {triple(r, 'first_s', '.1f')} "
                 f"| {triple(r, 'rel_diff', '.1e', ('ijepa', 'ort'))} |")
    if "ijepa-file" in m["engines"]:
        L.append("")
        L.append("This library on its own encoder file (`Encoder.save` of the same weights, made by this run; "
                 "`Encoder.load` maps it: the weights are the file's page-cache pages, already in the packed layout, "
                 "nothing is read into memory or packed), against the model directory above and PyTorch:")
        L.append("")
        L.append("| row | ijepa file img/s | file / directory | file / ORT | file / torch | peak RSS MiB | "
                 "first features s: file / directory / torch | file / torch | max rel diff vs torch |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            e = r["engines"]
            def ratio(a, b, key="img_s"):
                x, y = e.get(a, {}).get(key), e.get(b, {}).get(key)
                return fmt(x / y if (x and y) else None, '.2f', '×')
            L.append(f"| {r['label']} batch {r['batch']} | {cell(r, 'ijepa-file', 'img_s', '.2f')} "
                     f"| {ratio('ijepa-file', 'ijepa')} | {ratio('ijepa-file', 'ort')} | {ratio('ijepa-file', 'torch')} "
                     f"| {cell(r, 'ijepa-file', 'rss_mib', '.0f')} "
                     f"| {triple(r, 'first_s', '.1f', ('ijepa-file', 'ijepa', 'torch'))} "
                     f"| {ratio('ijepa-file', 'torch', 'first_s')} | {cell(r, 'ijepa-file', 'rel_diff', '.1e')} |")
    if "ort-int8" in m["engines"]:
        L.append("")
        L.append("For reference, ONNX Runtime on the dynamically quantized model "
                 "(`onnxruntime.quantization.quantize_dynamic`, MatMul weights int8 per tensor, activations "
                 "quantized at run time; same session options); not the same arithmetic, hence its larger difference:")
        L.append("")
        L.append("| row | ORT int8 img/s | ORT int8 / ORT fp32 | ijepa / ORT int8 | peak RSS MiB | first features s | max rel diff vs torch |")
        L.append("|---|---|---|---|---|---|---|")
        for r in results:
            q = r["engines"].get("ort-int8", {})
            f32 = r["engines"].get("ort", {}).get("img_s")
            g = r["engines"].get("ijepa", {}).get("img_s")
            qi = q.get("img_s")
            L.append(f"| {r['label']} batch {r['batch']} | {cell(r, 'ort-int8', 'img_s', '.2f')} "
                     f"| {fmt(qi / f32 if (qi and f32) else None, '.2f', '×')} | {fmt(g / qi if (g and qi) else None, '.2f', '×')} "
                     f"| {cell(r, 'ort-int8', 'rss_mib', '.0f')} | {cell(r, 'ort-int8', 'first_s', '.1f')} "
                     f"| {cell(r, 'ort-int8', 'rel_diff', '.1e')} |")
    if m["failures"] or m["notes"]:
        L.append("")
        for f in m["failures"]:
            L.append(f"- **failed**: {f.splitlines()[0]}")
        for f in m["notes"]:
            L.append(f"- note: {f.splitlines()[0]}")
    return "\n".join(L)


if __name__ == "__main__":
    main()
