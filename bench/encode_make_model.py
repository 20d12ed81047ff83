#!/usr/bin/env python3
"""Writes one random-init transformers IJepaModel with the official sin-cos position table as a
Hugging Face model directory (config.json + model.safetensors), for bench/run_bench_encode.py.

usage: python3 bench/encode_make_model.py OUT_DIR --dim D --depth L --heads H --mlp M
                                         --patch P [--image 224] [--seed 0]

The directory is written under OUT_DIR.tmp and renamed into place, so an interrupted run never
leaves a half-written model behind. Weights: transformers' own init (truncated normal, std
initializer_range=0.02, zero biases, unit LayerNorms) with a fixed seed; the position
embeddings are replaced by the official 2-D sin-cos table (tools/ijepa_torch.py's sincos_2d).
"""
import argparse
import json
import os
import shutil
import sys

sys.modules["torchvision"] = None  # transformers: treat the (mismatched) torchvision as absent

import numpy as np  # noqa: E402
import torch  # noqa: E402


def sincos_1d(embed_dim, pos):
    """As tools/ijepa_torch.py: [M] positions -> [M, embed_dim], sin block then cos block."""
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(embed_dim, grid):
    """[G*G, embed_dim]: column half first, then row half (the official layout)."""
    coords = np.arange(grid, dtype=np.float64)
    col, row = np.meshgrid(coords, coords)
    return np.concatenate([sincos_1d(embed_dim // 2, col), sincos_1d(embed_dim // 2, row)], axis=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--mlp", type=int, required=True)
    ap.add_argument("--patch", type=int, required=True)
    ap.add_argument("--image", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from transformers import IJepaConfig, IJepaModel

    torch.manual_seed(a.seed)
    cfg = IJepaConfig(hidden_size=a.dim, num_hidden_layers=a.depth, num_attention_heads=a.heads,
                      intermediate_size=a.mlp, image_size=a.image, patch_size=a.patch,
                      num_channels=3, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True)
    model = IJepaModel(cfg, add_pooling_layer=False).eval()
    grid = a.image // a.patch
    table = torch.from_numpy(sincos_2d(a.dim, grid)).float().unsqueeze(0)
    with torch.no_grad():
        assert model.embeddings.position_embeddings.shape == table.shape
        model.embeddings.position_embeddings.copy_(table)

    tmp = a.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True, max_shard_size="1000GB")
    files = sorted(os.listdir(tmp))
    if "model.safetensors" not in files or "config.json" not in files:
        raise SystemExit(f"save_pretrained wrote {files}, expected config.json and model.safetensors")
    with open(os.path.join(tmp, "bench-model.json"), "w") as f:
        json.dump({"dim": a.dim, "depth": a.depth, "heads": a.heads, "mlp": a.mlp,
                   "patch": a.patch, "image": a.image, "seed": a.seed}, f, sort_keys=True)
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"dir": a.out, "params": n}))


if __name__ == "__main__":
    main()
