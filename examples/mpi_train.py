#!/usr/bin/env python3
"""Data-parallel I-JEPA training with mpi4py over the ``ijepa`` Python package.

The same program as examples/mpi_train.c (same options, same synthetic images, same masks,
same checksums), in Python::

    IJEPA_LIBRARY=build/stage/lib/libijepa.so.1 PYTHONPATH=python \\
        mpirun -np 2 python3 examples/mpi_train.py --steps 20 --batch 16

Every step, every rank samples the GLOBAL batch's masks (identical generators, asserted by a
checksum all-reduce; with ``--masks bcast`` rank 0's are broadcast; ragged masks when the config
has ragged_context, e.g. ``--preset fmnist_tiny_ragged``), builds its shard of the global batch
and the matching rows of every mask (ragged: with their own lengths), runs ``forward_backward``
(with ``--micro-batch N``: on micro-batches of at most N images, each weighted by its share of
the shard, ``forward_backward(x, masks, weight=b_k/b_r, accumulate=k > 0)``), all-reduces the
gradient buffer in place (``flat_buffer("grads")`` is a zero-copy view of the library's
memory, so ``comm.Allreduce(MPI.IN_PLACE, grads)`` writes straight into the model), divides by
the rank count and calls ``optimizer_step``. See the C file's header for why this is exact.

Needs mpi4py (``pip install mpi4py``; it uses the installed Open MPI) and numpy.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import struct
import sys
import time

import numpy as np
from mpi4py import MPI

import ijepa

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
size = comm.Get_size()

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
CHUNK = 1 << 22  # floats per message, as in the C version


def die(msg):
    """A failure on this rank only: the others may be waiting in a collective."""
    sys.stderr.write("[rank %d] error: %s\n" % (rank, msg))
    sys.stderr.flush()
    comm.Abort(1)


def log(*args):
    if rank == 0:
        print(*args, flush=True)


# ---- checksums compared across ranks -------------------------------------------------------

def digest(*arrays):
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return int.from_bytes(h.digest(), "little")


def same_on_all_ranks(value):
    """One all-reduce: max of v and max of ~v (= ~min of v)."""
    v = np.array([value, value ^ M64], dtype=np.uint64)
    out = np.empty_like(v)
    comm.Allreduce(v, out, op=MPI.MAX)
    return int(out[0]) == int(out[1]) ^ M64


def model_digest(m, with_optimizer=True):
    names = ("params", "target", "adam_m", "adam_v") if with_optimizer else ("params", "target")
    return digest(*(m.flat_buffer(n) for n in names), np.array([m.step], dtype=np.int64))


def verify_replicas(m, when):
    h = model_digest(m)
    if not same_on_all_ranks(h):
        if rank == 0:
            sys.stderr.write("error: replicas DIFFER %s (weights/target/AdamW checksums)\n" % when)
        sys.exit(1)
    log("replicas identical on all %d ranks %s (checksum %016x)" % (size, when, h))


# ---- data: the same images as mpi_train.c --------------------------------------------------

def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Stream:
    """The C file's per-image generator: splitmix64 from a hashed (seed, step, index)."""

    def __init__(self, data_seed, step, index):
        s = mix64((data_seed + GOLDEN) & M64)
        s = mix64((s + step) & M64)
        self.s = mix64((s + index) & M64)

    def u64(self):
        self.s = (self.s + GOLDEN) & M64
        return mix64(self.s)

    def unit(self):
        return (self.u64() >> 11) * (1.0 / (1 << 53))


