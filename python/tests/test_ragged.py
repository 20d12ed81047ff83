"""Ragged contexts (Config.ragged_context, RaggedMasks, the *_ragged calls) and encode_layers.

Beyond the official code: with ragged masks every image keeps its own context length instead of
the batch minimum. What is checked here:
  * the config field round-trips (C struct, dict, pickle, checkpoint metadata);
  * ragged sampling draws the same blocks as the uniform sampler and advances the generator the
    same way: same targets, the uniform context is each ragged context cut to the shortest;
  * a ragged batch is exactly the mean of its images run alone (loss and gradients);
  * bad inputs raise the package's errors, from Python and from the library itself;
  * encode_layers(last_k=1) is encode()'s pooled output, and the block order / norm.
"""

import ctypes
import json
import pickle

import numpy as np
import pytest

import ijepa
from ijepa import _lib
from conftest import images_for, tiny_config
from st_reader import read_safetensors
from test_checkpoint import _write_safetensors

needs_ragged = pytest.mark.skipif(not ijepa.has_ragged_context(),
                                  reason="the loaded libijepa has no ragged contexts")
needs_layers = pytest.mark.skipif(not ijepa.has_encode_layers(),
                                  reason="the loaded libijepa has no ijepa_encode_layers")
_IP = ctypes.POINTER(ctypes.c_int32)
_FP = ctypes.POINTER(ctypes.c_float)


def small_config(**kw):
    """16 px / patch 4 (4x4 grid), width 32, depth 2, predictor 16 x 1: milliseconds per step."""
    base = dict(image_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2,
                pred_embed_dim=16, pred_depth=1, min_keep=0, warmup_steps=2, total_steps=20,
                seed=11, n_threads=1)
    base.update(kw)
    return tiny_config(**base)


def _grads(m):
    return m.flat_buffer("grads").copy()


def _assert_grads_close(a, b):
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    bad = np.abs(a - b) > 1e-6 + 1e-4 * np.abs(b)
    assert not bad.any(), "%d of %d gradients differ, worst |a-b| = %g" % (
        bad.sum(), bad.size, np.abs(a - b).max())


def _varied_draw(m, batch, tries=50):
    """Ragged masks of a batch whose context lengths are not all equal (the interesting case)."""
    for _ in range(tries):
        r = m.sample_masks(batch, ragged=True)
        if r.enc_len.min() != r.enc_len.max():
            return r
    pytest.fail("the sampler never gave different context lengths in %d draws" % tries)


def _one(r, b):
    """Image b's part of ragged masks (batch 1)."""
    return ijepa.RaggedMasks(r.enc[:, b:b + 1], r.enc_len[:, b:b + 1], r.pred[:, b:b + 1])


# ---- the config field ---------------------------------------------------------------------------
def test_config_field_defaults_and_types():
    c = ijepa.Config()
    assert c.ragged_context is False
    assert "ragged_context" in ijepa.config.FIELDS and "ragged_context" in c.to_dict()
    assert ijepa.Config(ragged_context=1).ragged_context is True
    assert ijepa.Config(ragged_context=np.bool_(True)).ragged_context is True
    for bad in (2, -1, "yes", None, 0.5):
        with pytest.raises(ijepa.InvalidArgumentError, match="ragged_context"):
            ijepa.Config(ragged_context=bad)
    assert ijepa.Config.preset("fmnist_tiny").ragged_context is False
    # The preset that keeps ragged contexts is fmnist_tiny with that one field changed.
    rag = ijepa.Config.preset("fmnist_tiny_ragged").to_dict()
    assert rag.pop("ragged_context") is True
    official = ijepa.Config.preset("fmnist_tiny").to_dict()
    official.pop("ragged_context")
    assert rag == official
    assert [p for p in ijepa.PRESETS if ijepa.Config.preset(p).ragged_context] == ["fmnist_tiny_ragged"]


