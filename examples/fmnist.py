"""Fashion-MNIST I-JEPA recipe (`fmnist-tiny`) over the `ijepa` Python package: data, the
pretraining loop, the linear probe and the pictures. Used by fmnist_demo.py (make demo) and
fmnist_eval.py (make eval-fmnist).

Recipe (matching the official code's run it is compared with):
  images 28 -> 32 by RandomResizedCrop(32, scale (0.3, 1.0), ratio (3/4, 4/3)), normalized
  with mean 0.2860 / std 0.3530; in_chans 1, patch 4 (8x8 grid); encoder 192 x 6, 3 heads;
  predictor 96 x 4; official masks but min_keep 4; batch 256; lr 2e-4 -> 1e-3 -> 1e-6 with 10%
  warmup; wd 0.04 -> 0.4; EMA 0.996 -> 1.0.
Probe: mean over patch tokens of the TARGET encoder (after its final norm) on the un-augmented
images resized 28 -> 32 (bilinear) and normalized; standardized with train-set mean/std;
LogisticRegression(max_iter=1000) on all 60k train features; accuracy on the 10k test images.
With last_k > 1 the features are those of the last k blocks (each through the final norm, mean
over tokens) concatenated, as the paper's "last 4 layers" probe.
Short-budget evaluations (make demo, fmnist_search.py; docs/fmnist.md "Short budgets"): the 1%
low-shot probe (the same regression on 60 labelled images per class, 5 fixed draws) and a kNN
classifier (cosine on standardized features, k=20), all by `evaluate` on features computed once.

Variants beyond the official code (recipe_config(..., ragged=True, full_grid=True)): ragged
contexts (every image keeps its whole context instead of the batch's shortest) and full_grid.
"""
import gzip
import json
import os
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import ijepa  # noqa: E402

DATA_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530
BATCH = 256


def read_idx(path):
    """Reads an IDX file (optionally gzipped): ubyte images [n, 28, 28] or labels [n]."""
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: IDX size mismatch")
    return arr.reshape(dims)


