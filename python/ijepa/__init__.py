"""ijepa — I-JEPA (self-supervised ViT training, Assran et al. 2023) over libijepa.

Pure Python over ctypes + numpy. The low-level binding, a 1:1 mirror of ``ijepa.h``, is
:mod:`ijepa._lib`; this module is the high-level API::

    import numpy as np, ijepa
    with ijepa.Model(ijepa.Config.preset("tiny32", seed=0)) as m:
        x = np.random.randn(8, 3, 32, 32).astype(np.float32)
        stats = m.train_step(x)             # StepStats(step=1, loss=..., ...)
        feats = m.encode(x)                 # [8, 192] mean-pooled target-encoder features

    with ijepa.Encoder.load("ijepa_vith14_1k/") as enc:     # HF / timm directory, or a file
        feats = enc.encode(rgb_uint8_images)                # preprocessed by the library
"""

from __future__ import annotations

from . import _lib
from ._lib import ABI_VERSION, LibraryNotFoundError
from ._log import logging_handler, set_log_handler
from .augment import RandomResizedCrop, random_resized_crop, resize_bilinear
from .config import PRESETS, Config
from .encoder import Encoder, Preprocess, preprocess
from .errors import (Error, FormatError, IjepaIOError, InternalError, InvalidArgumentError,
                     IOError_, NumericError, OutOfMemoryError, ShapeError, StateError)
from .masks import Masks, RaggedMasks
from .model import BUFFERS, Model, StepStats

__all__ = [
    "version", "abi_version", "library_path", "status_string", "set_log_handler",
    "logging_handler", "Config", "PRESETS", "Model", "StepStats", "Masks", "RaggedMasks", "BUFFERS",
    "has_ragged_context", "has_encode_layers", "has_encoder", "has_accumulate",
    "Encoder", "Preprocess", "preprocess",
    "Error", "InvalidArgumentError", "ShapeError", "OutOfMemoryError", "IjepaIOError", "IOError_",
    "FormatError", "StateError", "NumericError", "InternalError", "LibraryNotFoundError",
    "resize_bilinear", "random_resized_crop", "RandomResizedCrop",
    "ABI_VERSION", "LOG_DEBUG", "LOG_INFO", "LOG_WARN", "LOG_ERROR",
]

__version__ = "1.0.0"

LOG_DEBUG = _lib.IJEPA_LOG_DEBUG
LOG_INFO = _lib.IJEPA_LOG_INFO
LOG_WARN = _lib.IJEPA_LOG_WARN
LOG_ERROR = _lib.IJEPA_LOG_ERROR

#: Where the shared library was loaded from.
library_path = _lib.library_path


def version():
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.lib.ijepa_version().decode("ascii")


def abi_version():
    """IJEPA_ABI_VERSION of the loaded library (checked == ijepa.ABI_VERSION at import)."""
    return int(_lib.lib.ijepa_abi_version())


def status_string(status):
    """Short English name of a status code."""
    return _lib.lib.ijepa_status_string(int(status)).decode("utf-8", "replace")


def has_ragged_context():
    """Whether the loaded library has ragged contexts (Config.ragged_context, RaggedMasks)."""
    return all(_lib.has_function(f) for f in _lib.RAGGED)


def has_accumulate():
    """Whether the loaded library has gradient accumulation (Model.train_step(micro_batch=...),
    Model.forward_backward(weight=..., accumulate=...))."""
    return all(_lib.has_function(f) for f in _lib.ACCUMULATE)


def has_encode_layers():
    """Whether the loaded library has Model.encode_layers (ijepa_encode_layers)."""
    return _lib.has_function("ijepa_encode_layers")


def has_encoder():
    """Whether the loaded library has pretrained encoders and preprocessing (ijepa.Encoder,
    ijepa.preprocess)."""
    return all(_lib.has_function(f) for f in _lib.ENCODER + _lib.PREPROCESS)
