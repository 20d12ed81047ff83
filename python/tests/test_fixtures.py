"""Parity with the PyTorch reference: Tests/Fixtures/{rgb,gray,multi}.safetensors, written by
tools/make_fixtures.py from tools/ijepa_torch.py (the official step re-implemented). The same
checks as the C/Swift parity tests, through the Python API only."""

import json
import os

import numpy as np
import pytest

import ijepa
from conftest import ROOT
from st_reader import read_safetensors

FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
NAMES = ["rgb", "gray", "multi"]
CONFIG_KEYS = ["image_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
               "mlp_ratio", "pred_embed_dim", "pred_depth", "pred_num_heads", "num_enc_masks",
               "num_pred_masks", "min_keep"]


def load_fixture(name):
    path = os.path.join(FIXTURES, name + ".safetensors")
    if not os.path.exists(path):
        pytest.skip("fixture %s not found" % path)
    t, meta = read_safetensors(path)
    return t, json.loads(meta["config"])


def close_params(got, want, what):
    """|a-b| <= 1e-7 + 1e-5 |b| elementwise."""
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    tol = 1e-7 + 1e-5 * np.abs(want.astype(np.float64))
    bad = err > tol
    assert not bad.any(), "%s: %d values off, worst |a-b| %.3g at %s" % (
        what, bad.sum(), err.max(), np.unravel_index(np.argmax(err - tol), err.shape))


def fixture_model(t, fc):
    cfg = ijepa.Config(**{k: fc[k] for k in CONFIG_KEYS}, n_threads=2)
    m = ijepa.Model(cfg)
    params = m.parameters()
    want = {k[len("init."):]: v for k, v in t.items() if k.startswith("init.")}
    assert set(params) == set(want), "parameter names differ from the fixture's"
    for name, view in params.items():
        assert view.shape == want[name].shape, name
        view[...] = want[name]
    target = m.target_parameters()
    for name, view in target.items():
        view[...] = params[name[len("target_"):]]
    return m


@pytest.mark.parametrize("name", NAMES)
def test_fixture_parity(name):
    t, fc = load_fixture(name)
    with fixture_model(t, fc) as m:
        # the target encoder before any step = encoder at init: features match the reference
        tokens = m.encode(t["step1.images"], "target", pooled=False)
        ref = t["step1.target_full"]
        assert np.abs(tokens - ref).max() <= 1e-5 * np.abs(ref).max()

        for s in range(1, fc["steps"] + 1):
            masks = ijepa.Masks(t["step%d.masks_enc" % s], t["step%d.masks_pred" % s])
            loss = m.forward_backward(t["step%d.images" % s], masks)
            ref_loss = float(t["step%d.loss" % s].reshape(-1)[0])
            assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss), (s, loss, ref_loss)
            if s == 1:
                for gname, g in m.gradients().items():
                    r = t["step1.grad." + gname]
                    assert np.abs(g - r).max() <= 1e-4 * np.abs(r).max(), gname
            m.set_schedule_override(fc["lr"][s - 1], fc["wd"][s - 1], fc["ema"][s - 1])
            stats = m.optimizer_step()
            assert stats.step == s == m.step
            assert stats.lr == pytest.approx(fc["lr"][s - 1], rel=1e-6)
            assert stats.weight_decay == pytest.approx(fc["wd"][s - 1], rel=1e-6)
            assert stats.ema_momentum == pytest.approx(fc["ema"][s - 1], rel=1e-6)
            if s in (1, 3):
                for pname, v in m.parameters().items():
                    close_params(v, t["after%d.%s" % (s, pname)], "after%d %s" % (s, pname))
                for pname, v in m.target_parameters().items():
                    close_params(v, t["after%d.%s" % (s, pname)], "after%d %s" % (s, pname))
