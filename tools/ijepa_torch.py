"""A faithful fp32 CPU PyTorch re-implementation of the official I-JEPA training step.

Reference: facebookresearch/ijepa at 52c1ae9 (see /work/shared/ijepa-spec.md). Written from the
spec; the official code was only consulted to check facts. Used by tools/make_fixtures.py to make
the Swift parity fixtures and, later, as the PyTorch baseline in benchmarks.

What is reproduced exactly (names, order of operations and RNG consumption):
  * `VisionTransformer` / `VisionTransformerPredictor`: module and attribute names equal the
    official ones, so `state_dict()` keys are identical (spec 6.4). The constructors build the
    sub-modules in the official order and run the official constructor init (stage 1 + the
    `fix_init_weight` rescale, stage 2). `init_model(...)` then re-initializes every Linear and
    LayerNorm (stage 3, `src/helper.py::init_model`). Under the same `torch.manual_seed` the
    weights are therefore the same as the official ones, and the net effect is spec 1.5:
    Linear N(0, 0.02^2) / bias 0, LayerNorm 1 / 0, conv std 0.02, mask_token std 0.02.
  * `MaskCollator`: the multi-block collator (spec 2.2). Block sizes come from a
    `torch.Generator` seeded with the batch counter; block locations come from the generator
    passed as `generator=` (the official code uses the global torch RNG there; pass None to get
    exactly that).
  * `WarmupCosineSchedule`, `CosineWDSchedule`, `momentum_schedule` (spec 4.2).
  * `init_opt(...)`: AdamW with the official 4 parameter groups (spec 4.1).
  * `train_step(...)`: the fp32 (use_bfloat16 = False) branch of `src/train.py::train_step`.

Nothing here uses dropout / drop-path (all rates are 0 in the official recipe), autocast or DDP.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger("ijepa_torch")

LN_EPS = 1e-6
INIT_STD = 0.02


# --------------------------------------------------------------------------------------------
# Fixed 2-D sin-cos position embedding (spec 1.1)
# --------------------------------------------------------------------------------------------
def sincos_1d(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """[M] positions -> [M, embed_dim]: sin block then cos block (not interleaved), float64."""
    assert embed_dim % 2 == 0
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(embed_dim: int, grid_size: int) -> np.ndarray:
    """[G*G, embed_dim] float64. Row-major patch index i = row*G + col.

    The first embed_dim/2 dims encode the COLUMN, the last embed_dim/2 the ROW (the official
    code meshgrids (w, h) with 'xy' indexing and calls the column half `emb_h`).
    """
    assert embed_dim % 2 == 0
    coords = np.arange(grid_size, dtype=np.float64)
    col, row = np.meshgrid(coords, coords)  # 'xy' indexing: col[r, c] = c, row[r, c] = r
    emb_col = sincos_1d(embed_dim // 2, col)
    emb_row = sincos_1d(embed_dim // 2, row)
    return np.concatenate([emb_col, emb_row], axis=1)


def trunc_normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0,
                  a: float = -2.0, b: float = 2.0) -> torch.Tensor:
    """Same algorithm (and RNG consumption) as the official `src/utils/tensors.py::trunc_normal_`.

    Note the bounds a, b are absolute (+-2), i.e. +-100 sigma at std 0.02.
    """
    def norm_cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        lo = norm_cdf((a - mean) / std)
        hi = norm_cdf((b - mean) / std)
        tensor.uniform_(2 * lo - 1, 2 * hi - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
        return tensor


# --------------------------------------------------------------------------------------------
# Mask helpers (spec 1.2)
# --------------------------------------------------------------------------------------------
def apply_masks(x: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """x [B, N, D], masks: list of LongTensor [B, K] -> [len(masks)*B, K, D], mask-major."""
    out = []
    for m in masks:
        idx = m.unsqueeze(-1).repeat(1, 1, x.size(-1))
        out.append(torch.gather(x, dim=1, index=idx))
    return torch.cat(out, dim=0)


def repeat_interleave_batch(x: torch.Tensor, B: int, repeat: int) -> torch.Tensor:
    """Split x into chunks of B rows; repeat each chunk `repeat` times in place."""
    n = len(x) // B
    return torch.cat([
        torch.cat([x[i * B:(i + 1) * B] for _ in range(repeat)], dim=0)
        for i in range(n)
    ], dim=0)


# --------------------------------------------------------------------------------------------
# Model (spec 1.1, 1.3)
# --------------------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self, in_features: int, hidden_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()  # exact erf GELU (approximate='none')
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        # qkv rows are [q; k; v], each head-major
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm transformer block (no dropout / drop-path)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 eps: float = LN_EPS):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, D], row-major patches


def _init_weights(m: nn.Module, std: float = INIT_STD):
    """Official `_init_weights` of both constructors (stage 1)."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=std)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)
    elif isinstance(m, nn.Conv2d):
        trunc_normal_(m.weight, std=std)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)


