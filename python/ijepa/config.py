"""``ijepa.Config``: the ``ijepa_config`` struct as a Python object with validated fields."""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _lib
from .errors import InvalidArgumentError, check

__all__ = ["Config", "PRESETS"]


def _preset_names():
    names, i = [], 0
    while True:
        n = _lib.lib.ijepa_config_preset_name(i)
        if n is None:
            return tuple(names)
        names.append(n.decode("ascii"))
        i += 1


#: Preset names understood by Config.preset, from the library (ijepa_config_preset_name).
PRESETS = _preset_names()

_I32 = (-(1 << 31), (1 << 31) - 1)
_I64 = (-(1 << 63), (1 << 63) - 1)
_U64 = (0, (1 << 64) - 1)

# field -> kind, in struct order, from the library's field table (struct_size is managed here).
_KIND = {_lib.IJEPA_TYPE_INT32: "i32", _lib.IJEPA_TYPE_INT64: "i64", _lib.IJEPA_TYPE_UINT64: "u64",
         _lib.IJEPA_TYPE_FLOAT: "f32", _lib.IJEPA_TYPE_BOOL: "bool", _lib.IJEPA_TYPE_FLOAT_PAIR: "pair"}
_FIELDS = {name: _KIND[ty] for name, ty, _ in _lib.config_fields}
FIELDS = tuple(_FIELDS)


def _f32(v):
    """A Python float that round-trips through float32 and prints short (0.85, not 0.8500000238)."""
    f = np.float32(v)
    if not np.isfinite(f):
        return float(f)
    return float(str(f))


def _coerce(name, value):
    kind = _FIELDS.get(name)
    if kind is None:
        raise InvalidArgumentError("unknown config field %r; fields are: %s"
                                   % (name, ", ".join(FIELDS)))
    if kind in ("i32", "i64", "u64"):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise InvalidArgumentError("config field %r must be an integer, got %r" % (name, value))
        lo, hi = {"i32": _I32, "i64": _I64, "u64": _U64}[kind]
        v = int(value)
        if not lo <= v <= hi:
            raise InvalidArgumentError("config field %r must be in %d..%d, got %d" % (name, lo, hi, v))
        return v
    if kind == "f32":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise InvalidArgumentError("config field %r must be a real number, got %r" % (name, value))
        v = float(value)
        if math.isfinite(v) and abs(v) > float(np.finfo(np.float32).max):
            raise InvalidArgumentError("config field %r is out of float32 range: %r" % (name, v))
        return _f32(v)
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                                   and int(value) in (0, 1)):
            return bool(value)
        raise InvalidArgumentError("config field %r must be a bool, got %r" % (name, value))
    # pair
    try:
        items = list(value)
    except TypeError:
        items = None
    if items is None or len(items) != 2:
        raise InvalidArgumentError("config field %r must be a pair (min, max), got %r" % (name, value))
    return tuple(_coerce_pair_item(name, x) for x in items)


def _coerce_pair_item(name, x):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise InvalidArgumentError("config field %r must hold two real numbers, got %r" % (name, x))
    return _f32(float(x))