def synthetic_image(chans, size, data_seed, step, index):
    """A grating or 1-3 Gaussian blobs, float32 [chans, size, size], values in about [-1, 1]."""
    two_pi = 6.283185307179586
    r = Stream(data_seed, step, index)
    u = np.arange(size, dtype=np.float64) / size
    uu, vv = u[None, :], u[:, None]  # x varies along columns, y along rows
    out = np.zeros((chans, size, size), dtype=np.float32)
    if r.unit() < 0.5:
        theta, freq, phase = two_pi * r.unit(), 1.5 + 4.5 * r.unit(), two_pi * r.unit()
        arg = two_pi * freq * (np.cos(theta) * uu + np.sin(theta) * vv) + phase
        wave = np.sin(arg)
        for c in range(chans):
            amp = 0.5 + 0.5 * r.unit()
            out[c] = (amp * wave).astype(np.float32)
    else:
        blobs = 1 + int(3 * r.unit())
        for _ in range(blobs):
            cx, cy, sigma = r.unit(), r.unit(), 0.05 + 0.15 * r.unit()
            inv = 1.0 / (2 * sigma * sigma)
            g = np.exp(-((uu - cx) ** 2 + (vv - cy) ** 2) * inv)
            for c in range(chans):
                amp = 2 * r.unit() - 1
                out[c] += (amp * g).astype(np.float32)
    return out


def load_fmnist(directory):
    path = os.path.join(directory, "train-images-idx3-ubyte.gz")
    try:
        raw = gzip.open(path, "rb").read()
    except OSError as e:
        die("cannot read %s (%s; apt-get install dataset-fashion-mnist, or pass --fmnist DIR)" % (path, e))
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 2051:
        die("%s is not an IDX image file" % path)
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def fmnist_image(data, chans, size, data_seed, step, index):
    j = Stream(data_seed, step, index).u64() % data.shape[0]
    x = (data[j].astype(np.float32) / np.float32(255) - np.float32(0.2860)) / np.float32(0.3530)
    if x.shape != (size, size):
        x = ijepa.resize_bilinear(x[None, None], (size, size))[0, 0]
    return np.broadcast_to(x, (chans, size, size))


# ---- options -------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_argument_group("model")
    g.add_argument("--preset", default="tiny32")
    for flag, field in (("--image", "image_size"), ("--patch", "patch_size"), ("--chans", "in_chans"),
                        ("--embed", "embed_dim"), ("--depth", "depth"), ("--heads", "num_heads"),
                        ("--pred-embed", "pred_embed_dim"), ("--pred-depth", "pred_depth"),
                        ("--pred-heads", "pred_num_heads"), ("--min-keep", "min_keep"),
                        ("--seed", "seed")):
        g.add_argument(flag, dest=field, type=int)
    g = p.add_argument_group("recipe")
    for flag, field in (("--lr", "lr"), ("--start-lr", "start_lr"), ("--final-lr", "final_lr")):
        g.add_argument(flag, dest=field, type=float)
    g.add_argument("--warmup", type=int, help="default: a tenth of total")
    g.add_argument("--total-steps", type=int, help="default: the steps of this run")
    g = p.add_argument_group("run")
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--batch", type=int, default=16, help="the GLOBAL batch")
    g.add_argument("--micro-batch", type=int, default=0,
                   help="each rank runs its shard as micro-batches of at most N images "
                        "(gradient accumulation); 0 = the whole shard at once")
    g.add_argument("--threads", type=int, default=0, help="per rank; 0 = auto")
    g.add_argument("--log-every", type=int, default=1)
    g.add_argument("--check-every", type=int, default=0)
    g = p.add_argument_group("data")
    g.add_argument("--fmnist", nargs="?", const="/usr/share/datasets/fashion-mnist", default=None)
    g.add_argument("--data-seed", type=int)
    g = p.add_argument_group("replicas")
    g.add_argument("--init", choices=("seed", "bcast"), default="seed")
    g.add_argument("--masks", choices=("bcast", "local"), default="bcast")
    g.add_argument("--deterministic", action="store_true")
    g.add_argument("--weights", help="safetensors weights (with --init bcast only rank 0 reads it)")
    g = p.add_argument_group("files")
    g.add_argument("--save")
    g.add_argument("--save-every", type=int, default=0)
    g.add_argument("--resume")
    a = p.parse_args()
    if a.steps < 0:
        p.error("--steps must be >= 0")
    if a.batch < size:
        p.error("--batch (%d, the GLOBAL batch) must be at least the number of ranks (%d)"
                % (a.batch, size))
    if a.micro_batch < 0:
        p.error("--micro-batch must be >= 0 (0: the whole shard at once)")
    if a.save_every and not a.save:
        p.error("--save-every needs --save PATH")
    a.log_every = max(1, a.log_every)
    return a


