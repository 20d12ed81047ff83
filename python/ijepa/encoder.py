"""``ijepa.Encoder``: a pretrained I-JEPA encoder for inference (libijepa checkpoints, official
safetensors, Hugging Face ``IJepaModel`` and timm files), and ``ijepa.preprocess``: the
ImageNet evaluation transform (Resize + CenterCrop + ToTensor + Normalize) on decoded RGB
images."""

from __future__ import annotations

import ctypes
import numbers
import sys
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from . import _lib
from .errors import InvalidArgumentError, ShapeError, StateError, check, as_array
from .model import Model, _OwnsHandle, _need, _path_bytes

__all__ = ["Encoder", "Preprocess", "preprocess", "SOURCES", "POS_INTERPOLATIONS"]

_FLOAT_P = ctypes.POINTER(ctypes.c_float)
_U8_P = ctypes.POINTER(ctypes.c_uint8)
_I32_MAX = (1 << 31) - 1
_I32_MIN = -(1 << 31)

_ENCODERS = {"target": _lib.IJEPA_TARGET_ENCODER, "context": _lib.IJEPA_CONTEXT_ENCODER}
_WHICH_NAMES = {_lib.IJEPA_TARGET_ENCODER: "target", _lib.IJEPA_CONTEXT_ENCODER: "context", -1: None}
#: ijepa_encoder_info.source -> name
SOURCES = {_lib.IJEPA_SOURCE_MODEL: "model", _lib.IJEPA_SOURCE_CHECKPOINT: "checkpoint",
           _lib.IJEPA_SOURCE_OFFICIAL: "official", _lib.IJEPA_SOURCE_HF: "hf",
           _lib.IJEPA_SOURCE_TIMM: "timm"}
#: pos_interpolation names -> IJEPA_POS_*
POS_INTERPOLATIONS = {"auto": _lib.IJEPA_POS_AUTO, "bicubic": _lib.IJEPA_POS_BICUBIC,
                      "bicubic_aa": _lib.IJEPA_POS_BICUBIC_AA}
_POS_NAMES = {v: k for k, v in POS_INTERPOLATIONS.items()}


def _int32(v, name, allow_none=False):
    """An integer that fits the C int32_t it is passed as (ctypes would wrap it silently).
    Its range beyond that is the library's to check."""
    if v is None and allow_none:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise InvalidArgumentError("%s must be an integer, got %r" % (name, v))
    v = int(v)
    if not _I32_MIN <= v <= _I32_MAX:
        raise InvalidArgumentError("%s does not fit a 32-bit int: %d" % (name, v))
    return v


def _choice(v, table, name):
    key = v.lower() if isinstance(v, str) else v
    if key not in table:
        raise InvalidArgumentError("%s must be one of %s, got %r"
                                   % (name, ", ".join('"%s"' % k for k in table), v))
    return table[key]


# ---- image inputs -------------------------------------------------------------------------------
def _pil_image_class():
    """PIL.Image.Image if Pillow has been imported by someone (never imported here: an object
    can only be a PIL image if its module is loaded)."""
    m = sys.modules.get("PIL.Image")
    return getattr(m, "Image", None) if m is not None else None


def _is_pil(x):
    cls = _pil_image_class()
    return cls is not None and isinstance(x, cls)


def _rgb8(image, what="image"):
    """A PIL image or a uint8 array [H, W, 3] -> C-contiguous uint8 [H, W, 3]."""
    if _is_pil(image):
        a = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    elif isinstance(image, np.ndarray):
        a = image
    else:
        raise InvalidArgumentError("%s must be a uint8 array [height, width, 3] or a PIL image, "
                                   "got %s" % (what, type(image).__name__))
    if a.dtype != np.uint8:
        raise InvalidArgumentError("%s must be uint8 RGB [height, width, 3], got dtype %s (float "
                                   "images go to encode() as normalized NCHW arrays)"
                                   % (what, a.dtype))
    if a.ndim != 3 or a.shape[2] != 3:
        raise ShapeError("%s must be uint8 RGB [height, width, 3], got shape %s" % (what, a.shape))
    if max(a.shape[:2]) > _I32_MAX:
        raise ShapeError("%s is too large: %s" % (what, a.shape))
    return np.ascontiguousarray(a)