def _fix_init_weight(blocks: nn.ModuleList):
    """Official `fix_init_weight` (stage 2; later undone by `init_model`)."""
    with torch.no_grad():
        for layer_id, layer in enumerate(blocks):
            layer.attn.proj.weight.div_(math.sqrt(2.0 * (layer_id + 1)))
            layer.mlp.fc2.weight.div_(math.sqrt(2.0 * (layer_id + 1)))


class VisionTransformer(nn.Module):
    """Official encoder: conv patch embed, fixed sin-cos pos embed, pre-norm blocks, final norm.

    state_dict keys: pos_embed, patch_embed.proj.{weight,bias}, blocks.{i}.{norm1,attn.qkv,
    attn.proj,norm2,mlp.fc1,mlp.fc2}.{weight,bias}, norm.{weight,bias}.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, init_std: float = INIT_STD):
        super().__init__()
        self.num_features = self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        grid = img_size // patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim), requires_grad=False)
        self.pos_embed.data.copy_(torch.from_numpy(sincos_2d(embed_dim, grid)).float().unsqueeze(0))
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.init_std = init_std
        self.apply(lambda m: _init_weights(m, init_std))
        _fix_init_weight(self.blocks)

    def forward(self, x, masks: Optional[Sequence[torch.Tensor]] = None):
        if masks is not None and not isinstance(masks, (list, tuple)):
            masks = [masks]
        x = self.patch_embed(x)
        assert x.shape[1] == self.pos_embed.shape[1], "fixed-resolution model"
        x = x + self.pos_embed
        if masks is not None:
            x = apply_masks(x, masks)  # keep only the context tokens BEFORE the blocks
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class VisionTransformerPredictor(nn.Module):
    """Official predictor (spec 1.3). Note: the official `vit_predictor` factory hard-codes
    mlp_ratio=4; this class takes it as an argument like the official class does."""

    def __init__(self, num_patches: int, embed_dim: int = 768, predictor_embed_dim: int = 384,
                 depth: int = 6, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, init_std: float = INIT_STD):
        super().__init__()
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        grid = int(num_patches ** 0.5)
        assert grid * grid == num_patches
        self.predictor_pos_embed = nn.Parameter(torch.zeros(1, num_patches, predictor_embed_dim),
                                                requires_grad=False)
        self.predictor_pos_embed.data.copy_(
            torch.from_numpy(sincos_2d(predictor_embed_dim, grid)).float().unsqueeze(0))
        self.predictor_blocks = nn.ModuleList([
            Block(predictor_embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.predictor_norm = nn.LayerNorm(predictor_embed_dim, eps=LN_EPS)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim, bias=True)
        self.init_std = init_std
        trunc_normal_(self.mask_token, std=init_std)
        self.apply(lambda m: _init_weights(m, init_std))
        _fix_init_weight(self.predictor_blocks)

    def forward(self, x, masks_x, masks):
        if not isinstance(masks_x, (list, tuple)):
            masks_x = [masks_x]
        if not isinstance(masks, (list, tuple)):
            masks = [masks]
        B = len(x) // len(masks_x)
        # context tokens: project to predictor width, add predictor-space pos embed (2nd time)
        x = self.predictor_embed(x)
        x = x + apply_masks(self.predictor_pos_embed.repeat(B, 1, 1), masks_x)
        _, n_ctx, _ = x.shape
        # target tokens: one shared mask token + pos embed of each target patch
        pos_embs = apply_masks(self.predictor_pos_embed.repeat(B, 1, 1), masks)
        pos_embs = repeat_interleave_batch(pos_embs, B, repeat=len(masks_x))
        pred_tokens = self.mask_token.repeat(pos_embs.size(0), pos_embs.size(1), 1)
        pred_tokens = pred_tokens + pos_embs
        # each target block is a separate sequence: [ctx ; block tokens]
        x = x.repeat(len(masks), 1, 1)
        x = torch.cat([x, pred_tokens], dim=1)
        for blk in self.predictor_blocks:
            x = blk(x)
        x = self.predictor_norm(x)
        x = x[:, n_ctx:]
        return self.predictor_proj(x)


def reinit_(module: nn.Module, std: float = INIT_STD):
    """Stage 3 (`src/helper.py::init_model`): every Linear -> trunc_normal std 0.02, bias 0;
    every LayerNorm -> 1 / 0. Pre-order traversal (`modules()`), as the official code."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)