def test_struct_size_not_covering_the_field_reads_false():
    c = small_config(ragged_context=True).to_c()
    c.struct_size = _lib.ijepa_config.ragged_context.offset  # an older caller's struct
    assert ijepa.Config.from_c(c).ragged_context is False


@needs_ragged
def test_config_round_trips():
    c = small_config(ragged_context=True, full_grid=True)
    cc = c.to_c()
    assert cc.ragged_context == 1 and cc.struct_size == ctypes.sizeof(_lib.ijepa_config)
    for d in (ijepa.Config.from_c(cc), ijepa.Config.from_dict(c.to_dict()),
              pickle.loads(pickle.dumps(c)), ijepa.Config.from_dict(json.loads(json.dumps(c.to_dict())))):
        assert d == c and d.ragged_context is True
    assert c != c.replace(ragged_context=False)
    assert "ragged_context=True" in repr(c)
    for flag in (False, True):
        with ijepa.Model(c.replace(ragged_context=flag)) as m:
            assert m.config.ragged_context is flag
            assert m.config == c.replace(ragged_context=flag)


@needs_ragged
def test_config_field_in_checkpoints(tmp_path):
    cfg = small_config(ragged_context=True)
    path = tmp_path / "r.safetensors"
    with ijepa.Model(cfg) as m:
        m.save(path)
    meta = json.loads(read_safetensors(path)[1]["ijepa.config"])
    assert meta["ragged_context"] in (True, 1)
    with ijepa.Model.load(path) as m:
        assert m.config.ragged_context is True and m.config == cfg
    # a checkpoint from before the field (no "ragged_context" key) loads with the default
    t, md = read_safetensors(path)
    del meta["ragged_context"]
    md["ijepa.config"] = json.dumps(meta)
    old = tmp_path / "old.safetensors"
    _write_safetensors(old, t, md)
    with ijepa.Model.load(old) as m:
        assert m.config.ragged_context is False and m.config == cfg.replace(ragged_context=False)


@needs_ragged
def test_ragged_training_resumes_bit_exact(tmp_path):
    cfg = small_config(ragged_context=True)
    x = [images_for(cfg, 3, seed=s) for s in range(4)]
    with ijepa.Model(cfg) as straight:
        want = [straight.train_step(xi).loss for xi in x]
        final = straight.flat_buffer("params").copy()
    with ijepa.Model(cfg) as first:
        got = [first.train_step(xi).loss for xi in x[:2]]
        first.save(tmp_path / "s", training_state=True)
    with ijepa.Model.load(tmp_path / "s") as resumed:
        assert resumed.config.ragged_context is True
        got += [resumed.train_step(xi).loss for xi in x[2:]]
        assert np.array_equal(resumed.flat_buffer("params"), final)
    assert got == want


# ---- RaggedMasks in Python ----------------------------------------------------------------------
def test_ragged_masks_class():
    enc = np.array([[[3, 5, 7], [1, 2, -1]]], np.int64)           # [1, 2, 3], image 1 padded
    enc_len = np.array([[3, 2]], np.uint8)
    pred = np.array([[[0, 4]], [[8, 9]]]).repeat(2, axis=1)        # [2, 2, 2]
    r = ijepa.RaggedMasks(enc, enc_len, pred)
    for a in (r.enc, r.enc_len, r.pred):
        assert a.dtype == np.int32 and a.flags.c_contiguous
    assert (r.batch, r.num_enc, r.k_enc_max, r.num_pred, r.k_pred) == (2, 1, 3, 2, 2)
    assert r.context(0).tolist() == [3, 5, 7] and r.context(1, 0).tolist() == [1, 2]
    assert [c.tolist() for c in r.contexts()] == [[3, 5, 7], [1, 2]]
    assert r.mean_context_length == 2.5
    assert "RaggedMasks(batch=2" in repr(r)
    # padding is not compared, lengths and contents are
    other = r.enc.copy()
    other[0, 1, 2] = 9
    assert ijepa.RaggedMasks(other, enc_len, pred) == r
    other[0, 1, 1] = 9
    assert ijepa.RaggedMasks(other, enc_len, pred) != r
    assert ijepa.RaggedMasks(enc, [[2, 2]], pred) != r
    assert r != ijepa.Masks(enc[:, :, :2], pred)
    # to / from uniform masks
    u = r.to_masks()
    assert isinstance(u, ijepa.Masks) and u.enc.tolist() == [[[3, 5], [1, 2]]]
    assert np.array_equal(u.pred, r.pred)
    f = ijepa.RaggedMasks.from_masks(u)
    assert f.enc_len.tolist() == [[2, 2]] and f.to_masks() == u
    assert ijepa.RaggedMasks.from_masks((u.enc, u.pred)) == f
    # non-contiguous inputs are copied
    nc = np.asfortranarray(np.concatenate([enc, enc]))
    r2 = ijepa.RaggedMasks(nc, np.asfortranarray(np.concatenate([enc_len, enc_len])), pred)
    assert r2.enc.flags.c_contiguous and r2.num_enc == 2 and r2.context(1, 1).tolist() == [1, 2]


