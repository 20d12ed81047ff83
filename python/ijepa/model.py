"""``ijepa.Model``: an I-JEPA model (context encoder, predictor, target encoder, AdamW state)."""

from __future__ import annotations

import ctypes
import numbers
import os
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from . import _lib
from .config import Config
from .errors import InvalidArgumentError, ShapeError, StateError, check, as_array
from .masks import Masks, RaggedMasks

__all__ = ["Model", "StepStats", "BUFFERS"]

#: flat_buffer() names -> IJEPA_BUF_*
BUFFERS = {
    "params": _lib.IJEPA_BUF_PARAMS,
    "grads": _lib.IJEPA_BUF_GRADS,
    "target": _lib.IJEPA_BUF_TARGET,
    "adam_m": _lib.IJEPA_BUF_ADAM_M,
    "adam_v": _lib.IJEPA_BUF_ADAM_V,
}
_ENCODERS = {"target": _lib.IJEPA_TARGET_ENCODER, "context": _lib.IJEPA_CONTEXT_ENCODER}
_I32_MAX = (1 << 31) - 1
_FLOAT_P = ctypes.POINTER(ctypes.c_float)


@dataclass(frozen=True)
class StepStats:
    """What one optimizer step did (``ijepa_step_stats``)."""
    step: int            # optimizer steps taken, after this one
    loss: float
    lr: float
    weight_decay: float
    ema_momentum: float
    grad_norm: float

    @classmethod
    def from_c(cls, s):
        return cls(int(s.step), float(s.loss), float(s.lr), float(s.weight_decay),
                   float(s.ema_momentum), float(s.grad_norm))


def _encoder(encoder):
    key = encoder.lower() if isinstance(encoder, str) else encoder
    if key not in _ENCODERS:
        raise InvalidArgumentError('encoder must be "target" or "context", got %r' % (encoder,))
    return key


class _Handle:
    """Owns one ``ijepa_model *``. It is freed when the last owner lets go: the Model (until
    close()) and every numpy view of its buffers hold a reference, so a view can never point
    at freed memory."""

    __slots__ = ("ptr", "__weakref__")

    def __init__(self, ptr):
        self.ptr = ptr
        f = weakref.finalize(self, _lib.lib.ijepa_model_free, ptr)
        # At interpreter exit a daemon thread might still be inside a call on this model:
        # leave the memory to the OS rather than free it under that thread.
        f.atexit = False


class _BufferOwner:
    """The ``base`` of every buffer view: exposes the C memory and keeps the model alive."""

    __slots__ = ("_handle", "__array_interface__", "which")

    def __init__(self, handle, address, n_floats, which):
        self._handle = handle
        self.which = which
        self.__array_interface__ = {"data": (address, False), "shape": (n_floats,),
                                    "typestr": "<f4", "version": 3}


def _need(name):
    """The library function, or StateError when the loaded library predates it."""
    if not _lib.has_function(name):
        raise StateError("the loaded libijepa (%s) has no %s; update the library"
                         % (_lib.library_path, name))
    return getattr(_lib.lib, name)


def _path_bytes(path, what="path"):
    try:
        p = os.fsencode(path)
    except TypeError:
        raise InvalidArgumentError("%s must be a str or os.PathLike, got %s"
                                   % (what, type(path).__name__))
    if not p:
        raise InvalidArgumentError("%s is empty" % what)
    if b"\0" in p:
        raise InvalidArgumentError("%s contains a NUL byte" % what)
    return p


class _OwnsHandle:
    """What the classes owning a library handle share: ``closed``, the context manager (closes
    on exit) and a clear refusal to pickle. They define ``_handle``, ``_ptr()`` and ``close()``."""

    _pickle_advice = ""

    @property
    def closed(self):
        return getattr(self, "_handle", None) is None

    def __enter__(self):
        self._ptr()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __reduce__(self):
        raise TypeError("ijepa.%s cannot be pickled; %s" % (type(self).__name__, self._pickle_advice))


