"""Data augmentation from the library: RandomResizedCrop (torchvision semantics) and bilinear
resizing (F.interpolate(mode="bilinear", align_corners=False, antialias=False))."""

from __future__ import annotations

import ctypes
import numbers

import numpy as np

from . import _lib
from .errors import InvalidArgumentError, ShapeError, StateError, check, as_array

__all__ = ["resize_bilinear", "random_resized_crop", "RandomResizedCrop"]

_FLOAT_P = ctypes.POINTER(ctypes.c_float)
_I32_MAX = (1 << 31) - 1


def _need(name):
    if not _lib.has_function(name):
        raise StateError("the loaded libijepa (%s) has no %s; update the library"
                         % (_lib.library_path, name))
    return getattr(_lib.lib, name)


def _images(images):
    """-> (contiguous float32 [B,C,H,W], was_3d)."""
    a = as_array(images)
    if a.dtype.kind != "f":
        raise InvalidArgumentError("images must be a floating-point array, got dtype %s" % a.dtype)
    if a.ndim == 3:
        a, single = a[None], True
    elif a.ndim == 4:
        single = False
    else:
        raise ShapeError("images must be [batch, channels, height, width] or [channels, height, "
                         "width], got shape %s" % (a.shape,))
    if 0 in a.shape:
        raise ShapeError("images must not be empty, got shape %s" % (a.shape,))
    if max(a.shape) > _I32_MAX:
        raise ShapeError("images are too large: %s" % (a.shape,))
    return np.ascontiguousarray(a, dtype=np.float32), single


def _size(size, name="size"):
    if isinstance(size, numbers.Integral) and not isinstance(size, (bool, np.bool_)):
        h = w = int(size)
    else:
        try:
            h, w = (int(v) for v in size)
        except (TypeError, ValueError):
            raise InvalidArgumentError("%s must be an int or a pair (height, width), got %r"
                                       % (name, size))
    for v in (h, w):
        if not 1 <= v <= 16384:
            raise InvalidArgumentError("%s must be in 1..16384, got %r" % (name, size))
    return h, w


def _pair(v, name):
    try:
        a, b = (float(x) for x in v)
    except (TypeError, ValueError):
        raise InvalidArgumentError("%s must be a pair of numbers, got %r" % (name, v))
    return a, b


def _check_out(B, C, H, W, oh, ow):
    """The library's size limit, checked before the output is allocated."""
    if B * C * max(H * W, oh * ow) > _I32_MAX * 4:
        raise ShapeError("the batch is too large: %d x %d x %d x %d -> %d x %d" % (B, C, H, W, oh, ow))


def resize_bilinear(images, size):
    """Bilinear resize of [B,C,H,W] (or [C,H,W]) float images to size (int or (h, w)), as
    ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``."""
    x, single = _images(images)
    oh, ow = _size(size)
    B, C, H, W = x.shape
    _check_out(B, C, H, W, oh, ow)
    out = np.empty((B, C, oh, ow), dtype=np.float32)
    check(_need("ijepa_resize_bilinear")(x.ctypes.data_as(_FLOAT_P), B, C, H, W, oh, ow,
                                         out.ctypes.data_as(_FLOAT_P)), "ijepa_resize_bilinear")
    return out[0] if single else out


def random_resized_crop(images, size, scale=(0.3, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), rng_state=0):
    """torchvision RandomResizedCrop on every image (a new crop each), bilinear, no antialias.

    Returns ``(crops [B,C,size,size], new_rng_state)``: the same rng_state (an unsigned 64-bit
    int) gives the same crops; pass the returned state to the next call for new ones. The
    defaults are I-JEPA's crop scale (0.3, 1.0) and torchvision's ratio (3/4, 4/3).
    """
    x, single = _images(images)
    s = _size(size)
    if s[0] != s[1]:
        raise InvalidArgumentError("size must be square (one int), got %r" % (size,))
    if isinstance(rng_state, (bool, np.bool_)) or not isinstance(rng_state, numbers.Integral) \
            or not 0 <= int(rng_state) < 1 << 64:
        raise InvalidArgumentError("rng_state must be an unsigned 64-bit integer, got %r"
                                   % (rng_state,))
    (smin, smax), (rmin, rmax) = _pair(scale, "scale"), _pair(ratio, "ratio")
    B, C, H, W = x.shape
    _check_out(B, C, H, W, s[0], s[0])
    out = np.empty((B, C, s[0], s[0]), dtype=np.float32)
    st = ctypes.c_uint64(int(rng_state))
    check(_need("ijepa_random_resized_crop")(x.ctypes.data_as(_FLOAT_P), B, C, H, W, s[0],
                                             smin, smax, rmin, rmax, ctypes.byref(st),
                                             out.ctypes.data_as(_FLOAT_P)),
          "ijepa_random_resized_crop")
    return (out[0] if single else out), int(st.value)


class RandomResizedCrop:
    """Stateful RandomResizedCrop: ``crop = RandomResizedCrop(224, seed=0); x = crop(images)``.

    ``state`` (an unsigned 64-bit int) may be read and set for exact reproducibility."""

    def __init__(self, size, scale=(0.3, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), seed=0):
        self.size, self.scale, self.ratio, self.state = size, scale, ratio, seed

    def __call__(self, images):
        out, self.state = random_resized_crop(images, self.size, self.scale, self.ratio, self.state)
        return out

    def __repr__(self):
        return "RandomResizedCrop(size=%r, scale=%r, ratio=%r, state=%r)" % (
            self.size, self.scale, self.ratio, self.state)