def load_fmnist():
    """(train_x [60000,1,28,28] float32 in [0,1], train_y, test_x, test_y)."""
    def p(name):
        for n in (name, name + ".gz"):
            if os.path.exists(os.path.join(DATA_DIR, n)):
                return os.path.join(DATA_DIR, n)
        raise SystemExit(f"Fashion-MNIST not found in {DATA_DIR} (Debian: apt-get install dataset-fashion-mnist)")
    tx = read_idx(p("train-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    ty = read_idx(p("train-labels-idx1-ubyte")).astype(np.int64)
    vx = read_idx(p("t10k-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    vy = read_idx(p("t10k-labels-idx1-ubyte")).astype(np.int64)
    limit = int(os.environ.get("FMNIST_LIMIT", "0"))   # a quick smoke run on the first N images
    if limit > 0:
        tx, ty, vx, vy = tx[:limit], ty[:limit], vx[:limit // 6], vy[:limit // 6]
    return tx, ty, vx, vy


def recipe_config(total_steps, seed=0, n_threads=0, ragged=False, full_grid=False):
    """The fmnist-tiny recipe; ragged / full_grid select the (non-official) variants
    (ragged: the `fmnist_tiny_ragged` preset)."""
    return ijepa.Config.preset(
        "fmnist_tiny_ragged" if ragged else "fmnist_tiny",
        total_steps=int(total_steps), warmup_steps=max(1, int(0.1 * total_steps)),
        start_lr=2e-4, lr=1e-3, final_lr=1e-6, weight_decay=0.04, final_weight_decay=0.4,
        ema_start=0.996, ema_end=1.0, seed=seed, n_threads=n_threads, full_grid=bool(full_grid))


def variant_tag(config):
    """"" for the official recipe, else "-ragged", "-fullgrid" or "-ragged-fullgrid"."""
    return ("-ragged" if config.ragged_context else "") + ("-fullgrid" if config.full_grid else "")


def normalize(x):
    return ((x - MEAN) / STD).astype(np.float32)


class Augment:
    """RandomResizedCrop(32, scale (0.3, 1), ratio (3/4, 4/3)) in the library, then normalize."""

    def __init__(self, seed):
        self.crop = ijepa.RandomResizedCrop(32, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3), seed=seed)

    def __call__(self, x):
        return normalize(self.crop(x))


def fmt_time(s):
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def pretrain(model, train_x, steps, seed=0, time_budget=None, log_every=1, stream=sys.stdout,
             history=None, resume=None, checkpoint=None, checkpoint_every=0, batch=None, schedule=None,
             micro_batch=None):
    """Runs `steps` official training steps (batches drawn epoch by epoch, shuffled with
    `seed`, drop_last); stops early when time_budget seconds have passed. Returns the list of
    losses and the wall time.

    The masks are sampled explicitly from the model's generator and passed to train_step (the
    same draws as train_step(batch) would make): ragged ones when the config's ragged_context
    is set, uniform ones otherwise. If `history` is a dict, it receives per-step lists
    "context_length" (mean context patches per image: k_enc for uniform masks) and "step_s"
    (seconds for sampling the masks and the training step).

    Long runs can be cut into pieces: every `checkpoint_every` steps (and after the last one)
    `checkpoint(state)` is called after the step with a picklable dict of everything this loop
    needs to go on (next step, data order and its generator, the augmentation's generator,
    losses, history, elapsed time); the caller saves it with the model (training state
    included). `pretrain(model_loaded_from_that_checkpoint, ..., resume=state)` then continues
    exactly where it stopped: same batches, crops, masks and updates as one uninterrupted run.

    `batch` is the number of images per step (None: BATCH, the recipe's 256). `schedule`, if
    given, is called as schedule(step) before each step and returns (lr, weight_decay,
    ema_momentum), which override the config's schedules for that step (the demo's continued
    runs); None leaves the config's schedules in charge. `micro_batch` (e.g. 256 with batch
    2048): gradient accumulation, each step's batch runs as micro-batches of that many images
    (one mask draw for the whole batch; the same step to float rounding, the activation memory
    of one micro-batch)."""
    ragged = model.config.ragged_context
    batch = BATCH if batch is None else batch
    if history is not None:
        history.setdefault("context_length", [])
        history.setdefault("step_s", [])
    n = len(train_x)
    per_epoch = n // batch
    if resume is None:
        rng = np.random.default_rng(seed)
        aug = Augment(seed + 1)
        order = rng.permutation(n)
        losses, start, before = [], 0, 0.0
    else:
        rng, aug, order = resume["rng"], resume["aug"], resume["order"]
        losses, start, before = list(resume["losses"]), resume["step"], resume["elapsed"]
        if model.step != start:
            raise ValueError(f"the model is at step {model.step} but the saved loop state at step {start}")
        if history is not None:
            for key in ("context_length", "step_s"):
                history[key][:] = resume["history"].get(key, [])
    t0 = time.time() - before
    for step in range(start, steps):
        k = step % per_epoch
        if k == 0 and step > 0:
            order = rng.permutation(n)
        idx = order[k * batch:(k + 1) * batch]
        images = aug(train_x[idx])
        ts = time.perf_counter()
        if schedule is not None:
            model.set_schedule_override(*schedule(step))
        masks = model.sample_masks(len(images), ragged=ragged)
        st = model.train_step(images, masks, micro_batch=micro_batch)
        if history is not None:
            history["step_s"].append(time.perf_counter() - ts)
            history["context_length"].append(masks.mean_context_length if ragged else float(masks.k_enc))
        losses.append(st.loss)
        el = time.time() - t0
        if log_every and (step % log_every == 0 or step == steps - 1):
            rate = (step + 1 - start) * batch / max(1e-9, el - before)
            eta = (steps - step - 1) * el / (step + 1)
            if time_budget:
                eta = min(eta, max(0.0, time_budget - el))
            done = (step + 1) / steps
            bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
            stream.write(f"\r[{bar}] step {step + 1}/{steps} epoch {step / per_epoch:5.2f} "
                         f"loss {st.loss:.4f} lr {st.lr:.2e} {rate:6.1f} img/s ETA {fmt_time(eta)}  ")
            stream.flush()
        if checkpoint and ((checkpoint_every and (step + 1) % checkpoint_every == 0) or step == steps - 1):
            checkpoint({"step": step + 1, "rng": rng, "aug": aug, "order": order, "losses": losses,
                        "history": dict(history or {}), "elapsed": time.time() - t0})
        if time_budget and time.time() - t0 > time_budget:
            break
    if log_every:
        stream.write("\n")
    return losses, time.time() - t0


def probe_images(x):
    """Un-augmented images resized 28 -> 32 (bilinear) and normalized."""
    return normalize(ijepa.resize_bilinear(x, 32))


def features(model, x, last_k=1, batch=500, encoder="target"):
    """Mean-pooled target-encoder tokens (after its final norm) of the last `last_k` blocks,
    concatenated: [len(x), last_k * D]. last_k=1 is the last layer (encode's pooled output).
    encoder="context" takes the context encoder instead."""
    out = np.empty((len(x), last_k * model.embed_dim), np.float32)
    for i in range(0, len(x), batch):
        imgs = probe_images(x[i:i + batch])
        if last_k == 1 and not ijepa.has_encode_layers():   # an older library: the same numbers
            out[i:i + batch] = model.encode(imgs, encoder=encoder, pooled=True)
        else:
            out[i:i + batch] = model.encode_layers(imgs, last_k, encoder=encoder)
    return out


def linear_probe(ftr, ytr, fte, yte):
    """Standardize with train mean/std; LogisticRegression(max_iter=1000, lbfgs, C=1); test accuracy."""
    from sklearn.linear_model import LogisticRegression
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    clf = LogisticRegression(max_iter=1000)
    import warnings
    with warnings.catch_warnings():   # lbfgs may stop at max_iter, as in the protocol
        warnings.simplefilter("ignore")
        clf.fit((ftr - mu) / sd, ytr)
    return float(clf.score((fte - mu) / sd, yte))


def standardize(ftr, *others):
    """(ftr - mu) / sd with the mean/std of ftr (sd + 1e-6, as linear_probe), for ftr and others."""
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    return [((f - mu) / sd).astype(np.float32) for f in (ftr,) + others]


def low_shot_draws(ytr, per_class=60, draws=5, seed=1000):
    """Fixed draws of `per_class` labelled images per class (the paper's 1% setting on 60k
    images: 60 per class): a list of index arrays, the same for every encoder."""
    out = []
    for r in range(draws):
        rng = np.random.default_rng(seed + r)
        out.append(np.sort(np.concatenate([rng.choice(np.flatnonzero(ytr == c), per_class, replace=False)
                                           for c in range(int(ytr.max()) + 1)])))
    return out


def low_shot_probe(ftr, ytr, fte, yte, draws):
    """The linear probe (linear_probe: standardized with the labelled images' own mean/std,
    LogisticRegression(max_iter=1000)) fitted on each draw's labelled images only: list of
    test accuracies, one per draw."""
    return [linear_probe(ftr[idx], ytr[idx], fte, yte) for idx in draws]


def knn_accuracy(ftr, ytr, fte, yte, k=20, chunk=500):
    """k-nearest-neighbour classifier, cosine similarity on the standardized features, k=20,
    majority vote (ties: the class with the larger summed similarity)."""
    xtr, xte = standardize(ftr, fte)
    xtr /= np.linalg.norm(xtr, axis=1, keepdims=True) + 1e-12
    xte /= np.linalg.norm(xte, axis=1, keepdims=True) + 1e-12
    K = int(ytr.max()) + 1
    pred = np.empty(len(xte), np.int64)
    for i in range(0, len(xte), chunk):
        s = xte[i:i + chunk] @ xtr.T
        nn = np.argpartition(-s, k, axis=1)[:, :k]
        sim = np.take_along_axis(s, nn, 1)
        votes = np.zeros((len(s), K))
        rows = np.repeat(np.arange(len(s)), k)
        np.add.at(votes, (rows, ytr[nn].ravel()), 1.0 + 1e-3 * sim.ravel())
        pred[i:i + chunk] = votes.argmax(1)
    return float((pred == yte).mean())


def evaluate(ftr, ytr, fte, yte, draws, linear=True):
    """All evaluations of one feature set: the full linear probe (linear_probe; skipped with
    linear=False), the 1% low-shot probe over the fixed draws (mean, std, each) and the kNN
    classifier (k=20, cosine). Seconds per part."""
    r, t = {}, time.time()
    r["linear"] = linear_probe(ftr, ytr, fte, yte) if linear else None
    r["linear_s"] = time.time() - t
    t = time.time()
    shots = low_shot_probe(ftr, ytr, fte, yte, draws)
    r.update(low_shot=float(np.mean(shots)), low_shot_std=float(np.std(shots)), low_shot_each=shots,
             low_shot_s=time.time() - t)
    t = time.time()
    r["knn"] = knn_accuracy(ftr, ytr, fte, yte)
    r["knn_s"] = time.time() - t
    r["feature_std"] = feature_std(ftr)
    return r


def feature_std(f):
    """Mean over dimensions of the std across images (0 = collapsed)."""
    return float(f.std(0).mean())


def save_loss_curve(losses, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8, color="#999999", label="loss per step")
    if len(losses) >= 20:
        w = max(5, len(losses) // 50)
        sm = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, len(losses) + 1), sm, lw=1.6, color="#1f5fa8", label=f"moving mean ({w})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("smooth-L1 loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_mask_picture(model, images, path, n=8):
    """Sample images (augmented as in training) with the context (blue) and the 4 target blocks.
    With a ragged_context config every image shows its own whole context."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ragged = model.config.ragged_context
    masks = model.sample_masks(n, ragged=ragged)
    g = model.config.grid_size
    p = 32 // g
    colors = ["#e4572e", "#f3a712", "#29bf12", "#a41623", "#8e5572", "#00a6a6"]
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), dpi=110)
    for b in range(n):
        img = images[b, 0] * 0.3530 + 0.2860
        for row, ax in enumerate(axes[:, b]):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            if row == 0:
                for e in range(masks.enc.shape[0]):
                    for k in (masks.context(b, e) if ragged else masks.enc[e, b]):
                        r, c = divmod(int(k), g)
                        ax.add_patch(plt.Rectangle((c * p - .5, r * p - .5), p, p, color="#1f5fa8", alpha=0.45, lw=0))
            else:
                for t in range(masks.pred.shape[0]):
                    for k in masks.pred[t, b]:
                        r, c = divmod(int(k), g)
                        ax.add_patch(plt.Rectangle((c * p - .5, r * p - .5), p, p, fill=False,
                                                   ec=colors[t % len(colors)], lw=1.4))
    axes[0, 0].set_ylabel("context", fontsize=8)
    axes[1, 0].set_ylabel("targets", fontsize=8)
    kept = (f"{masks.mean_context_length:.1f} patches kept on average, ragged" if ragged
            else f"{masks.enc.shape[2]} patches kept")
    fig.suptitle(f"context ({kept}) and {masks.pred.shape[0]} target blocks "
                 f"({masks.pred.shape[2]} patches each) on the {g}x{g} patch grid", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_json_line(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")
