#!/usr/bin/env python3
"""One engine of bench/run_bench_encode.py in its own process: loads the model, encodes the same
images `warmup + iters` times and prints one JSON line on stdout.

usage: python3 bench/encode_worker.py ENGINE MODEL --images X.npy --features OUT.npy
                                      [--warmup 1] [--iters 5] [--threads 2]
       python3 bench/encode_worker.py sgemm-openblas|sgemm-torch [LIBRARY] [--threads 2] [--size 2048]
       python3 bench/encode_worker.py ijepa-save DIR OUT.safetensors [--threads 2]

ENGINE MODEL:
  ijepa DIR      this library: ijepa.Encoder.load(DIR, n_threads=threads), enc.encode(x)
                 (the Python package from ../python, the library from IJEPA_LIBRARY)
  ijepa-file F   the same on the encoder file that `ijepa-save` wrote (Encoder.save): mapped
  torch DIR      transformers IJepaModel.from_pretrained(DIR), torch.set_num_threads(threads),
                 model(pixel_values=x).last_hidden_state.mean(1) under torch.inference_mode()
  ort FILE.onnx  onnxruntime CPU session: intra_op_num_threads=threads, inter_op_num_threads=1,
                 ORT_ENABLE_ALL; the graph's output is already the mean over tokens
  ort-int8 FILE  the same session options on the dynamically quantized model

Only the engine's own modules are imported (the ijepa process never imports torch), so the
parent's wait4 ru_maxrss is the engine's own peak RSS. Times are time.perf_counter() around each
call; "t_first" is time.monotonic() (system-wide on Linux, so comparable with the parent's spawn
time) right after the first call returned its features (imports, loading and that first call
included). The first call's pooled features are written to --features.
"""
import argparse
import json
import os
import sys
import time

T_START = time.monotonic()  # the interpreter is up; the parent's spawn time is earlier


def encode_main(a):
    info = {}
    t_import = t_load = None
    if a.engine in ("ijepa", "ijepa-file"):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
        import numpy as np
        import ijepa
        t_import = time.monotonic()
        x = np.load(a.images)
        enc = ijepa.Encoder.load(a.model, n_threads=a.threads)
        if enc.n_threads != a.threads:
            raise SystemExit(f"ijepa: asked for {a.threads} threads, the encoder uses {enc.n_threads}")
        t_load = time.monotonic()
        info = {"version": ijepa.version(), "library": ijepa.library_path, "encoder": repr(enc)}

        def run():
            return enc.encode(x)
    elif a.engine == "torch":
        sys.modules["torchvision"] = None  # transformers: treat the (mismatched) torchvision as absent
        import numpy as np
        import torch
        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)
        import transformers
        from transformers import IJepaModel
        t_import = time.monotonic()
        x = torch.from_numpy(np.load(a.images))
        model = IJepaModel.from_pretrained(a.model, add_pooling_layer=False, dtype=torch.float32).eval()
        t_load = time.monotonic()
        info = {"torch": torch.__version__, "transformers": transformers.__version__,
                "threads": torch.get_num_threads(), "attn_implementation": model.config._attn_implementation}

        def run():
            with torch.inference_mode():
                return model(pixel_values=x).last_hidden_state.mean(dim=1).numpy()
    elif a.engine in ("ort", "ort-int8"):
        import numpy as np
        import onnxruntime as ort
        t_import = time.monotonic()
        x = np.load(a.images)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
        t_load = time.monotonic()
        name = sess.get_inputs()[0].name
        info = {"onnxruntime": ort.__version__, "providers": sess.get_providers()}

        def run():
            return sess.run(None, {name: x})[0]
    else:
        raise SystemExit(f"unknown engine {a.engine!r}")

    f = run()
    t_first = time.monotonic()
    f = np.asarray(f, dtype=np.float32)
    if f.shape != (x.shape[0], f.shape[-1]) or f.ndim != 2:
        raise SystemExit(f"{a.engine}: features of shape {f.shape} for images {tuple(x.shape)}")
    if not np.isfinite(f).all():
        raise SystemExit(f"{a.engine}: non-finite features")
    np.save(a.features, f)
    for _ in range(max(a.warmup - 1, 0)):  # the first call above was the first warm-up call
        run()
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    print(json.dumps({"engine": a.engine, "times": times, "t_start": T_START, "t_import": t_import,
                      "t_load": t_load, "t_first": t_first, "batch": int(x.shape[0]),
                      "dim": int(f.shape[1]), "info": info}), flush=True)


def sgemm_main(a):
    """2-thread sgemm peak: C = A B on size^3 float32, 2 warm-up + 5 timed calls."""
    import numpy as np
    n = a.size
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    C = np.zeros((n, n), dtype=np.float32)
    if a.engine == "sgemm-openblas":
        import ctypes
        lib = ctypes.CDLL(a.model or "libopenblas.so.0")
        lib.openblas_set_num_threads(ctypes.c_int(a.threads))
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        fp = ctypes.POINTER(ctypes.c_float)
        lib.cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, fp, ctypes.c_int, fp,
                                                         ctypes.c_int, ctypes.c_float, fp, ctypes.c_int]
        lib.cblas_sgemm.restype = None
        pa, pb, pc = (m.ctypes.data_as(fp) for m in (A, B, C))
        info = {"blas": lib.openblas_get_config().decode(),
                "core": lib.openblas_get_corename().decode(), "library": a.model or "libopenblas.so.0"}

        def run():
            lib.cblas_sgemm(101, 111, 111, n, n, n, 1.0, pa, n, pb, n, 0.0, pc, n)  # row-major, no transposes
    elif a.engine == "sgemm-torch":
        import torch
        torch.set_num_threads(a.threads)
        ta, tb, tc = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(C)
        info = {"blas": f"torch {torch.__version__} torch.mm", "mkl": torch.backends.mkl.is_available()}

        def run():
            torch.mm(ta, tb, out=tc)
    else:
        raise SystemExit(f"unknown engine {a.engine!r}")
    for _ in range(2):
        run()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    ref = A[:64].astype(np.float64) @ B.astype(np.float64)
    err = float(np.abs(C[:64] - ref).max() / np.abs(ref).max())
    if not err < 1e-4:
        raise SystemExit(f"{a.engine}: wrong product (max rel error {err:.2e})")
    print(json.dumps({"engine": a.engine, "times": times, "flop": 2.0 * n ** 3, "info": info}), flush=True)


def save_main(a):
    """Loads DIR with this library and saves it as an encoder file (Encoder.save)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import ijepa
    enc = ijepa.Encoder.load(a.model, n_threads=a.threads)
    enc.save(a.images)
    print(json.dumps({"engine": a.engine, "bytes": os.path.getsize(a.images)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine")
    ap.add_argument("model", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--images")
    ap.add_argument("--features")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=2048)
    a = ap.parse_args()
    if a.engine.startswith("sgemm-"):
        sgemm_main(a)
    elif a.engine == "ijepa-save":
        if not (a.model and a.out):
            ap.error("DIR and OUT are required")
        a.images = a.out
        save_main(a)
    else:
        if not (a.model and a.images and a.features):
            ap.error("MODEL, --images and --features are required")
        encode_main(a)


if __name__ == "__main__":
    main()
