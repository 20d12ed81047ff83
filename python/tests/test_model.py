"""Model: training, encode, buffers and views, argument errors, lifecycle."""

import gc
import threading
import weakref

import numpy as np
import pytest

import ijepa
from conftest import images_for


def test_train_step_stats(model, cfg):
    x = images_for(cfg, 4)
    s1 = model.train_step(x)
    assert isinstance(s1, ijepa.StepStats)
    assert s1.step == 1 == model.step
    assert np.isfinite(s1.loss) and s1.loss > 0 and s1.grad_norm > 0
    assert s1.lr == pytest.approx(cfg.start_lr + (cfg.lr - cfg.start_lr) / cfg.warmup_steps, rel=1e-5)
    assert s1.ema_momentum == pytest.approx(cfg.ema_start, rel=1e-6)
    s2 = model.train_step(x)
    assert s2.step == 2


def test_forward_backward_then_optimizer_step_equals_train_step(cfg):
    x = images_for(cfg, 3)
    with ijepa.Model(cfg) as a, ijepa.Model(cfg) as b:
        for _ in range(2):
            mk = a.sample_masks(3)
            b.sample_masks(3)  # keep the generators in step
            sa = a.train_step(x, mk)
            loss = b.forward_backward(x, mk)
            assert np.all(np.isfinite(b.flat_buffer("grads")))
            sb = b.optimizer_step()
            assert sa == sb and loss == sa.loss
            with pytest.raises(ijepa.StateError):
                b.optimizer_step()  # the gradients were consumed
        assert np.array_equal(a.flat_buffer("params"), b.flat_buffer("params"))
        assert np.array_equal(a.flat_buffer("target"), b.flat_buffer("target"))


def test_schedule_override(model, cfg):
    x = images_for(cfg, 2)
    model.set_schedule_override(lr=0.5, weight_decay=0.25, ema_momentum=0.75)
    s = model.train_step(x)
    assert (s.lr, s.weight_decay, s.ema_momentum) == (0.5, 0.25, 0.75)
    model.set_schedule_override(lr=0.5)
    s = model.train_step(x)
    assert s.lr == 0.5 and s.weight_decay != 0.25 and s.ema_momentum != 0.75
    model.set_schedule_override()
    s = model.train_step(x)
    assert s.lr != 0.5
    for bad in (dict(lr=float("nan")), dict(ema_momentum=1.5), dict(lr="x")):
        with pytest.raises(ijepa.InvalidArgumentError):
            model.set_schedule_override(**bad)


def test_encode_shapes_and_pooling(model, cfg):
    x = images_for(cfg, 3)
    for enc in ("target", "context"):
        pooled = model.encode(x, enc)
        tokens = model.encode(x, encoder=enc, pooled=False)
        assert pooled.shape == (3, 32) and pooled.dtype == np.float32
        assert tokens.shape == (3, 36, 32)
        np.testing.assert_allclose(pooled, tokens.mean(axis=1), rtol=1e-5, atol=1e-6)
    # target == context before training; they differ after a step
    assert np.array_equal(model.encode(x, "target"), model.encode(x, "context"))
    model.train_step(x)
    assert not np.array_equal(model.encode(x, "target"), model.encode(x, "context"))
    with pytest.raises(ijepa.InvalidArgumentError, match="encoder"):
        model.encode(x, "student")


def test_image_conversion(model, cfg):
    x = images_for(cfg, 2)
    ref = model.encode(x)
    assert np.array_equal(model.encode(x.astype(np.float64)), ref)
    assert np.array_equal(model.encode(x.tolist()), ref)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert np.array_equal(model.encode(nhwc.transpose(0, 3, 1, 2)), ref)  # non-contiguous view
    assert np.array_equal(model.encode(x[::-1][::-1]), ref)
    f16 = x.astype(np.float16)
    assert np.array_equal(model.encode(f16), model.encode(f16.astype(np.float32)))