def _rgb8_batch(images):
    """uint8 [H, W, 3] / [B, H, W, 3], a PIL image, or a list/tuple of those (sizes may differ)
    -> (list of [H, W, 3] arrays or PIL images, single). None if `images` is not of that kind."""
    if _is_pil(images):
        return [images], True
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        if images.ndim == 3:
            return [images], True
        if images.ndim == 4:
            return list(images), False
        raise ShapeError("uint8 images must be RGB [height, width, 3] or [batch, height, width, 3], "
                         "got shape %s" % (images.shape,))
    if isinstance(images, (list, tuple)) and images and all(
            _is_pil(x) or (isinstance(x, np.ndarray) and x.dtype == np.uint8) for x in images):
        return list(images), False
    return None


def _run_preprocess(fn, rgb, c, out):
    h, w = rgb.shape[:2]
    check(fn(rgb.ctypes.data_as(_U8_P), h, w, ctypes.byref(c), out.ctypes.data_as(_FLOAT_P)),
          "ijepa_preprocess_rgb8")


# ---- preprocessing ------------------------------------------------------------------------------
def _triple(v, name):
    try:
        t = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise InvalidArgumentError("%s must be 3 numbers (R, G, B), got %r" % (name, v))
    if len(t) != 3:
        raise InvalidArgumentError("%s must be 3 numbers (R, G, B), got %r" % (name, v))
    return t


@dataclass(frozen=True)
class Preprocess:
    """Settings of :func:`ijepa.preprocess` (the C ``ijepa_preprocess``): torchvision's
    ``Resize(resize)`` (shorter side; 0: no resize) + ``CenterCrop(crop)`` + ``ToTensor`` +
    ``Normalize(mean, std)``. Fields left as None take ``ijepa_preprocess_init(crop)``'s
    defaults: ``resize = crop * 8 // 7`` (256 for 224) and the ImageNet mean and std.
    Calling it applies it: ``Preprocess(224)(rgb)``."""

    crop: int = 224
    resize: int = None
    mean: tuple = None
    std: tuple = None
    _c: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        crop = _int32(self.crop, "crop")
        c = _lib.ijepa_preprocess(struct_size=ctypes.sizeof(_lib.ijepa_preprocess))
        check(_need("ijepa_preprocess_init")(ctypes.byref(c), crop), "ijepa_preprocess_init")
        resize = c.resize if self.resize is None else _int32(self.resize, "resize")
        mean = tuple(float(x) for x in c.mean) if self.mean is None else _triple(self.mean, "mean")
        std = tuple(float(x) for x in c.std) if self.std is None else _triple(self.std, "std")
        c.resize, c.crop = resize, crop
        c.mean[:], c.std[:] = mean, std
        for k, v in (("crop", crop), ("resize", resize), ("mean", mean), ("std", std), ("_c", c)):
            object.__setattr__(self, k, v)

    @classmethod
    def defaults(cls, crop):
        """``ijepa_preprocess_init(crop)``: the ImageNet evaluation settings for crop x crop."""
        return cls(crop)

    def to_c(self):
        """A copy of the C struct."""
        return _lib.ijepa_preprocess.from_buffer_copy(self._c)

    def replace(self, **changes):
        """A copy with some fields changed (resize, mean and std keep their values: pass
        resize=None to take the new crop's default)."""
        d = self.to_dict()
        d.update(changes)
        return Preprocess(**d)

    def to_dict(self):
        return dict(crop=self.crop, resize=self.resize, mean=self.mean, std=self.std)

    def __call__(self, images):
        return _preprocess(images, self)


def _preprocess(images, settings):
    """-> float32 [3, crop, crop] or [B, 3, crop, crop]."""
    fn = _need("ijepa_preprocess_rgb8")
    got = _rgb8_batch(images)
    if got is None:
        if isinstance(images, np.ndarray):
            _rgb8(images, "images")  # raises the dtype/shape error
        raise InvalidArgumentError("images must be a uint8 array [height, width, 3] or "
                                   "[batch, height, width, 3], a PIL image, or a list of those; got "
                                   "%s" % type(images).__name__)
    items, single = got
    c = settings._c
    n = 3 * settings.crop * settings.crop  # the output of this size; crop itself is the library's
    out = np.empty((len(items), n), dtype=np.float32)
    for i, item in enumerate(items):
        _run_preprocess(fn, _rgb8(item, "images[%d]" % i if not single else "image"), c, out[i])
    out = out.reshape((len(items), 3, settings.crop, settings.crop))
    return out[0] if single else out


