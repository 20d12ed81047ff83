#!/usr/bin/env python3
"""Communication volume of data-parallel I-JEPA per step, for the library's presets.

    IJEPA_LIBRARY=build/stage/lib/libijepa.so.1 PYTHONPATH=python python3 Tests/MPI/comm_volume.py

The gradient all-reduce moves, per rank and step, about 2 (p - 1) / p x the gradient buffer
(ring / reduce-scatter + all-gather algorithms; each rank sends and receives that much). The
buffer holds every trainable float of the context encoder and the predictor (the fixed sin-cos
tables are not trainable; the target encoder is never communicated: every rank updates it with
the same EMA). Its length is counted here from the architecture, and the count is checked
against ijepa_model_buffer(GRADS) for every preset small enough to create here (the big ones
would need 5 x 4 bytes per parameter of memory). The masks broadcast is measured by sampling
masks with the preset's grid.
"""

import sys

import numpy as np

import ijepa

CHECK_LIMIT = 120_000_000  # create models up to this many trainable floats to check the count


def trainable_floats(c):
    """Encoder (patch embedding, blocks, final norm) + predictor, as the library lays them out."""
    D, Dp, L, Lp = c.embed_dim, c.pred_embed_dim, c.depth, c.pred_depth
    H, Hp = int(np.float32(D) * np.float32(c.mlp_ratio)), 4 * Dp

    def block(d, h):
        return 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * h + h) + (h * d + d)

    enc = c.in_chans * c.patch_size ** 2 * D + D + L * block(D, H) + 2 * D
    pred = (D * Dp + Dp) + Dp + Lp * block(Dp, Hp) + 2 * Dp + (Dp * D + D)
    return enc, pred


def mask_ints_per_image(c, samples=50):
    """Mean of num_enc * k_enc + num_pred * k_pred over sampled global batches (from a tiny model
    with the preset's grid and mask settings: the masks depend on nothing else)."""
    m = ijepa.Model(c.replace(embed_dim=16, depth=1, num_heads=1, pred_embed_dim=16, pred_depth=1,
                              pred_num_heads=1, mlp_ratio=1.0, n_threads=1, seed=0))
    try:
        n = []
        for _ in range(samples):
            k = m.sample_masks(64)
            n.append(k.num_enc * k.k_enc + k.num_pred * k.k_pred)
        return float(np.mean(n))
    finally:
        m.close()


def main():
    ok = True
    rows = []
    for name in ("vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge", "vit_giant"):
        c = ijepa.Config.preset(name)
        enc, pred = trainable_floats(c)
        n = enc + pred
        checked = ""
        if n <= CHECK_LIMIT:
            with ijepa.Model(c.replace(n_threads=1)) as m:
                got = m.flat_buffer("grads").size
            checked = "yes" if got == n else "NO (library: %d)" % got
            ok &= got == n
        ints = mask_ints_per_image(c)
        rows.append((name, c, enc, pred, n, checked, ints))

    print("| preset | image/patch | encoder | predictor | gradient floats | fp32 MB | "
          "per rank per step, p=2 | p=8 | p=64 | masks bcast per image | counted = library |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, c, enc, pred, n, checked, ints in rows:
        mb = n * 4 / 1e6
        vol = ["%.0f MB" % (mb * 2 * (p - 1) / p) if mb * 2 * (p - 1) / p >= 10 else "%.1f MB" % (mb * 2 * (p - 1) / p)
               for p in (2, 8, 64)]
        print("| %s | %d/%d | %s x %d, %.1fM | %d x %d, %.1fM | %d | %.0f | %s | %s | %s | %.0f B | %s |"
              % (name, c.image_size, c.patch_size, c.embed_dim, c.depth, enc / 1e6, c.pred_embed_dim,
                 c.pred_depth, pred / 1e6, n, mb, vol[0], vol[1], vol[2], 4 * ints, checked or "too big here"))
    if not ok:
        print("error: the count differs from the library's gradient buffer", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
