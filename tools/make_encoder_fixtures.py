"""Writes Tests/Fixtures/encoders/: reference fixtures for the inference-only encoder loader.

Every expected output comes from the third-party code itself (transformers' IJepaModel, timm's
VisionTransformer, tools/ijepa_torch.py for the official layout), never from a re-implementation.
Deterministic: fixed seeds, torch.set_num_threads(1); re-running gives byte-identical files with
the pinned versions (torch 2.13.0+cpu, transformers 5.25.0, timm 1.0.31, Pillow 13.0.0).

    python3 tools/make_encoder_fixtures.py [--out DIR]      # default Tests/Fixtures/encoders

Files (see tools/README.md, "Encoder fixtures"):
  hf_v5/{config.json,model.safetensors}   transformers IJepaModel, save_pretrained(...,
        save_original_format=False): the transformers-5 in-memory names
        (`layers.{i}.attention.q_proj.weight`, ...). NOTE: a plain save_pretrained in 5.25 does
        NOT write these: by default (save_original_format=True) it reverts to the transformers-4
        names, i.e. writes exactly hf_v4.
  hf_v4/{config.json,model.safetensors}   the same model, plain save_pretrained (default
        save_original_format=True): the transformers-4 names (`encoder.layer.{i}.attention.
        attention.query.weight`, ...), which are the names of the hub's facebook/ijepa_* files.
        Checked against names derived independently from transformers' convert_ijepa_to_hf.py.
  timm/{config.json,model.safetensors}    timm.create_model('vit_huge_patch14_gap_224', ...tiny
        overrides...) written by timm's own timm.models.save_for_hf; reloaded with
        timm.create_model('local-dir:...') for the references.
  official.safetensors                    encoder.module.<k> / target_encoder.module.<k>, two
        different random tools/ijepa_torch.py encoders; no metadata.
  expected.safetensors                    reference inputs/outputs (F32) + metadata.
  preprocess.safetensors                  Resize/CenterCrop/ToTensor/Normalize references.

Weights: every parameter is random (generator per source): LayerNorm weight 1 + 0.1 N, every
bias 0.1 N, Linear/Conv weight N(0, 1/fan_in), position table 0.5 N. (Larger than the usual
0.02 init on purpose: attention is then far from uniform and the position table is not
negligible next to the patch embedding, so wrong head splits or wrong interpolation show.)

Size cases per source: native = the weights' own size; up = H + 2 patches + 3 px, W + 3 patches
+ 3 px (the 3 px do not fill a patch; the stride-p patch conv drops them); down = H - 1 patch,
W - 2 patches. timm's PatchEmbed (dynamic_img_size=True, dynamic_img_pad=False) asserts that H and
W are multiples of the patch, so timm is fed images[..., :gh*p, :gw*p] (what the conv uses anyway).

Position-table resampling (each checked below against an independent float64 numpy version):
  * transformers (hf) and the official reference: F.interpolate(bicubic, align_corners=False,
    antialias=False): src = (i + 0.5) * in/out - 0.5, x0 = floor(src), t = src - x0, taps
    x0-1..x0+2 clamped to [0, in-1], Keys cubic with a = -0.75; rows then columns (separable).
  * timm (dynamic_img_size): timm.layers.resample_abs_pos_embed defaults: bicubic, antialias=True,
    align_corners=None. PyTorch's antialiased bicubic is PIL-style: per axis scale = in/out,
    fs = max(scale, 1), support = 2 * fs, center = scale * (i + 0.5),
    lo = max(int(center - support + 0.5), 0), hi = min(int(center + support + 0.5), in),
    w_j = cubic_{a=-0.5}((j - center + 0.5) / fs) for lo <= j < hi, normalized by their sum.
    Note a = -0.5 (not -0.75): it differs from the non-antialiased table even when upsampling.
    `timm.up.tokens_bicubic` is the same timm model with the table resampled by timm's own
    resample_abs_pos_embed(..., antialias=False) (static-size model) for comparison.

Preprocessing (`preprocess.safetensors`): torchvision cannot be imported here (its C ops fail to
load with the CPU torch build), so torchvision's PIL path is reproduced with Pillow, following
torchvision/transforms/functional.py (read as text):
  * Resize(int s): _compute_resized_output_size: short side -> s, long -> int(s * long / short)
    (truncation); skipped if the size is unchanged; then F_pil.resize = img.resize((w, h),
    Image.BILINEAR) (PIL always antialiases).
  * CenterCrop(c): top = int(round((h - c) / 2.0)), left = int(round((w - c) / 2.0)) with Python's
    round (half to EVEN: round(8.5) = 8; case 0 hits this), then img.crop((left, top, left+c,
    top+c)). (The zero-padding branch for crops larger than the image is not exercised.)
  * ToTensor: uint8 HWC -> CHW float32, .div(255). Normalize: float32 (x - mean) / std.
  `case{c}.pil` is that. `case{c}.float` is the same pipeline in float64 without PIL's uint8
  rounding: Pillow's ImagingResample (libImaging/Resample.c) with the triangle filter: per axis
  scale = in/out, fs = max(scale, 1), support = 1.0 * fs, center = (x + 0.5) * scale,
  xmin = max(int(center - support + 0.5), 0), xmax = min(int(center + support + 0.5), in),
  w_j = max(0, 1 - |(j - center + 0.5) / fs|) for xmin <= j < xmax, normalized by their sum;
  horizontal (width) pass first, then vertical; then crop, /255, normalize, cast to float32.
  Pillow itself does the same with the normalized weights rounded to fixed point
  (int(0.5 + w * 2^22)), each sum started at 2^21, shifted right by 22 and clipped to 0..255
  after EACH pass (uint8 intermediate image). The script emulates that too and asserts it equals
  Pillow's output exactly, so the description above is Pillow's algorithm.

torchvision and imports: transformers is imported with sys.modules["torchvision"] = None (it then
treats torchvision as absent). timm 1.0.31 cannot be imported that way: timm/layers/create_norm.py
and timm/utils/model.py do `from torchvision.ops.misc import FrozenBatchNorm2d` and timm/data/*
import torchvision.datasets/transforms unconditionally, so `import timm` fails. timm is therefore
imported with a throw-away stub torchvision package (import-time names only; instantiating any of
them raises), removed again right after. Nothing on the paths used here touches torchvision.
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import math
import os
import shutil
import sys
import types

sys.modules["torchvision"] = None  # transformers: treat torchvision as not installed

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save  # noqa: E402

import transformers  # noqa: E402
from transformers import IJepaConfig, IJepaModel  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ijepa_torch as R  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
B = 2


# --------------------------------------------------------------------------------------------
# timm import with a stub torchvision
# --------------------------------------------------------------------------------------------
class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (), {})

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"torchvision is stubbed out (used: {cls.__name__})")


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


def import_timm():
    finder = _StubFinder()
    sys.modules.pop("torchvision", None)
    sys.meta_path.insert(0, finder)
    try:
        import timm  # noqa: F401
        import timm.models.vision_transformer  # noqa: F401
        import timm.layers  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[k]
        sys.modules["torchvision"] = None
    return timm


timm = import_timm()
from timm.layers import resample_abs_pos_embed  # noqa: E402
from timm.models import save_for_hf  # noqa: E402


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def randomize_(model: nn.Module, gen: torch.Generator) -> None:
    """Every parameter random, in state_dict order (see the module docstring)."""
    owner = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            owner[f"{mname}.{pname}" if mname else pname] = mod
    with torch.no_grad():
        for name, p in model.named_parameters():
            mod = owner[name]
            leaf = name.rsplit(".", 1)[-1]
            z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if isinstance(mod, nn.LayerNorm) and leaf == "weight":
                v = 1.0 + 0.1 * z
            elif leaf == "bias":
                v = 0.1 * z
            elif isinstance(mod, (nn.Linear, nn.Conv2d)) and leaf == "weight":
                v = z / math.sqrt(p[0].numel())
            elif leaf in ("position_embeddings", "pos_embed"):
                v = 0.5 * z
            else:
                raise AssertionError(f"unhandled parameter {name}")
            p.copy_(v)


def save_sorted(tensors: dict, path: str, metadata: dict | None = None) -> None:
    """safetensors.torch.save_file, but byte-deterministic: the Rust writer emits __metadata__
    from a HashMap (random key order per process), so the header is re-serialized with the
    metadata keys sorted (tensor entries and data untouched; header padded with spaces to a
    multiple of 8 bytes, as safetensors does)."""
    blob = save(tensors, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hb).to_bytes(8, "little") + hb + blob[8 + n:])
    back, meta = read_safetensors(path)
    assert meta == metadata and back.keys() == tensors.keys()
    for k in tensors:
        assert back[k].dtype == tensors[k].dtype and torch.equal(back[k], tensors[k]), k


def read_safetensors(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def assert_same_state(a: dict, b: dict, what: str):
    assert a.keys() == b.keys(), (what, sorted(set(a) ^ set(b)))
    for k in a:
        assert torch.equal(a[k], b[k]), (what, k)


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def case_sizes(native: int, patch: int):
    g = native // patch
    return {
        "native": (native, native),
        "up": (native + 2 * patch + 3, native + 3 * patch + 3),
        "down": (native - patch, native - 2 * patch),
    }, g


def reset_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


# --------------------------------------------------------------------------------------------
# independent float64 versions of the three resamplers (self-checks; describe the algorithms)
# --------------------------------------------------------------------------------------------
def _cubic(x, a):
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _triangle(x):
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def aa_matrix(n_in, n_out, kernel, support_1):
    """PIL / PyTorch-antialias separable weights as an [n_out, n_in] float64 matrix."""
    scale = n_in / n_out
    fs = max(scale, 1.0)
    support = support_1 * fs
    M = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        w = np.array([kernel((j - center + 0.5) / fs) for j in range(lo, hi)])
        s = w.sum()
        M[i, lo:hi] = w / s if s != 0.0 else w
    return M


def bicubic_matrix(n_in, n_out, a=-0.75):
    """torch F.interpolate(mode='bicubic', align_corners=False, antialias=False) weights."""
    scale = n_in / n_out
    M = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) * scale - 0.5
        x0 = math.floor(src)
        t = src - x0
        for d, w in zip((-1, 0, 1, 2), (_cubic(t + 1, a), _cubic(t, a), _cubic(1 - t, a), _cubic(2 - t, a))):
            M[i, min(max(x0 + d, 0), n_in - 1)] += w
    return M


def resample_table_np(pos, old, new, kind):
    """pos [1, old_h*old_w, D] -> [1, new_h*new_w, D] in float64."""
    D = pos.shape[-1]
    t = pos.reshape(old[0], old[1], D).double().numpy()
    if kind == "aa":
        Mh, Mw = aa_matrix(old[0], new[0], lambda x: _cubic(x, -0.5), 2.0), \
            aa_matrix(old[1], new[1], lambda x: _cubic(x, -0.5), 2.0)
    else:
        Mh, Mw = bicubic_matrix(old[0], new[0]), bicubic_matrix(old[1], new[1])
    out = np.einsum("ia,jb,abd->ijd", Mh, Mw, t)
    return torch.from_numpy(out.reshape(1, new[0] * new[1], D))


# --------------------------------------------------------------------------------------------
# transformers (hf_v5, hf_v4)
# --------------------------------------------------------------------------------------------
HF = dict(image_size=24, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=3,
          num_attention_heads=2, intermediate_size=80, layer_norm_eps=1e-5, hidden_act="gelu",
          qkv_bias=True)


def hf_v4_names(depth):
    """transformers-4 IJepaModel names, built from the official names with the mapping of
    transformers' convert_ijepa_to_hf.py (ORIGINAL_TO_CONVERTED_KEY_MAPPING + read_in_q_k_v)."""
    names = ["embeddings.position_embeddings", "embeddings.patch_embeddings.projection.weight",
             "embeddings.patch_embeddings.projection.bias", "layernorm.weight", "layernorm.bias"]
    official = {"norm1": "layernorm_before", "attn.proj": "attention.output.dense",
                "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    for i in range(depth):
        for src, dst in official.items():
            names += [f"encoder.layer.{i}.{dst}.{wb}" for wb in ("weight", "bias")]
        for q in ("query", "key", "value"):  # attn.qkv rows [0:D], [D:2D], [2D:3D]
            names += [f"encoder.layer.{i}.attention.attention.{q}.{wb}" for wb in ("weight", "bias")]
    return set(names)


def make_hf(out):
    cfg = IJepaConfig(**HF)
    model = IJepaModel(cfg, add_pooling_layer=False).eval()
    randomize_(model, torch.Generator().manual_seed(101))
    v5_dir, v4_dir = os.path.join(out, "hf_v5"), os.path.join(out, "hf_v4")
    reset_dir(v5_dir)
    reset_dir(v4_dir)
    model.save_pretrained(v5_dir, safe_serialization=True, save_original_format=False)
    model.save_pretrained(v4_dir, safe_serialization=True)  # default: transformers-4 names
    for d in (v5_dir, v4_dir):
        assert sorted(os.listdir(d)) == ["config.json", "model.safetensors"], os.listdir(d)
    assert open(os.path.join(v5_dir, "config.json")).read() == open(os.path.join(v4_dir, "config.json")).read()

    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    v5, meta5 = read_safetensors(os.path.join(v5_dir, "model.safetensors"))
    v4, meta4 = read_safetensors(os.path.join(v4_dir, "model.safetensors"))
    assert_same_state(v5, sd, "hf_v5 file vs in-memory state_dict")
    assert set(v4) == hf_v4_names(HF["num_hidden_layers"]), sorted(set(v4) ^ hf_v4_names(3))
    assert len(v4) == len(v5)

    loaded = {}
    for tag, d in (("v5", v5_dir), ("v4", v4_dir)):
        m, info = IJepaModel.from_pretrained(d, output_loading_info=True, attn_implementation="eager")
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"] \
            and not info["error_msgs"], (tag, info)
        assert m.config.layer_norm_eps == 1e-5 and m.layernorm.eps == 1e-5
        assert_same_state(m.state_dict(), sd, f"hf_{tag} reloaded")
        loaded[tag] = m.eval()
    names = {"v5": sorted(v5), "v4": sorted(v4), "metadata": meta5}
    return loaded["v5"], loaded["v4"], names


def hf_reference(model, x, case, k):
    interp = case != "native"
    with torch.no_grad():
        out = model(x, interpolate_pos_encoding=interp, output_hidden_states=True)
        hs = out.hidden_states  # (embeddings, block 0, ..., block depth-1), before the final norm
        assert len(hs) == model.config.num_hidden_layers + 1
        assert torch.equal(model.layernorm(hs[-1]), out.last_hidden_state)
        tokens = out.last_hidden_state
        layers = torch.stack([model.layernorm(h).mean(1) for h in hs[-k:]], dim=1)
    return tokens, tokens.mean(1), layers


# --------------------------------------------------------------------------------------------
# timm
# --------------------------------------------------------------------------------------------
TIMM_ARCH = "vit_huge_patch14_gap_224"  # an I-JEPA architecture (timm tags in1k_ijepa, in22k_ijepa)
TIMM = dict(img_size=32, patch_size=8, in_chans=3, embed_dim=48, depth=2, num_heads=4, mlp_ratio=4.0,
            class_token=False, global_pool="avg", fc_norm=False, num_classes=0)


def make_timm(out):
    model = timm.create_model(TIMM_ARCH, pretrained=False, **TIMM).eval()
    assert type(model) is timm.models.vision_transformer.VisionTransformer
    # final norm BEFORE pooling (model.norm); fc_norm (after pooling) is Identity
    assert isinstance(model.norm, nn.LayerNorm) and model.norm.eps == 1e-6
    assert isinstance(model.fc_norm, nn.Identity) and isinstance(model.head, nn.Identity)
    randomize_(model, torch.Generator().manual_seed(202))
    d = os.path.join(out, "timm")
    reset_dir(d)
    save_for_hf(model, d, safe_serialization=True)
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors"], os.listdir(d)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    file_sd, meta = read_safetensors(os.path.join(d, "model.safetensors"))
    assert_same_state(file_sd, sd, "timm file")
    # the references run on the file as timm itself loads it
    dyn = timm.create_model("local-dir:" + d, pretrained=True, dynamic_img_size=True).eval()
    assert dyn.dynamic_img_size and type(dyn) is type(model)
    assert_same_state(dyn.state_dict(), sd, "timm reloaded")
    return dyn, sd, {"names": sorted(file_sd), "metadata": meta}


def timm_static(sd, img_hw, grid, antialias):
    """Fixed-size timm model whose table is resampled by timm's own resample_abs_pos_embed."""
    args = dict(TIMM, img_size=img_hw)
    m = timm.create_model(TIMM_ARCH, pretrained=False, **args).eval()
    sd2 = dict(sd)
    sd2["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], new_size=grid, old_size=(4, 4),
                                              num_prefix_tokens=0, antialias=antialias)
    m.load_state_dict(sd2, strict=True)
    return m


def timm_reference(model, x, k):
    with torch.no_grad():
        tokens = model.forward_features(x)
        pooled = model.forward_head(tokens, pre_logits=True)
        inter = model.forward_intermediates(x, indices=k, norm=True, output_fmt="NLC",
                                            intermediates_only=True)
        layers = torch.stack([t.mean(1) for t in inter], dim=1)
    assert torch.allclose(pooled, tokens.mean(1), rtol=0, atol=1e-6)
    return tokens, pooled, layers


# --------------------------------------------------------------------------------------------
# official layout (tools/ijepa_torch.py)
# --------------------------------------------------------------------------------------------
OFF = dict(img_size=32, patch_size=8, in_chans=3, embed_dim=32, depth=2, num_heads=4, mlp_ratio=4.0)


def make_official(out):
    ctx = R.VisionTransformer(**OFF).eval()
    tgt = R.VisionTransformer(**OFF).eval()
    randomize_(ctx, torch.Generator().manual_seed(303))
    randomize_(tgt, torch.Generator().manual_seed(304))
    tensors = {}
    for part, mod in (("encoder", ctx), ("target_encoder", tgt)):
        for k, v in mod.state_dict().items():
            tensors[f"{part}.module.{k}"] = v.detach().clone().contiguous()
    path = os.path.join(out, "official.safetensors")
    save_sorted(tensors, path)
    back, meta = read_safetensors(path)
    assert_same_state(back, tensors, "official file")
    assert meta is None
    return ctx, tgt, sorted(tensors)


def official_reference(enc, x, grid, k):
    """Official blocks; pos_embed bicubic-resized the transformers way for other grids."""
    gh, gw = grid
    N, D = enc.pos_embed.shape[1:]
    G = int(round(math.sqrt(N)))
    with torch.no_grad():
        h = enc.patch_embed(x)  # stride-p conv: leftover pixels dropped
        assert h.shape[1] == gh * gw
        pos = enc.pos_embed
        if (gh, gw) != (G, G):
            pos = F.interpolate(pos.reshape(1, G, G, D).permute(0, 3, 1, 2), size=(gh, gw),
                                mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, gh * gw, D)
        h = h + pos
        outs = []
        for blk in enc.blocks:
            h = blk(h)
            outs.append(h)
        tokens = enc.norm(h)
        if (gh, gw) == (G, G):
            assert torch.equal(tokens, enc(x)), "manual path must equal ijepa_torch forward"
        layers = torch.stack([enc.norm(o).mean(1) for o in outs[-k:]], dim=1)
    return tokens, tokens.mean(1), layers


# --------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------
PRE_CASES = [((37, 53), (32, 28)), ((60, 41), (32, 28)), ((20, 20), (32, 28)),
             ((97, 64), (48, 40)), ((16, 90), (24, 12))]


def tv_resize_size(h, w, s):
    """torchvision _compute_resized_output_size for Resize(int)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = s, int(s * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return new_h, new_w


def tv_center_crop_box(h, w, c):
    assert c <= h and c <= w
    return int(round((h - c) / 2.0)), int(round((w - c) / 2.0))


def pil_pipeline(rgb: np.ndarray, resize: int, crop: int) -> torch.Tensor:
    img = Image.fromarray(rgb, mode="RGB")
    h, w = rgb.shape[:2]
    nh, nw = tv_resize_size(h, w, resize)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), Image.BILINEAR)
    top, left = tv_center_crop_box(nh, nw, crop)
    img = img.crop((left, top, left + crop, top + crop))
    t = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(crop, crop, 3).permute(2, 0, 1).contiguous()
    t = t.to(dtype=torch.float32).div(255)
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1)
    return t.sub_(mean).div_(std)


def float_pipeline(rgb: np.ndarray, resize: int, crop: int) -> torch.Tensor:
    h, w = rgb.shape[:2]
    nh, nw = tv_resize_size(h, w, resize)
    x = rgb.astype(np.float64)
    if (nh, nw) != (h, w):
        x = np.einsum("jb,abc->ajc", aa_matrix(w, nw, _triangle, 1.0), x)   # width first
        x = np.einsum("ia,ajc->ijc", aa_matrix(h, nh, _triangle, 1.0), x)   # then height
    top, left = tv_center_crop_box(nh, nw, crop)
    x = x[top:top + crop, left:left + crop].transpose(2, 0, 1) / 255.0
    x = (x - np.array(IMAGENET_MEAN).reshape(3, 1, 1)) / np.array(IMAGENET_STD).reshape(3, 1, 1)
    return torch.from_numpy(x.astype(np.float32))


def pil_fixed_point_resize(rgb: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Emulation of Pillow's 8-bit ImagingResample (two passes, uint8 in between)."""
    PB = 22

    def fixed(M):  # normalize_coeffs_8bpc: (int)(+-0.5 + k * 2^22), C truncation
        return np.where(M < 0, np.trunc(-0.5 + M * (1 << PB)), np.trunc(0.5 + M * (1 << PB))).astype(np.int64)

    def clip8(acc):
        return np.clip(acc >> PB, 0, 255).astype(np.int64)

    h, w = rgb.shape[:2]
    x = rgb.astype(np.int64)
    if nw != w:
        K = fixed(aa_matrix(w, nw, _triangle, 1.0))
        x = clip8(np.einsum("jb,abc->ajc", K, x) + (1 << (PB - 1)))
    if nh != h:
        K = fixed(aa_matrix(h, nh, _triangle, 1.0))
        x = clip8(np.einsum("ia,ajc->ijc", K, x) + (1 << (PB - 1)))
    return x.astype(np.uint8)


def make_preprocess(out, log):
    gen = torch.Generator().manual_seed(606)
    tensors = {}
    maxdiff_px = []
    for c, ((h, w), (resize, crop)) in enumerate(PRE_CASES):
        rgb = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy()
        pil = pil_pipeline(rgb, resize, crop)
        flt = float_pipeline(rgb, resize, crop)
        # Pillow == fixed-point emulation of the documented algorithm, bit for bit
        nh, nw = tv_resize_size(h, w, resize)
        ref = np.asarray(Image.fromarray(rgb, mode="RGB").resize((nw, nh), Image.BILINEAR))
        assert np.array_equal(pil_fixed_point_resize(rgb, nh, nw), ref), f"case {c}: emulation != Pillow"
        d_px = ((pil - flt).abs() * torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255).max().item()
        assert d_px <= 1.0 + 1e-3, (c, d_px)
        maxdiff_px.append(d_px)
        tensors[f"case{c}.rgb"] = torch.from_numpy(rgb.copy())
        tensors[f"case{c}.settings"] = torch.tensor([resize, crop], dtype=torch.int32)
        tensors[f"case{c}.pil"] = pil.contiguous()
        tensors[f"case{c}.float"] = flt.contiguous()
        top, left = tv_center_crop_box(nh, nw, crop)
        log.append(f"preprocess case{c}: {h}x{w} -> resize {nh}x{nw} -> crop {crop} at top {top} left {left}; "
                   f"max |float - pil| = {d_px:.4f} px")
    meta = {
        "mean": json.dumps(IMAGENET_MEAN), "std": json.dumps(IMAGENET_STD),
        "pillow_version": PIL.__version__, "torch_version": torch.__version__,
        "pipeline": "torchvision Resize(resize, BILINEAR) + CenterCrop(crop) + ToTensor + Normalize, PIL path "
                    "(reproduced with Pillow); .float = same in float64 without uint8 rounding",
        "max_abs_float_minus_pil_in_pixel_units": json.dumps([round(v, 6) for v in maxdiff_px]),
    }
    save_sorted(tensors, os.path.join(out, "preprocess.safetensors"), metadata=meta)
    return maxdiff_px


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures", "encoders"))
    ap.add_argument("--names", action="store_true", help="print the tensor names of the weight files")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    log = []

    hf5, hf4, hf_names = make_hf(out)
    timm_dyn, timm_sd, timm_info = make_timm(out)
    ctx, tgt, off_names = make_official(out)

    img_gen = torch.Generator().manual_seed(505)
    expected = {}
    cases_meta = {}

    # ---- hf
    sizes, g = case_sizes(HF["image_size"], HF["patch_size"])
    k = min(HF["num_hidden_layers"], 2)
    cases_meta["hf"] = {}
    for case, (H, W) in sizes.items():
        x = torch.randn(B, HF["num_channels"], H, W, generator=img_gen)
        tokens, pooled, layers = hf_reference(hf5, x, case, k)
        t4, p4, l4 = hf_reference(hf4, x, case, k)
        assert torch.equal(tokens, t4) and torch.equal(layers, l4), "hf_v4 and hf_v5 must agree"
        grid = (H // HF["patch_size"], W // HF["patch_size"])
        assert tokens.shape == (B, grid[0] * grid[1], HF["hidden_size"])
        expected.update({f"hf.{case}.images": x, f"hf.{case}.tokens": tokens,
                         f"hf.{case}.pooled": pooled, f"hf.{case}.layers": layers})
        cases_meta["hf"][case] = {"image": [H, W], "grid": list(grid)}
        if case != "native":
            with torch.no_grad():
                emb = hf5.embeddings.patch_embeddings(x)
                table = hf5.embeddings.interpolate_pos_encoding(emb, H, W)
            np_table = resample_table_np(hf5.embeddings.position_embeddings.detach(), (g, g), grid, "bicubic")
            e = rel_err(table.double(), np_table)
            assert e < 1e-6, ("hf table vs float64 bicubic", case, e)
            log.append(f"hf.{case}: transformers table vs float64 bicubic(a=-0.75) rel err {e:.2e}")
            if case == "down":
                expected["hf.down.pos_table"] = table.detach().clone()

    # ---- timm
    sizes, g = case_sizes(TIMM["img_size"], TIMM["patch_size"])
    p = TIMM["patch_size"]
    k = min(TIMM["depth"], 2)
    cases_meta["timm"] = {}
    for case, (H, W) in sizes.items():
        x = torch.randn(B, TIMM["in_chans"], H, W, generator=img_gen)
        grid = (H // p, W // p)
        xc = x[:, :, :grid[0] * p, :grid[1] * p].contiguous()  # timm asserts H, W % p == 0
        tokens, pooled, layers = timm_reference(timm_dyn, xc, k)
        assert tokens.shape == (B, grid[0] * grid[1], TIMM["embed_dim"])
        expected.update({f"timm.{case}.images": x, f"timm.{case}.tokens": tokens,
                         f"timm.{case}.pooled": pooled, f"timm.{case}.layers": layers})
        cases_meta["timm"][case] = {"image": [H, W], "grid": list(grid), "fed_to_timm": [grid[0] * p, grid[1] * p]}
        if case != "native":
            table_aa = resample_abs_pos_embed(timm_sd["pos_embed"], new_size=grid, old_size=(g, g), num_prefix_tokens=0)
            table_bc = resample_abs_pos_embed(timm_sd["pos_embed"], new_size=grid, old_size=(g, g), num_prefix_tokens=0,
                                              antialias=False)
            e_aa = rel_err(table_aa.double(), resample_table_np(timm_sd["pos_embed"], (g, g), grid, "aa"))
            e_bc = rel_err(table_bc.double(), resample_table_np(timm_sd["pos_embed"], (g, g), grid, "bicubic"))
            assert e_aa < 1e-6 and e_bc < 1e-6, (case, e_aa, e_bc)
            d_tab = rel_err(table_aa, table_bc)
            # the dynamic model uses exactly the antialiased table: a static model with it agrees
            st = timm_static(timm_sd, (grid[0] * p, grid[1] * p), grid, antialias=True)
            t_st, _, _ = timm_reference(st, xc, k)
            assert rel_err(t_st, tokens) < 1e-6, case
            log.append(f"timm.{case}: table aa vs float64 (a=-0.5, PIL-style) rel err {e_aa:.2e}; "
                       f"non-aa vs float64 (a=-0.75) {e_bc:.2e}; aa vs non-aa tables differ by {d_tab:.3f} (rel max)")
            if case == "down":
                expected["timm.down.pos_table_aa"] = table_aa.detach().clone()
            if case == "up":
                st = timm_static(timm_sd, (grid[0] * p, grid[1] * p), grid, antialias=False)
                t_bc, p_bc, _ = timm_reference(st, xc, k)
                expected["timm.up.tokens_bicubic"] = t_bc
                expected["timm.up.pooled_bicubic"] = p_bc
                log.append(f"timm.up: tokens aa vs non-aa differ by {rel_err(tokens, t_bc):.3e} (rel max)")

    # ---- official
    sizes, g = case_sizes(OFF["img_size"], OFF["patch_size"])
    k = min(OFF["depth"], 2)
    for name, enc in (("official_target", tgt), ("official_context", ctx)):
        cases_meta[name] = {}
        for case, (H, W) in sizes.items():
            x = torch.randn(B, OFF["in_chans"], H, W, generator=img_gen)
            grid = (H // OFF["patch_size"], W // OFF["patch_size"])
            tokens, pooled, layers = official_reference(enc, x, grid, k)
            expected.update({f"{name}.{case}.images": x, f"{name}.{case}.tokens": tokens,
                             f"{name}.{case}.pooled": pooled, f"{name}.{case}.layers": layers})
            cases_meta[name][case] = {"image": [H, W], "grid": list(grid)}

    expected = {kk: v.detach().to(torch.float32).contiguous() for kk, v in expected.items()}
    for kk, v in expected.items():
        assert torch.isfinite(v).all(), kk

    def cfg(img, patch, c, d, depth, heads, hidden, eps, extra):
        return dict(image_size=img, patch_size=patch, in_chans=c, embed_dim=d, depth=depth, num_heads=heads,
                    mlp_hidden=hidden, eps=eps, **extra)

    configs = {
        "hf": cfg(24, 4, 3, 32, 3, 2, 80, 1e-5, {"files": ["hf_v5", "hf_v4"], "pos_resample": "bicubic"}),
        "timm": cfg(32, 8, 3, 48, 2, 4, 192, 1e-6, {"files": ["timm"], "pos_resample": "bicubic_antialias"}),
        "official_target": cfg(32, 8, 3, 32, 2, 4, 128, 1e-6, {"files": ["official.safetensors:target_encoder"],
                                                                 "pos_resample": "bicubic"}),
        "official_context": cfg(32, 8, 3, 32, 2, 4, 128, 1e-6, {"files": ["official.safetensors:encoder"],
                                                                  "pos_resample": "bicubic"}),
    }
    meta = {
        "torch_version": torch.__version__, "transformers_version": transformers.__version__,
        "timm_version": timm.__version__, "pillow_version": PIL.__version__,
        "config": json.dumps(configs, sort_keys=True), "cases": json.dumps(cases_meta, sort_keys=True),
        "layers_k": json.dumps({"hf": 2, "timm": 2, "official_target": 2, "official_context": 2}),
    }
    save_sorted(expected, os.path.join(out, "expected.safetensors"), metadata=meta)

    maxdiff = make_preprocess(out, log)

    for line in log:
        print(line)
    print("preprocess max |float - pil| (pixel units):", ", ".join(f"{v:.4f}" for v in maxdiff))
    if args.names:
        print("hf_v5:", hf_names["v5"])
        print("hf_v4:", hf_names["v4"])
        print("timm:", timm_info["names"])
        print("official:", off_names)
    total = 0
    for dirpath, _, files in os.walk(out):
        for f in sorted(files):
            total += os.path.getsize(os.path.join(dirpath, f))
    print(f"wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()
