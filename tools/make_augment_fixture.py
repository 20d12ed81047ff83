"""Writes Tests/Fixtures/augment.safetensors: bilinear resized crops from PyTorch.

For each crop box (i, j, h, w) of a random [2, 3, 28, 28] image batch it stores
F.interpolate(img[:, :, i:i+h, j:j+w], size=(S, S), mode="bilinear", align_corners=False,
antialias=False) for S = 32 (upsampling, as the fmnist recipe) and S = 20 (downsampling) —
the resize torchvision's RandomResizedCrop applies to tensors with antialias=False.
Run: python3 tools/make_augment_fixture.py
"""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(0)
imgs = torch.randn(2, 3, 28, 28)
boxes = torch.tensor([[0, 0, 28, 28], [3, 5, 17, 11], [10, 0, 18, 28], [0, 20, 8, 8], [27, 27, 1, 1]],
                     dtype=torch.int64)
out = {"images": imgs, "boxes": boxes}
for S in (32, 20):
    res = [F.interpolate(imgs[:, :, i:i + h, j:j + w], size=(S, S), mode="bilinear",
                         align_corners=False, antialias=False) for i, j, h, w in boxes.tolist()]
    out[f"crops{S}"] = torch.stack(res, 0).contiguous()   # [K, B, C, S, S]
out["resize_24x36"] = F.interpolate(imgs, size=(24, 36), mode="bilinear", align_corners=False,
                                    antialias=False).contiguous()
path = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "augment.safetensors")
save_file(out, path, metadata={"torch_version": torch.__version__})
print("wrote", os.path.normpath(path))
