"""PyTorch side of the benchmark: the official fp32 train step (tools/ijepa_torch.py, a
faithful re-implementation of facebookresearch/ijepa) or target-encoder encoding, on the same
config, threads and masks as bench_ijepa. Prints one JSON line like bench_ijepa.

usage: torch_step.py train|encode IMG PATCH CHANS DIM DEPTH HEADS PDIM PDEPTH BATCH THREADS ITERS [MASKFILE]
"""
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))


def read_masks(path, batch):
    import torch
    with open(path, "rb") as f:
        data = f.read()
    (count,), off = struct.unpack_from("<i", data, 0), 4
    out = []
    for _ in range(count):
        ne, ke, np_, kp = struct.unpack_from("<4i", data, off)
        off += 16
        enc = torch.frombuffer(bytearray(data[off:off + 4 * ne * batch * ke]), dtype=torch.int32)
        off += 4 * ne * batch * ke
        pred = torch.frombuffer(bytearray(data[off:off + 4 * np_ * batch * kp]), dtype=torch.int32)
        off += 4 * np_ * batch * kp
        enc = enc.long().view(ne, batch, ke)
        pred = pred.long().view(np_, batch, kp)
        out.append(([enc[i] for i in range(ne)], [pred[i] for i in range(np_)]))
    return out


def main():
    mode = sys.argv[1]
    img, patch, chans, dim, depth, heads, pdim, pdepth, batch, threads, iters = map(int, sys.argv[2:13])
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch
    torch.set_num_threads(threads)
    import ijepa_torch as R
    torch.manual_seed(0)
    enc, pred = R.init_model(img, patch, chans, dim, depth, heads, 4.0, pdim, pdepth)
    tgt = R.make_target_encoder(enc)
    x = torch.randn(batch, chans, img, img)
    times = []
    if mode == "encode":
        with torch.no_grad():
            for _ in range(2):
                tgt(x).mean(1)
            for _ in range(iters):
                t0 = time.perf_counter()
                tgt(x).mean(1)
                times.append(time.perf_counter() - t0)
    else:
        masks = read_masks(sys.argv[13], batch)
        opt = R.init_opt(enc, pred)
        for i in range(2):
            me, mp = masks[i % len(masks)]
            R.train_step(enc, pred, tgt, opt, x, me, mp, 1e-3, 0.04, 0.996)
        for i in range(iters):
            me, mp = masks[(i + 2) % len(masks)]
            t0 = time.perf_counter()
            R.train_step(enc, pred, tgt, opt, x, me, mp, 1e-3, 0.04, 0.996)
            times.append(time.perf_counter() - t0)
    print(json.dumps({"impl": "torch", "mode": mode, "times": times, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
