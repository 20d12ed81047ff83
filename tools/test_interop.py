"""Interoperability with PyTorch and the official checkpoint layout (pytest).

    make stage
    IJEPA_LIBRARY=build/stage/lib/libijepa.so.1 pytest python/tests tools/test_interop.py

Needs torch and safetensors (pip install torch==2.13.0 safetensors --index-url ... CPU); the
whole module is skipped with a message when they are missing. PyTorch modules come from
tools/ijepa_torch.py (official state_dict names); conversions from tools/convert_official.py.

* A checkpoint written by safetensors.torch.save_file from official-layout modules loads here
  (Model.load_weights, or Model.load after convert_official with a config) and encode() gives the
  PyTorch features (mean-pooled after the final norm; target and context encoder).
* A checkpoint written here (Model.save) loads into the PyTorch modules with strict=True and
  gives the same features; so does convert_official's official-layout .pth.tar (DDP module.).
* A fake official .pth.tar (torch.save of DDP-style state_dicts) converts and loads.
* A training state exported to the official layout (AdamW 'opt' with the official 4 groups)
  resumes in PyTorch: one more step there equals one more step here.
* encode_layers() gives the PyTorch modules' last-k block features (final norm, mean-pooled).
"""

import copy
import glob
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tools/test_interop.py needs torch (pip install torch)")
pytest.importorskip("safetensors", reason="tools/test_interop.py needs safetensors (pip install safetensors)")
from safetensors.torch import load_file, save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if importlib.util.find_spec("ijepa") is None:
    sys.path.insert(0, os.path.join(ROOT, "python"))
if os.sep in os.environ.get("IJEPA_LIBRARY", ""):
    os.environ["IJEPA_LIBRARY"] = os.path.abspath(os.environ["IJEPA_LIBRARY"])
if not os.environ.get("IJEPA_LIBRARY"):
    _spec = importlib.util.find_spec("ijepa")
    _bundled = _spec and _spec.origin and glob.glob(
        os.path.join(os.path.dirname(_spec.origin), "lib", "libijepa.so*"))
    _staged = os.path.join(ROOT, "build", "stage", "lib", "libijepa.so.1")
    if not _bundled and os.path.exists(_staged):
        os.environ["IJEPA_LIBRARY"] = _staged

import convert_official as co  # noqa: E402
import ijepa  # noqa: E402
import ijepa_torch as ij  # noqa: E402

torch.set_num_threads(1)

# (image, patch, chans, D, depth, heads, mlp_ratio, Dp, pred_depth)
ARCHS = {
    "rgb": (32, 4, 3, 48, 2, 4, 4.0, 24, 2),
    "gray": (28, 4, 1, 32, 2, 2, 2.0, 16, 1),
}