class Config:
    """A model and training-recipe configuration (``ijepa_config``).

    ``Config()`` is the library default (``ijepa_config_default``: the official recipe on a
    vit_tiny-sized model at 224 px); ``Config.preset("vit_small", lr=5e-4)`` starts from a
    named preset. Keyword arguments override fields; unknown names and values of the wrong
    type raise :class:`ijepa.InvalidArgumentError`. Ranges (e.g. embed_dim divisible by
    num_heads) are checked by the library when a :class:`ijepa.Model` is created.

    Fields: those of ``ijepa_config`` in the C header, with its snake_case names, in struct
    order (:data:`ijepa.config.FIELDS`, read from the loaded library); the three ranges
    (enc_mask_scale, pred_mask_scale, aspect_ratio) are (min, max) pairs.

    ``ragged_context=True`` (not the official code; default False) makes training with
    sampled masks keep every image's whole context instead of cutting all contexts of the
    batch to the shortest one (see :class:`ijepa.RaggedMasks`). It needs a library with the
    ragged functions (:func:`ijepa.has_ragged_context`); it is stored in checkpoints.
    """

    __slots__ = FIELDS

    def __init__(self, **overrides):
        c = _lib.ijepa_config(struct_size=ctypes_sizeof_config)
        check(_lib.lib.ijepa_config_default(c), "ijepa_config_default")
        self._load_c(c)
        self.update(**overrides)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def preset(cls, name, **overrides):
        """A named preset (see :data:`ijepa.config.PRESETS`) with keyword overrides."""
        if not isinstance(name, str):
            raise InvalidArgumentError("preset name must be a str, got %r" % (name,))
        c = _lib.ijepa_config(struct_size=ctypes_sizeof_config)
        check(_lib.lib.ijepa_config_preset(name.encode("utf-8"), c), "ijepa_config_preset")
        self = cls.__new__(cls)
        self._load_c(c)
        self.update(**overrides)
        return self

    @classmethod
    def presets(cls):
        return PRESETS

    @classmethod
    def from_c(cls, c):
        """From an ``_lib.ijepa_config`` struct."""
        self = cls.__new__(cls)
        self._load_c(c)
        return self

    @classmethod
    def from_dict(cls, d):
        """Library default overridden by the dict's fields (e.g. a checkpoint's ijepa.config)."""
        d = dict(d)
        for k in ("warmup_steps", "total_steps", "seed"):
            if isinstance(d.get(k), str):
                d[k] = int(d[k])
        return cls(**d)

    def _load_c(self, c):
        """The fields c.struct_size covers; the others (a struct from an older caller) keep
        the library's defaults, as the library itself reads such a struct."""
        default = None
        for name, kind in _FIELDS.items():
            field = getattr(_lib.ijepa_config, name)
            if field.offset + field.size <= c.struct_size:
                v = getattr(c, name)
            else:
                if default is None:
                    default = _lib.ijepa_config(struct_size=ctypes_sizeof_config)
                    check(_lib.lib.ijepa_config_default(default), "ijepa_config_default")
                v = getattr(default, name)
            if kind == "pair":
                v = (_f32(v[0]), _f32(v[1]))
            elif kind == "f32":
                v = _f32(v)
            elif kind == "bool":
                v = bool(v)
            else:
                v = int(v)
            object.__setattr__(self, name, v)

    # -- fields -----------------------------------------------------------------------------
    def __setattr__(self, name, value):
        object.__setattr__(self, name, _coerce(name, value))

    def update(self, **overrides):
        """Sets several fields (validated all first: on error nothing changes). Returns self."""
        new = {k: _coerce(k, v) for k, v in overrides.items()}
        for k, v in new.items():
            object.__setattr__(self, k, v)
        return self

    def replace(self, **overrides):
        """A copy with some fields changed."""
        return self.copy().update(**overrides)

    def copy(self):
        c = Config.__new__(Config)
        for k in FIELDS:
            object.__setattr__(c, k, getattr(self, k))
        return c

    def to_dict(self):
        """Field -> value (pairs as lists), in struct order."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                ((k, getattr(self, k)) for k in FIELDS)}

    def to_c(self):
        """A new ``_lib.ijepa_config`` struct (struct_size set)."""
        c = _lib.ijepa_config()
        c.struct_size = ctypes_sizeof_config
        for name, kind in _FIELDS.items():
            v = getattr(self, name)
            if kind == "pair":
                getattr(c, name)[0] = v[0]
                getattr(c, name)[1] = v[1]
            elif kind == "bool":
                setattr(c, name, 1 if v else 0)
            else:
                setattr(c, name, v)
        return c

    # -- derived ----------------------------------------------------------------------------
    @property
    def grid_size(self):
        return self.image_size // self.patch_size

    @property
    def num_patches(self):
        return self.grid_size ** 2

    def __eq__(self, other):
        if not isinstance(other, Config):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in FIELDS)

    __hash__ = None

    def __repr__(self):
        return "Config(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in FIELDS)

    def __reduce__(self):
        return (Config.from_dict, (self.to_dict(),))


import ctypes as _ctypes  # noqa: E402

ctypes_sizeof_config = _ctypes.sizeof(_lib.ijepa_config)

