"""Writes the PyTorch parity fixtures Tests/Fixtures/{rgb,gray,multi}.safetensors.

    python3 tools/make_fixtures.py          # overwrites the three files

Deterministic: torch.manual_seed per fixture, torch.set_num_threads(1). Each fixture runs three
official fp32 training steps (tools/ijepa_torch.py) with fixed per-step lr / wd / EMA momentum
(not the schedules) and stores the initial weights, the inputs of every step (images, masks),
every loss, the step-1 intermediates and gradients, and the weights after steps 1 and 3.
See tools/README.md for the tensor names.
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ijepa_torch as ij  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "Tests", "Fixtures")

STEPS = 3
LR = [1e-3, 8e-4, 6e-4]
WD = [0.04, 0.05, 0.06]
EMA = [0.9, 0.8, 0.7]

_MASKS = dict(enc_mask_scale=[0.85, 1.0], pred_mask_scale=[0.15, 0.2], aspect_ratio=[0.75, 1.5],
              allow_overlap=False)

FIXTURES = [
    dict(name="rgb", image_size=24, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2,
         mlp_ratio=4.0, pred_embed_dim=16, pred_depth=2, pred_num_heads=2,
         num_enc_masks=1, num_pred_masks=4, min_keep=2, batch=3, **_MASKS,
         seed=0, mask_counter_start=0),
    dict(name="gray", image_size=28, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=4,
         mlp_ratio=2.0, pred_embed_dim=24, pred_depth=1, pred_num_heads=4,
         num_enc_masks=1, num_pred_masks=4, min_keep=2, batch=2, **_MASKS,
         seed=1, mask_counter_start=0),
    # enc scale (0.6, 0.8) on the 8x8 grid: the context block is 6x6 or 7x7. A 7x7 block can
    # only sit at (0, 0) (randint(0, 1)), which would make both context masks identical; batch
    # counters 46..48 give 6x6 blocks (randint(0, 2)), so the collator counter starts there
    # (exactly what the official code does on a resume: mask_collator.step() k times).
    dict(name="multi", image_size=32, patch_size=4, in_chans=3, embed_dim=48, depth=2, num_heads=4,
         mlp_ratio=4.0, pred_embed_dim=24, pred_depth=2, pred_num_heads=4,
         num_enc_masks=2, num_pred_masks=3, min_keep=2, batch=2,
         enc_mask_scale=[0.6, 0.8], pred_mask_scale=[0.15, 0.2], aspect_ratio=[0.75, 1.5],
         allow_overlap=False, seed=2, mask_counter_start=46),
]

POS_KEYS = ("pos_embed", "predictor_pos_embed")


def build(cfg):
    encoder, predictor = ij.init_model(
        img_size=cfg["image_size"], patch_size=cfg["patch_size"], in_chans=cfg["in_chans"],
        embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"],
        mlp_ratio=cfg["mlp_ratio"], pred_embed_dim=cfg["pred_embed_dim"],
        pred_depth=cfg["pred_depth"], pred_num_heads=cfg["pred_num_heads"],
        pred_mlp_ratio=cfg["pred_mlp_ratio"])
    return encoder, predictor


def make_collator(cfg, generator):
    c = ij.MaskCollator(
        input_size=cfg["image_size"], patch_size=cfg["patch_size"],
        enc_mask_scale=tuple(cfg["enc_mask_scale"]), pred_mask_scale=tuple(cfg["pred_mask_scale"]),
        aspect_ratio=tuple(cfg["aspect_ratio"]), nenc=cfg["num_enc_masks"],
        npred=cfg["num_pred_masks"], min_keep=cfg["min_keep"],
        allow_overlap=cfg["allow_overlap"], generator=generator)
    for _ in range(cfg["mask_counter_start"]):
        c.step()
    return c


def put_state(t, prefix, module):
    for k, v in ij.trainable_state(module, POS_KEYS).items():
        t[f"{prefix}.{k}"] = v


def make_fixture(spec):
    cfg = dict(spec)
    cfg["pred_mlp_ratio"] = 4.0  # the official vit_predictor always uses mlp_ratio 4
    cfg.update(steps=STEPS, lr=LR, wd=WD, ema=EMA)
    torch.manual_seed(cfg["seed"])
    encoder, predictor = build(cfg)
    target = ij.make_target_encoder(encoder)
    opt = ij.init_opt(encoder, predictor)
    collator = make_collator(cfg, torch.Generator().manual_seed(1000 + cfg["seed"]))

    t = {}
    put_state(t, "init.encoder", encoder)
    put_state(t, "init.predictor", predictor)
    t["pos_embed"] = encoder.pos_embed.detach().clone()
    t["predictor_pos_embed"] = predictor.predictor_pos_embed.detach().clone()

    B, C, S = cfg["batch"], cfg["in_chans"], cfg["image_size"]
    relax = []
    for s in range(STEPS):
        imgs = torch.randn(B, C, S, S)  # global RNG, fresh per step
        r0 = collator.relaxations
        masks_enc, masks_pred = collator.sample_masks(B)
        relax.append(collator.relaxations - r0)
        out = ij.train_step(encoder, predictor, target, opt, imgs, masks_enc, masks_pred,
                            lr=LR[s], wd=WD[s], momentum=EMA[s], return_details=(s == 0))
        loss, det = out if s == 0 else (out, None)
        p = f"step{s + 1}"
        t[f"{p}.images"] = imgs.contiguous()
        t[f"{p}.masks_enc"] = torch.stack(masks_enc).to(torch.int64).contiguous()
        t[f"{p}.masks_pred"] = torch.stack(masks_pred).to(torch.int64).contiguous()
        t[f"{p}.loss"] = loss.reshape(1).clone()
        if det is not None:
            for k in ("target_full", "targets", "ctx_out", "pred_out"):
                t[f"{p}.{k}"] = det[k].contiguous()
            for k, v in det["grads_encoder"].items():
                t[f"{p}.grad.encoder.{k}"] = v.contiguous()
            for k, v in det["grads_predictor"].items():
                t[f"{p}.grad.predictor.{k}"] = v.contiguous()
        if s + 1 in (1, STEPS):
            a = f"after{s + 1}"
            put_state(t, f"{a}.encoder", encoder)
            put_state(t, f"{a}.predictor", predictor)
            put_state(t, f"{a}.target_encoder", target)
        if cfg["num_enc_masks"] > 1:
            me = torch.stack(masks_enc)
            assert not torch.equal(me[0], me[1]), f"{cfg['name']} step {s + 1}: context masks equal"
        print(f"  {cfg['name']} step {s + 1}: loss {loss.item():.7f}  "
              f"Kc={masks_enc[0].shape[1]} Kt={masks_pred[0].shape[1]}  relaxations={relax[-1]}")

    cfg["mask_relaxations"] = relax
    cfg["torch_version"] = torch.__version__
    cfg["generator"] = "tools/make_fixtures.py (tools/ijepa_torch.py)"
    for k, v in t.items():
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)
    return t, cfg


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    total = 0
    for spec in FIXTURES:
        t, cfg = make_fixture(spec)
        path = os.path.join(OUT_DIR, f"{spec['name']}.safetensors")
        save_file(t, path, metadata={"config": json.dumps(cfg, sort_keys=True)})
        os.chmod(path, 0o644)
        size = os.path.getsize(path)
        total += size
        print(f"wrote {os.path.relpath(path, ROOT)}: {len(t)} tensors, {size / 1024:.1f} KiB")
    print(f"total {total / 1024:.1f} KiB")
    assert total < 4 * 1024 * 1024, "fixtures must stay below 4 MB"


if __name__ == "__main__":
    main()