def test_ragged_masks_class_validation():
    enc = np.array([[[3, 5, 7], [1, 2, -1]]], np.int32)
    n = np.array([[3, 2]], np.int32)
    pred = np.zeros((2, 2, 2), np.int32) + np.arange(2, dtype=np.int32)
    R = ijepa.RaggedMasks
    cases = [
        ((enc.astype(np.float32), n, pred), ijepa.InvalidArgumentError, "integer"),
        ((enc, n.astype(np.float64), pred), ijepa.InvalidArgumentError, "integer"),
        ((enc, n.astype(bool), pred), ijepa.InvalidArgumentError, "integer"),
        ((enc, n, pred.astype(np.float32)), ijepa.InvalidArgumentError, "integer"),
        ((enc[0], n, pred), ijepa.ShapeError, "3-D"),
        ((enc, n[0], pred), ijepa.ShapeError, "2-D"),
        ((enc, n[:, :1], pred), ijepa.ShapeError, "enc_len must have shape"),
        ((enc, np.concatenate([n, n]), pred), ijepa.ShapeError, "enc_len must have shape"),
        ((enc, n, pred[:, :1]), ijepa.ShapeError, "batch"),
        ((enc[:, :, :0], n[:, :], pred), ijepa.ShapeError, "empty"),
        ((enc, [[0, 2]], pred), ijepa.ShapeError, "enc_len"),          # a context of length 0
        ((enc, [[3, 4]], pred), ijepa.ShapeError, "enc_len"),          # longer than k_enc_max
        ((enc, [[-1, 2]], pred), ijepa.ShapeError, "enc_len"),
        ((enc, [[3, 2 + 2**32]], pred), ijepa.ShapeError, "enc_len"),  # would wrap to 2
        ((enc, [[3, 3]], pred), ijepa.InvalidArgumentError, "-1"),     # padding inside a context
        ((enc.astype(np.int64) + [0, 0, 2**32], n, pred), ijepa.InvalidArgumentError, "int32"),
        ((enc, n, pred - 1), ijepa.InvalidArgumentError, "outside"),
        (([[[1, 2], [3]]], n, pred), ijepa.InvalidArgumentError, None),  # ragged list
        (("enc", n, pred), ijepa.InvalidArgumentError, "integer"),
    ]
    for args, err, match in cases:
        with pytest.raises(err, match=match):
            R(*args)
    r = R(enc, n, pred)
    for b, j in ((2, 0), (-1, 0), (0, 1), (1.0, 0), (True, 0)):
        with pytest.raises(ijepa.InvalidArgumentError):
            r.context(b, j)


# ---- sampling -----------------------------------------------------------------------------------
@needs_ragged
@pytest.mark.parametrize("cfg_kw", [dict(), dict(num_enc_masks=2, num_pred_masks=3),
                                    dict(image_size=24, min_keep=2), dict(ragged_context=True)])