class Model(_OwnsHandle):
    """An I-JEPA model: context encoder, predictor, target (EMA) encoder and AdamW state.

    ``Model(config)`` creates one initialized as the official training path does, from
    ``config.seed``; ``config`` is an :class:`ijepa.Config`, a preset name, or None (the
    default config). Keyword arguments override config fields:
    ``Model("vit_small", seed=3, n_threads=8)``.

    Use it as a context manager or call :meth:`close`. After close every method raises
    :class:`ijepa.StateError`. Calls on one model are serialized by a lock, so sharing a model
    between Python threads is safe (but not parallel); distinct models run in parallel (the
    GIL is released during library calls).

    Buffer views (:meth:`parameters`, :meth:`flat_buffer`, ...) are zero-copy numpy arrays
    into the model's memory. Each view keeps that memory alive: after :meth:`close` (or when
    the Model object is garbage collected) the C model is freed only once the last view is
    gone. Views are writable; writing into ``parameters()`` / ``target_parameters()`` is how
    weights are set. Do not write into a view while another thread runs a call on the model.
    """

    def __init__(self, config=None, **overrides):
        if config is None:
            cfg = Config(**overrides)
        elif isinstance(config, str):
            cfg = Config.preset(config, **overrides)
        elif isinstance(config, Config):
            cfg = config.replace(**overrides)
        else:
            raise InvalidArgumentError("config must be an ijepa.Config, a preset name or None, "
                                       "got %s" % type(config).__name__)
        if cfg.ragged_context:
            _need(_lib.RAGGED[0])  # an older library would silently ignore the field
        c = cfg.to_c()
        out = ctypes.c_void_p()
        check(_lib.lib.ijepa_model_create(ctypes.byref(c), ctypes.byref(out)), "ijepa_model_create")
        self._adopt(out.value)

    def _adopt(self, ptr):
        self._handle = _Handle(ptr)
        self._lock = threading.RLock()
        self._flat = {}
        c = _lib.ijepa_config(struct_size=ctypes.sizeof(_lib.ijepa_config))
        check(_lib.lib.ijepa_model_get_config(ptr, ctypes.byref(c)), "ijepa_model_get_config")
        self._config = Config.from_c(c)
        self._n_threads = self._config.n_threads
        self._num_patches = int(_lib.lib.ijepa_model_num_patches(ptr))
        self._embed_dim = int(_lib.lib.ijepa_model_embed_dim(ptr))
        self._layouts = {}
        for which in (_lib.IJEPA_BUF_PARAMS, _lib.IJEPA_BUF_TARGET):
            n = _lib.lib.ijepa_model_num_tensors(ptr, which)
            if n < 0:
                check(_lib.IJEPA_ERR_INVALID_ARGUMENT, "ijepa_model_num_tensors")
            infos = []
            t = _lib.ijepa_tensor_info()
            for i in range(n):
                check(_lib.lib.ijepa_model_tensor_info(ptr, which, i, ctypes.byref(t)),
                      "ijepa_model_tensor_info")
                shape = tuple(int(t.shape[d]) for d in range(t.ndim))
                infos.append((t.name.decode("utf-8"), shape, int(t.offset)))
            self._layouts[which] = tuple(infos)

    @classmethod
    def load(cls, path, n_threads=None):
        """Creates a model from a checkpoint written by :meth:`save` (config from its metadata),
        restoring the training state when the file has it. ``n_threads`` overrides the saved
        thread count."""
        p = _path_bytes(path)
        out = ctypes.c_void_p()
        check(_lib.lib.ijepa_model_load(p, ctypes.byref(out)), "ijepa_model_load")
        self = cls.__new__(cls)
        self._adopt(out.value)
        if n_threads is not None:
            self.n_threads = n_threads
        return self

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self):
        """Releases the model (idempotent). Outstanding buffer views keep the memory alive
        until they are gone; every other use of the model raises :class:`ijepa.StateError`."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            self._handle = None
            self._flat = {}

    _pickle_advice = "use save() / Model.load()"

    def __repr__(self):
        if self.closed:
            return "<ijepa.Model (closed)>"
        c = self._config
        return ("<ijepa.Model %dpx/%d, %d x %d, predictor %d x %d, step %d>"
                % (c.image_size, c.patch_size, c.embed_dim, c.depth, c.pred_embed_dim,
                   c.pred_depth, self.step))

    def _ptr(self):
        h = getattr(self, "_handle", None)
        if h is None:
            raise StateError("the model is closed")
        return h.ptr

    # -- properties ---------------------------------------------------------------------------
    @property
    def config(self):
        """A copy of the model's config (n_threads is the current thread count)."""
        self._ptr()
        return self._config.replace(n_threads=self._n_threads)

    @property
    def num_patches(self):
        self._ptr()
        return self._num_patches

    @property
    def embed_dim(self):
        self._ptr()
        return self._embed_dim

    @property
    def step(self):
        """Optimizer steps taken (restored by Model.load from a training-state checkpoint)."""
        return int(_lib.lib.ijepa_model_step(self._ptr()))

    @property
    def n_threads(self):
        """Threads used by this model's kernels; <= 0 means all cores."""
        self._ptr()
        return self._n_threads

    @n_threads.setter
    def n_threads(self, n):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise InvalidArgumentError("n_threads must be an integer, got %r" % (n,))
        n = int(n)
        if not -(1 << 31) <= n < (1 << 31):
            raise InvalidArgumentError("n_threads must fit in 32 bits, got %d" % n)
        # (the library owns the rule: <= 0 all cores, at most 1024)
        with self._lock:
            check(_lib.lib.ijepa_model_set_n_threads(self._ptr(), n), "ijepa_model_set_n_threads")
            self._n_threads = n

    # -- argument checks ------------------------------------------------------------------------
    def _images(self, images):
        self._ptr()
        a = as_array(images)
        if a.dtype.kind != "f":
            raise InvalidArgumentError("images must be a floating-point array (float32 NCHW), got "
                                       "dtype %s" % a.dtype)
        c = self._config
        want = (c.in_chans, c.image_size, c.image_size)
        if a.ndim != 4 or a.shape[1:] != want:
            raise ShapeError("images must have shape [batch, %d, %d, %d] (NCHW), got %s"
                             % (want + (a.shape,)))
        if a.shape[0] < 1 or a.shape[0] > _I32_MAX:
            raise ShapeError("the image batch must be >= 1, got shape %s" % (a.shape,))
        return np.ascontiguousarray(a, dtype=np.float32)

    def _masks(self, masks, batch):
        """None, a Masks or a RaggedMasks, checked against the model and the batch."""
        if masks is None:
            return None
        m = masks if isinstance(masks, RaggedMasks) else Masks.coerce(masks)
        k_enc = m.k_enc_max if isinstance(m, RaggedMasks) else m.k_enc
        c = self._config
        if m.batch != batch:
            raise ShapeError("masks have batch %d, the images %d" % (m.batch, batch))
        if m.num_enc != c.num_enc_masks:
            raise ShapeError("masks enc has %d masks, the model's num_enc_masks is %d"
                             % (m.num_enc, c.num_enc_masks))
        if m.num_pred != c.num_pred_masks:
            raise ShapeError("masks pred has %d masks, the model's num_pred_masks is %d"
                             % (m.num_pred, c.num_pred_masks))
        for name, k in (("enc", k_enc), ("pred", m.k_pred)):
            if k > self._num_patches:
                raise ShapeError("masks %s keeps %d patches, more than the %d there are"
                                 % (name, k, self._num_patches))
        return m

    # -- training -----------------------------------------------------------------------------
    def train_step(self, images, masks=None, micro_batch=None):
        """One official training step (schedules, forward, backward, AdamW, EMA).

        images: float32 NCHW array-like [B, in_chans, image_size, image_size], normalized.
        masks: None (sampled from the model's seeded generator; with ragged contexts when the
        config's ragged_context is set), an :class:`ijepa.Masks`, a pair (enc, pred) of
        integer arrays, or an :class:`ijepa.RaggedMasks` (every image keeps its own context
        length). On :class:`ijepa.NumericError` nothing changed.

        micro_batch: None (one forward/backward of all B images), or an int >= 1: gradient
        accumulation. The step's masks are one draw for all B images (the official cut to the
        batch minimum over all of them), the images run as micro-batches of at most
        ``micro_batch`` images, each taking its rows of the masks and adding its gradient
        weighted by its share of the batch, then one optimizer step: the same step as
        ``train_step(images, masks)`` to float rounding, with the activation memory of one
        micro-batch (``ijepa_train_step_accumulate[_ragged]``). The failure guarantees are
        those of a plain step.
        """
        if micro_batch is None:
            return self._train_step(images, masks)
        if isinstance(micro_batch, (bool, np.bool_)) or not isinstance(micro_batch, numbers.Integral):
            raise InvalidArgumentError("micro_batch must be an integer or None, got %r" % (micro_batch,))
        micro_batch = int(micro_batch)
        if not 1 <= micro_batch <= _I32_MAX:
            raise InvalidArgumentError("micro_batch must be >= 1, got %d" % micro_batch)
        x = self._images(images)
        m = self._masks(masks, x.shape[0])
        name = ("ijepa_train_step_accumulate_ragged" if isinstance(m, RaggedMasks)
                else "ijepa_train_step_accumulate")
        fn = _need(name)
        cm = m.to_c() if m is not None else None
        stats = _lib.ijepa_step_stats()
        with self._lock:
            check(fn(self._ptr(), x.ctypes.data_as(_FLOAT_P), x.shape[0], micro_batch,
                     ctypes.byref(cm) if cm is not None else None, ctypes.byref(stats)), name)
        return StepStats.from_c(stats)

    def _train_step(self, images, masks):
        x = self._images(images)
        m = self._masks(masks, x.shape[0])
        if isinstance(m, RaggedMasks):
            fn, name = _need("ijepa_train_step_ragged"), "ijepa_train_step_ragged"
        else:
            fn, name = _lib.lib.ijepa_train_step, "ijepa_train_step"
        cm = m.to_c() if m is not None else None
        stats = _lib.ijepa_step_stats()
        with self._lock:
            check(fn(self._ptr(), x.ctypes.data_as(_FLOAT_P), x.shape[0],
                     ctypes.byref(cm) if cm is not None else None, ctypes.byref(stats)), name)
        return StepStats.from_c(stats)

    def forward_backward(self, images, masks=None, *, weight=1.0, accumulate=False):
        """Forward and backward only; sets the gradient buffer. Returns this batch's loss.

        ``masks`` as in :meth:`train_step`. Between this and :meth:`optimizer_step` the
        gradients (``flat_buffer("grads")``) may be all-reduced across processes (data
        parallelism).

        Gradient accumulation by hand: the gradient buffer is set to ``weight`` x this batch's
        gradient, or with ``accumulate=True`` that is added to the gradients pending from the
        previous forward_backward of the same step (:class:`ijepa.StateError` if there are
        none: the first batch of a step does not accumulate). For micro-batch k of b_k images
        of a step of B, ``weight = b_k / B``; the masks of the micro-batches should be rows of
        one draw for the whole batch (``sample_masks(B)``, then ``masks.enc[:, i:j]``...), so
        the sum is the whole batch's gradient. ``weight`` must be finite and > 0. With the
        defaults this is the plain ``ijepa_forward_backward``; otherwise
        ``ijepa_forward_backward_accumulate[_ragged]``. On any failure no gradients are pending.
        """
        if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real):
            raise InvalidArgumentError("weight must be a real number, got %r" % (weight,))
        weight = float(weight)
        accumulate = bool(accumulate)
        plain = weight == 1.0 and not accumulate
        x = self._images(images)
        m = self._masks(masks, x.shape[0])
        ragged = isinstance(m, RaggedMasks)
        if plain:
            if ragged:
                fn, name = _need("ijepa_forward_backward_ragged"), "ijepa_forward_backward_ragged"
            else:
                fn, name = _lib.lib.ijepa_forward_backward, "ijepa_forward_backward"
            extra = ()
        else:
            name = ("ijepa_forward_backward_accumulate_ragged" if ragged
                    else "ijepa_forward_backward_accumulate")
            fn = _need(name)
            extra = (weight, 1 if accumulate else 0)
        cm = m.to_c() if m is not None else None
        loss = ctypes.c_float()
        with self._lock:
            check(fn(self._ptr(), x.ctypes.data_as(_FLOAT_P), x.shape[0],
                     ctypes.byref(cm) if cm is not None else None, *extra, ctypes.byref(loss)), name)
        return float(loss.value)

    def optimizer_step(self):
        """Schedules advance, AdamW with the current gradients, EMA update."""
        stats = _lib.ijepa_step_stats()
        with self._lock:
            check(_lib.lib.ijepa_optimizer_step(self._ptr(), ctypes.byref(stats)),
                  "ijepa_optimizer_step")
        return StepStats.from_c(stats)

    def set_schedule_override(self, lr=None, weight_decay=None, ema_momentum=None):
        """Overrides lr, weight decay and EMA momentum for the following steps. Each call sets
        all three: None (or a negative value) returns that quantity to its schedule."""
        vals = []
        for name, v in (("lr", lr), ("weight_decay", weight_decay), ("ema_momentum", ema_momentum)):
            if v is None:
                vals.append(-1.0)
                continue
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise InvalidArgumentError("%s must be a real number or None, got %r" % (name, v))
            vals.append(float(v))
        with self._lock:
            check(_lib.lib.ijepa_set_schedule_override(self._ptr(), *vals),
                  "ijepa_set_schedule_override")

    # -- masks --------------------------------------------------------------------------------
    def sample_masks(self, batch, ragged=False):
        """Samples one batch of masks from the model's seeded generator (advances it).

        ``ragged=False``: an :class:`ijepa.Masks` with the official collator's semantics
        (every context cut to the batch's shortest). ``ragged=True``: an
        :class:`ijepa.RaggedMasks` of the same draw (same blocks, same generator advance)
        without that cut, whatever the config's ragged_context."""
        if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, numbers.Integral):
            raise InvalidArgumentError("batch must be an integer, got %r" % (batch,))
        batch = int(batch)
        if not 1 <= batch <= _I32_MAX:
            raise InvalidArgumentError("batch must be >= 1, got %d" % batch)
        if ragged:
            return self._sample_ragged(batch)
        cm = _lib.ijepa_masks()
        with self._lock:
            check(_lib.lib.ijepa_masks_sample(self._ptr(), batch, ctypes.byref(cm)),
                  "ijepa_masks_sample")
        try:
            enc = np.ctypeslib.as_array(cm.enc, shape=(cm.num_enc, cm.batch, cm.k_enc)).copy()
            pred = np.ctypeslib.as_array(cm.pred, shape=(cm.num_pred, cm.batch, cm.k_pred)).copy()
        finally:
            _lib.lib.ijepa_masks_free(ctypes.byref(cm))
        return Masks(enc, pred)

    def _sample_ragged(self, batch):
        sample = _need("ijepa_masks_sample_ragged")
        free = _need("ijepa_ragged_masks_free")
        cm = _lib.ijepa_ragged_masks()
        with self._lock:
            check(sample(self._ptr(), batch, ctypes.byref(cm)), "ijepa_masks_sample_ragged")
        try:
            enc = np.ctypeslib.as_array(cm.enc, shape=(cm.num_enc, cm.batch, cm.k_enc_max)).copy()
            enc_len = np.ctypeslib.as_array(cm.enc_len, shape=(cm.num_enc, cm.batch)).copy()
            pred = np.ctypeslib.as_array(cm.pred, shape=(cm.num_pred, cm.batch, cm.k_pred)).copy()
        finally:
            free(ctypes.byref(cm))
        return RaggedMasks(enc, enc_len, pred)

    # -- inference ----------------------------------------------------------------------------
    def encode(self, images, encoder="target", pooled=True):
        """Encodes full images. Returns pooled features [B, D] (mean over the N tokens) or,
        with ``pooled=False``, the tokens [B, N, D] (after the final norm). ``encoder`` is
        "target" (the EMA encoder the paper evaluates) or "context"."""
        key = _encoder(encoder)
        x = self._images(images)
        B, N, D = x.shape[0], self._num_patches, self._embed_dim
        if pooled:
            out = np.empty((B, D), dtype=np.float32)
            args = (None, out.ctypes.data_as(_FLOAT_P))
        else:
            out = np.empty((B, N, D), dtype=np.float32)
            args = (out.ctypes.data_as(_FLOAT_P), None)
        with self._lock:
            check(_lib.lib.ijepa_encode(self._ptr(), x.ctypes.data_as(_FLOAT_P), B,
                                        _ENCODERS[key], *args), "ijepa_encode")
        return out

    def encode_layers(self, images, last_k, encoder="target"):
        """Evaluation features from the encoder's last ``last_k`` blocks (the paper probes the
        last layer or the last 4 concatenated): each block's output through the encoder's final
        norm, averaged over the N tokens, concatenated earliest block first. Returns float32
        [B, last_k * D] (reshape to [B, last_k, D] to separate the blocks). ``last_k`` is in
        1..depth; ``last_k=1`` equals ``encode(images, encoder)``."""
        key = _encoder(encoder)
        fn = _need("ijepa_encode_layers")
        if isinstance(last_k, (bool, np.bool_)) or not isinstance(last_k, numbers.Integral):
            raise InvalidArgumentError("last_k must be an integer, got %r" % (last_k,))
        last_k = int(last_k)
        if not -(1 << 31) <= last_k < (1 << 31):
            raise InvalidArgumentError("last_k must fit in 32 bits, got %d" % last_k)
        depth = self._config.depth
        # (the library owns the range rule: an out-of-range value gets a small output it refuses to fill)
        rows = last_k if 1 <= last_k <= depth else 1
        x = self._images(images)
        B, D = x.shape[0], self._embed_dim
        out = np.empty((B, rows * D), dtype=np.float32)
        with self._lock:
            check(fn(self._ptr(), x.ctypes.data_as(_FLOAT_P), B, _ENCODERS[key], last_k,
                     out.ctypes.data_as(_FLOAT_P)), "ijepa_encode_layers")
        return out

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path, training_state=False):
        """Saves a safetensors checkpoint atomically. ``training_state=True`` also stores the
        AdamW moments, step counter, mask generator state and overrides (exact resume)."""
        p = _path_bytes(path)
        flags = _lib.IJEPA_SAVE_WEIGHTS | (_lib.IJEPA_SAVE_TRAINING_STATE if training_state else 0)
        with self._lock:
            check(_lib.lib.ijepa_model_save(self._ptr(), p, flags), "ijepa_model_save")

    def load_weights(self, path, strict=True):
        """Copies weights from a safetensors file with official names (``encoder.``,
        ``predictor.``, ``target_encoder.``; DDP ``module.`` allowed). strict: every tensor
        must be present and nothing unexpected; otherwise missing ones are left as they are.
        On error the model is unchanged."""
        p = _path_bytes(path)
        with self._lock:
            check(_lib.lib.ijepa_model_load_weights(self._ptr(), p, 1 if strict else 0),
                  "ijepa_model_load_weights")

    # -- buffers ------------------------------------------------------------------------------
    def flat_buffer(self, which="params"):
        """The flat float32 1-D view of one buffer: "params", "grads", "target", "adam_m" or
        "adam_v" (or an IJEPA_BUF_* int). Zero-copy and writable; it keeps the memory alive."""
        w = BUFFERS.get(which, None) if isinstance(which, str) else which
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral) \
                or int(w) not in BUFFERS.values():
            raise InvalidArgumentError("which must be one of %s (or 0..4), got %r"
                                       % (", ".join(BUFFERS), which))
        w = int(w)
        with self._lock:
            ptr = self._ptr()
            a = self._flat.get(w)
            if a is None:
                n = ctypes.c_size_t()
                p = _lib.lib.ijepa_model_buffer(ptr, w, ctypes.byref(n))
                if not p:
                    check(_lib.IJEPA_ERR_INVALID_ARGUMENT, "ijepa_model_buffer")
                addr = ctypes.cast(p, ctypes.c_void_p).value
                a = np.asarray(_BufferOwner(self._handle, addr, n.value, w))
                self._flat[w] = a
            return a

    def _views(self, which):
        flat = self.flat_buffer(which)
        layout = self._layouts[_lib.IJEPA_BUF_TARGET if which == _lib.IJEPA_BUF_TARGET
                               else _lib.IJEPA_BUF_PARAMS]
        out = {}
        for name, shape, offset in layout:
            n = int(np.prod(shape, dtype=np.int64))
            out[name] = flat[offset:offset + n].reshape(shape)
        return out

    def parameters(self):
        """name ("encoder.<key>", "predictor.<key>") -> writable view of the trainable weights."""
        return self._views(_lib.IJEPA_BUF_PARAMS)

    def gradients(self):
        """name -> view of the gradients of the last forward_backward (same names)."""
        return self._views(_lib.IJEPA_BUF_GRADS)

    def target_parameters(self):
        """name ("target_encoder.<key>") -> writable view of the target (EMA) encoder."""
        return self._views(_lib.IJEPA_BUF_TARGET)

    def adam_m(self):
        """name -> view of AdamW's first moment."""
        return self._views(_lib.IJEPA_BUF_ADAM_M)

    def adam_v(self):
        """name -> view of AdamW's second moment."""
        return self._views(_lib.IJEPA_BUF_ADAM_V)

    def tensor_layout(self, which="params"):
        """[(name, shape, offset in floats)] of a buffer (no views are created)."""
        self._ptr()
        w = BUFFERS[which] if isinstance(which, str) else int(which)
        return list(self._layouts[_lib.IJEPA_BUF_TARGET if w == _lib.IJEPA_BUF_TARGET
                                  else _lib.IJEPA_BUF_PARAMS])
