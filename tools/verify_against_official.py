"""Differential test: tools/ijepa_torch.py against the official facebookresearch/ijepa code.

Needs a checkout of https://github.com/facebookresearch/ijepa (the directory that contains
`src/`); nothing of it is vendored here.

    python3 tools/verify_against_official.py --official /path/to/ijepa

Checks, all BIT-EXACT (torch.equal), single thread:
  1. the 2-D sin-cos tables;
  2. init: under the same torch.manual_seed, `ijepa_torch.init_model` gives the same state_dicts
     (same keys, same values) as the official `src/helper.py::init_model`;
  3. the mask collator (with generator=None, i.e. the global RNG for locations, as the
     official code) gives the same masks over many calls, with and without relaxations;
  4. the lr / wd / momentum schedules;
  5. three fp32 training steps (the use_bfloat16=False branch of src/train.py::train_step,
     re-typed here on top of the official modules and the official init_opt param groups) give
     the same losses, parameters and target-encoder parameters as ijepa_torch.train_step.
"""

import argparse
import copy
import logging
import math
import os
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ijepa_torch as mine  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="checkout of facebookresearch/ijepa (contains src/)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.official))
    import src.helper as helper
    import src.models.vision_transformer as vit
    from src.masks.multiblock import MaskCollator as OfficialCollator
    from src.masks.utils import apply_masks
    from src.utils.tensors import repeat_interleave_batch
    from src.utils import schedulers as osched

    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.ERROR)  # silence the collators' relaxation warnings
    logging.getLogger("ijepa_torch").setLevel(logging.ERROR)
    n_fail = 0

    def check(ok, what):
        nonlocal n_fail
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            n_fail += 1

    # 1. sin-cos tables --------------------------------------------------------------------
    for d, g in [(32, 6), (16, 6), (24, 7), (48, 8), (192, 14), (384, 16), (1280, 16)]:
        a = vit.get_2d_sincos_pos_embed(d, g)
        b = mine.sincos_2d(d, g)
        check(a.dtype == b.dtype and np.array_equal(a, b), f"sincos_2d D={d} G={g}")

    # 2. init ------------------------------------------------------------------------------
    configs = {
        # name: (img, patch, in_chans, D, depth, heads, mlp_ratio, Dp, pred_depth)
        "rgb": (24, 4, 3, 32, 2, 2, 4.0, 16, 2),
        "gray_mlp4": (28, 4, 1, 32, 2, 4, 4.0, 24, 1),
        "multi": (32, 4, 3, 48, 2, 4, 4.0, 24, 2),
        "vit_tiny_224_16": (224, 16, 3, 192, 12, 3, 4.0, 384, 6),
    }

    def official_models(cfg, seed):
        img, p, c, d, depth, heads, mlp, dp, pdepth = cfg
        vit.__dict__["vit_verify"] = partial(
            vit.VisionTransformer, embed_dim=d, depth=depth, num_heads=heads, mlp_ratio=mlp,
            qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), in_chans=c)
        torch.manual_seed(seed)
        return helper.init_model(device=torch.device("cpu"), patch_size=p, model_name="vit_verify",
                                 crop_size=img, pred_depth=pdepth, pred_emb_dim=dp)

    def my_models(cfg, seed):
        img, p, c, d, depth, heads, mlp, dp, pdepth = cfg
        torch.manual_seed(seed)
        # official vit_predictor hard-codes mlp_ratio=4
        return mine.init_model(img, p, c, d, depth, heads, mlp, dp, pdepth, pred_mlp_ratio=4.0)

    def same_state(m1, m2):
        s1, s2 = m1.state_dict(), m2.state_dict()
        return list(s1.keys()) == list(s2.keys()) and all(torch.equal(s1[k], s2[k]) for k in s1)

    for name, cfg in configs.items():
        oe, op = official_models(cfg, 7)
        me, mp = my_models(cfg, 7)
        check(same_state(oe, me), f"init encoder state_dict ({name}, {len(me.state_dict())} keys)")
        check(same_state(op, mp), f"init predictor state_dict ({name}, {len(mp.state_dict())} keys)")
        rg1 = [n for n, p in oe.named_parameters() if p.requires_grad]
        rg2 = [n for n, p in me.named_parameters() if p.requires_grad]
        check(rg1 == rg2, f"trainable parameter names/order ({name})")

    # 3. mask collator -----------------------------------------------------------------------
    mask_cfgs = [
        dict(input_size=24, patch_size=4, enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2),
             aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=2, allow_overlap=False),
        dict(input_size=32, patch_size=4, enc_mask_scale=(0.6, 0.8), pred_mask_scale=(0.15, 0.2),
             aspect_ratio=(0.75, 1.5), nenc=2, npred=3, min_keep=2, allow_overlap=False),
        dict(input_size=224, patch_size=14, enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2),
             aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10, allow_overlap=False),
        dict(input_size=64, patch_size=8, enc_mask_scale=(0.2, 0.8), pred_mask_scale=(0.2, 0.8),
             aspect_ratio=(0.3, 3.0), nenc=2, npred=2, min_keep=4, allow_overlap=True),
        # forces many "Valid mask not found" relaxations (the context may then overlap targets)
        dict(input_size=24, patch_size=4, enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.25, 0.35),
             aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=5, allow_overlap=False),
    ]
    for i, mc in enumerate(mask_cfgs):
        oc = OfficialCollator(**mc)
        myc = mine.MaskCollator(**mc, generator=None)
        ok = True
        B = 8
        for step in range(25):
            torch.manual_seed(1000 + step)
            _, oe_, op_ = oc([torch.zeros(1) for _ in range(B)])
            torch.manual_seed(1000 + step)
            _, me_, mp_ = myc([torch.zeros(1) for _ in range(B)])
            ok &= len(oe_) == len(me_) and len(op_) == len(mp_)
            ok &= all(torch.equal(a, b) for a, b in zip(oe_, me_))
            ok &= all(torch.equal(a, b) for a, b in zip(op_, mp_))
        check(ok, f"mask collator cfg {i} (25 batches of {B}; relaxations seen: {myc.relaxations})")

    # 4. schedules ----------------------------------------------------------------------------
    class _Opt:  # stand-in with param_groups
        def __init__(self):
            self.param_groups = [{}, {"WD_exclude": True, "weight_decay": 0}]
    o1, o2 = _Opt(), _Opt()
    ipe, epochs, warm = 7, 5, 2
    T = int(1.0 * epochs * ipe)
    s1 = osched.WarmupCosineSchedule(o1, warmup_steps=int(warm * ipe), start_lr=2e-4, ref_lr=1e-3,
                                     final_lr=1e-6, T_max=T)
    s2 = mine.WarmupCosineSchedule(o2, warmup_steps=int(warm * ipe), start_lr=2e-4, ref_lr=1e-3,
                                   final_lr=1e-6, T_max=T)
    w1 = osched.CosineWDSchedule(o1, ref_wd=0.04, final_wd=0.4, T_max=T)
    w2 = mine.CosineWDSchedule(o2, ref_wd=0.04, final_wd=0.4, T_max=T)
    m1 = (0.996 + i * (1.0 - 0.996) / (ipe * epochs * 1.0) for i in range(int(ipe * epochs * 1.0) + 1))
    m2 = mine.momentum_schedule(0.996, 1.0, ipe, epochs, 1.0)
    ok = True
    for _ in range(T + 3):
        ok &= s1.step() == s2.step() and w1.step() == w2.step()
        ok &= o1.param_groups == o2.param_groups
    ok &= list(m1) == list(m2)
    check(ok, "lr / wd / momentum schedules")

    # 5. three training steps -------------------------------------------------------------------
    def official_step(encoder, predictor, target_encoder, optimizer, imgs, masks_enc, masks_pred,
                      lr, wd, m):
        for group in optimizer.param_groups:
            group["lr"] = lr
            if ("WD_exclude" not in group) or not group["WD_exclude"]:
                group["weight_decay"] = wd
        with torch.no_grad():
            h = target_encoder(imgs)
            h = F.layer_norm(h, (h.size(-1),))
            B = len(h)
            h = apply_masks(h, masks_pred)
            h = repeat_interleave_batch(h, B, repeat=len(masks_enc))
        z = encoder(imgs, masks_enc)
        z = predictor(z, masks_enc, masks_pred)
        loss = F.smooth_l1_loss(z, h)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            for param_q, param_k in zip(encoder.parameters(), target_encoder.parameters()):
                param_k.data.mul_(m).add_((1. - m) * param_q.detach().data)
        return loss.detach()

    step_cfgs = [("rgb", mask_cfgs[0], 3), ("multi", mask_cfgs[1], 2)]
    for name, mc, B in step_cfgs:
        cfg = configs[name]
        oe, op = official_models(cfg, 3)
        ot = copy.deepcopy(oe)
        for p in ot.parameters():
            p.requires_grad = False
        oopt = helper.init_opt(oe, op)
        me, mp = my_models(cfg, 3)
        mt = mine.make_target_encoder(me)
        mopt = mine.init_opt(me, mp)
        coll = mine.MaskCollator(**mc, generator=torch.Generator().manual_seed(5))
        gimg = torch.Generator().manual_seed(11)
        ok = True
        for s, (lr, wd, m) in enumerate(zip([1e-3, 8e-4, 6e-4], [0.04, 0.05, 0.06], [0.9, 0.8, 0.7])):
            imgs = torch.randn(B, cfg[2], cfg[0], cfg[0], generator=gimg)
            menc, mpred = coll.sample_masks(B)
            l1 = official_step(oe, op, ot, oopt, imgs, menc, mpred, lr, wd, m)
            l2 = mine.train_step(me, mp, mt, mopt, imgs, menc, mpred, lr, wd, m)
            ok &= torch.equal(l1, l2)
            ok &= same_state(oe, me) and same_state(op, mp) and same_state(ot, mt)
            print(f"     {name} step {s + 1}: official loss {l1.item():.9g}  mine {l2.item():.9g}")
        check(ok, f"3 training steps bit-exact ({name})")

    print("ALL OK" if n_fail == 0 else f"{n_fail} FAILURES")
    sys.exit(1 if n_fail else 0)


if __name__ == "__main__":
    main()