@pytest.mark.parametrize("bad,err", [
    (lambda c: np.zeros((2, 3, 24), np.float32), ijepa.ShapeError),          # ndim
    (lambda c: np.zeros((2, 1, 24, 24), np.float32), ijepa.ShapeError),      # channels
    (lambda c: np.zeros((2, 3, 32, 32), np.float32), ijepa.ShapeError),      # size
    (lambda c: np.zeros((2, 24, 24, 3), np.float32), ijepa.ShapeError),      # NHWC
    (lambda c: np.zeros((0, 3, 24, 24), np.float32), ijepa.ShapeError),      # empty batch
    (lambda c: np.zeros((2, 3, 24, 24), np.int32), ijepa.InvalidArgumentError),
    (lambda c: np.zeros((2, 3, 24, 24), np.uint8), ijepa.InvalidArgumentError),
    (lambda c: np.zeros((2, 3, 24, 24), bool), ijepa.InvalidArgumentError),
    (lambda c: np.zeros((2, 3, 24, 24), np.complex64), ijepa.InvalidArgumentError),
    (lambda c: np.zeros((2, 3, 24, 24), object), ijepa.InvalidArgumentError),
    (lambda c: "images", ijepa.InvalidArgumentError),
    (lambda c: None, ijepa.InvalidArgumentError),
    (lambda c: [[1.0, 2.0], [3.0]], ijepa.InvalidArgumentError),  # ragged
])
def test_bad_images_raise_before_c(model, cfg, bad, err):
    x = bad(cfg)
    for call in (model.train_step, model.forward_backward, model.encode):
        with pytest.raises(err):
            call(x)
    assert model.step == 0


def test_nan_images_raise_numeric_error_and_change_nothing(model, cfg):
    x = images_for(cfg, 2)
    model.train_step(x)
    snapshot = {k: model.flat_buffer(k).copy() for k in ijepa.BUFFERS if k != "grads"}
    for v in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1, 2, 3, 4] = v
        for call in (model.train_step, model.forward_backward, model.encode):
            with pytest.raises(ijepa.NumericError) as e:
                call(y)
            assert e.value.status == -7 and "NaN" in str(e.value)
    for k, v in snapshot.items():
        assert np.array_equal(model.flat_buffer(k), v), k
    assert model.step == 1
    with pytest.raises(ijepa.StateError):
        model.optimizer_step()


def test_buffer_views_are_named_shaped_and_zero_copy(model, cfg):
    params, target = model.parameters(), model.target_parameters()
    assert list(params)[0] == "encoder.patch_embed.proj.weight"
    assert params["encoder.patch_embed.proj.weight"].shape == (32, 3, 4, 4)
    assert params["predictor.mask_token"].shape == (1, 1, 16)
    assert params["encoder.blocks.0.attn.qkv.weight"].shape == (96, 32)
    assert params["predictor.predictor_blocks.0.mlp.fc1.weight"].shape == (64, 16)  # ratio 4
    assert set(target) == {"target_" + k for k in params if k.startswith("encoder.")}
    for fn in (model.gradients, model.adam_m, model.adam_v):
        assert list(fn()) == list(params)
    flat = model.flat_buffer("params")
    assert flat.ndim == 1 and flat.dtype == np.float32 and flat.flags.writeable
    assert flat.size == sum(v.size for v in params.values())
    assert model.flat_buffer("target").size == sum(v.size for v in target.values())
    assert model.flat_buffer(ijepa._lib.IJEPA_BUF_ADAM_V).size == flat.size
    for v in params.values():
        assert np.shares_memory(v, flat)
    # writing through a view changes the model
    x = images_for(cfg, 2)
    before = model.encode(x, "target")
    target["target_encoder.norm.bias"][:] = 1.0
    after = model.encode(x, "target")
    np.testing.assert_allclose(after, before + 1.0, rtol=0, atol=1e-5)  # final norm bias 0 -> 1
    np.testing.assert_allclose(model.encode(x, "target", pooled=False).mean(1), after, atol=1e-6)
    # training moves params / adam state through the same views
    m0 = model.adam_m()["encoder.norm.weight"].copy()
    model.train_step(x)
    assert not np.array_equal(model.adam_m()["encoder.norm.weight"], m0)
    with pytest.raises(ijepa.InvalidArgumentError):
        model.flat_buffer("weights")
    with pytest.raises(ijepa.InvalidArgumentError):
        model.flat_buffer(7)