def preprocess(image, crop=224, resize=None, mean=None, std=None):
    """The usual ImageNet evaluation transform on decoded RGB images, as torchvision's
    ``Resize(resize) + CenterCrop(crop) + ToTensor() + Normalize(mean, std)`` on a PIL image
    (the library's ``ijepa_preprocess_rgb8``; its antialiased bilinear resize is computed in
    float, so it agrees with PIL's within 1/255 before normalization).

    image: uint8 ``[H, W, 3]`` (-> float32 ``[3, crop, crop]``), ``[B, H, W, 3]`` or a list of
    arrays / PIL images of any sizes (-> ``[B, 3, crop, crop]``), or a PIL image (converted to
    RGB). ``resize`` (shorter side; 0: none), ``mean`` and ``std`` default to
    ``ijepa_preprocess_init(crop)``: crop * 8 // 7 and the ImageNet statistics."""
    return _preprocess(image, Preprocess(crop, resize, mean, std))


# ---- the encoder --------------------------------------------------------------------------------
class _Handle:
    """Owns one ``ijepa_encoder *``; freed by close() or when the Encoder is collected."""

    __slots__ = ("ptr", "free", "__weakref__")

    def __init__(self, ptr):
        self.ptr = ptr
        self.free = weakref.finalize(self, _lib.lib.ijepa_encoder_free, ptr)
        # a daemon thread might still be inside a call at interpreter exit: leave it to the OS
        self.free.atexit = False


def _info_dict(i):
    return dict(
        image_size=int(i.image_size), patch_size=int(i.patch_size), in_chans=int(i.in_chans),
        embed_dim=int(i.embed_dim), depth=int(i.depth), num_heads=int(i.num_heads),
        mlp_hidden=int(i.mlp_hidden), source=SOURCES.get(int(i.source), int(i.source)),
        which_encoder=_WHICH_NAMES.get(int(i.which_encoder), int(i.which_encoder)),
        n_threads=int(i.n_threads),
        pos_interpolation=_POS_NAMES.get(int(i.pos_interpolation), int(i.pos_interpolation)),
        layer_norm_eps=float(i.layer_norm_eps))