def init_model(img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
               num_heads: int, mlp_ratio: float, pred_embed_dim: int, pred_depth: int,
               pred_num_heads: Optional[int] = None, pred_mlp_ratio: Optional[float] = None
               ) -> Tuple[VisionTransformer, VisionTransformerPredictor]:
    """Official `init_model`: build encoder, build predictor, then re-init both (stage 3).

    pred_num_heads defaults to num_heads (official); pred_mlp_ratio defaults to 4, as the
    official `vit_predictor` always uses (whatever the encoder's mlp_ratio).
    """
    encoder = VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                                mlp_ratio=mlp_ratio)
    predictor = VisionTransformerPredictor(
        num_patches=encoder.patch_embed.num_patches, embed_dim=embed_dim,
        predictor_embed_dim=pred_embed_dim, depth=pred_depth,
        num_heads=num_heads if pred_num_heads is None else pred_num_heads,
        mlp_ratio=4.0 if pred_mlp_ratio is None else pred_mlp_ratio)
    reinit_(encoder)
    reinit_(predictor)
    return encoder, predictor


def make_target_encoder(encoder: VisionTransformer) -> VisionTransformer:
    """`copy.deepcopy(encoder)`, then requires_grad = False on every parameter."""
    target = copy.deepcopy(encoder)
    for p in target.parameters():
        p.requires_grad = False
    return target


# --------------------------------------------------------------------------------------------
# Multi-block mask collator (spec 2.2)
# --------------------------------------------------------------------------------------------
class MaskCollator:
    def __init__(self, input_size=(224, 224), patch_size: int = 16,
                 enc_mask_scale=(0.2, 0.8), pred_mask_scale=(0.2, 0.8),
                 aspect_ratio=(0.3, 3.0), nenc: int = 1, npred: int = 2, min_keep: int = 4,
                 allow_overlap: bool = False, generator: Optional[torch.Generator] = None):
        if not isinstance(input_size, tuple):
            input_size = (input_size,) * 2
        self.patch_size = patch_size
        self.height, self.width = input_size[0] // patch_size, input_size[1] // patch_size
        self.enc_mask_scale = enc_mask_scale
        self.pred_mask_scale = pred_mask_scale
        self.aspect_ratio = aspect_ratio
        self.nenc = nenc
        self.npred = npred
        self.min_keep = min_keep
        self.allow_overlap = allow_overlap
        self.generator = generator  # block LOCATIONS; None = global torch RNG (official)
        self._itr_counter = -1      # official: multiprocessing.Value('i', -1)
        self.relaxations = 0        # total number of "Valid mask not found" relaxations

    def step(self) -> int:
        self._itr_counter += 1
        return self._itr_counter

    def _sample_block_size(self, generator, scale, aspect_ratio_scale):
        # ONE uniform number drives both the scale and the aspect ratio
        _rand = torch.rand(1, generator=generator).item()
        min_s, max_s = scale
        mask_scale = min_s + _rand * (max_s - min_s)
        max_keep = int(self.height * self.width * mask_scale)
        min_ar, max_ar = aspect_ratio_scale
        aspect_ratio = min_ar + _rand * (max_ar - min_ar)
        h = int(round(math.sqrt(max_keep * aspect_ratio)))
        w = int(round(math.sqrt(max_keep / aspect_ratio)))
        while h >= self.height:
            h -= 1
        while w >= self.width:
            w -= 1
        return (h, w)

    def _sample_block_mask(self, b_size, acceptable_regions=None):
        h, w = b_size
        tries = 0
        timeout = og_timeout = 20
        valid = False
        while not valid:
            # exclusive upper bound: a block never touches the last row / column
            top = torch.randint(0, self.height - h, (1,), generator=self.generator)
            left = torch.randint(0, self.width - w, (1,), generator=self.generator)
            mask = torch.zeros((self.height, self.width), dtype=torch.int32)
            mask[top:top + h, left:left + w] = 1
            if acceptable_regions is not None:
                n_keep = max(int(len(acceptable_regions) - tries), 0)
                for k in range(n_keep):
                    mask *= acceptable_regions[k]
            mask = torch.nonzero(mask.flatten())
            valid = len(mask) > self.min_keep  # strictly greater
            if not valid:
                timeout -= 1
                if timeout == 0:
                    tries += 1
                    self.relaxations += 1
                    timeout = og_timeout
                    logger.warning('Valid mask not found, decreasing acceptable-regions [%d]', tries)
        mask = mask.squeeze()
        mask_complement = torch.ones((self.height, self.width), dtype=torch.int32)
        mask_complement[top:top + h, left:left + w] = 0
        return mask, mask_complement

    def sample_masks(self, B: int) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """-> (masks_enc: nenc x LongTensor[B, Kc], masks_pred: npred x LongTensor[B, Kt])."""
        seed = self.step()
        g = torch.Generator()
        g.manual_seed(seed)
        p_size = self._sample_block_size(g, self.pred_mask_scale, self.aspect_ratio)
        e_size = self._sample_block_size(g, self.enc_mask_scale, (1.0, 1.0))

        masks_pred, masks_enc = [], []
        min_keep_pred = self.height * self.width
        min_keep_enc = self.height * self.width
        for _ in range(B):
            mp, mc = [], []
            for _ in range(self.npred):
                m, m_c = self._sample_block_mask(p_size)
                mp.append(m)
                mc.append(m_c)
                min_keep_pred = min(min_keep_pred, len(m))
            masks_pred.append(mp)
            acceptable = None if self.allow_overlap else mc
            me = []
            for _ in range(self.nenc):
                m, _ = self._sample_block_mask(e_size, acceptable_regions=acceptable)
                me.append(m)
                min_keep_enc = min(min_keep_enc, len(m))
            masks_enc.append(me)

        # truncate every mask to the batch minimum (keeps the lowest raster indices), then
        # "collate": list over masks of [B, K]
        out_pred = [torch.stack([masks_pred[b][j][:min_keep_pred] for b in range(B)])
                    for j in range(self.npred)]
        out_enc = [torch.stack([masks_enc[b][j][:min_keep_enc] for b in range(B)])
                   for j in range(self.nenc)]
        return out_enc, out_pred

    def __call__(self, batch):
        collated = torch.utils.data.default_collate(batch)
        masks_enc, masks_pred = self.sample_masks(len(batch))
        return collated, masks_enc, masks_pred