def test_sampled_ragged_masks_match_the_uniform_sampler(cfg_kw):
    cfg = small_config(**cfg_kw)
    N = cfg.num_patches
    with ijepa.Model(cfg) as a, ijepa.Model(cfg) as b:
        varied = 0
        for batch in (1, 2, 3, 8, 5):
            r = a.sample_masks(batch, ragged=True)
            u = b.sample_masks(batch)
            assert isinstance(r, ijepa.RaggedMasks) and isinstance(u, ijepa.Masks)
            assert r.enc.dtype == r.enc_len.dtype == r.pred.dtype == np.int32
            assert r.enc.shape[:2] == r.enc_len.shape == (cfg.num_enc_masks, batch)
            assert r.pred.shape[:2] == (cfg.num_pred_masks, batch)
            # same targets, same blocks; the uniform contexts are the ragged ones cut to the
            # shortest of the batch
            assert np.array_equal(r.pred, u.pred)
            assert u.k_enc == r.enc_len.min() and r.k_enc_max == r.enc_len.max()
            assert (r.enc_len >= u.k_enc).all() and (r.enc_len <= N).all()
            assert r.to_masks() == u
            for j in range(r.num_enc):
                for i in range(batch):
                    ctx = r.context(i, j)
                    assert np.array_equal(ctx[:u.k_enc], u.enc[j, i])
                    assert ctx.min() >= 0 and ctx.max() < N
                    assert (np.diff(ctx) > 0).all(), "sorted, no repeats"
                    assert (r.enc[j, i, r.enc_len[j, i]:] == -1).all(), "padding is -1"
            varied += r.enc_len.min() != r.enc_len.max()
        assert varied, "no batch had different context lengths"
        # the two generators are still in step, whichever sampler is used next
        assert a.sample_masks(4) == b.sample_masks(4)
        assert a.sample_masks(4, ragged=True) == b.sample_masks(4, ragged=True)


@needs_ragged
def test_ragged_context_config_does_not_change_the_uniform_sampler():
    with ijepa.Model(small_config()) as a, ijepa.Model(small_config(ragged_context=True)) as b:
        for batch in (2, 6):
            assert a.sample_masks(batch) == b.sample_masks(batch)
            assert a.sample_masks(batch, ragged=True) == b.sample_masks(batch, ragged=True)


@needs_ragged
def test_sample_ragged_bad_batch(model):
    for bad in (0, -1, 2**31, 1.5, "2", True):
        with pytest.raises(ijepa.InvalidArgumentError):
            model.sample_masks(bad, ragged=True)


# ---- training -----------------------------------------------------------------------------------
@needs_ragged
def test_train_step_with_ragged_masks():
    cfg = small_config()
    x = images_for(cfg, 4)
    with ijepa.Model(cfg) as m:
        for i in range(3):
            r = m.sample_masks(4, ragged=True)
            s = m.train_step(x, r)
            assert s.step == i + 1 and np.isfinite(s.loss) and s.loss > 0 and s.grad_norm > 0
        loss = m.forward_backward(x, m.sample_masks(4, ragged=True))
        assert np.isfinite(loss) and np.all(np.isfinite(m.flat_buffer("grads")))
        assert m.optimizer_step().step == 4


@needs_ragged
def test_ragged_config_samples_ragged_masks():
    """train_step(x) on a ragged_context model == train_step(x, sample_masks(ragged=True)) on a
    twin; forward_backward likewise; a uniform model's train_step(x) uses the uniform masks."""
    for ragged in (True, False):
        cfg = small_config(ragged_context=ragged)
        x = images_for(cfg, 5)
        with ijepa.Model(cfg) as a, ijepa.Model(cfg) as b:
            for _ in range(3):
                sa = a.train_step(x)
                sb = b.train_step(x, b.sample_masks(5, ragged=ragged))
                assert sa == sb
            la = a.forward_backward(x)
            lb = b.forward_backward(x, b.sample_masks(5, ragged=ragged))
            assert la == lb and np.array_equal(_grads(a), _grads(b))
            assert np.array_equal(a.flat_buffer("params"), b.flat_buffer("params"))