def auto_threads():
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_size = local.Get_size()
    local.Free()
    online = os.cpu_count() or 1
    bound = len(os.sched_getaffinity(0))
    t = bound if bound < online else online // max(1, local_size)
    return max(1, t)


def make_model(a, threads):
    if a.resume:
        return ijepa.Model.load(a.resume, n_threads=threads)
    over = {k: getattr(a, k) for k in ("image_size", "patch_size", "in_chans", "embed_dim", "depth",
                                        "num_heads", "pred_embed_dim", "pred_depth", "pred_num_heads",
                                        "min_keep", "seed", "lr", "start_lr", "final_lr")
            if getattr(a, k) is not None}
    if a.fmnist and a.in_chans is None:
        over["in_chans"] = 1
    total = a.total_steps if a.total_steps is not None else max(a.steps, 1)
    over["total_steps"] = total
    over["warmup_steps"] = a.warmup if a.warmup is not None else total // 10
    over["n_threads"] = threads
    return ijepa.Model(ijepa.Config.preset(a.preset, **over))


# ---- the gradient all-reduce ---------------------------------------------------------------

def allreduce_sum(g):
    for off in range(0, g.size, CHUNK):
        comm.Allreduce(MPI.IN_PLACE, g[off:off + CHUNK], op=MPI.SUM)


def allreduce_sum_ordered(g, tmp):
    """Rank 0 adds rank 1's, rank 2's, ... in rank order, then broadcasts: bitwise reproducible."""
    for off in range(0, g.size, CHUNK):
        part = g[off:off + CHUNK]
        if rank == 0:
            t = tmp[:part.size]
            for r in range(1, size):
                comm.Recv(t, source=r, tag=7)
                part += t
        else:
            comm.Send(part, dest=0, tag=7)
        comm.Bcast(part, root=0)


# ---- main ----------------------------------------------------------------------------------

