"""Mask sampling and caller-supplied masks."""

import numpy as np
import pytest

import ijepa
from conftest import images_for, tiny_config


@pytest.mark.parametrize("num_enc,num_pred", [(1, 4), (2, 3)])
def test_sampled_masks_shapes_ranges_sorted(num_enc, num_pred):
    c = tiny_config(num_enc_masks=num_enc, num_pred_masks=num_pred)
    with ijepa.Model(c) as m:
        for batch in (1, 3, 8):
            mk = m.sample_masks(batch)
            assert isinstance(mk, ijepa.Masks)
            assert mk.enc.dtype == np.int32 and mk.pred.dtype == np.int32
            assert mk.enc.flags.c_contiguous and mk.pred.flags.c_contiguous
            assert mk.enc.shape[:2] == (num_enc, batch) and mk.pred.shape[:2] == (num_pred, batch)
            assert mk.batch == batch and mk.num_enc == num_enc and mk.num_pred == num_pred
            assert 1 <= mk.k_enc <= m.num_patches and 1 <= mk.k_pred <= m.num_patches
            for a in (mk.enc, mk.pred):
                assert a.min() >= 0 and a.max() < m.num_patches
                assert (np.diff(a, axis=-1) > 0).all(), "indices sorted, no repeats"
            assert mk.k_pred > c.min_keep - 1
            enc, pred = mk  # unpacks


def test_masks_are_deterministic_per_seed():
    def draw(seed):
        with ijepa.Model(tiny_config(seed=seed)) as m:
            return [m.sample_masks(4) for _ in range(3)]
    a, b, c = draw(1), draw(1), draw(2)
    assert all(x == y for x, y in zip(a, b))
    assert any(x != y for x, y in zip(a, c))
    assert a[0] != a[1]  # the generator advances


def test_context_and_targets_disjoint_without_relaxation():
    # 8x8 grid: room enough that the sampler never relaxes the overlap constraint
    msgs = []
    ijepa.set_log_handler(lambda level, text: msgs.append(text))
    try:
        with ijepa.Model(tiny_config(image_size=32, seed=3)) as m:
            for _ in range(5):
                mk = m.sample_masks(4)
                if msgs:
                    continue
                for b in range(4):
                    ctx = set(mk.enc[:, b].ravel().tolist())
                    assert not ctx & set(mk.pred[:, b].ravel().tolist())
    finally:
        ijepa.set_log_handler(None)


def test_masks_class_validation():
    enc = np.zeros((1, 2, 3), np.int64) + np.arange(3)
    pred = np.zeros((4, 2, 2), np.uint8) + np.arange(2, dtype=np.uint8)
    m = ijepa.Masks(enc, pred)
    assert m.enc.dtype == np.int32 and m.pred.dtype == np.int32
    assert ijepa.Masks(enc.tolist(), [p for p in pred]) == m  # lists of [B, K] arrays
    with pytest.raises(ijepa.InvalidArgumentError, match="integer"):
        ijepa.Masks(enc.astype(np.float32), pred)
    with pytest.raises(ijepa.InvalidArgumentError, match="integer"):
        ijepa.Masks(enc.astype(bool), pred)
    with pytest.raises(ijepa.ShapeError, match="3-D"):
        ijepa.Masks(enc[0], pred)
    with pytest.raises(ijepa.ShapeError, match="batch"):
        ijepa.Masks(enc, pred[:, :1])
    with pytest.raises(ijepa.ShapeError, match="empty"):
        ijepa.Masks(enc[:, :, :0], pred)
    with pytest.raises(ijepa.InvalidArgumentError, match="outside"):
        ijepa.Masks(enc - 1, pred)
    with pytest.raises(ijepa.InvalidArgumentError, match="outside"):
        ijepa.Masks(enc + 2**32, pred)  # would wrap to a valid int32 index
    with pytest.raises(ijepa.InvalidArgumentError):
        ijepa.Masks([[[1, 2], [3]]], pred)  # ragged


def test_bad_masks_in_training_raise_and_leave_the_model_unchanged(model, cfg):
    x = images_for(cfg, 2)
    good = model.sample_masks(2)
    before = model.flat_buffer("params").copy()
    cases = [
        ((good.enc, good.pred[:, :1]), ijepa.ShapeError),                 # batch
        ((good.enc[:, :1], good.pred[:, :1]), ijepa.ShapeError),          # batch vs images
        ((np.concatenate([good.enc, good.enc]), good.pred), ijepa.ShapeError),  # num_enc
        ((good.enc, good.pred[:3]), ijepa.ShapeError),                    # num_pred
        ((np.full((1, 2, 40), 0), good.pred), ijepa.ShapeError),          # k > num_patches
        ((good.enc + 36, good.pred), ijepa.InvalidArgumentError),         # out of range
        ((np.zeros_like(good.enc), good.pred), ijepa.InvalidArgumentError),  # repeats
        ((good.enc.astype(np.float64), good.pred), ijepa.InvalidArgumentError),
        (good.enc, ijepa.InvalidArgumentError),                           # not a pair
        ((good.enc, good.pred, good.pred), ijepa.InvalidArgumentError),
    ]
    for masks, err in cases:
        for call in (model.train_step, model.forward_backward):
            with pytest.raises(err):
                call(x, masks)
    with pytest.raises(ijepa.StateError):
        model.optimizer_step()
    assert np.array_equal(model.flat_buffer("params"), before) and model.step == 0
    # and good masks (as a pair of int64 arrays) work
    st = model.train_step(x, (good.enc.astype(np.int64), good.pred))
    assert st.step == 1


def test_sample_masks_bad_batch(model):
    for b in (0, -1, 2**31, 1.5, "2", True):
        with pytest.raises(ijepa.InvalidArgumentError):
            model.sample_masks(b)
