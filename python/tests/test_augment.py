"""resize_bilinear / random_resized_crop against Tests/Fixtures/augment.safetensors
(F.interpolate(mode="bilinear", align_corners=False, antialias=False) from PyTorch)."""

import os

import numpy as np
import pytest

import ijepa
from conftest import ROOT
from st_reader import read_safetensors

FIXTURE = os.path.join(ROOT, "Tests", "Fixtures", "augment.safetensors")

pytestmark = pytest.mark.skipif(not ijepa._lib.has_function("ijepa_resize_bilinear"),
                                reason="library without the augmentation functions")


@pytest.fixture(scope="module")
def fx():
    if not os.path.exists(FIXTURE):
        pytest.skip("no " + FIXTURE)
    return read_safetensors(FIXTURE)[0]


def test_resize_matches_pytorch(fx):
    imgs = fx["images"]
    got = ijepa.resize_bilinear(imgs, (24, 36))
    np.testing.assert_allclose(got, fx["resize_24x36"], rtol=0, atol=1e-5)
    for S in (32, 20):
        for k, (i, j, h, w) in enumerate(fx["boxes"].tolist()):
            crop = imgs[:, :, i:i + h, j:j + w]  # non-contiguous input
            np.testing.assert_allclose(ijepa.resize_bilinear(crop, S), fx["crops%d" % S][k],
                                       rtol=0, atol=1e-5)
    one = ijepa.resize_bilinear(imgs[0], 20)  # [C,H,W] in, [C,H,W] out
    assert one.shape == (3, 20, 20)
    np.testing.assert_array_equal(one, ijepa.resize_bilinear(imgs, 20)[0])


def test_random_resized_crop_determinism(fx):
    imgs = fx["images"]
    a, s1 = ijepa.random_resized_crop(imgs, 16, rng_state=7)
    b, s2 = ijepa.random_resized_crop(imgs, 16, rng_state=7)
    assert a.shape == (2, 3, 16, 16) and np.array_equal(a, b) and s1 == s2 != 7
    c, _ = ijepa.random_resized_crop(imgs, 16, rng_state=s1)
    assert not np.array_equal(a, c)
    crop = ijepa.RandomResizedCrop(16, seed=7)
    assert np.array_equal(crop(imgs), a) and crop.state == s1
    assert np.array_equal(crop(imgs), c)
    # full-image "crop" (scale 1, ratio 1 on a square image) is a plain resize
    full, _ = ijepa.random_resized_crop(imgs, 20, scale=(1, 1), ratio=(1, 1), rng_state=3)
    np.testing.assert_allclose(full, ijepa.resize_bilinear(imgs, 20), rtol=0, atol=0)


@pytest.mark.parametrize("kw,err", [
    (dict(scale=(0, 1)), ijepa.InvalidArgumentError),
    (dict(scale=(0.5, 0.2)), ijepa.InvalidArgumentError),
    (dict(scale=(0.5, 1.5)), ijepa.InvalidArgumentError),
    (dict(ratio=(2, 1)), ijepa.InvalidArgumentError),
    (dict(ratio=(float("nan"), 1)), ijepa.InvalidArgumentError),
    (dict(ratio=(1, float("inf"))), ijepa.InvalidArgumentError),
    (dict(rng_state=-1), ijepa.InvalidArgumentError),
    (dict(rng_state=2**64), ijepa.InvalidArgumentError),
    (dict(size=0), ijepa.InvalidArgumentError),
    (dict(size=(8, 9)), ijepa.InvalidArgumentError),
    (dict(images=np.zeros((2, 3, 8, 8), np.int32)), ijepa.InvalidArgumentError),
    (dict(images=np.zeros((2, 8)), ), ijepa.ShapeError),
    (dict(images=np.zeros((0, 3, 8, 8))), ijepa.ShapeError),
    (dict(images=np.zeros((1, 100, 8, 8))), ijepa.InvalidArgumentError),  # > 64 channels
])
def test_augment_errors(kw, err):
    args = dict(images=np.zeros((2, 3, 8, 8), np.float32), size=4)
    args.update(kw)
    with pytest.raises(err):
        ijepa.random_resized_crop(**args)


def test_resize_errors():
    with pytest.raises(ijepa.InvalidArgumentError):
        ijepa.resize_bilinear(np.zeros((1, 1, 4, 4)), (0, 3))
    with pytest.raises(ijepa.InvalidArgumentError):
        ijepa.resize_bilinear(np.zeros((1, 1, 4, 4)), "big")
    with pytest.raises(ijepa.ShapeError):
        ijepa.resize_bilinear(np.zeros(4), 3)
    with pytest.raises(ijepa.ShapeError, match="too large"):  # refused before allocating 64 GB
        ijepa.resize_bilinear(np.zeros((1, 64, 2, 2), np.float32), 16384)