# --------------------------------------------------------------------------------------------
# Schedules (spec 4.2)
# --------------------------------------------------------------------------------------------
class WarmupCosineSchedule:
    def __init__(self, optimizer, warmup_steps, start_lr, ref_lr, T_max, final_lr=0.0):
        self.optimizer = optimizer
        self.start_lr = start_lr
        self.ref_lr = ref_lr
        self.final_lr = final_lr
        self.warmup_steps = warmup_steps
        self.T_max = T_max - warmup_steps
        self._step = 0.0

    def step(self):
        self._step += 1
        if self._step < self.warmup_steps:
            progress = float(self._step) / float(max(1, self.warmup_steps))
            new_lr = self.start_lr + progress * (self.ref_lr - self.start_lr)
        else:
            progress = float(self._step - self.warmup_steps) / float(max(1, self.T_max))
            new_lr = max(self.final_lr, self.final_lr + (self.ref_lr - self.final_lr) * 0.5
                         * (1.0 + math.cos(math.pi * progress)))
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = new_lr
        return new_lr


class CosineWDSchedule:
    def __init__(self, optimizer, ref_wd, T_max, final_wd=0.0):
        self.optimizer = optimizer
        self.ref_wd = ref_wd
        self.final_wd = final_wd
        self.T_max = T_max
        self._step = 0.0

    def step(self):
        self._step += 1
        progress = self._step / self.T_max
        new_wd = self.final_wd + (self.ref_wd - self.final_wd) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.final_wd <= self.ref_wd:
            new_wd = max(self.final_wd, new_wd)
        else:
            new_wd = min(self.final_wd, new_wd)
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                if not group.get("WD_exclude", False):
                    group["weight_decay"] = new_wd
        return new_wd


