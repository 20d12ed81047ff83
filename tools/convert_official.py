#!/usr/bin/env python3
"""Convert between official I-JEPA checkpoints (facebookresearch/ijepa ``*.pth.tar``) and the
safetensors checkpoints of libijepa. Dev-time tool: needs torch and safetensors (pip).

Official -> libijepa
    python3 tools/convert_official.py to-safetensors IN1K-vit.h.14-300e.pth.tar vith14.safetensors \\
        --model vit_huge --patch-size 14 --image-size 224 --pred-depth 12 --pred-emb-dim 384

  The official file is a torch pickle dict whose ``encoder``, ``predictor`` and ``target_encoder``
  entries are DDP state_dicts (keys start with ``module.``). They become ``encoder.<key>``,
  ``predictor.<key>`` and ``target_encoder.<key>`` (``module.`` stripped, fixed position tables
  kept, everything float32). ``opt``, ``scaler``, ``epoch``... are not converted.

  With model hyper-parameters on the command line (``--model`` and/or ``--num-heads`` at least:
  the number of heads is the one thing the weights cannot tell) the file also gets the
  ``ijepa.config`` metadata, so ``ijepa_model_load`` / ``ijepa.Model.load`` create the model from
  it. Every size the tensors do tell (image and patch size, channels, widths, depths, MLP ratio)
  is read from them and any flag you give is checked against them. The training-recipe fields
  (masks, schedules, seed) get the library defaults (the official recipe) unless overridden
  with ``--set key=value``. Without hyper-parameters the file is still loadable into a model you
  create yourself, with ``ijepa_model_load_weights`` / ``Model.load_weights``.

libijepa -> official layout
    python3 tools/convert_official.py to-official model.safetensors model.pth.tar [--no-module-prefix]

  Writes {'encoder', 'predictor', 'target_encoder'} state_dicts that the official modules
  (``src/models/vision_transformer.py``, or tools/ijepa_torch.py) load with ``strict=True``:
  keys carry ``module.`` as the official DDP-wrapped modules expect, unless --no-module-prefix.
  Also 'epoch' (--epoch, default 0), 'loss', 'batch_size', 'world_size', 'lr', 'scaler' (None)
  and, when the input holds a training state (``Model.save(..., training_state=True)``), 'opt':
  the AdamW state_dict with the official 4 parameter groups (enc-decay, pred-decay, enc-noWD,
  pred-noWD, frozen position tables included as the official groups do). Note the official
  ``load_checkpoint`` re-derives the schedules from ``epoch`` and silently starts over at epoch 0
  if anything (such as a missing 'opt') fails after the networks were loaded.

The direction can also be inferred from the file names:
    python3 tools/convert_official.py in.pth.tar out.safetensors [flags]
    python3 tools/convert_official.py in.safetensors out.pth.tar [flags]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections import OrderedDict

import numpy as np

#: Official ``vit_*`` factories: embed_dim, depth, num_heads, mlp_ratio (src/models/vision_transformer.py).
MODELS = {
    "vit_tiny": (192, 12, 3, 4.0),
    "vit_small": (384, 12, 6, 4.0),
    "vit_base": (768, 12, 12, 4.0),
    "vit_large": (1024, 24, 16, 4.0),
    "vit_huge": (1280, 32, 16, 4.0),
    "vit_giant": (1408, 40, 16, 48 / 11),
}

#: The keys of the ``ijepa.config`` metadata, in include/ijepa.h order (all required).
CONFIG_KEYS = [
    "image_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
    "pred_embed_dim", "pred_depth", "pred_num_heads", "num_enc_masks", "num_pred_masks", "min_keep",
    "allow_overlap", "full_grid", "enc_mask_scale", "pred_mask_scale", "aspect_ratio",
    "start_lr", "lr", "final_lr", "weight_decay", "final_weight_decay", "ema_start", "ema_end",
    "warmup_steps", "total_steps", "seed", "n_threads",
]
_INT_KEYS = {"image_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
             "pred_embed_dim", "pred_depth", "pred_num_heads", "num_enc_masks", "num_pred_masks",
             "min_keep", "n_threads"}
_BOOL_KEYS = {"allow_overlap", "full_grid"}
_PAIR_KEYS = {"enc_mask_scale", "pred_mask_scale", "aspect_ratio"}
_STRING_INT_KEYS = {"warmup_steps", "total_steps", "seed"}  # int64/uint64 as decimal strings

#: Training-recipe defaults: the same values as ijepa_config_default (the official recipe;
#: tools/test_interop.py checks they agree with the library).
RECIPE_DEFAULTS = {
    "num_enc_masks": 1, "num_pred_masks": 4, "min_keep": 10,
    "allow_overlap": False, "full_grid": False,
    "enc_mask_scale": [0.85, 1.0], "pred_mask_scale": [0.15, 0.2], "aspect_ratio": [0.75, 1.5],
    "start_lr": 2e-4, "lr": 1e-3, "final_lr": 1e-6,
    "weight_decay": 0.04, "final_weight_decay": 0.4, "ema_start": 0.996, "ema_end": 1.0,
    "warmup_steps": "1000", "total_steps": "10000", "seed": "0", "n_threads": 0,
    "pred_num_heads": 0,
}

PARTS = ("encoder", "predictor", "target_encoder")
POS_TABLES = {"encoder": "pos_embed", "target_encoder": "pos_embed",
              "predictor": "predictor_pos_embed"}
#: The predictor's MLP ratio: the official vit_predictor factory always uses 4.
PRED_MLP_RATIO = 4


class ConversionError(Exception):
    pass


# ---- helpers ---------------------------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError:
        raise ConversionError("torch is required: pip install torch (CPU build is enough)")
    return torch


def strip_module(state_dict):
    """Removes DDP's ``module.`` component from every key."""
    out = OrderedDict()
    for k, v in state_dict.items():
        nk = ".".join(p for p in k.split(".") if p != "module")
        if nk in out:
            raise ConversionError("keys %r and another both become %r" % (k, nk))
        out[nk] = v
    return out