class Encoder(_OwnsHandle):
    """One pretrained ViT encoder (weights only: no predictor, no optimizer state), for
    feature extraction.

    Create it with :meth:`Encoder.load` (a libijepa checkpoint, an official-names safetensors
    file, or a Hugging Face / timm model directory or ``model.safetensors``) or
    :meth:`Encoder.from_model` (a copy of a live :class:`ijepa.Model`'s encoder);
    ``Encoder(path, **options)`` is ``Encoder.load(path, **options)``.

    Use it as a context manager or call :meth:`close`; afterwards every method raises
    :class:`ijepa.StateError`. Calls on one encoder are serialized by a lock (the library
    allows one thread at a time per encoder); distinct encoders run in parallel (the GIL is
    released during library calls).
    """

    def __init__(self, path, *, encoder="target", num_heads=None, n_threads=None,
                 pos_interpolation="auto"):
        self._open(path, encoder, num_heads, n_threads, pos_interpolation)

    @classmethod
    def load(cls, path, *, encoder="target", num_heads=None, n_threads=None,
             pos_interpolation="auto"):
        """Loads an encoder from ``path`` (str or os.PathLike): a file, or a Hugging Face model
        directory (``model.safetensors`` + ``config.json``; timm's hub layout too). The format is
        recognised from the content.

        encoder: "target" (default, the EMA encoder the paper evaluates) or "context", for files
        that hold both (libijepa checkpoints, official files); files with one encoder (Hugging
        Face, timm, bare official keys) ignore it.
        num_heads: None reads it from the file's metadata or config.json; files without either
        (official safetensors) need it.
        n_threads: None or <= 0: all cores.
        pos_interpolation: how the position table is resized for other image sizes: "auto" (as
        the source's own code: "bicubic_aa" for timm, "bicubic" otherwise), "bicubic"
        (transformers' interpolate_pos_encoding) or "bicubic_aa" (timm's resample_abs_pos_embed).
        """
        self = cls.__new__(cls)
        self._open(path, encoder, num_heads, n_threads, pos_interpolation)
        return self

    def _open(self, path, encoder, num_heads, n_threads, pos_interpolation):
        p = _path_bytes(path)
        which = _choice(encoder, _ENCODERS, "encoder")
        heads = _int32(num_heads, "num_heads", allow_none=True)
        threads = _int32(n_threads, "n_threads", allow_none=True)
        pos = _choice(pos_interpolation, POS_INTERPOLATIONS, "pos_interpolation")
        load = _need("ijepa_encoder_load")
        opts = _lib.ijepa_encoder_options(struct_size=ctypes.sizeof(_lib.ijepa_encoder_options))
        check(_need("ijepa_encoder_options_init")(ctypes.byref(opts)), "ijepa_encoder_options_init")
        opts.which_encoder = which
        if heads is not None:
            opts.num_heads = heads
        if threads is not None:
            opts.n_threads = threads
        opts.pos_interpolation = pos
        out = ctypes.c_void_p()
        check(load(p, ctypes.byref(opts), ctypes.byref(out)), "ijepa_encoder_load")
        self._adopt(out.value)

    @classmethod
    def from_model(cls, model, encoder="target"):
        """A copy of ``model``'s "target" (EMA) or "context" encoder: later training steps do not
        change it. Its thread count is the model's."""
        if not isinstance(model, Model):
            raise InvalidArgumentError("model must be an ijepa.Model, got %s"
                                       % type(model).__name__)
        which = _choice(encoder, _ENCODERS, "encoder")
        fn = _need("ijepa_encoder_from_model")
        out = ctypes.c_void_p()
        with model._lock:
            check(fn(model._ptr(), which, ctypes.byref(out)), "ijepa_encoder_from_model")
        self = cls.__new__(cls)
        self._adopt(out.value)
        return self

    def save(self, path):
        """Writes the encoder as a libijepa encoder file at ``path`` (str or os.PathLike),
        atomically. :meth:`load` maps such a file instead of reading it: the weights are the
        file's page-cache pages, nothing is copied or packed, so the first features come
        right after loading. Do not truncate or rewrite the file in place while an encoder
        maps it (replace it by renaming, as this method does): the process would be killed."""
        p = _path_bytes(path)
        fn = _need("ijepa_encoder_save")
        with self._lock:
            check(fn(self._ptr(), p), "ijepa_encoder_save")

    def _adopt(self, ptr):
        self._handle = _Handle(ptr)
        self._lock = threading.RLock()
        self._info = self._read_info()

    def _read_info(self):
        i = _lib.ijepa_encoder_info()
        i.struct_size = ctypes.sizeof(i)
        check(_need("ijepa_encoder_get_info")(self._ptr(), ctypes.byref(i)),
              "ijepa_encoder_get_info")
        return _info_dict(i)

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self):
        """Frees the encoder (idempotent); every later use raises :class:`ijepa.StateError`."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            h, self._handle = getattr(self, "_handle", None), None
            if h is not None:
                h.free()

    _pickle_advice = "load it again from its file"

    def __repr__(self):
        if self.closed:
            return "<ijepa.Encoder (closed)>"
        i = self._info
        which = "" if i["which_encoder"] is None else " %s" % i["which_encoder"]
        return ("<ijepa.Encoder %s%s, %dpx/%d, %d ch, %d x %d, %d heads>"
                % (i["source"], which, i["image_size"], i["patch_size"], i["in_chans"],
                   i["embed_dim"], i["depth"], i["num_heads"]))

    def _ptr(self):
        h = getattr(self, "_handle", None)
        if h is None:
            raise StateError("the encoder is closed")
        return h.ptr

    # -- properties ---------------------------------------------------------------------------
    def _get(self, key):
        self._ptr()
        return self._info[key]

    @property
    def info(self):
        """Everything ``ijepa_encoder_get_info`` says, as a dict (source, which_encoder and
        pos_interpolation as names)."""
        self._ptr()
        return dict(self._info)

    image_size = property(lambda self: self._get("image_size"),
                          doc="The weights' image size (grid * patch_size); other sizes work too.")
    patch_size = property(lambda self: self._get("patch_size"))
    in_chans = property(lambda self: self._get("in_chans"))
    embed_dim = property(lambda self: self._get("embed_dim"))
    depth = property(lambda self: self._get("depth"))
    num_heads = property(lambda self: self._get("num_heads"))
    mlp_hidden = property(lambda self: self._get("mlp_hidden"))
    source = property(lambda self: self._get("source"),
                      doc='"model", "checkpoint", "official", "hf" or "timm".')
    which_encoder = property(lambda self: self._get("which_encoder"),
                             doc='"target", "context", or None when the file does not say (HF '
                                 'and timm releases hold the official context encoder).')
    pos_interpolation = property(lambda self: self._get("pos_interpolation"),
                                 doc='"bicubic" or "bicubic_aa" (resolved from "auto").')
    layer_norm_eps = property(lambda self: self._get("layer_norm_eps"))

    @property
    def n_threads(self):
        """Threads used (the resolved count); set it to <= 0 for all cores."""
        return self._get("n_threads")

    @n_threads.setter
    def n_threads(self, n):
        n = _int32(n, "n_threads")
        fn = _need("ijepa_encoder_set_n_threads")
        with self._lock:
            check(fn(self._ptr(), n), "ijepa_encoder_set_n_threads")
            self._info = self._read_info()

    def num_tokens(self, height, width):
        """Tokens per image of height x width pixels: (height // patch) * (width // patch)."""
        h, w = _int32(height, "height"), _int32(width, "width")
        fn = _need("ijepa_encoder_num_tokens")
        with self._lock:
            n = fn(self._ptr(), h, w)
            if n < 0:
                check(_lib.IJEPA_ERR_SHAPE, "ijepa_encoder_num_tokens")
        return int(n)

    # -- inputs -------------------------------------------------------------------------------
    def default_preprocess(self):
        """The preprocessing of uint8 / PIL inputs: ``Preprocess(image_size)`` (ImageNet
        evaluation: resize to image_size * 8 // 7, center crop, ImageNet mean and std)."""
        return Preprocess(self._get("image_size"))

    def _inputs(self, images, preprocess):
        """-> (batch, height, width, single, chunk(i0, i1) -> contiguous float32 [b, C, H, W])."""
        self._ptr()
        C = self._info["in_chans"]
        got = _rgb8_batch(images)
        if got is not None:
            items, single = got
            if preprocess is None:
                settings = self.default_preprocess()
            elif isinstance(preprocess, Preprocess):
                settings = preprocess
            else:
                raise InvalidArgumentError("preprocess must be an ijepa.Preprocess or None, got %s"
                                           % type(preprocess).__name__)
            if C != 3:
                raise ShapeError("uint8 and PIL images are RGB (3 channels); this encoder takes %d "
                                 "channels: pass normalized float32 [batch, %d, height, width]"
                                 % (C, C))
            fn = _need("ijepa_preprocess_rgb8")
            S = settings.crop

            def chunk(i0, i1):
                out = np.empty((i1 - i0, 3 * S * S), dtype=np.float32)
                for i in range(i0, i1):
                    _run_preprocess(fn, _rgb8(items[i], "image" if single else "images[%d]" % i),
                                    settings._c, out[i - i0])
                return out.reshape((i1 - i0, 3, S, S))
            return len(items), S, S, single, chunk

        if preprocess is not None:
            raise InvalidArgumentError("preprocess applies to uint8 and PIL images only; float "
                                       "images must already be normalized")
        a = as_array(images)
        if a.dtype.kind != "f":
            raise InvalidArgumentError(
                "images must be float (normalized NCHW [batch, %d, height, width] or [%d, height, "
                "width]), or uint8 RGB [height, width, 3] / [batch, height, width, 3], or PIL "
                "images; got dtype %s" % (C, C, a.dtype))
        shape = a.shape
        if a.ndim == 3:
            a, single = a[None], True
        elif a.ndim == 4:
            single = False
        else:
            raise ShapeError("float images must be NCHW [batch, %d, height, width] or [%d, height, "
                             "width], got shape %s" % (C, C, a.shape))
        if a.shape[1] != C:
            raise ShapeError("images have %d channels, the encoder takes %d (float images are "
                             "NCHW [batch, %d, height, width]); got shape %s"
                             % (a.shape[1], C, C, shape))
        B, _, H, W = a.shape
        if max(B, H, W) > _I32_MAX:
            raise ShapeError("images are too large: %s" % (a.shape,))

        def chunk(i0, i1):
            return np.ascontiguousarray(a[i0:i1], dtype=np.float32)
        return B, H, W, single, chunk

    @staticmethod
    def _ranges(B, batch_size):
        if batch_size is None:
            step = max(B, 1)
        else:
            step = _int32(batch_size, "batch_size")
            if step < 1:
                raise InvalidArgumentError("batch_size must be >= 1, got %d" % step)
        if B == 0:
            return [(0, 0)]  # the library says what it makes of an empty batch
        return [(i, min(i + step, B)) for i in range(0, B, step)]

    # -- inference ----------------------------------------------------------------------------
    def encode(self, images, *, tokens=False, batch_size=None, preprocess=None):
        """Encodes images. Returns the mean-pooled features float32 ``[B, D]`` (the paper's
        evaluation feature) or, with ``tokens=True``, ``(pooled, tokens)`` with tokens
        ``[B, n, D]`` after the final norm (n = :meth:`num_tokens` (H, W)).

        images:
          * float arrays, normalized NCHW ``[B, in_chans, H, W]`` or ``[in_chans, H, W]`` (one
            image: the outputs have no batch axis); any H, W of at least one patch (another
            grid than the weights' resizes the position table); other float dtypes and
            non-contiguous arrays are converted;
          * uint8 RGB ``[H, W, 3]`` / ``[B, H, W, 3]``, a PIL image, or a list of arrays / PIL
            images of any sizes: preprocessed by the library with ``preprocess`` (an
            :class:`ijepa.Preprocess`; default :meth:`default_preprocess`).
        batch_size: images per library call (bounds the memory of preprocessed inputs; the
        library itself already runs large batches in chunks). None: all at once."""
        B, H, W, single, chunk = self._inputs(images, preprocess)
        ranges = self._ranges(B, batch_size)
        fn = _need("ijepa_encoder_encode")
        D = self._info["embed_dim"]
        pooled = np.empty((B, D), dtype=np.float32)
        toks = None
        if tokens:
            n = self.num_tokens(H, W)
            toks = np.empty((B, n, D), dtype=np.float32)
        for i0, i1 in ranges:
            x = chunk(i0, i1)
            p = pooled[i0:i1]
            t = toks[i0:i1] if toks is not None else None
            with self._lock:
                check(fn(self._ptr(), x.ctypes.data_as(_FLOAT_P), i1 - i0, H, W,
                         t.ctypes.data_as(_FLOAT_P) if t is not None else None,
                         p.ctypes.data_as(_FLOAT_P)), "ijepa_encoder_encode")
        if single:
            pooled = pooled[0]
            toks = toks[0] if toks is not None else None
        return (pooled, toks) if tokens else pooled

    def encode_layers(self, images, last_k, *, batch_size=None, preprocess=None):
        """Features of the last ``last_k`` blocks (the paper's last-4 probe): each block's output
        through the final norm, mean-pooled; float32 ``[B, last_k, D]`` (earliest block first;
        ``[last_k, D]`` for one image). ``last_k`` in 1..depth (checked by the library);
        ``last_k=1`` is :meth:`encode`'s pooled output. Inputs as in :meth:`encode`."""
        k = _int32(last_k, "last_k")
        B, H, W, single, chunk = self._inputs(images, preprocess)
        ranges = self._ranges(B, batch_size)
        fn = _need("ijepa_encoder_encode_layers")
        D, depth = self._info["embed_dim"], self._info["depth"]
        # last_k outside 1..depth is the library's to refuse (before it writes anything, as
        # ijepa_encode_layers); the buffer is then a placeholder of the largest valid size
        out = np.empty((B, k if 1 <= k <= depth else max(depth, 1), D), dtype=np.float32)
        for i0, i1 in ranges:
            x = chunk(i0, i1)
            o = out[i0:i1]
            with self._lock:
                check(fn(self._ptr(), x.ctypes.data_as(_FLOAT_P), i1 - i0, H, W, k,
                         o.ctypes.data_as(_FLOAT_P)), "ijepa_encoder_encode_layers")
        return out[0] if single else out