@needs_ragged
def test_ragged_functions_with_null_masks_sample_ragged_contexts():
    """masks NULL in the *_ragged calls: ragged contexts whatever the config."""
    cfg = small_config()
    x = np.ascontiguousarray(images_for(cfg, 4))
    with ijepa.Model(cfg) as a, ijepa.Model(cfg) as b:
        stats = _lib.ijepa_step_stats()
        assert _lib.lib.ijepa_train_step_ragged(a._ptr(), x.ctypes.data_as(_FP), 4, None,
                                                ctypes.byref(stats)) == 0
        assert b.train_step(x, b.sample_masks(4, ragged=True)) == ijepa.StepStats.from_c(stats)
        loss = ctypes.c_float()
        assert _lib.lib.ijepa_forward_backward_ragged(a._ptr(), x.ctypes.data_as(_FP), 4, None,
                                                      ctypes.byref(loss)) == 0
        assert b.forward_backward(x, b.sample_masks(4, ragged=True)) == loss.value
        assert a.sample_masks(3) == b.sample_masks(3)


@needs_ragged
def test_uniform_masks_through_the_ragged_path():
    cfg = small_config()
    x = images_for(cfg, 3)
    with ijepa.Model(cfg) as m:
        u = m.sample_masks(3)
        lu = m.forward_backward(x, u)
        gu = _grads(m)
        lr = m.forward_backward(x, ijepa.RaggedMasks.from_masks(u))
        assert lr == pytest.approx(lu, rel=1e-6)
        _assert_grads_close(_grads(m), gu)


@needs_ragged
def test_padding_is_ignored():
    cfg = small_config()
    x = images_for(cfg, 4)
    with ijepa.Model(cfg) as m:
        r = _varied_draw(m, 4)
        loss = m.forward_backward(x, r)
        g = _grads(m)
        for fill in (0, cfg.num_patches + 7, -(2**31)):  # repeats, out of range: all ignored
            enc = r.enc.copy()
            enc[np.arange(r.k_enc_max) >= r.enc_len[..., None]] = fill
            assert m.forward_backward(x, ijepa.RaggedMasks(enc, r.enc_len, r.pred)) == loss
            assert np.array_equal(_grads(m), g)
        # extra padding columns (up to num_patches) change nothing either
        extra = cfg.num_patches - r.k_enc_max
        if extra:
            wide = np.concatenate([r.enc, np.full(r.enc.shape[:2] + (extra,), -1, np.int32)], axis=2)
            assert m.forward_backward(x, ijepa.RaggedMasks(wide, r.enc_len, r.pred)) == loss
            assert np.array_equal(_grads(m), g)


@needs_ragged
@pytest.mark.parametrize("cfg_kw", [dict(), dict(image_size=24, min_keep=2, depth=1)])
def test_ragged_batch_is_the_mean_of_single_images(cfg_kw):
    cfg = small_config(**cfg_kw)
    x = images_for(cfg, 2, seed=3)
    with ijepa.Model(cfg) as m:
        r = _varied_draw(m, 2)
        loss = m.forward_backward(x, r)
        g = _grads(m)
        singles, gs = [], []
        for b in range(2):
            singles.append(m.forward_backward(x[b:b + 1], _one(r, b)))
            gs.append(_grads(m))
            # image b alone with ragged masks == image b alone with uniform masks of its length
            k = int(r.enc_len[0, b])
            lu = m.forward_backward(x[b:b + 1], ijepa.Masks(r.enc[:, b:b + 1, :k], r.pred[:, b:b + 1]))
            assert lu == pytest.approx(singles[-1], rel=1e-6)
            _assert_grads_close(_grads(m), gs[-1])
        assert loss == pytest.approx(np.mean(singles), rel=1e-5)
        _assert_grads_close(g, (gs[0] + gs[1]) / 2)
        # not what the uniform (cut) masks give
        assert m.forward_backward(x, r.to_masks()) != pytest.approx(loss, rel=1e-6)


