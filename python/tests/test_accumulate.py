"""Gradient accumulation: Model.train_step(micro_batch=K) and Model.forward_backward(weight=,
accumulate=) over ijepa_train_step_accumulate[_ragged] / ijepa_forward_backward_accumulate[_ragged].

What is checked here:
  * one step of B images equals the same step run as micro-batches of K (B = 8, K = 3: 3 + 3 + 2;
    one mask draw for the whole batch, each micro-batch its rows weighted b/B), uniform and
    ragged, with sampled and with caller masks: losses within 1e-5 relative, and after 2 steps
    the parameters, target encoder and AdamW moments within 1e-5 of each buffer's largest value
    (measured: ~2e-7 of 1.0 for the parameters, see docs/accumulation.md);
  * accumulating weighted rows by hand (forward_backward(weight=b/B, accumulate=...)) gives the
    whole batch's gradient buffer, uniform and ragged;
  * errors: micro_batch 0 / negative / not an int, weight <= 0 / NaN / not a number, accumulate
    without a pending forward_backward (StateError), and a NaN image in a later micro-batch
    leaves the model, the step counter and the mask stream unchanged.
"""

import numpy as np
import pytest

import ijepa

pytestmark = pytest.mark.skipif(not ijepa.has_accumulate(),
                                reason="the loaded libijepa has no gradient accumulation")

B, K = 8, 3   # micro-batches of 3, 3 and 2 images
BUFFERS = ("params", "target", "adam_m", "adam_v")


def config(ragged=False):
    """The tiny32 preset (32 px, patch 4), 1 thread, a short schedule."""
    return ijepa.Config.preset("tiny32", seed=3, n_threads=1, warmup_steps=2, total_steps=20,
                               ragged_context=ragged)


def images(seed, batch=B):
    return np.random.default_rng(seed).standard_normal((batch, 3, 32, 32), dtype=np.float32)


def assert_buffers_close(a, b, tol=1e-5):
    """Every buffer within tol x its largest magnitude (AdamW divides by sqrt(v): parameters
    whose gradients are ~0 move by rounding-sized amounts, so element-wise relative bounds are
    meaningless there)."""
    for name in BUFFERS:
        p, q = a.flat_buffer(name), b.flat_buffer(name)
        assert np.all(np.isfinite(q))
        scale = float(np.abs(p).max())
        worst = float(np.abs(p - q).max())
        assert worst <= tol * scale, "%s: max |diff| %g > %g x max |x| %g" % (name, worst, tol, scale)


def rows(masks, first, count):
    """The masks of images first..first+count of a batch (what a micro-batch takes)."""
    sl = slice(first, first + count)
    if isinstance(masks, ijepa.RaggedMasks):
        return ijepa.RaggedMasks(masks.enc[:, sl], masks.enc_len[:, sl], masks.pred[:, sl])
    return ijepa.Masks(masks.enc[:, sl], masks.pred[:, sl])


@pytest.mark.parametrize("ragged", [False, True], ids=["uniform", "ragged"])
def test_micro_batches_equal_one_step_of_the_whole_batch(ragged):
    with ijepa.Model(config(ragged)) as whole, ijepa.Model(config(ragged)) as micro:
        for step in range(2):
            x = images(step)
            a = whole.train_step(x)                        # masks: the model's own generator
            b = micro.train_step(x, micro_batch=K)         # one draw for all B, then 3 + 3 + 2
            assert b.step == a.step == step + 1
            assert b.loss == pytest.approx(a.loss, rel=1e-5)
            assert b.grad_norm == pytest.approx(a.grad_norm, rel=1e-5)
            assert (b.lr, b.weight_decay, b.ema_momentum) == (a.lr, a.weight_decay, a.ema_momentum)
        assert_buffers_close(whole, micro)
        # the same mask stream afterwards: one draw per step, of the global batch
        assert micro.sample_masks(B, ragged=ragged) == whole.sample_masks(B, ragged=ragged)


@pytest.mark.parametrize("ragged", [False, True], ids=["uniform", "ragged"])
def test_caller_masks_and_every_micro_batch_size(ragged):
    x = images(7)
    with ijepa.Model(config()) as src:
        masks = src.sample_masks(B, ragged=ragged)
    with ijepa.Model(config()) as whole:
        ref = whole.train_step(x, masks)
        expect = {n: whole.flat_buffer(n).copy() for n in BUFFERS}
    for k in (1, 4, B, B + 5):                     # 8 x 1, 2 x 4, and one batch (k >= B)
        with ijepa.Model(config()) as m:
            s = m.train_step(x, masks, micro_batch=k)
            assert s.loss == pytest.approx(ref.loss, rel=1e-5), k
            for n in BUFFERS:
                p, q = expect[n], m.flat_buffer(n)
                assert np.abs(p - q).max() <= 1e-5 * np.abs(p).max(), (k, n)


