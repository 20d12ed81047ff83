"""Writes Tests/Fixtures/torch_checkpoint.safetensors: a checkpoint written by PyTorch's
safetensors.torch.save_file from official-layout modules (tools/ijepa_torch.py), with the
official state_dict names under encoder./predictor./target_encoder. and DDP's "module."
(as an official .pth.tar holds them); and torch_checkpoint_check.safetensors with `images`
[3,3,24,24] and `target_pooled` / `context_pooled` [3,32], the mean-pooled features PyTorch computes.
The target encoder is perturbed so it differs from the context encoder. The library must load
the file (load_weights, strict) and encode to the same features. Run:
python3 tools/make_interop_fixture.py
"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ijepa_torch as R  # noqa: E402

torch.manual_seed(0)
enc, pred = R.init_model(24, 4, 3, 32, 2, 2, 4.0, 16, 2)
tgt = R.make_target_encoder(enc)
with torch.no_grad():
    for p in tgt.parameters():
        if p.requires_grad:
            p.add_(0.01 * torch.randn_like(p))
x = torch.randn(3, 3, 24, 24)
with torch.no_grad():
    tp = tgt(x).mean(1)
    cp = enc(x).mean(1)
out = {}
for part, mod in (("encoder", enc), ("predictor", pred), ("target_encoder", tgt)):
    for k, v in mod.state_dict().items():
        out[f"{part}.module.{k}"] = v.detach().clone().contiguous()
fixtures = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures")
meta = {"torch_version": torch.__version__,
        "model": "image 24, patch 4, in_chans 3, embed 32, depth 2, heads 2, predictor 16 x 2"}
save_file(out, os.path.join(fixtures, "torch_checkpoint.safetensors"), metadata=meta)
save_file({"images": x, "target_pooled": tp, "context_pooled": cp},
          os.path.join(fixtures, "torch_checkpoint_check.safetensors"), metadata=meta)
print("wrote torch_checkpoint.safetensors and torch_checkpoint_check.safetensors in", os.path.normpath(fixtures))