@needs_ragged
def test_bad_ragged_masks_in_training_raise_and_leave_the_model_unchanged():
    cfg = small_config()
    N = cfg.num_patches
    x = images_for(cfg, 2)
    with ijepa.Model(cfg) as m:
        good = _varied_draw(m, 2)
        e, n, p = good.enc, good.enc_len, good.pred
        b = int(np.argmax(n[0]))
        assert n[0, b] >= 2
        rep = e.copy()
        rep[0, b, 1] = rep[0, b, 0]
        before = m.flat_buffer("params").copy()
        cases = [
            (lambda: ijepa.RaggedMasks(e[:, :1], n[:, :1], p[:, :1]), ijepa.ShapeError),  # batch
            (lambda: ijepa.RaggedMasks(np.concatenate([e, e]), np.concatenate([n, n]), p),
             ijepa.ShapeError),                                                       # num_enc
            (lambda: ijepa.RaggedMasks(e, n, p[:3]), ijepa.ShapeError),                 # num_pred
            (lambda: ijepa.RaggedMasks(np.full((1, 2, N + 1), 0), n, p), ijepa.ShapeError),
            (lambda: ijepa.RaggedMasks(e + N, n, p), ijepa.InvalidArgumentError),       # range
            (lambda: ijepa.RaggedMasks(rep, n, p), ijepa.InvalidArgumentError),         # repeat
            (lambda: ijepa.RaggedMasks(e, n, p + N), ijepa.InvalidArgumentError),
            (lambda: (e, n, p), ijepa.InvalidArgumentError),                            # a triple
        ]
        for make, err in cases:
            for call in (m.train_step, m.forward_backward):
                with pytest.raises(err):
                    call(x, make())
        with pytest.raises(ijepa.StateError):
            m.optimizer_step()
        assert np.array_equal(m.flat_buffer("params"), before) and m.step == 0
        nan = x.copy()
        nan[0, 0, 0, 0] = np.nan
        with pytest.raises(ijepa.NumericError):
            m.train_step(nan, good)
        assert np.array_equal(m.flat_buffer("params"), before) and m.step == 0
        assert m.train_step(x, good).step == 1


