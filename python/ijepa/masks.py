"""``ijepa.Masks``: one batch of context (enc) and target (pred) patch-index masks."""

from __future__ import annotations

import ctypes

import numpy as np

from . import _lib
from .errors import InvalidArgumentError, ShapeError

__all__ = ["Masks"]

_I32_MAX = (1 << 31) - 1


def _index_array(x, name):
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise InvalidArgumentError("%s cannot be converted to an integer array: %s" % (name, e))
    if a.dtype.kind not in "iu":
        raise InvalidArgumentError("%s must be an integer array (patch indices), got dtype %s"
                                   % (name, a.dtype))
    if a.ndim != 3:
        raise ShapeError("%s must be 3-D [num_masks, batch, k], got shape %s" % (name, a.shape))
    if 0 in a.shape:
        raise ShapeError("%s must not be empty, got shape %s" % (name, a.shape))
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi > _I32_MAX:
        raise InvalidArgumentError("%s holds patch index %d, outside 0..num_patches-1"
                                   % (name, lo if lo < 0 else hi))
    return np.ascontiguousarray(a, dtype=np.int32)


class Masks:
    """Patch indices ``n = row * grid + col`` of one batch.

    Attributes:
        enc:  int32 [num_enc, batch, k_enc]   context masks
        pred: int32 [num_pred, batch, k_pred] target masks

    Construct from any integer array-likes (for example the official collator's lists of
    [B, K] LongTensors: ``Masks(masks_enc, masks_pred)``); they are copied to contiguous
    int32. Values (range, no repeats within a mask) are checked by the library when used.
    ``enc, pred = masks`` unpacks.
    """

    __slots__ = ("enc", "pred")

    def __init__(self, enc, pred):
        e = _index_array(enc, "masks enc")
        p = _index_array(pred, "masks pred")
        if e.shape[1] != p.shape[1]:
            raise ShapeError("masks enc has batch %d but masks pred has batch %d"
                             % (e.shape[1], p.shape[1]))
        self.enc = e
        self.pred = p

    @classmethod
    def coerce(cls, masks):
        """A Masks from a Masks (as is) or a pair (enc, pred)."""
        if isinstance(masks, Masks):
            return masks
        if isinstance(masks, (tuple, list)) and len(masks) == 2:
            return cls(masks[0], masks[1])
        raise InvalidArgumentError("masks must be an ijepa.Masks or a pair (enc, pred) of integer "
                                   "arrays, got %s" % type(masks).__name__)

    @property
    def batch(self):
        return self.enc.shape[1]

    @property
    def num_enc(self):
        return self.enc.shape[0]

    @property
    def k_enc(self):
        return self.enc.shape[2]

    @property
    def num_pred(self):
        return self.pred.shape[0]

    @property
    def k_pred(self):
        return self.pred.shape[2]

    def to_c(self):
        """An ``_lib.ijepa_masks`` pointing INTO self.enc / self.pred (keep self alive)."""
        ip = ctypes.POINTER(ctypes.c_int32)
        return _lib.ijepa_masks(batch=self.batch, num_enc=self.num_enc, k_enc=self.k_enc,
                                num_pred=self.num_pred, k_pred=self.k_pred,
                                enc=self.enc.ctypes.data_as(ip), pred=self.pred.ctypes.data_as(ip))

    def __iter__(self):
        return iter((self.enc, self.pred))

    def __eq__(self, other):
        if not isinstance(other, Masks):
            return NotImplemented
        return np.array_equal(self.enc, other.enc) and np.array_equal(self.pred, other.pred)

    __hash__ = None

    def __repr__(self):
        return ("Masks(batch=%d, enc=[%d x %d], pred=[%d x %d])"
                % (self.batch, self.num_enc, self.k_enc, self.num_pred, self.k_pred))
