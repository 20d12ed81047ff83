"""Self-check of Tests/Fixtures/*.safetensors (written by tools/make_fixtures.py).

    python3 tools/check_fixtures.py [files...]

For each fixture:
  * metadata: the config JSON has every required field;
  * names, dtypes (F32 / I64) and shapes of every tensor; no missing or extra names;
  * the pos-embed tables equal the 2-D sin-cos formula of the spec written out independently
    (omega_k = 1/10000^(k/(D/4)); first D/2 dims = column, last D/2 = row);
  * masks: indices in range, strictly ascending, never on the last patch row/column (official
    off-by-one), every target mask is a full h x w rectangle, targets of a batch share one size,
    K > min_keep, context and targets of an image disjoint (when no relaxation happened), the
    nenc context masks of a step are not all equal;
  * step-1 internal consistency: targets == repeat_interleave_batch(gather(layer_norm(target_full)))
    and loss == smooth_l1(pred_out, targets), exactly;
  * after1 == an independent float64 AdamW step-1 update from init + stored grads (within 16
    float32 ulps; ~3 observed, a wrong group gives > 300), which checks the 4 param groups (mask_token decayed; biases / LayerNorm not);
  * after1.target_encoder == m*init + (1-m)*after1.encoder (bit-exact, float32 ops);
  * re-running ijepa_torch.train_step from init.* reproduces step1 intermediates, gradients,
    all losses, after1.* and after3.* EXACTLY (torch.equal).
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ijepa_torch as ij  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIRED = ["image_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
            "pred_embed_dim", "pred_depth", "pred_num_heads", "num_enc_masks", "num_pred_masks",
            "min_keep", "batch", "steps", "lr", "wd", "ema"]
POS_KEYS = ("pos_embed", "predictor_pos_embed")


class Checker:
    def __init__(self, name):
        self.name, self.fails, self.n = name, 0, 0

    def __call__(self, ok, what):
        self.n += 1
        if not ok:
            self.fails += 1
            print(f"  FAIL [{self.name}] {what}")


def sincos_reference(D, G):
    """Spec 1.1 written out element by element (float64), then cast to float32."""
    out = np.zeros((G * G, D))
    q = D // 4
    for r in range(G):
        for c in range(G):
            i = r * G + c
            for k in range(q):
                om = 1.0 / 10000 ** (k / q)
                out[i, k], out[i, q + k] = math.sin(c * om), math.cos(c * om)           # column
                out[i, 2 * q + k], out[i, 3 * q + k] = math.sin(r * om), math.cos(r * om)  # row
    return torch.from_numpy(out).float()


def build(cfg):
    return ij.init_model(cfg["image_size"], cfg["patch_size"], cfg["in_chans"], cfg["embed_dim"],
                         cfg["depth"], cfg["num_heads"], cfg["mlp_ratio"], cfg["pred_embed_dim"],
                         cfg["pred_depth"], pred_num_heads=cfg["pred_num_heads"],
                         pred_mlp_ratio=cfg.get("pred_mlp_ratio", cfg["mlp_ratio"]))


def load_into(module, t, prefix, pos_key, pos_val):
    sd = {k[len(prefix) + 1:]: v for k, v in t.items() if k.startswith(prefix + ".")}
    sd[pos_key] = pos_val
    module.load_state_dict(sd, strict=True)


def state_equal(module, t, prefix):
    sd = ij.trainable_state(module, POS_KEYS)
    return all(torch.equal(v, t[f"{prefix}.{k}"]) for k, v in sd.items())


def check_file(path):
    name = os.path.splitext(os.path.basename(path))[0]
    chk = Checker(name)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["config"])
    for k in REQUIRED:
        chk(k in cfg, f"config field {k}")
    t = load_file(path)

    B, C, S, P = cfg["batch"], cfg["in_chans"], cfg["image_size"], cfg["patch_size"]
    G = S // P
    N, D, Dp = G * G, cfg["embed_dim"], cfg["pred_embed_dim"]
    nenc, npred, steps = cfg["num_enc_masks"], cfg["num_pred_masks"], cfg["steps"]
    chk(steps == 3 and len(cfg["lr"]) == len(cfg["wd"]) == len(cfg["ema"]) == steps, "3 steps")

    torch.manual_seed(0)
    enc, pred = build(cfg)
    enc_keys = [k for k in enc.state_dict() if k != "pos_embed"]
    pred_keys = [k for k in pred.state_dict() if k != "predictor_pos_embed"]
    L, Lp = cfg["depth"], cfg["pred_depth"]
    chk(len(enc_keys) == 2 + 12 * L + 2, f"encoder key count {len(enc_keys)}")
    chk(len(pred_keys) == 7 + 12 * Lp, f"predictor key count {len(pred_keys)}")
    trainable_enc = [n for n, p in enc.named_parameters() if p.requires_grad]
    trainable_pred = [n for n, p in pred.named_parameters() if p.requires_grad]
    chk(trainable_enc == enc_keys and trainable_pred == pred_keys, "trainable == saved keys")

    # ---- expected names + shapes -------------------------------------------------------------
    exp = {"pos_embed": (1, N, D), "predictor_pos_embed": (1, N, Dp)}
    esd, psd = enc.state_dict(), pred.state_dict()
    for pre in ("init", "after1", "after3", "step1.grad"):
        for k in enc_keys:
            exp[f"{pre}.encoder.{k}"] = tuple(esd[k].shape)
        for k in pred_keys:
            exp[f"{pre}.predictor.{k}"] = tuple(psd[k].shape)
    for pre in ("after1", "after3"):
        for k in enc_keys:
            exp[f"{pre}.target_encoder.{k}"] = tuple(esd[k].shape)
    Kc = {}
    Kt = {}
    for s in range(1, steps + 1):
        me, mp = t.get(f"step{s}.masks_enc"), t.get(f"step{s}.masks_pred")
        Kc[s] = me.shape[-1] if me is not None else -1
        Kt[s] = mp.shape[-1] if mp is not None else -1
        exp[f"step{s}.images"] = (B, C, S, S)
        exp[f"step{s}.masks_enc"] = (nenc, B, Kc[s])
        exp[f"step{s}.masks_pred"] = (npred, B, Kt[s])
        exp[f"step{s}.loss"] = (1,)
    exp["step1.target_full"] = (B, N, D)
    exp["step1.targets"] = (npred * nenc * B, Kt[1], D)
    exp["step1.ctx_out"] = (nenc * B, Kc[1], D)
    exp["step1.pred_out"] = (npred * nenc * B, Kt[1], D)
    chk(set(t) == set(exp), f"tensor names (missing {sorted(set(exp) - set(t))[:5]}, "
                            f"extra {sorted(set(t) - set(exp))[:5]})")
    for k, shp in exp.items():
        if k in t:
            chk(tuple(t[k].shape) == shp, f"shape {k} {tuple(t[k].shape)} != {shp}")
            want = torch.int64 if ".masks_" in k else torch.float32
            chk(t[k].dtype == want, f"dtype {k} {t[k].dtype}")
            if want == torch.float32:
                chk(bool(torch.isfinite(t[k]).all()), f"finite {k}")

    # ---- pos-embed tables ----------------------------------------------------------------------
    for key, dim in (("pos_embed", D), ("predictor_pos_embed", Dp)):
        ref = sincos_reference(dim, G)
        got = t[key][0]
        chk(torch.allclose(got, ref, rtol=0, atol=1e-6), f"{key} == spec formula")
        chk(torch.equal(got, (enc.pos_embed if key == "pos_embed" else pred.predictor_pos_embed)[0]),
            f"{key} == ijepa_torch table")
        # first half depends on the column only, second half on the row only
        tab = got.reshape(G, G, dim)
        chk(torch.equal(tab[:, :, :dim // 2], tab[:1, :, :dim // 2].expand(G, G, dim // 2)), f"{key} col half")
        chk(torch.equal(tab[:, :, dim // 2:], tab[:, :1, dim // 2:].expand(G, G, dim // 2)), f"{key} row half")

    # ---- masks ---------------------------------------------------------------------------------
    relax = cfg.get("mask_relaxations", [0] * steps)
    for s in range(1, steps + 1):
        me, mp = t[f"step{s}.masks_enc"], t[f"step{s}.masks_pred"]
        for nm, m in (("enc", me), ("pred", mp)):
            chk(bool(((m >= 0) & (m < N)).all()), f"step{s} {nm} in range")
            chk(bool((m[..., 1:] > m[..., :-1]).all()), f"step{s} {nm} strictly ascending")
            chk(bool(((m // G < G - 1) & (m % G < G - 1)).all()), f"step{s} {nm} off last row/col")
            chk(m.shape[-1] > cfg["min_keep"], f"step{s} {nm} K > min_keep")
        hw = set()
        for j in range(npred):
            for b in range(B):
                rows, cols = mp[j, b] // G, mp[j, b] % G
                h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
                hw.add((h, w))
                chk(h * w == mp.shape[-1], f"step{s} target {j},{b} is a full rectangle")
        chk(len(hw) == 1, f"step{s} one target size per batch {hw}")
        if relax[s - 1] == 0 and not cfg.get("allow_overlap", False):
            for b in range(B):
                tgt = set(mp[:, b].reshape(-1).tolist())
                for i in range(nenc):
                    chk(not (set(me[i, b].tolist()) & tgt), f"step{s} context {i} of image {b} disjoint")
        if nenc > 1:
            chk(not all(torch.equal(me[0], me[i]) for i in range(1, nenc)), f"step{s} context masks differ")

    # ---- step-1 internal consistency -------------------------------------------------------------
    me1 = list(t["step1.masks_enc"])
    mp1 = list(t["step1.masks_pred"])
    h = F.layer_norm(t["step1.target_full"], (D,))
    h = ij.repeat_interleave_batch(ij.apply_masks(h, mp1), B, repeat=nenc)
    chk(torch.equal(h, t["step1.targets"]), "targets from target_full")
    chk(torch.equal(F.smooth_l1_loss(t["step1.pred_out"], t["step1.targets"]).reshape(1), t["step1.loss"]),
        "loss == smooth_l1(pred_out, targets)")

    # ---- independent float64 AdamW step 1 (first step: m_hat = g, v_hat = g^2) ---------------
    lr, wd, m = cfg["lr"][0], cfg["wd"][0], cfg["ema"][0]
    worst = 0.0
    for net, keys, mod in (("encoder", enc_keys, enc), ("predictor", pred_keys, pred)):
        for k in keys:
            p0 = t[f"init.{net}.{k}"].double()
            g = t[f"step1.grad.{net}.{k}"].double()
            decay = ("bias" not in k) and p0.ndim != 1
            p1 = p0 * (1 - lr * (wd if decay else 0.0)) - lr * g / (g.abs() + 1e-8)
            # error in float32 ulps of max(|p0|, |p1|, lr): ~3 observed; a param in the wrong
            # group (decay on/off) is off by > 300 ulps
            scale = torch.maximum(torch.maximum(p0.abs(), p1.abs()), torch.full_like(p0, lr)) * 2.0 ** -23
            err = ((p1 - t[f"after1.{net}.{k}"].double()).abs() / scale).max().item()
            worst = max(worst, err)
            chk(err < 16, f"after1.{net}.{k} == float64 AdamW (err {err:.1f} ulp)")
    mt = t["init.predictor.mask_token"].double()
    chk(not torch.equal(mt * (1 - lr * wd) - lr * torch.sign(t["step1.grad.predictor.mask_token"].double()),
                        mt - lr * torch.sign(t["step1.grad.predictor.mask_token"].double())), "mask_token decayed")
    # ---- EMA of step 1 -----------------------------------------------------------------------------
    for k in enc_keys:
        want = t[f"init.encoder.{k}"].clone().mul_(m).add_((1.0 - m) * t[f"after1.encoder.{k}"])
        chk(torch.equal(want, t[f"after1.target_encoder.{k}"]), f"after1 EMA {k}")

    # ---- re-run the three steps from init.* --------------------------------------------------------
    load_into(enc, t, "init.encoder", "pos_embed", t["pos_embed"])
    load_into(pred, t, "init.predictor", "predictor_pos_embed", t["predictor_pos_embed"])
    tgt = ij.make_target_encoder(enc)
    opt = ij.init_opt(enc, pred)
    for s in range(1, steps + 1):
        out = ij.train_step(enc, pred, tgt, opt, t[f"step{s}.images"], list(t[f"step{s}.masks_enc"]),
                            list(t[f"step{s}.masks_pred"]), cfg["lr"][s - 1], cfg["wd"][s - 1],
                            cfg["ema"][s - 1], return_details=(s == 1))
        loss, det = out if s == 1 else (out, None)
        chk(torch.equal(loss.reshape(1), t[f"step{s}.loss"]), f"re-run step{s} loss")
        if det is not None:
            for k in ("target_full", "targets", "ctx_out", "pred_out"):
                chk(torch.equal(det[k], t[f"step1.{k}"]), f"re-run step1 {k}")
            for net in ("encoder", "predictor"):
                for k, v in det[f"grads_{net}"].items():
                    chk(torch.equal(v, t[f"step1.grad.{net}.{k}"]), f"re-run grad {net}.{k}")
        if s in (1, steps):
            for net, mod in (("encoder", enc), ("predictor", pred), ("target_encoder", tgt)):
                chk(state_equal(mod, t, f"after{s}.{net}"), f"re-run after{s}.{net}")

    drift = (tgt.pos_embed - t["pos_embed"]).abs().max().item()
    losses = [t[f"step{s}.loss"].item() for s in range(1, steps + 1)]
    print(f"{name}: {chk.n} checks, {chk.fails} failures; losses {['%.6f' % x for x in losses]}; "
          f"Kc {list(Kc.values())} Kt {list(Kt.values())}; AdamW vs float64 max {worst:.1f} ulp; "
          f"target pos_embed EMA drift {drift:.1e}; {os.path.getsize(path)} bytes")
    return chk.fails


def main():
    torch.set_num_threads(1)
    files = sys.argv[1:] or [os.path.join(ROOT, "Tests", "Fixtures", f"{n}.safetensors")
                             for n in ("rgb", "gray", "multi")]
    fails = sum(check_file(f) for f in files)
    print("ALL OK" if fails == 0 else f"{fails} FAILURES")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