@needs_ragged
def test_the_library_validates_ragged_masks():
    """The library's own checks, bypassing the Python ones: every bad struct is refused with a
    status and a message, never a crash, and nothing changes."""
    cfg = small_config()
    N = cfg.num_patches
    x = np.ascontiguousarray(images_for(cfg, 2))
    with ijepa.Model(cfg) as m:
        good = _varied_draw(m, 2)
        before = m.flat_buffer("params").copy()

        def struct(enc=None, enc_len=None, pred=None, **fields):
            enc = good.enc if enc is None else np.ascontiguousarray(enc, np.int32)
            enc_len = good.enc_len if enc_len is None else np.ascontiguousarray(enc_len, np.int32)
            pred = good.pred if pred is None else pred
            s = dict(batch=2, num_enc=enc.shape[0], k_enc_max=enc.shape[2], num_pred=pred.shape[0],
                     k_pred=pred.shape[2], enc=enc.ctypes.data_as(_IP),
                     enc_len=enc_len.ctypes.data_as(_IP), pred=pred.ctypes.data_as(_IP))
            s.update(fields)
            return _lib.ijepa_ragged_masks(**s), (enc, enc_len, pred)

        k = good.k_enc_max
        b = int(np.argmax(good.enc_len[0]))
        assert good.enc_len[0, b] >= 2
        rep = good.enc.copy()
        rep[0, b, 1] = rep[0, b, 0]
        neg = good.enc.copy()
        neg[0, 1, 0] = -1
        big = good.enc.copy()
        big[0, 0, 0] = N
        cases = {
            "enc_len 0": struct(enc_len=[[0, 1]]),
            "enc_len > k_enc_max": struct(enc_len=[[k + 1, 1]]),
            "enc_len negative": struct(enc_len=[[-3, 1]]),
            "repeated index": struct(enc=rep),
            "negative index": struct(enc=neg),
            "index >= num_patches": struct(enc=big),
            "k_enc_max 0": struct(k_enc_max=0),
            "k_enc_max > num_patches": struct(enc=np.full((1, 2, N + 1), -1), enc_len=[[1, 1]]),
            "k_pred 0": struct(k_pred=0),
            "batch mismatch": struct(batch=1),
            "num_enc mismatch": struct(num_enc=2),
            "num_pred mismatch": struct(num_pred=3),
        }
        for field in ("enc", "enc_len", "pred"):
            s, keep = struct()
            setattr(s, field, None)
            cases["NULL " + field] = (s, keep)
        xp = x.ctypes.data_as(_FP)
        for what, (s, _keep) in cases.items():
            st = _lib.lib.ijepa_forward_backward_ragged(m._ptr(), xp, 2, ctypes.byref(s), None)
            assert st in (_lib.IJEPA_ERR_INVALID_ARGUMENT, _lib.IJEPA_ERR_SHAPE), (what, st)
            assert _lib.lib.ijepa_last_error(), what
            st = _lib.lib.ijepa_train_step_ragged(m._ptr(), xp, 2, ctypes.byref(s), None)
            assert st in (_lib.IJEPA_ERR_INVALID_ARGUMENT, _lib.IJEPA_ERR_SHAPE), (what, st)
        assert _lib.lib.ijepa_optimizer_step(m._ptr(), None) == _lib.IJEPA_ERR_STATE
        assert np.array_equal(m.flat_buffer("params"), before) and m.step == 0
        # the good struct works, and the call really read it (not sampled)
        s, _keep = struct()
        loss = ctypes.c_float()
        assert _lib.lib.ijepa_forward_backward_ragged(m._ptr(), xp, 2, ctypes.byref(s),
                                                      ctypes.byref(loss)) == 0
        assert loss.value == m.forward_backward(x, good)


@needs_ragged
def test_ragged_masks_free():
    _lib.lib.ijepa_ragged_masks_free(None)  # no-op
    with ijepa.Model(small_config()) as m:
        s = _lib.ijepa_ragged_masks()
        assert _lib.lib.ijepa_masks_sample_ragged(m._ptr(), 3, ctypes.byref(s)) == 0
        assert s.batch == 3 and s.enc and s.enc_len and s.pred
        _lib.lib.ijepa_ragged_masks_free(ctypes.byref(s))
        assert not s.enc and not s.enc_len and not s.pred and s.batch == 0
        _lib.lib.ijepa_ragged_masks_free(ctypes.byref(s))  # zeroed: freeing again is a no-op
        assert _lib.lib.ijepa_masks_sample_ragged(m._ptr(), 0, ctypes.byref(s)) != 0
        assert _lib.lib.ijepa_masks_sample_ragged(m._ptr(), 3, None) != 0


# ---- encode_layers ------------------------------------------------------------------------------
@needs_layers
def test_encode_layers_last_1_is_encode(model, cfg):
    x = images_for(cfg, 3)
    model.train_step(x)
    for enc in ("target", "context"):
        f = model.encode_layers(x, 1, encoder=enc)
        assert f.shape == (3, cfg.embed_dim) and f.dtype == np.float32
        assert np.array_equal(f, model.encode(x, enc))
    assert not np.array_equal(model.encode_layers(x, 1), model.encode_layers(x, 1, "context"))