def test_views_keep_memory_alive_after_close_and_gc(cfg):
    m = ijepa.Model(cfg)
    handle = weakref.ref(m._handle)  # owns the C model; freed when it dies
    p = m.parameters()
    flat = m.flat_buffer("grads")
    ref = p["encoder.norm.weight"].copy()
    m.close()
    m.close()  # idempotent
    del m
    gc.collect()
    assert handle() is not None, "the C model was freed while views exist"
    junk = [np.ones(100000, np.float32) for _ in range(20)]
    assert np.array_equal(p["encoder.norm.weight"], ref)
    p["encoder.norm.weight"][:] = 3.0  # still writable, still owned
    flat[:] = 0
    del junk, flat
    assert handle() is not None
    only = p["encoder.norm.weight"]
    del p
    assert handle() is not None  # one view is enough
    del only
    gc.collect()
    assert handle() is None, "the C model was not freed after the last view"


def test_model_freed_on_close_without_views(cfg):
    m = ijepa.Model(cfg)
    handle = weakref.ref(m._handle)
    m.encode(images_for(cfg, 1))
    m.close()
    assert handle() is None
    m = ijepa.Model(cfg)
    handle = weakref.ref(m._handle)
    del m
    assert handle() is None


def test_closed_model_raises_never_crashes(cfg, tmp_path):
    m = ijepa.Model(cfg)
    x = images_for(cfg, 2)
    m.close()
    assert m.closed and "closed" in repr(m)
    calls = [
        lambda: m.train_step(x), lambda: m.forward_backward(x), lambda: m.optimizer_step(),
        lambda: m.encode(x), lambda: m.sample_masks(2), lambda: m.save(tmp_path / "x"),
        lambda: m.load_weights(tmp_path / "x"), lambda: m.parameters(), lambda: m.gradients(),
        lambda: m.target_parameters(), lambda: m.adam_m(), lambda: m.adam_v(),
        lambda: m.flat_buffer("params"), lambda: m.set_schedule_override(lr=1.0),
        lambda: m.config, lambda: m.step, lambda: m.num_patches, lambda: m.embed_dim,
        lambda: m.n_threads, lambda: setattr(m, "n_threads", 2),
    ]
    for call in calls:
        with pytest.raises(ijepa.StateError, match="closed"):
            call()
    with pytest.raises(ijepa.StateError):
        with m:
            pass


def test_context_manager_closes(cfg):
    with ijepa.Model(cfg) as m:
        assert not m.closed
    assert m.closed


def test_n_threads(model):
    assert model.n_threads == 1
    model.n_threads = 2
    assert model.n_threads == 2
    model.n_threads = 0
    assert model.n_threads == 0
    for bad in (2000, 1.5, "2"):
        with pytest.raises(ijepa.InvalidArgumentError):
            model.n_threads = bad


def test_models_in_threads(cfg):
    """Distinct models in parallel threads, and one model shared by two threads (serialized
    by the wrapper's lock), give the same results as sequential runs."""
    x = images_for(cfg, 2)

    def run(m, n, out):
        out.append([m.train_step(x, masks).loss for masks in fixed])

    with ijepa.Model(cfg) as ref:
        fixed = [ref.sample_masks(2) for _ in range(3)]
    with ijepa.Model(cfg) as ref:
        expect = []
        run(ref, 3, expect)
    models = [ijepa.Model(cfg) for _ in range(3)]
    outs = [[] for _ in models]
    ts = [threading.Thread(target=run, args=(m, 3, o)) for m, o in zip(models, outs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(o == expect for o in outs)
    for m in models[1:]:
        assert np.array_equal(m.flat_buffer("params"), models[0].flat_buffer("params"))
        m.close()
    shared, outs = models[0], [[], []]
    ts = [threading.Thread(target=lambda o=o: [o.append(shared.encode(x)) for _ in range(5)])
          for o in outs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(np.array_equal(a, outs[0][0]) for o in outs for a in o)
    shared.close()