@pytest.mark.parametrize("ragged", [False, True], ids=["uniform", "ragged"])
def test_weighted_rows_by_hand_equal_the_whole_batch_gradient(ragged):
    x = images(11)
    with ijepa.Model(config()) as m:
        masks = m.sample_masks(B, ragged=ragged)
        loss = m.forward_backward(x, masks)
        g = m.flat_buffer("grads").copy()
        total, first = 0.0, 0
        for count in (1, 4, 3):
            part = m.forward_backward(x[first:first + count], rows(masks, first, count),
                                      weight=count / B, accumulate=first > 0)
            total += part * count / B
            first += count
        acc = m.flat_buffer("grads")
        worst = float(np.abs(acc - g).max())
        assert worst <= 1e-5 * float(np.abs(g).max()), worst
        assert total == pytest.approx(loss, rel=1e-6)
        # weight alone scales the gradient (no accumulation)
        m.forward_backward(x, masks, weight=0.5)
        assert np.abs(m.flat_buffer("grads") - 0.5 * g).max() <= 1e-6 * np.abs(g).max()
        m.optimizer_step()   # the accumulated gradients are pending, so a step consumes them


def test_manual_accumulation_then_optimizer_step_is_a_train_step():
    x = images(5)
    with ijepa.Model(config()) as whole, ijepa.Model(config()) as hand:
        masks = whole.sample_masks(B)
        hand.sample_masks(B)                          # the same generator position
        a = whole.train_step(x, masks)
        hand.forward_backward(x[:5], rows(masks, 0, 5), weight=5 / B)
        hand.forward_backward(x[5:], rows(masks, 5, 3), weight=3 / B, accumulate=True)
        b = hand.optimizer_step()
        assert b.loss == pytest.approx(a.loss, rel=1e-5)
        assert b.grad_norm == pytest.approx(a.grad_norm, rel=1e-5)
        assert_buffers_close(whole, hand)


def test_errors():
    x = images(3)
    with ijepa.Model(config()) as m:
        before = {n: m.flat_buffer(n).copy() for n in BUFFERS}
        # a NaN image in the last micro-batch: nothing changes, the mask stream included
        bad = x.copy()
        bad[-1, 0, 0, 0] = np.nan
        with pytest.raises(ijepa.NumericError):
            m.train_step(bad, micro_batch=K)
        assert m.step == 0
        for n in BUFFERS:
            assert np.array_equal(m.flat_buffer(n), before[n]), n
        with ijepa.Model(config()) as fresh:
            assert m.sample_masks(B) == fresh.sample_masks(B)   # (advances both)
        for bad in (0, -2):
            with pytest.raises(ijepa.InvalidArgumentError, match="micro_batch"):
                m.train_step(x, micro_batch=bad)
        for bad in (1.5, "2", True):
            with pytest.raises(ijepa.InvalidArgumentError, match="micro_batch"):
                m.train_step(x, micro_batch=bad)
        # accumulate needs a pending forward_backward of this step
        with pytest.raises(ijepa.StateError, match="accumulate"):
            m.forward_backward(x, accumulate=True)
        for bad in (0.0, -0.5, float("nan"), float("inf")):
            with pytest.raises(ijepa.InvalidArgumentError, match="weight"):
                m.forward_backward(x, weight=bad)
        with pytest.raises(ijepa.InvalidArgumentError, match="weight"):
            m.forward_backward(x, weight="1")
        # a failing forward_backward leaves nothing pending
        m.forward_backward(x)
        with pytest.raises(ijepa.InvalidArgumentError):
            m.forward_backward(x, weight=float("nan"), accumulate=True)
        with pytest.raises(ijepa.StateError):
            m.optimizer_step()
        with pytest.raises(ijepa.StateError):
            m.forward_backward(x, accumulate=True)
        assert m.step == 0
        # masks of another batch than the images
        with pytest.raises(ijepa.ShapeError):
            m.train_step(x, m.sample_masks(B - 1), micro_batch=K)
