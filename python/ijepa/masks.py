"""``ijepa.Masks``: one batch of context (enc) and target (pred) patch-index masks;
``ijepa.RaggedMasks``: the same with a context length per image (not the official code)."""

from __future__ import annotations

import ctypes
import numbers

import numpy as np

from . import _lib
from .errors import InvalidArgumentError, ShapeError

__all__ = ["Masks", "RaggedMasks"]

_I32_MAX = (1 << 31) - 1
_I32_MIN = -(1 << 31)


def _int_array(x, name, ndim, dims, what="patch indices"):
    """An integer ndarray of `ndim` non-empty dimensions (not yet converted)."""
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise InvalidArgumentError("%s cannot be converted to an integer array: %s" % (name, e))
    if a.dtype.kind not in "iu":
        raise InvalidArgumentError("%s must be an integer array (%s), got dtype %s"
                                   % (name, what, a.dtype))
    if a.ndim != ndim:
        raise ShapeError("%s must be %d-D [%s], got shape %s" % (name, ndim, dims, a.shape))
    if 0 in a.shape:
        raise ShapeError("%s must not be empty, got shape %s" % (name, a.shape))
    return a


def _index_array(x, name):
    a = _int_array(x, name, 3, "num_masks, batch, k")
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


class RaggedMasks:
    """A batch of masks in which every image keeps its own context length (``ijepa_ragged_masks``;
    beyond the official code, whose collator cuts every context to the batch's shortest).

    Attributes:
        enc:     int32 [num_enc, batch, k_enc_max]  context masks, padded: context j of image
                 b is ``enc[j, b, :enc_len[j, b]]``; the entries after it are ignored by the
                 library (-1 in sampled masks)
        enc_len: int32 [num_enc, batch]             context lengths, each in 1..k_enc_max
        pred:    int32 [num_pred, batch, k_pred]    target masks (one size per batch, as
                 officially)

    Construct from integer array-likes (copied to contiguous int32); padding may hold any
    int32 value. Shapes, dtypes, the lengths' range and negative indices are checked here;
    the rest (indices below num_patches, no repeats within a context) by the library when
    used. ``Model.sample_masks(batch, ragged=True)`` samples them; ``RaggedMasks.from_masks``
    converts uniform masks; :meth:`to_masks` cuts them to the official uniform ones.
    """

    __slots__ = ("enc", "enc_len", "pred")

    def __init__(self, enc, enc_len, pred):
        e = _int_array(enc, "ragged masks enc", 3, "num_enc, batch, k_enc_max")
        n = _int_array(enc_len, "ragged masks enc_len", 2, "num_enc, batch", "context lengths")
        p = _index_array(pred, "ragged masks pred")
        if n.shape != e.shape[:2]:
            raise ShapeError("ragged masks enc_len must have shape [num_enc, batch] = %s like "
                             "enc, got %s" % (e.shape[:2], n.shape))
        if e.shape[1] != p.shape[1]:
            raise ShapeError("ragged masks enc has batch %d but pred has batch %d"
                             % (e.shape[1], p.shape[1]))
        k_max = e.shape[2]
        lo, hi = int(n.min()), int(n.max())
        if lo < 1 or hi > k_max:
            raise ShapeError("ragged masks enc_len holds %d, outside 1..k_enc_max (%d)"
                             % (lo if lo < 1 else hi, k_max))
        lo, hi = int(e.min()), int(e.max())
        if lo < _I32_MIN or hi > _I32_MAX:
            raise InvalidArgumentError("ragged masks enc holds %d, which is not an int32"
                                       % (lo if lo < _I32_MIN else hi))
        n = np.ascontiguousarray(n, dtype=np.int32)
        e = np.ascontiguousarray(e, dtype=np.int32)
        valid = np.arange(k_max) < n[..., None]
        if (e[valid] < 0).any():
            raise InvalidArgumentError("ragged masks enc holds patch index %d within a context, "
                                       "outside 0..num_patches-1" % int(e[valid].min()))
        self.enc = e
        self.enc_len = n
        self.pred = p

    @classmethod
    def from_masks(cls, masks):
        """Uniform masks (an :class:`ijepa.Masks` or a pair) as ragged ones, every length k_enc."""
        m = Masks.coerce(masks)
        return cls(m.enc, np.full(m.enc.shape[:2], m.k_enc, np.int32), m.pred)

    def to_masks(self):
        """The official uniform masks: every context cut to the shortest one of the batch (what
        ``ijepa_masks_sample`` returns for the same draw)."""
        k = int(self.enc_len.min())
        return Masks(self.enc[:, :, :k], self.pred)

    @property
    def batch(self):
        return self.enc.shape[1]

    @property
    def num_enc(self):
        return self.enc.shape[0]

    @property
    def k_enc_max(self):
        return self.enc.shape[2]

    @property
    def num_pred(self):
        return self.pred.shape[0]

    @property
    def k_pred(self):
        return self.pred.shape[2]

    @property
    def mean_context_length(self):
        """The mean number of context patches per (context, image)."""
        return float(self.enc_len.mean())

    def context(self, b, j=0):
        """Image b's context j as a 1-D int32 array (a view of its enc_len[j, b] indices)."""
        for name, v, n in (("b", b, self.batch), ("j", j, self.num_enc)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) \
                    or not 0 <= int(v) < n:
                raise InvalidArgumentError("%s must be an integer in 0..%d, got %r" % (name, n - 1, v))
        return self.enc[j, b, :self.enc_len[j, b]]

    def contexts(self, j=0):
        """[context(b, j) for every image b]."""
        return [self.context(b, j) for b in range(self.batch)]

    def to_c(self):
        """An ``_lib.ijepa_ragged_masks`` pointing INTO the arrays (keep self alive)."""
        ip = ctypes.POINTER(ctypes.c_int32)
        return _lib.ijepa_ragged_masks(
            batch=self.batch, num_enc=self.num_enc, k_enc_max=self.k_enc_max,
            num_pred=self.num_pred, k_pred=self.k_pred, enc=self.enc.ctypes.data_as(ip),
            enc_len=self.enc_len.ctypes.data_as(ip), pred=self.pred.ctypes.data_as(ip))

    def __eq__(self, other):
        """Same lengths, contexts and targets (padding is not compared)."""
        if not isinstance(other, RaggedMasks):
            return NotImplemented
        if not (np.array_equal(self.enc_len, other.enc_len)
                and np.array_equal(self.pred, other.pred)):
            return False
        k = int(self.enc_len.max())
        if self.enc.shape[2] < k or other.enc.shape[2] < k:
            return False
        valid = np.arange(k) < self.enc_len[..., None]
        return np.array_equal(self.enc[:, :, :k][valid], other.enc[:, :, :k][valid])

    __hash__ = None

    def __repr__(self):
        return ("RaggedMasks(batch=%d, enc=[%d x <=%d] (mean %.1f), pred=[%d x %d])"
                % (self.batch, self.num_enc, self.k_enc_max, self.mean_context_length,
                   self.num_pred, self.k_pred))