@needs_layers
def test_encode_layers_shapes_and_block_order():
    cfg = small_config(depth=3)
    D = cfg.embed_dim
    x = images_for(cfg, 4)
    with ijepa.Model(cfg) as m:
        m.train_step(x)
        full = m.encode_layers(x, 3)
        assert full.shape == (4, 3 * D)
        assert np.array_equal(full[:, 2 * D:], m.encode(x))        # the last block is last
        assert np.array_equal(m.encode_layers(x, 2), full[:, D:])   # last_k=2: blocks 1, 2
        assert not np.array_equal(full[:, :D], full[:, D:2 * D])
        # make the last target block the identity (zero residual branches): block 1's and block
        # 2's features are then equal, which also shows the final norm is applied to block 1
        t = m.target_parameters()
        for name in ("attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias"):
            t["target_encoder.blocks.2." + name][...] = 0
        f = m.encode_layers(x, 3)
        np.testing.assert_allclose(f[:, D:2 * D], f[:, 2 * D:], rtol=1e-6, atol=1e-6)
        assert np.array_equal(f[:, :D], full[:, :D]) and np.array_equal(f[:, D:2 * D], full[:, D:2 * D])
        assert np.array_equal(m.encode_layers(x, 1, "context"), m.encode(x, "context"))


@needs_layers
def test_encode_layers_bad_arguments(model, cfg):
    x = images_for(cfg, 2)
    for bad in (0, -1, cfg.depth + 1, 2**31, 2**40):
        with pytest.raises(ijepa.InvalidArgumentError, match="last_k"):
            model.encode_layers(x, bad)
    for bad in (1.0, "1", True, None):
        with pytest.raises(ijepa.InvalidArgumentError, match="last_k"):
            model.encode_layers(x, bad)
    with pytest.raises(ijepa.InvalidArgumentError, match="encoder"):
        model.encode_layers(x, 1, "student")
    with pytest.raises(ijepa.ShapeError):
        model.encode_layers(x[:, :, :8], 1)
    nan = x.copy()
    nan[1, 0, 0, 0] = np.inf
    with pytest.raises(ijepa.NumericError):
        model.encode_layers(nan, 1)
    # the library's own checks
    xc = np.ascontiguousarray(x)
    out = np.zeros((2, (cfg.depth + 1) * cfg.embed_dim), np.float32)
    for k in (0, -1, cfg.depth + 1):
        st = _lib.lib.ijepa_encode_layers(model._ptr(), xc.ctypes.data_as(_FP), 2, 0, k,
                                          out.ctypes.data_as(_FP))
        assert st == _lib.IJEPA_ERR_INVALID_ARGUMENT, k
    assert not out.any(), "outputs are left untouched on failure"
    for which in (2, -1):
        assert _lib.lib.ijepa_encode_layers(model._ptr(), xc.ctypes.data_as(_FP), 2, which, 1,
                                            out.ctypes.data_as(_FP)) == _lib.IJEPA_ERR_INVALID_ARGUMENT
    assert _lib.lib.ijepa_encode_layers(model._ptr(), xc.ctypes.data_as(_FP), 2, 0, 1, None) \
        == _lib.IJEPA_ERR_INVALID_ARGUMENT
    model.close()
    with pytest.raises(ijepa.StateError, match="closed"):
        model.encode_layers(x, 1)


def test_missing_functions_raise_state_error(monkeypatch, model, cfg):
    """With a library that predates them, the new calls raise StateError (not AttributeError)."""
    real = _lib.has_function
    monkeypatch.setattr(_lib, "has_function",
                        lambda n: False if n in _lib.OPTIONAL - {"ijepa_resize_bilinear",
                                                                 "ijepa_random_resized_crop"}
                        else real(n))
    x = images_for(cfg, 2)
    with pytest.raises(ijepa.StateError, match="ijepa_encode_layers"):
        model.encode_layers(x, 1)
    with pytest.raises(ijepa.StateError, match="ragged"):
        model.sample_masks(2, ragged=True)
    r = ijepa.RaggedMasks.from_masks(model.sample_masks(2))
    for call in (model.train_step, model.forward_backward):
        with pytest.raises(ijepa.StateError, match="ragged"):
            call(x, r)
    with pytest.raises(ijepa.StateError, match="ragged"):
        ijepa.Model(cfg.replace(ragged_context=True))
    assert not ijepa.has_ragged_context() and not ijepa.has_encode_layers()
    assert model.train_step(x).step == 1