def momentum_schedule(ema0: float, ema1: float, ipe: int, num_epochs: int, ipe_scale: float = 1.0):
    """EMA momentum generator: m_i = ema0 + i*(ema1-ema0)/(ipe*epochs*ipe_scale),
    i = 0..int(ipe*epochs*ipe_scale) (inclusive). One value is consumed per iteration."""
    total = ipe * num_epochs * ipe_scale
    return (ema0 + i * (ema1 - ema0) / total for i in range(int(total) + 1))


# --------------------------------------------------------------------------------------------
# Optimizer (spec 4.1) and the training step (spec 3, 4.4)
# --------------------------------------------------------------------------------------------
def param_groups(encoder: nn.Module, predictor: nn.Module):
    """The official 4 groups, in order: enc-decay, pred-decay, enc-noWD, pred-noWD.
    Decay iff 'bias' not in name and p.ndim != 1 (so mask_token IS decayed). Frozen params
    (the pos embeds) are left out; the official code includes them but they never get a grad."""
    def sel(mod, decay):
        return [p for n, p in mod.named_parameters() if p.requires_grad
                and ((("bias" not in n) and p.ndim != 1) == decay)]
    return [
        {"params": sel(encoder, True)},
        {"params": sel(predictor, True)},
        {"params": sel(encoder, False), "WD_exclude": True, "weight_decay": 0},
        {"params": sel(predictor, False), "WD_exclude": True, "weight_decay": 0},
    ]


def init_opt(encoder: nn.Module, predictor: nn.Module) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(encoder, predictor), betas=(0.9, 0.999), eps=1e-8,
                             foreach=False)


def train_step(encoder: VisionTransformer, predictor: VisionTransformerPredictor,
               target_encoder: VisionTransformer, optimizer: torch.optim.Optimizer,
               imgs: torch.Tensor, masks_enc: Sequence[torch.Tensor],
               masks_pred: Sequence[torch.Tensor], lr: float, wd: float, momentum: float,
               return_details: bool = False):
    """One official fp32 training iteration.

    Returns the loss (0-d float32 tensor, detached). With return_details=True returns
    (loss, details) where details has 'target_full' [B,N,D] (target encoder output incl. its
    final norm, before the extra F.layer_norm), 'targets' [npred*nenc*B,Kt,D], 'ctx_out'
    [nenc*B,Kc,D], 'pred_out' [npred*nenc*B,Kt,D], 'grads_encoder' / 'grads_predictor'
    (name -> gradient before optimizer.step, for every trainable tensor).
    """
    masks_enc = list(masks_enc)
    masks_pred = list(masks_pred)
    # 1. schedules (here: given values) -> lr on all groups, wd on decay groups
    for group in optimizer.param_groups:
        group["lr"] = lr
        if not group.get("WD_exclude", False):
            group["weight_decay"] = wd

    # 2. forward
    with torch.no_grad():
        h_full = target_encoder(imgs)
        h = F.layer_norm(h_full, (h_full.size(-1),))  # no affine, eps 1e-5
        B = len(h)
        h = apply_masks(h, masks_pred)
        h = repeat_interleave_batch(h, B, repeat=len(masks_enc))
    z_ctx = encoder(imgs, masks_enc)
    z = predictor(z_ctx, masks_enc, masks_pred)
    loss = F.smooth_l1_loss(z, h)  # beta 1, mean

    # 3. backward, 4. optimizer step
    loss.backward()
    details = None
    if return_details:
        details = {
            "target_full": h_full.detach().clone(),
            "targets": h.detach().clone(),
            "ctx_out": z_ctx.detach().clone(),
            "pred_out": z.detach().clone(),
            "grads_encoder": {n: p.grad.detach().clone() for n, p in encoder.named_parameters()
                              if p.requires_grad},
            "grads_predictor": {n: p.grad.detach().clone() for n, p in predictor.named_parameters()
                                if p.requires_grad},
        }
    optimizer.step()
    optimizer.zero_grad()

    # 5. EMA over ALL encoder parameters (incl. the frozen pos_embed, as the official zip does)
    with torch.no_grad():
        m = momentum
        for param_q, param_k in zip(encoder.parameters(), target_encoder.parameters()):
            param_k.data.mul_(m).add_((1.0 - m) * param_q.detach().data)

    loss = loss.detach()
    return (loss, details) if return_details else loss


def trainable_state(module: nn.Module, exclude: Sequence[str] = ("pos_embed", "predictor_pos_embed")
                    ) -> Dict[str, torch.Tensor]:
    """state_dict without the fixed pos-embed tables (cloned, contiguous)."""
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()
            if k not in exclude}