def sincos_2d(embed_dim, grid):
    """The official fixed 2-D sin-cos table [grid*grid, embed_dim] (float64)."""
    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    coords = np.arange(grid, dtype=np.float64)
    col, row = np.meshgrid(coords, coords)
    return np.concatenate([one_d(embed_dim // 2, col), one_d(embed_dim // 2, row)], axis=1)


def _count_blocks(sd, prefix):
    idx = set()
    for k in sd:
        m = re.match(re.escape(prefix) + r"\.(\d+)\.", k)
        if m:
            idx.add(int(m.group(1)))
    if idx and idx != set(range(len(idx))):
        raise ConversionError("%s indices are not 0..n-1: %s" % (prefix, sorted(idx)))
    return len(idx)


def _shape(sd, key, part):
    if key not in sd:
        raise ConversionError("%s has no %r (is this an I-JEPA checkpoint?)" % (part, key))
    return tuple(sd[key].shape)


def infer_dims(encoder, predictor):
    """Every size the weights determine. encoder / predictor: state_dicts without ``module.``."""
    D, C, p, p2 = _shape(encoder, "patch_embed.proj.weight", "encoder")
    if p != p2:
        raise ConversionError("non-square patches %dx%d" % (p, p2))
    depth = _count_blocks(encoder, "blocks")
    hidden = _shape(encoder, "blocks.0.mlp.fc1.weight", "encoder")[0] if depth else 4 * D
    if "pos_embed" in encoder:
        N = _shape(encoder, "pos_embed", "encoder")[1]
    elif "predictor_pos_embed" in predictor:
        N = _shape(predictor, "predictor_pos_embed", "predictor")[1]
    else:
        raise ConversionError("no position table: the image size cannot be inferred; "
                              "pass --image-size")
    grid = math.isqrt(N)
    if grid * grid != N:
        raise ConversionError("pos_embed has %d positions, not a square grid" % N)
    Dp, D2 = _shape(predictor, "predictor_embed.weight", "predictor")
    if D2 != D:
        raise ConversionError("predictor_embed takes width %d, the encoder has %d" % (D2, D))
    pred_depth = _count_blocks(predictor, "predictor_blocks")
    if pred_depth:
        ph = _shape(predictor, "predictor_blocks.0.mlp.fc1.weight", "predictor")[0]
        if ph != PRED_MLP_RATIO * Dp:
            raise ConversionError(
                "the predictor MLP hidden size is %d, not 4 x %d: the official vit_predictor "
                "always uses mlp_ratio 4 and so does libijepa" % (ph, Dp))
    return {"image_size": grid * p, "patch_size": p, "in_chans": C, "embed_dim": D,
            "depth": depth, "mlp_ratio": _mlp_ratio(D, hidden), "pred_embed_dim": Dp,
            "pred_depth": pred_depth}


def _mlp_ratio(D, hidden):
    """A ratio r with int(float32(D) * float32(r)) == hidden (how the library sizes the MLP)."""
    r = hidden / D
    f = np.float32(r)
    for _ in range(4):
        h = int(np.float32(D) * f)
        if h == hidden:
            return float(f)
        f = np.nextafter(f, np.float32(np.inf) if h < hidden else np.float32(-np.inf))
    raise ConversionError("cannot express MLP hidden size %d for width %d as a ratio" % (hidden, D))


def _parse_value(key, text):
    if key in _BOOL_KEYS:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ConversionError("--set %s: expected a boolean, got %r" % (key, text))
    if key in _PAIR_KEYS:
        parts = [t for t in re.split(r"[,\s]+", text.strip("[]() ")) if t]
        if len(parts) != 2:
            raise ConversionError("--set %s: expected two numbers 'a,b', got %r" % (key, text))
        return [float(parts[0]), float(parts[1])]
    if key in _STRING_INT_KEYS:
        return str(int(text))
    if key in _INT_KEYS:
        return int(text)
    return float(text)


def make_config(inferred, model=None, overrides=None, sets=None):
    """The full ``ijepa.config`` dict.

    inferred:  infer_dims(...) output (the weights' truth).
    model:     an official model name (MODELS) or None.
    overrides: {key: value} from explicit flags (None values ignored); checked against inferred.
    sets:      {key: value} for any config key (training recipe), applied last.
    """
    cfg = {}
    cfg.update(RECIPE_DEFAULTS)
    cfg.update(inferred)
    given = {}
    if model is not None:
        if model not in MODELS:
            raise ConversionError("unknown --model %r; one of %s" % (model, ", ".join(MODELS)))
        D, depth, heads, ratio = MODELS[model]
        given.update(embed_dim=D, depth=depth, num_heads=heads, mlp_ratio=ratio)
    given.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for k, v in given.items():
        if k in inferred:
            want = inferred[k]
            same = abs(float(v) - want) <= 1e-5 * abs(want) if k == "mlp_ratio" else v == want
            if not same:
                src = "--%s" % k.replace("_", "-") if k in (overrides or {}) and \
                    (overrides or {}).get(k) is not None else "--model %s" % model
                raise ConversionError("%s = %s (from %s), but the checkpoint's tensors say %s"
                                      % (k, v, src, want))
        else:
            cfg[k] = v
    for k, v in (sets or {}).items():
        if k not in CONFIG_KEYS:
            raise ConversionError("--set: unknown config key %r; keys: %s" % (k, ", ".join(CONFIG_KEYS)))
        if k in inferred and v != inferred[k]:
            raise ConversionError("--set %s=%s contradicts the checkpoint's tensors (%s)" % (k, v, inferred[k]))
        cfg[k] = v
    if "num_heads" not in cfg:
        raise ConversionError("the number of heads is not in the weights: pass --model or --num-heads")
    N = (cfg["image_size"] // cfg["patch_size"]) ** 2
    if cfg["embed_dim"] % cfg["num_heads"]:
        raise ConversionError("embed_dim %d is not divisible by num_heads %d" % (cfg["embed_dim"], cfg["num_heads"]))
    ph = cfg["pred_num_heads"] or cfg["num_heads"]
    if cfg["pred_embed_dim"] % ph:
        raise ConversionError("pred_embed_dim %d is not divisible by the predictor's %d heads"
                              % (cfg["pred_embed_dim"], ph))
    if not 0 <= cfg["min_keep"] < N:
        raise ConversionError("min_keep %d must be below the %d patches: --set min_keep=..." % (cfg["min_keep"], N))
    return _normalize_config(cfg)


def _normalize_config(cfg):
    out = OrderedDict()
    for k in CONFIG_KEYS:
        v = cfg[k]
        if k in _BOOL_KEYS:
            v = bool(v)
        elif k in _PAIR_KEYS:
            v = [float(v[0]), float(v[1])]
        elif k in _STRING_INT_KEYS:
            v = str(int(v))
        elif k in _INT_KEYS:
            v = int(v)
        else:
            v = float(v)
        out[k] = v
    return out


# ---- official -> libijepa -------------------------------------------------------------------
def load_official(path, trust_pickle=False):
    """The official checkpoint dict (torch.load on CPU; weights_only unless trust_pickle)."""
    torch = _torch()
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        if not trust_pickle and "weights_only" in str(e):
            raise ConversionError("%s holds objects torch.load(weights_only=True) refuses; if you "
                                  "trust the file, pass --trust-pickle\n%s" % (path, e))
        raise ConversionError("cannot read %s: %s" % (path, e))


def official_to_tensors(ckpt, copy_missing_target=True, log=print):
    """-> OrderedDict name -> float32 contiguous torch tensor, libijepa names."""
    torch = _torch()
    if not isinstance(ckpt, dict):
        raise ConversionError("expected a dict checkpoint, got %s" % type(ckpt).__name__)
    parts = {}
    for part in PARTS:
        sd = ckpt.get(part)
        if sd is None and part == "target_encoder" and copy_missing_target and "encoder" in ckpt:
            log("note: no target_encoder in the checkpoint; using a copy of the encoder")
            sd = ckpt["encoder"]
        if sd is None:
            raise ConversionError("the checkpoint has no %r entry (keys: %s)" % (part, ", ".join(map(str, ckpt))))
        if not hasattr(sd, "items"):
            raise ConversionError("%r is not a state_dict" % part)
        parts[part] = strip_module(sd)
    dims = infer_dims(parts["encoder"], parts["predictor"])
    grid = dims["image_size"] // dims["patch_size"]
    out = OrderedDict()
    for part in PARTS:
        sd = parts[part]
        table = POS_TABLES[part]
        if table not in sd:
            width = dims["pred_embed_dim"] if part == "predictor" else dims["embed_dim"]
            log("note: %s has no %s; writing the fixed sin-cos table" % (part, table))
            sd = OrderedDict([(table, torch.from_numpy(sincos_2d(width, grid)).float()[None])] + list(sd.items()))
        for k, v in sd.items():
            if not torch.is_tensor(v):
                raise ConversionError("%s.%s is not a tensor" % (part, k))
            if not v.is_floating_point():
                raise ConversionError("%s.%s has dtype %s" % (part, k, v.dtype))
            out["%s.%s" % (part, k)] = v.detach().to(torch.float32).contiguous().clone()
    return out, dims


def convert_official_to_safetensors(in_path, out_path, model=None, overrides=None, sets=None,
                                    write_config=None, trust_pickle=False, log=print):
    """Converts; returns the written config dict (or None when no config was written).

    write_config None: write one when the number of heads is known (model or
    overrides['num_heads']); True: require it; False: never."""
    from safetensors.torch import save_file
    ckpt = load_official(in_path, trust_pickle=trust_pickle)
    tensors, dims = official_to_tensors(ckpt, log=log)
    overrides = dict(overrides or {})
    heads_known = model is not None or overrides.get("num_heads") is not None \
        or (sets or {}).get("num_heads") is not None
    cfg = None
    if write_config is None:
        write_config = heads_known
        if not heads_known and (any(v is not None for v in overrides.values()) or sets):
            raise ConversionError("model hyper-parameters were given but not the number of heads: "
                                  "pass --model or --num-heads to write the ijepa.config metadata")
    if write_config:
        cfg = make_config(dims, model=model, overrides=overrides, sets=sets)
    meta = {"format": "pt", "ijepa.format_version": "1", "ijepa.contents": "weights",
            "ijepa.source": os.path.basename(str(in_path))}
    if cfg is not None:
        meta["ijepa.config"] = json.dumps(cfg)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("epoch"), int):
        meta["ijepa.official_epoch"] = str(ckpt["epoch"])
    save_file(dict(tensors), str(out_path), metadata=meta)
    log("wrote %s: %d tensors, %s" % (out_path, len(tensors),
                                      "with ijepa.config" if cfg else
                                      "no ijepa.config (load with Model.load_weights)"))
    return cfg


# ---- libijepa -> official -------------------------------------------------------------------
def load_ours(path):
    """(OrderedDict name -> torch tensor, metadata dict) of a libijepa safetensors file."""
    from safetensors import safe_open
    tensors = OrderedDict()
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    return tensors, meta


def _official_param_order(sd, part):
    """Names in the official modules' named_parameters() order: the module's own parameters
    (pos_embed; mask_token, predictor_pos_embed) first, then submodules in registration order.
    sd: state_dict of the part (without prefix), which torch already orders that way for
    modules built like the official ones; we order explicitly to not depend on the file."""
    def block_key(k):
        m = re.match(r"(blocks|predictor_blocks)\.(\d+)\.(.*)$", k)
        sub = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
               "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
               "mlp.fc2.weight", "mlp.fc2.bias"]
        return (int(m.group(2)), sub.index(m.group(3)) if m.group(3) in sub else 99, m.group(3))
    if part == "predictor":
        head = ["mask_token", "predictor_pos_embed", "predictor_embed.weight", "predictor_embed.bias"]
        tail = ["predictor_norm.weight", "predictor_norm.bias", "predictor_proj.weight", "predictor_proj.bias"]
        blocks = sorted((k for k in sd if k.startswith("predictor_blocks.")), key=block_key)
    else:
        head = ["pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
        tail = ["norm.weight", "norm.bias"]
        blocks = sorted((k for k in sd if k.startswith("blocks.")), key=block_key)
    order = [k for k in head if k in sd] + blocks + [k for k in tail if k in sd]
    rest = [k for k in sd if k not in order]
    if rest:
        raise ConversionError("unexpected %s tensors: %s" % (part, ", ".join(rest[:8])))
    return order


def _decay(name, tensor):
    """Official weight-decay rule: 'bias' not in name and ndim != 1."""
    return "bias" not in name and tensor.dim() != 1


def official_optimizer_state(sds, adam_m, adam_v, step, lr, weight_decay):
    """The official AdamW state_dict (4 groups) from libijepa's AdamW moments.

    sds: {'encoder': sd, 'predictor': sd} (no prefix); adam_m/adam_v: {'encoder.<k>' ...}."""
    torch = _torch()
    # the installed torch's AdamW group defaults (keys differ between torch versions)
    defaults = dict(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]).param_groups[0])
    defaults.pop("params")
    groups, state, idx = [], {}, 0
    spec = [("encoder", True), ("predictor", True), ("encoder", False), ("predictor", False)]
    for part, decay in spec:
        ids = []
        for k in _official_param_order(sds[part], part):
            t = sds[part][k]
            if _decay(k, t) != decay:
                continue
            name = "%s.%s" % (part, k)
            if name in adam_m:  # the frozen position tables never get optimizer state
                if step > 0:
                    state[idx] = {"step": torch.tensor(float(step), dtype=torch.float32),
                                  "exp_avg": adam_m[name].reshape(t.shape).clone(),
                                  "exp_avg_sq": adam_v[name].reshape(t.shape).clone()}
            elif k not in ("pos_embed", "predictor_pos_embed"):
                raise ConversionError("no AdamW state for %s" % name)
            ids.append(idx)
            idx += 1
        g = dict(defaults)
        g.update(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay if decay else 0,
                 params=ids)
        if not decay:
            g["WD_exclude"] = True
        groups.append(g)
    return {"state": state, "param_groups": groups}


def ours_to_official(in_path, module_prefix=True, epoch=0, include_opt=True):
    """-> the official-layout checkpoint dict for a libijepa safetensors file."""
    tensors, meta = load_ours(in_path)
    sds = {p: OrderedDict() for p in PARTS}
    adam_m, adam_v = {}, {}
    for k, v in tensors.items():
        part, _, rest = k.partition(".")
        if part in sds:
            sds[part][".".join(x for x in rest.split(".") if x != "module")] = v
        elif part == "adam_m":
            adam_m[rest] = v
        elif part == "adam_v":
            adam_v[rest] = v
        else:
            raise ConversionError("unexpected tensor %r (not encoder./predictor./target_encoder.)" % k)
    for p in PARTS:
        if not sds[p]:
            raise ConversionError("%s has no %s.* tensors" % (in_path, p))
    cfg = json.loads(meta["ijepa.config"]) if "ijepa.config" in meta else None
    dims = infer_dims(sds["encoder"], sds["predictor"])
    grid = dims["image_size"] // dims["patch_size"]
    torch = _torch()
    for p in PARTS:   # files written without the fixed tables get them back
        table = POS_TABLES[p]
        if table not in sds[p]:
            w = dims["pred_embed_dim"] if p == "predictor" else dims["embed_dim"]
            sds[p][table] = torch.from_numpy(sincos_2d(w, grid)).float()[None]
    out = OrderedDict()
    for p in PARTS:
        order = _official_param_order(sds[p], p)
        pre = "module." if module_prefix else ""
        out[p] = OrderedDict((pre + k, sds[p][k].contiguous()) for k in order)
    lr = float(cfg["lr"]) if cfg else RECIPE_DEFAULTS["lr"]
    wd = float(cfg["weight_decay"]) if cfg else RECIPE_DEFAULTS["weight_decay"]
    if include_opt and adam_m:
        step = int(meta.get("ijepa.step", "0"))
        out["opt"] = official_optimizer_state(sds, adam_m, adam_v, step, lr, wd)
    out["scaler"] = None
    out["epoch"] = int(epoch)
    out["loss"] = 0.0
    out["batch_size"] = None
    out["world_size"] = 1
    out["lr"] = lr
    if cfg is not None:
        out["ijepa_config"] = dict(cfg)
    return out


def convert_ours_to_official(in_path, out_path, module_prefix=True, epoch=0, plain=False, log=print):
    torch = _torch()
    ck = ours_to_official(in_path, module_prefix=module_prefix, epoch=epoch)
    if plain:
        ck = OrderedDict((p, ck[p]) for p in PARTS)
    torch.save(ck, str(out_path))
    log("wrote %s: %s" % (out_path, ", ".join("%s (%d)" % (k, len(v)) if isinstance(v, dict) else k
                                              for k, v in ck.items())))
    return ck


# ---- command line ---------------------------------------------------------------------------
def _parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring (--help-long) for details.")
    sub = ap.add_subparsers(dest="cmd")
    a = sub.add_parser("to-safetensors", help="official .pth.tar -> libijepa safetensors")
    a.add_argument("input")
    a.add_argument("output")
    a.add_argument("--model", choices=sorted(MODELS), help="official model name (sets dims and heads)")
    a.add_argument("--image-size", type=int)
    a.add_argument("--patch-size", type=int)
    a.add_argument("--in-chans", type=int)
    a.add_argument("--embed-dim", type=int)
    a.add_argument("--depth", type=int)
    a.add_argument("--num-heads", type=int)
    a.add_argument("--mlp-ratio", type=float)
    a.add_argument("--pred-depth", type=int)
    a.add_argument("--pred-emb-dim", "--pred-embed-dim", dest="pred_embed_dim", type=int)
    a.add_argument("--pred-num-heads", type=int, help="default: the encoder's (official)")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any ijepa.config field, e.g. --set min_keep=4 --set seed=1")
    a.add_argument("--no-config", action="store_true", help="never write ijepa.config")
    a.add_argument("--trust-pickle", action="store_true",
                   help="torch.load with weights_only=False (only for files you trust)")
    b = sub.add_parser("to-official", help="libijepa safetensors -> official-layout .pth.tar")
    b.add_argument("input")
    b.add_argument("output")
    b.add_argument("--no-module-prefix", action="store_true",
                   help="plain keys (for unwrapped modules) instead of DDP's module.<key>")
    b.add_argument("--plain", action="store_true",
                   help="only the three state_dicts (no opt/epoch/...)")
    b.add_argument("--epoch", type=int, default=0)
    return ap


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--help-long":
        print(__doc__)
        return 0
    if argv and argv[0] not in ("to-safetensors", "to-official", "-h", "--help"):
        pos = [x for x in argv if not x.startswith("-")]
        if pos and pos[0].endswith((".pth.tar", ".pth", ".pt", ".tar")):
            argv.insert(0, "to-safetensors")
        elif pos and pos[0].endswith(".safetensors"):
            argv.insert(0, "to-official")
    args = _parser().parse_args(argv)
    if args.cmd is None:
        _parser().print_help()
        return 2
    try:
        if args.cmd == "to-safetensors":
            sets = {}
            for s in args.set:
                k, eq, v = s.partition("=")
                if not eq:
                    raise ConversionError("--set expects KEY=VALUE, got %r" % s)
                k = k.strip().replace("-", "_")
                if k not in CONFIG_KEYS:
                    raise ConversionError("--set: unknown config key %r" % k)
                sets[k] = _parse_value(k, v.strip())
            overrides = {k: getattr(args, k) for k in (
                "image_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
                "mlp_ratio", "pred_depth", "pred_embed_dim", "pred_num_heads")}
            convert_official_to_safetensors(args.input, args.output, model=args.model,
                                            overrides=overrides, sets=sets,
                                            write_config=False if args.no_config else None,
                                            trust_pickle=args.trust_pickle)
        else:
            convert_ours_to_official(args.input, args.output,
                                     module_prefix=not args.no_module_prefix, epoch=args.epoch,
                                     plain=args.plain)
    except ConversionError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