def main():
    a = parse_args()
    if ijepa.abi_version() != ijepa.ABI_VERSION:
        die("libijepa ABI %d, package %d" % (ijepa.abi_version(), ijepa.ABI_VERSION))
    threads = a.threads if a.threads > 0 else auto_threads()
    m = make_model(a, threads)
    cfg = m.config
    # ragged contexts (e.g. --preset fmnist_tiny_ragged, or a checkpoint of such a run): the
    # global batch's masks are ragged, each rank takes its images' rows with their lengths
    ragged = bool(cfg.ragged_context)

    data_seed = a.data_seed if a.data_seed is not None else cfg.seed

    # Same config, library and run options on every rank (n_threads may differ; the seed is
    # verified through the initial weights and the mask generator, as in the C version).
    c = cfg.to_dict()
    c.pop("n_threads", None)
    c.pop("seed", None)
    run = (sorted(c.items()), ijepa.version(), a.batch, a.steps, a.deterministic, a.masks, a.init,
           a.check_every, a.fmnist is not None, data_seed, a.micro_batch)
    if not same_on_all_ranks(digest(np.frombuffer(repr(run).encode(), dtype=np.uint8))):
        if rank == 0:
            sys.stderr.write("error: the ranks have different configs, options or libijepa versions\n")
        return 1

    params, target, grads = m.flat_buffer("params"), m.flat_buffer("target"), m.flat_buffer("grads")
    if a.weights and (rank == 0 or a.init == "seed"):
        m.load_weights(a.weights, strict=True)
    if a.init == "bcast":
        # Rank 0's weights to everyone; the others first poison theirs with NaN so that a float
        # the broadcast missed would fail the checksum and the first step.
        if rank != 0:
            params[:] = np.nan
            target[:] = np.nan
        differed = not same_on_all_ranks(model_digest(m, with_optimizer=False))
        for buf in (params, target):
            for off in range(0, buf.size, CHUNK):
                comm.Bcast(buf[off:off + CHUNK], root=0)
        log("init: PARAMS (%d floats) and TARGET (%d floats) broadcast from rank 0; before it the "
            "ranks %s" % (params.size, target.size, "differed" if differed else "were already equal"))
    elif a.weights:
        log("init: every rank loaded --weights %s" % a.weights)
    elif a.resume:
        log("init: every rank loaded --resume %s" % a.resume)
    else:
        log("init: every rank created its model from seed %d" % cfg.seed)
    verify_replicas(m, "after setup")

    B = a.batch
    base, rem = divmod(B, size)
    my_count = base + (rank < rem)
    my_first = rank * base + min(rank, rem)
    weight = my_count * size / B  # this rank's share of the global mean (1 for equal shards)
    # images per forward/backward: the whole shard, or micro-batches of --micro-batch
    micro = a.micro_batch if 0 < a.micro_batch < my_count else my_count
    C, S = cfg.in_chans, cfg.image_size
    data = load_fmnist(a.fmnist) if a.fmnist else None
    tmp = np.empty(min(CHUNK, grads.size), dtype=np.float32) if a.deterministic and rank == 0 else None

    log("config: image %d patch %d chans %d | encoder %d x %d (%d heads) | predictor %d x %d | seed %d"
        % (cfg.image_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim, cfg.depth, cfg.num_heads,
           cfg.pred_embed_dim, cfg.pred_depth, cfg.seed))
    log("ranks %d x %d thread(s) | global batch %d (rank 0: %d images%s) | data %s | masks %s%s | reduce %s"
        % (size, threads, B, my_count, " in micro-batches of %d" % micro if micro < my_count else "",
           "Fashion-MNIST" if data is not None else "synthetic", "ragged, " if ragged else "",
           "broadcast from rank 0" if a.masks == "bcast" else "sampled by every rank",
           "ordered (deterministic)" if a.deterministic else "MPI_Allreduce"))
    log("gradient buffer %d floats = %.2f MB per all-reduce; step %d of %d"
        % (grads.size, grads.size * 4 / 1e6, m.step, cfg.total_steps))
    log("%6s %10s %10s %8s %8s %10s %10s" % ("step", "loss", "lr", "wd", "ema", "grad_norm", "images/s"))

    # wall: data, masks, forward+backward, all-reduce, optimizer, total; CPU: forward+backward, total
    times = np.zeros(8)
    mask_bytes = 0
    timed_from = 1 if a.steps > 2 else 0
    timed = a.steps - timed_from
    images = np.empty((my_count, C, S, S), dtype=np.float32)
    for s in range(a.steps):
        step = m.step  # the global step: images and resume depend on it
        t0, c0 = time.perf_counter(), time.process_time()
        for b in range(my_count):
            if data is not None:
                images[b] = fmnist_image(data, C, S, data_seed, step, my_first + b)
            else:
                images[b] = synthetic_image(C, S, data_seed, step, my_first + b)
        t1 = time.perf_counter()

        # The global batch's masks: every rank samples; the checksums must agree.
        own = m.sample_masks(B, ragged=ragged)
        own_len = own.enc_len if ragged else np.zeros(0, dtype=np.int32)
        if not same_on_all_ranks(digest(np.array(own.enc.shape + own.pred.shape, dtype=np.int64),
                                        own.enc, own_len, own.pred)):
            if rank == 0:
                sys.stderr.write("error: step %d: the ranks' mask generators disagree (same seed, "
                                 "config and checkpoint on every rank?)\n" % (step + 1))
            return 1
        if a.masks == "bcast":
            enc, pred = comm.bcast((own.enc.shape, own.pred.shape) if rank == 0 else None, root=0)
            genc = own.enc if rank == 0 else np.empty(enc, dtype=np.int32)
            glen = own_len if rank == 0 else np.empty(enc[:2] if ragged else 0, dtype=np.int32)
            gpred = own.pred if rank == 0 else np.empty(pred, dtype=np.int32)
            comm.Bcast(genc, root=0)
            if ragged:
                comm.Bcast(glen, root=0)
            comm.Bcast(gpred, root=0)
            mask_bytes = 4 * (genc.size + glen.size + gpred.size)
        else:
            genc, glen, gpred = own.enc, own_len, own.pred

        def rows(lo, hi):
            """The masks of global images lo..hi (ragged: with their own context lengths)."""
            if ragged:
                return ijepa.RaggedMasks(genc[:, lo:hi], glen[:, lo:hi], gpred[:, lo:hi])
            return ijepa.Masks(genc[:, lo:hi], gpred[:, lo:hi])
        t2, c2 = time.perf_counter(), time.process_time()

        # forward + backward on the shard: at once, or as micro-batches of `micro` images, each
        # weighted by its share of the shard (b_k / b_r; the float32 the C program passes)
        shard_loss = 0.0
        for b0 in range(0, my_count, micro):
            n = min(micro, my_count - b0)
            w = float(np.float32(n / my_count))
            part = m.forward_backward(images[b0:b0 + n], rows(my_first + b0, my_first + b0 + n),
                                      weight=w, accumulate=b0 > 0)
            shard_loss += w * float(np.float32(part))
        loss = float(np.float32(shard_loss))  # the shard's mean loss
        t3, c3 = time.perf_counter(), time.process_time()

        if size > 1:
            if my_count * size != B:
                grads *= np.float32(weight)
            if a.deterministic:
                allreduce_sum_ordered(grads, tmp)
            else:
                allreduce_sum(grads)
            grads /= np.float32(size)
        t4 = time.perf_counter()

        st = m.optimizer_step()
        t5, c5 = time.perf_counter(), time.process_time()

        mean_loss = comm.allreduce(loss * weight, op=MPI.SUM) / size
        if s >= timed_from:  # the first step (allocations, page faults) is not timed
            times += (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0, c3 - c2, c5 - c0)
        if (s + 1) % a.log_every == 0 or s + 1 == a.steps:
            log("%6d %10.6f %10.3e %8.4f %8.5f %10.4f %10.1f" % (st.step, mean_loss, st.lr, st.weight_decay,
                                                             st.ema_momentum, st.grad_norm, B / (t5 - t0)))
        if a.check_every and (s + 1) % a.check_every == 0 and s + 1 != a.steps:
            verify_replicas(m, "after step %d" % st.step)
        if a.save_every and (s + 1) % a.save_every == 0 and s + 1 != a.steps and rank == 0:
            m.save(a.save, training_state=True)
            log("saved %s (step %d)" % (a.save, st.step))

    verify_replicas(m, "at the end")
    slow = np.empty_like(times)
    comm.Reduce(times, slow, op=MPI.MAX, root=0)
    if rank == 0 and a.steps > 0:
        ring = 2.0 * (size - 1) / size
        log("throughput: %.1f images/s over steps %d-%d (%d ranks x %d threads, global batch %d)"
            % (B * timed / slow[5], timed_from + 1, a.steps, size, threads, B))
        log("time per step (slowest rank, ms): data %.2f | masks %.2f | forward+backward %.2f | "
            "all-reduce %.2f | optimizer %.2f" % tuple(1e3 * slow[:5] / timed))
        log("CPU time per step (slowest rank, ms): forward+backward %.2f | whole step %.2f "
            "(MPI waits by polling: the all-reduce counts in full)" % tuple(1e3 * slow[6:] / timed))
        log("communication per step and rank: gradients %.2f MB (ring all-reduce: %d floats x 4 B x %.3f)"
            ", masks %.1f kB" % (grads.size * 4 * ring / 1e6, grads.size, ring, mask_bytes / 1e3))
    if rank == 0 and a.save:
        m.save(a.save, training_state=True)
        log("saved %s (step %d, training state)" % (a.save, m.step))
    m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