class DDP(torch.nn.Module):
    """Stands in for DistributedDataParallel: state_dict keys get 'module.'."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def arch_config(name, **kw):
    img, p, c, d, depth, h, r, dp, pdp = ARCHS[name]
    base = dict(image_size=img, patch_size=p, in_chans=c, embed_dim=d, depth=depth, num_heads=h,
                mlp_ratio=r, pred_embed_dim=dp, pred_depth=pdp, min_keep=2, n_threads=2, seed=3,
                warmup_steps=2, total_steps=20)
    base.update(kw)
    return ijepa.Config(**base)


def torch_modules(name, seed=0):
    """(encoder, predictor, target) official-layout modules; the target is perturbed so that
    target and context features differ."""
    img, p, c, d, depth, h, r, dp, pdp = ARCHS[name]
    torch.manual_seed(seed)
    enc, pred = ij.init_model(img_size=img, patch_size=p, in_chans=c, embed_dim=d, depth=depth,
                              num_heads=h, mlp_ratio=r, pred_embed_dim=dp, pred_depth=pdp)
    tgt = ij.make_target_encoder(enc)
    with torch.no_grad():
        for n, t in tgt.named_parameters():
            if n != "pos_embed":
                t.add_(0.01 * torch.randn_like(t))
    for m in (enc, pred, tgt):
        m.eval()
    return enc, pred, tgt


def images(name, batch=3, seed=1):
    img, _, c = ARCHS[name][:3]
    return np.random.default_rng(seed).standard_normal((batch, c, img, img), dtype=np.float32)


def torch_features(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).mean(dim=1).numpy()


def assert_features(got, ref):
    err = np.abs(got - ref).max()
    assert err <= 1e-5 * np.abs(ref).max(), "max err %.3g vs max |ref| %.3g" % (err, np.abs(ref).max())


def prefixed(enc, pred, tgt):
    out = {}
    for part, m in (("encoder", enc), ("predictor", pred), ("target_encoder", tgt)):
        for k, v in m.state_dict().items():
            out["%s.%s" % (part, k)] = v.detach().clone().contiguous()
    return out


# ---- PyTorch -> here --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ARCHS))
def test_torch_safetensors_loads_here(name, tmp_path):
    enc, pred, tgt = torch_modules(name)
    path = tmp_path / "torch.safetensors"
    save_file(prefixed(enc, pred, tgt), str(path))
    x = images(name)
    with ijepa.Model(arch_config(name)) as m:
        m.load_weights(path)  # strict
        assert_features(m.encode(x, "target"), torch_features(tgt, x))
        assert_features(m.encode(x, "context"), torch_features(enc, x))
        with torch.no_grad():
            tokens = tgt(torch.from_numpy(x)).numpy()
        assert_features(m.encode(x, "target", pooled=False), tokens)
        # the predictor came along too
        for k, v in pred.state_dict().items():
            if k != "predictor_pos_embed":
                np.testing.assert_array_equal(m.parameters()["predictor." + k], v.numpy())
    with pytest.raises(ijepa.FormatError, match="ijepa.config"):
        ijepa.Model.load(path)  # no config metadata: load_weights only


def torch_layer_features(module, x, last_k):
    """The last `last_k` blocks' outputs, each through the final norm and mean-pooled,
    concatenated earliest first (DINO's get_intermediate_layers, as ijepa_encode_layers)."""
    with torch.no_grad():
        h = module.patch_embed(torch.from_numpy(x)) + module.pos_embed
        outs = []
        for blk in module.blocks:
            h = blk(h)
            outs.append(module.norm(h).mean(dim=1))
        return torch.cat(outs[-last_k:], dim=1).numpy()


@pytest.mark.skipif(not ijepa.has_encode_layers(), reason="the library has no ijepa_encode_layers")
@pytest.mark.parametrize("name", list(ARCHS))
def test_encode_layers_matches_torch(name, tmp_path):
    enc, pred, tgt = torch_modules(name, seed=2)
    path = tmp_path / "torch.safetensors"
    save_file(prefixed(enc, pred, tgt), str(path))
    x = images(name)
    depth = ARCHS[name][4]
    with ijepa.Model(arch_config(name)) as m:
        m.load_weights(path)
        for k in range(1, depth + 1):
            assert_features(m.encode_layers(x, k, "target"), torch_layer_features(tgt, x, k))
            assert_features(m.encode_layers(x, k, "context"), torch_layer_features(enc, x, k))
        assert_features(torch_layer_features(tgt, x, 1), torch_features(tgt, x))


def official_checkpoint(enc, pred, tgt, path):
    """A fake official checkpoint: DDP state_dicts and the official top-level keys."""
    opt = torch.optim.AdamW(ij.param_groups(enc, pred))
    ck = {"encoder": DDP(enc).state_dict(), "predictor": DDP(pred).state_dict(),
          "target_encoder": DDP(tgt).state_dict(), "opt": opt.state_dict(), "scaler": None,
          "epoch": 7, "loss": 0.5, "batch_size": 16, "world_size": 1, "lr": 1e-3}
    assert all(k.startswith("module.") for k in ck["encoder"])
    torch.save(ck, str(path))


@pytest.mark.parametrize("name", list(ARCHS))
def test_fake_official_checkpoint_converts_and_loads(name, tmp_path):
    enc, pred, tgt = torch_modules(name, seed=4)
    src = tmp_path / "IN1K-fake.pth.tar"
    official_checkpoint(enc, pred, tgt, src)
    img, p, c, d, depth, h, r, dp, pdp = ARCHS[name]
    x = images(name)

    # with the hyper-parameters: a self-describing file for Model.load
    out = tmp_path / "with_config.safetensors"
    cfg = co.convert_official_to_safetensors(
        src, out, overrides=dict(num_heads=h, image_size=img, patch_size=p, pred_depth=pdp,
                                 pred_embed_dim=dp), sets=dict(min_keep=2, seed="11"),
        log=lambda *a: None)
    assert list(cfg) == co.CONFIG_KEYS
    with ijepa.Model.load(out) as m:
        mc = m.config
        assert (mc.image_size, mc.patch_size, mc.in_chans, mc.embed_dim, mc.depth, mc.num_heads,
                mc.pred_embed_dim, mc.pred_depth, mc.seed) == (img, p, c, d, depth, h, dp, pdp, 11)
        assert mc.mlp_ratio == pytest.approx(r)
        assert_features(m.encode(x, "target"), torch_features(tgt, x))
        assert_features(m.encode(x, "context"), torch_features(enc, x))

    # without: loadable into a model created with the right config
    bare = tmp_path / "bare.safetensors"
    assert co.convert_official_to_safetensors(src, bare, log=lambda *a: None) is None
    with ijepa.Model(arch_config(name)) as m:
        m.load_weights(bare)
        assert_features(m.encode(x, "target"), torch_features(tgt, x))
    with pytest.raises(ijepa.FormatError):
        ijepa.Model.load(bare)

    # the official DDP names also load directly: load_weights accepts module.
    ddp = tmp_path / "ddp.safetensors"
    ck = torch.load(str(src), weights_only=True)
    save_file({"%s.%s" % (part, k): v.contiguous() for part in co.PARTS
               for k, v in ck[part].items()}, str(ddp))
    with ijepa.Model(arch_config(name)) as m:
        m.load_weights(ddp)
        assert_features(m.encode(x, "target"), torch_features(tgt, x))


def test_convert_cli(tmp_path):
    enc, pred, tgt = torch_modules("rgb", seed=5)
    src = tmp_path / "official.pth.tar"
    official_checkpoint(enc, pred, tgt, src)
    out = tmp_path / "cli.safetensors"
    h = ARCHS["rgb"][5]
    script = os.path.join(HERE, "convert_official.py")
    r = subprocess.run([sys.executable, script, str(src), str(out), "--num-heads", str(h),
                        "--image-size", "32", "--set", "min_keep=2", "--set", "enc_mask_scale=0.7,0.9"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with ijepa.Model.load(out) as m:
        assert m.config.enc_mask_scale == (0.7, 0.9)
        x = images("rgb")
        assert_features(m.encode(x), torch_features(tgt, x))
    # contradictions and missing heads are refused with a message
    for extra, msg in ((["--model", "vit_tiny"], "embed_dim"), (["--image-size", "64", "--num-heads", "4"], "image_size"),
                       (["--depth", "2"], "number of heads")):
        r = subprocess.run([sys.executable, script, "to-safetensors", str(src),
                            str(tmp_path / "bad.safetensors")] + extra,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and msg in r.stderr, (extra, r.stderr)
    # and back
    back = tmp_path / "back.pth.tar"
    r = subprocess.run([sys.executable, script, str(out), str(back)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ck = torch.load(str(back), weights_only=True)
    t2 = copy.deepcopy(tgt)
    DDP(t2).load_state_dict(ck["target_encoder"], strict=True)


def test_recipe_defaults_match_the_library():
    lib = ijepa.Config().to_dict()
    for k, v in co.RECIPE_DEFAULTS.items():
        want = lib[k]
        if k in ("warmup_steps", "total_steps", "seed"):
            assert int(v) == want, k
        elif isinstance(v, list):
            assert tuple(v) == tuple(want), k
        else:
            assert v == want, k
    for name, (D, depth, heads, ratio) in co.MODELS.items():
        c = ijepa.Config.preset(name)
        assert (c.embed_dim, c.depth, c.num_heads) == (D, depth, heads), name
        assert c.mlp_ratio == pytest.approx(ratio, rel=1e-6), name


# ---- here -> PyTorch --------------------------------------------------------------------------
def trained_model(name, steps=2):
    m = ijepa.Model(arch_config(name))
    for s in range(steps):
        m.train_step(images(name, seed=10 + s))
    return m


def fresh_torch(name):
    enc, pred, tgt = torch_modules(name, seed=99)  # different weights: loading must replace them
    return enc, pred, tgt


@pytest.mark.parametrize("name", list(ARCHS))
def test_our_checkpoint_loads_into_torch(name, tmp_path):
    x = images(name)
    with trained_model(name) as m:
        path = tmp_path / "ours.safetensors"
        m.save(path)
        want_t, want_c = m.encode(x, "target"), m.encode(x, "context")
        want_tokens = m.encode(x, "target", pooled=False)
    sd = load_file(str(path))
    enc, pred, tgt = fresh_torch(name)
    for part, mod in (("encoder", enc), ("predictor", pred), ("target_encoder", tgt)):
        sub = {k[len(part) + 1:]: v for k, v in sd.items() if k.startswith(part + ".")}
        mod.load_state_dict(sub, strict=True)
    assert_features(torch_features(tgt, x), want_t)
    assert_features(torch_features(enc, x), want_c)
    with torch.no_grad():
        assert_features(tgt(torch.from_numpy(x)).numpy(), want_tokens)
    # the fixed tables we write are the official sin-cos tables
    img, p = ARCHS[name][:2]
    ref = ij.sincos_2d(ARCHS[name][3], img // p)
    np.testing.assert_allclose(sd["encoder.pos_embed"][0].numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(sd["predictor.predictor_pos_embed"][0].numpy(),
                               ij.sincos_2d(ARCHS[name][7], img // p), atol=1e-6)


@pytest.mark.parametrize("module_prefix", [True, False])
def test_to_official_layout_loads_strict(module_prefix, tmp_path):
    name = "rgb"
    x = images(name)
    with trained_model(name) as m:
        path = tmp_path / "ours.safetensors"
        m.save(path)
        want = m.encode(x, "target")
    out = tmp_path / "official.pth.tar"
    co.convert_ours_to_official(path, out, module_prefix=module_prefix, epoch=3, log=lambda *a: None)
    ck = torch.load(str(out), weights_only=True)
    assert ck["epoch"] == 3 and ck["scaler"] is None and "opt" not in ck
    enc, pred, tgt = fresh_torch(name)
    mods = {"encoder": enc, "predictor": pred, "target_encoder": tgt}
    for part, mod in mods.items():
        (DDP(mod) if module_prefix else mod).load_state_dict(ck[part], strict=True)
        # official named_parameters() order, so optimizer indices line up
        names = [("module." if module_prefix else "") + n for n, _ in mod.named_parameters()]
        assert list(ck[part]) == names
    assert_features(torch_features(tgt, x), want)


def official_adamw(enc, pred):
    """The official init_opt groups: named_parameters() incl. the frozen position tables."""
    def sel(mod, decay):
        return [p for n, p in mod.named_parameters() if (("bias" not in n) and p.ndim != 1) == decay]
    return torch.optim.AdamW([
        {"params": sel(enc, True)}, {"params": sel(pred, True)},
        {"params": sel(enc, False), "WD_exclude": True, "weight_decay": 0},
        {"params": sel(pred, False), "WD_exclude": True, "weight_decay": 0}], foreach=False)


def test_training_state_resumes_in_torch(tmp_path):
    """Export a training state to the official layout (with 'opt'), take one more step in
    PyTorch and one more step here from the same state: the results agree."""
    name = "rgb"
    with trained_model(name, steps=3) as m:
        state = tmp_path / "state.safetensors"
        m.save(state, training_state=True)
        adam_m = {k: v.copy() for k, v in m.adam_m().items()}
        adam_v = {k: v.copy() for k, v in m.adam_v().items()}
    ck = co.ours_to_official(state)
    enc, pred, tgt = fresh_torch(name)
    for part, mod in (("encoder", enc), ("predictor", pred), ("target_encoder", tgt)):
        DDP(mod).load_state_dict(ck[part], strict=True)
    for p in tgt.parameters():
        p.requires_grad = False
    enc.train(), pred.train()
    opt = official_adamw(enc, pred)
    opt.load_state_dict(ck["opt"])
    # every moment went to the right parameter
    named = {}
    for part, mod in (("encoder", enc), ("predictor", pred)):
        for n, p in mod.named_parameters():
            named[id(p)] = "%s.%s" % (part, n)
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            n = named[id(p)]
            if n.endswith("pos_embed"):
                assert not st
                continue
            assert float(st["step"]) == 3
            np.testing.assert_array_equal(st["exp_avg"].numpy(), adam_m[n])
            np.testing.assert_array_equal(st["exp_avg_sq"].numpy(), adam_v[n])

    x = images(name, seed=42)
    lr, wd, ema = 5e-4, 0.05, 0.9
    with ijepa.Model.load(state) as here:
        masks = here.sample_masks(x.shape[0])
        here.set_schedule_override(lr, wd, ema)
        stats = here.train_step(x, masks)
        got_p, got_t = here.parameters(), here.target_parameters()
        got_p = {k: v.copy() for k, v in got_p.items()}
        got_t = {k: v.copy() for k, v in got_t.items()}
    loss = ij.train_step(enc, pred, tgt, opt, torch.from_numpy(x),
                         [torch.from_numpy(e).long() for e in masks.enc],
                         [torch.from_numpy(p).long() for p in masks.pred], lr, wd, ema)
    assert float(loss) == pytest.approx(stats.loss, rel=1e-5)
    for part, mod, got in (("encoder", enc, got_p), ("predictor", pred, got_p),
                           ("target_encoder", tgt, got_t)):
        for n, t in mod.state_dict().items():
            key = "%s.%s" % (part, n)
            if key not in got:
                continue
            ref = t.numpy()
            a = got[key].reshape(ref.shape)
            bad = np.abs(a - ref) > 1e-6 + 1e-5 * np.abs(ref)
            assert not bad.any(), (key, np.abs(a - ref).max())
