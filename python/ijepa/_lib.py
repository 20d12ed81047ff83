"""Low-level binding: ``include/ijepa.h`` mirrored 1:1 with ctypes.

Everything here is a direct transcription of the C header (ABI version 1): the structs with
their exact field order and types, every constant, and ``argtypes``/``restype`` for every
function. Nothing is wrapped or checked; use the high-level API in :mod:`ijepa` unless you
need the raw calls (for example ``lib.ijepa_model_buffer``).

The shared library is located, in this order:

1. the environment variable ``IJEPA_LIBRARY`` (a path, or a bare file name for the dynamic
   loader's search; if it is set, nothing else is tried),
2. a copy shipped inside this package (``ijepa/lib/libijepa.so*``, see ``make -C python bundle``),
3. the system: ``ctypes.util.find_library("ijepa")``, then
   ``$(pkg-config --variable=libdir ijepa)/libijepa.so.1``.

Importing this module loads the library and checks ``ijepa_abi_version() == ABI_VERSION``;
failures raise :class:`LibraryNotFoundError` (an :class:`ImportError`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import subprocess
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

__all__ = [
    "ABI_VERSION", "lib", "library_path", "load_library", "LibraryNotFoundError",
    "ijepa_config", "ijepa_masks", "ijepa_ragged_masks", "ijepa_step_stats", "ijepa_tensor_info",
    "ijepa_encoder_options", "ijepa_encoder_info", "ijepa_preprocess", "ijepa_log_callback",
]

#: The IJEPA_ABI_VERSION this binding was written for.
ABI_VERSION = 1
#: The SONAME major of that ABI.
SONAME = "libijepa.so.%d" % ABI_VERSION

# ---- status codes ---------------------------------------------------------------------------
IJEPA_OK = 0
IJEPA_ERR_INVALID_ARGUMENT = -1
IJEPA_ERR_SHAPE = -2
IJEPA_ERR_OUT_OF_MEMORY = -3
IJEPA_ERR_IO = -4
IJEPA_ERR_FORMAT = -5
IJEPA_ERR_STATE = -6
IJEPA_ERR_NUMERIC = -7
IJEPA_ERR_INTERNAL = -8

# ---- buffers ----------------------------------------------------------------------------------
IJEPA_BUF_PARAMS = 0
IJEPA_BUF_GRADS = 1
IJEPA_BUF_TARGET = 2
IJEPA_BUF_ADAM_M = 3
IJEPA_BUF_ADAM_V = 4

# ---- encoders -------------------------------------------------------------------------------
IJEPA_TARGET_ENCODER = 0
IJEPA_CONTEXT_ENCODER = 1

# ---- save flags -----------------------------------------------------------------------------
IJEPA_SAVE_WEIGHTS = 1
IJEPA_SAVE_TRAINING_STATE = 2

# ---- pretrained encoders: where the weights came from (ijepa_encoder_info.source) -----------
IJEPA_SOURCE_MODEL = 0
IJEPA_SOURCE_CHECKPOINT = 1
IJEPA_SOURCE_OFFICIAL = 2
IJEPA_SOURCE_HF = 3
IJEPA_SOURCE_TIMM = 4

# ---- pretrained encoders: position-table resizing (ijepa_encoder_options.pos_interpolation) --
IJEPA_POS_AUTO = 0
IJEPA_POS_BICUBIC = 1
IJEPA_POS_BICUBIC_AA = 2

# ---- log levels -----------------------------------------------------------------------------
IJEPA_LOG_DEBUG = 0
IJEPA_LOG_INFO = 1
IJEPA_LOG_WARN = 2
IJEPA_LOG_ERROR = 3


# ---- structs --------------------------------------------------------------------------------
class ijepa_config(Structure):
    """``ijepa_config``. Its ``_fields_`` come from the loaded library's field table
    (``ijepa_config_field``, see ``config_fields``), so a field the library adds needs no
    change here; gaps (``reserved0``) become ``_pad<offset>`` bytes."""


class ijepa_masks(Structure):
    _fields_ = [
        ("batch", c_int32), ("num_enc", c_int32), ("k_enc", c_int32),
        ("num_pred", c_int32), ("k_pred", c_int32),
        ("enc", POINTER(c_int32)),   # [num_enc][batch][k_enc]
        ("pred", POINTER(c_int32)),  # [num_pred][batch][k_pred]
    ]


class ijepa_ragged_masks(Structure):
    _fields_ = [
        ("batch", c_int32), ("num_enc", c_int32), ("k_enc_max", c_int32),
        ("num_pred", c_int32), ("k_pred", c_int32),
        ("enc", POINTER(c_int32)),      # [num_enc][batch][k_enc_max], padded
        ("enc_len", POINTER(c_int32)),  # [num_enc][batch], each in 1..k_enc_max
        ("pred", POINTER(c_int32)),     # [num_pred][batch][k_pred]
    ]


class ijepa_step_stats(Structure):
    _fields_ = [
        ("step", c_int64),
        ("loss", c_float), ("lr", c_float), ("weight_decay", c_float),
        ("ema_momentum", c_float), ("grad_norm", c_float),
    ]


class ijepa_tensor_info(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("ndim", c_int32),
        ("shape", c_int64 * 4),
        ("offset", c_size_t),
    ]


class ijepa_encoder_options(Structure):
    _fields_ = [
        ("struct_size", c_uint32),      # sizeof, set by the caller before ijepa_encoder_options_init
        ("which_encoder", c_int32),     # IJEPA_TARGET_ENCODER (default) / IJEPA_CONTEXT_ENCODER
        ("num_heads", c_int32),         # 0: from the file's metadata or config.json
        ("n_threads", c_int32),         # <= 0: all cores
        ("pos_interpolation", c_int32),  # IJEPA_POS_*
    ]


class ijepa_encoder_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),      # set by the caller to sizeof(ijepa_encoder_info)
        ("image_size", c_int32),
        ("patch_size", c_int32), ("in_chans", c_int32), ("embed_dim", c_int32),
        ("depth", c_int32), ("num_heads", c_int32), ("mlp_hidden", c_int32),
        ("source", c_int32),            # IJEPA_SOURCE_*
        ("which_encoder", c_int32),     # IJEPA_TARGET_ENCODER / IJEPA_CONTEXT_ENCODER / -1
        ("n_threads", c_int32),         # resolved, never <= 0
        ("pos_interpolation", c_int32),  # IJEPA_POS_BICUBIC / IJEPA_POS_BICUBIC_AA (resolved)
        ("layer_norm_eps", c_float),
    ]


class ijepa_preprocess(Structure):
    _fields_ = [
        ("struct_size", c_uint32),      # sizeof, set by the caller before ijepa_preprocess_init
        ("resize", c_int32),            # shorter side -> resize (0: no resize)
        ("crop", c_int32),              # centered crop x crop
        ("mean", c_float * 3), ("std", c_float * 3),
    ]


#: void (*)(int level, const char *message, void *user_data)
ijepa_log_callback = CFUNCTYPE(None, c_int, c_char_p, c_void_p)

_model_p = c_void_p          # ijepa_model *  (opaque)
_encoder_p = c_void_p        # ijepa_encoder *  (opaque)
_float_p = POINTER(c_float)

#: name -> (restype, argtypes), in header order.
PROTOTYPES = {
    "ijepa_version": (c_char_p, []),
    "ijepa_abi_version": (c_uint32, []),
    "ijepa_status_string": (c_char_p, [c_int]),
    "ijepa_last_error": (c_char_p, []),
    "ijepa_config_default": (c_int, [POINTER(ijepa_config)]),
    "ijepa_config_preset": (c_int, [c_char_p, POINTER(ijepa_config)]),
    "ijepa_config_preset_name": (c_char_p, [c_int32]),
    "ijepa_config_field_count": (c_int32, []),
    "ijepa_config_field": (c_int, [c_int32, POINTER(c_char_p), POINTER(c_int32), POINTER(c_size_t)]),
    "ijepa_model_create": (c_int, [POINTER(ijepa_config), POINTER(_model_p)]),
    "ijepa_model_free": (None, [_model_p]),
    "ijepa_model_get_config": (c_int, [_model_p, POINTER(ijepa_config)]),
    "ijepa_model_set_n_threads": (c_int, [_model_p, c_int32]),
    "ijepa_model_num_patches": (c_int32, [_model_p]),
    "ijepa_model_embed_dim": (c_int32, [_model_p]),
    "ijepa_model_step": (c_int64, [_model_p]),
    "ijepa_masks_sample": (c_int, [_model_p, c_int32, POINTER(ijepa_masks)]),
    "ijepa_masks_free": (None, [POINTER(ijepa_masks)]),
    "ijepa_train_step": (c_int, [_model_p, _float_p, c_int32, POINTER(ijepa_masks),
                                 POINTER(ijepa_step_stats)]),
    "ijepa_forward_backward": (c_int, [_model_p, _float_p, c_int32, POINTER(ijepa_masks),
                                       _float_p]),
    "ijepa_optimizer_step": (c_int, [_model_p, POINTER(ijepa_step_stats)]),
    "ijepa_set_schedule_override": (c_int, [_model_p, c_float, c_float, c_float]),
    "ijepa_masks_sample_ragged": (c_int, [_model_p, c_int32, POINTER(ijepa_ragged_masks)]),
    "ijepa_ragged_masks_free": (None, [POINTER(ijepa_ragged_masks)]),
    "ijepa_train_step_ragged": (c_int, [_model_p, _float_p, c_int32, POINTER(ijepa_ragged_masks),
                                        POINTER(ijepa_step_stats)]),
    "ijepa_forward_backward_ragged": (c_int, [_model_p, _float_p, c_int32,
                                              POINTER(ijepa_ragged_masks), _float_p]),
    "ijepa_train_step_accumulate": (c_int, [_model_p, _float_p, c_int32, c_int32,
                                            POINTER(ijepa_masks), POINTER(ijepa_step_stats)]),
    "ijepa_train_step_accumulate_ragged": (c_int, [_model_p, _float_p, c_int32, c_int32,
                                                   POINTER(ijepa_ragged_masks),
                                                   POINTER(ijepa_step_stats)]),
    "ijepa_forward_backward_accumulate": (c_int, [_model_p, _float_p, c_int32, POINTER(ijepa_masks),
                                                  c_float, c_int32, _float_p]),
    "ijepa_forward_backward_accumulate_ragged": (c_int, [_model_p, _float_p, c_int32,
                                                         POINTER(ijepa_ragged_masks), c_float,
                                                         c_int32, _float_p]),
    "ijepa_model_buffer": (_float_p, [_model_p, c_int, POINTER(c_size_t)]),
    "ijepa_model_num_tensors": (c_int32, [_model_p, c_int]),
    "ijepa_model_tensor_info": (c_int, [_model_p, c_int, c_int32, POINTER(ijepa_tensor_info)]),
    "ijepa_encode": (c_int, [_model_p, _float_p, c_int32, c_int, _float_p, _float_p]),
    "ijepa_encode_layers": (c_int, [_model_p, _float_p, c_int32, c_int, c_int32, _float_p]),
    "ijepa_model_save": (c_int, [_model_p, c_char_p, c_uint32]),
    "ijepa_model_load": (c_int, [c_char_p, POINTER(_model_p)]),
    "ijepa_model_load_weights": (c_int, [_model_p, c_char_p, c_int]),
    "ijepa_encoder_options_init": (c_int, [POINTER(ijepa_encoder_options)]),
    "ijepa_encoder_load": (c_int, [c_char_p, POINTER(ijepa_encoder_options),
                                   POINTER(_encoder_p)]),
    "ijepa_encoder_from_model": (c_int, [_model_p, c_int, POINTER(_encoder_p)]),
    "ijepa_encoder_free": (None, [_encoder_p]),
    "ijepa_encoder_save": (c_int, [_encoder_p, c_char_p]),
    "ijepa_encoder_get_info": (c_int, [_encoder_p, POINTER(ijepa_encoder_info)]),
    "ijepa_encoder_set_n_threads": (c_int, [_encoder_p, c_int32]),
    "ijepa_encoder_num_tokens": (c_int32, [_encoder_p, c_int32, c_int32]),
    "ijepa_encoder_encode": (c_int, [_encoder_p, _float_p, c_int32, c_int32, c_int32, _float_p,
                                     _float_p]),
    "ijepa_encoder_encode_layers": (c_int, [_encoder_p, _float_p, c_int32, c_int32, c_int32,
                                            c_int32, _float_p]),
    "ijepa_preprocess_init": (c_int, [POINTER(ijepa_preprocess), c_int32]),
    "ijepa_preprocess_rgb8": (c_int, [POINTER(c_uint8), c_int32, c_int32,
                                      POINTER(ijepa_preprocess), _float_p]),
    "ijepa_random_resized_crop": (c_int, [_float_p, c_int32, c_int32, c_int32, c_int32, c_int32,
                                          c_float, c_float, c_float, c_float, POINTER(c_uint64),
                                          _float_p]),
    "ijepa_resize_bilinear": (c_int, [_float_p, c_int32, c_int32, c_int32, c_int32, c_int32,
                                      c_int32, _float_p]),
    "ijepa_log_set": (None, [ijepa_log_callback, c_void_p]),
}

#: Functions appended to ABI 1 after its first release: a library without them still loads
#: (has_function() tells; the high-level wrappers raise ijepa.StateError).
OPTIONAL = frozenset({"ijepa_random_resized_crop", "ijepa_resize_bilinear",
                      "ijepa_masks_sample_ragged", "ijepa_ragged_masks_free",
                      "ijepa_train_step_ragged", "ijepa_forward_backward_ragged",
                      "ijepa_train_step_accumulate", "ijepa_train_step_accumulate_ragged",
                      "ijepa_forward_backward_accumulate", "ijepa_forward_backward_accumulate_ragged",
                      "ijepa_encode_layers",
                      "ijepa_encoder_options_init", "ijepa_encoder_load", "ijepa_encoder_from_model",
                      "ijepa_encoder_free", "ijepa_encoder_get_info", "ijepa_encoder_set_n_threads",
                      "ijepa_encoder_num_tokens", "ijepa_encoder_encode",
                      "ijepa_encoder_encode_layers", "ijepa_preprocess_init",
                      "ijepa_preprocess_rgb8", "ijepa_encoder_save"})

#: The functions that come with ijepa_config.ragged_context (appended together with it).
RAGGED = ("ijepa_masks_sample_ragged", "ijepa_ragged_masks_free", "ijepa_train_step_ragged",
          "ijepa_forward_backward_ragged")

#: Gradient accumulation (micro-batches of one optimizer step), appended together.
ACCUMULATE = ("ijepa_train_step_accumulate", "ijepa_train_step_accumulate_ragged",
              "ijepa_forward_backward_accumulate", "ijepa_forward_backward_accumulate_ragged")

#: The pretrained-encoder functions (ijepa.Encoder), appended together.
ENCODER = ("ijepa_encoder_options_init", "ijepa_encoder_load", "ijepa_encoder_from_model",
           "ijepa_encoder_free", "ijepa_encoder_get_info", "ijepa_encoder_set_n_threads",
           "ijepa_encoder_num_tokens", "ijepa_encoder_encode", "ijepa_encoder_encode_layers")

#: The preprocessing functions (ijepa.preprocess, ijepa.Preprocess), appended together.
PREPROCESS = ("ijepa_preprocess_init", "ijepa_preprocess_rgb8")


class LibraryNotFoundError(ImportError):
    """libijepa could not be found or loaded, or has the wrong ABI version."""


_PACKAGE_LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")


def _bundled_candidates():
    files = glob.glob(os.path.join(_PACKAGE_LIB_DIR, "libijepa.so*"))
    # the SONAME first, then the unversioned link, then anything else
    def rank(p):
        b = os.path.basename(p)
        return (0 if b == SONAME else 1 if b == "libijepa.so" else 2, b)
    return sorted(files, key=rank)


def _pkg_config_libdir():
    try:
        r = subprocess.run(["pkg-config", "--variable=libdir", "ijepa"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return None, "pkg-config not usable (%s)" % e
    d = r.stdout.strip()
    if r.returncode != 0 or not d:
        return None, "pkg-config --variable=libdir ijepa: no ijepa.pc found"
    return d, None


def _configure(dll):
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            f = getattr(dll, name)
        except AttributeError:
            if name in OPTIONAL:
                continue
            raise
        f.restype = restype
        f.argtypes = argtypes


def has_function(name):
    """Whether the loaded library exports `name` (see OPTIONAL)."""
    try:
        getattr(lib, name)
    except AttributeError:
        return False
    return name in PROTOTYPES


def load_library():
    """Finds, loads and checks libijepa. Returns (CDLL, path or name it was loaded from)."""
    tried = []

    def attempt(what, path):
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s: %s (%s)" % (what, path, e))
            return None
        try:
            _configure(dll)
        except AttributeError as e:
            tried.append("%s: %s is not libijepa (%s)" % (what, path, e))
            return None
        return dll

    env = os.environ.get("IJEPA_LIBRARY")
    if env:
        # a path (relative to the working directory) or a bare name for the dynamic loader
        path = os.path.abspath(os.path.expanduser(env)) if os.sep in env else env
        dll = attempt("IJEPA_LIBRARY", path)
        if dll is None:
            raise LibraryNotFoundError(
                "libijepa could not be loaded from IJEPA_LIBRARY:\n  " + "\n  ".join(tried)
                + "\nUnset IJEPA_LIBRARY to search the package and the system instead.")
        return _check_abi(dll, path)

    candidates = _bundled_candidates()
    if not candidates:
        tried.append("bundled copy: no libijepa.so* in %s" % _PACKAGE_LIB_DIR)
    for p in candidates:
        dll = attempt("bundled copy", p)
        if dll is not None:
            return _check_abi(dll, p)

    name = ctypes.util.find_library("ijepa")
    if name is None:
        tried.append('ctypes.util.find_library("ijepa"): not found')
    else:
        dll = attempt('ctypes.util.find_library("ijepa")', name)
        if dll is not None:
            return _check_abi(dll, name)

    libdir, why = _pkg_config_libdir()
    if libdir is None:
        tried.append(why)
    else:
        p = os.path.join(libdir, SONAME)
        dll = attempt("pkg-config libdir", p)
        if dll is not None:
            return _check_abi(dll, p)

    raise LibraryNotFoundError(
        "libijepa (ABI %d) was not found. Tried:\n  " % ABI_VERSION + "\n  ".join(tried)
        + "\nBuild it with `make stage` and set IJEPA_LIBRARY=/path/to/build/stage/lib/"
        + SONAME + ", install it (`make install`), or bundle it (`make -C python bundle`).")


def _check_abi(dll, where):
    abi = dll.ijepa_abi_version()
    if abi != ABI_VERSION:
        raise LibraryNotFoundError(
            "libijepa at %s has ABI version %d, but this ijepa Python package was written for "
            "ABI version %d; install a matching library or package." % (where, abi, ABI_VERSION))
    return dll, where


lib, library_path = load_library()

# ---- ijepa_config from the library's field table ----------------------------------------------
IJEPA_TYPE_INT32 = 1
IJEPA_TYPE_INT64 = 2
IJEPA_TYPE_UINT64 = 3
IJEPA_TYPE_FLOAT = 4
IJEPA_TYPE_BOOL = 5
IJEPA_TYPE_FLOAT_PAIR = 6
_CTYPE = {IJEPA_TYPE_INT32: c_int32, IJEPA_TYPE_INT64: c_int64, IJEPA_TYPE_UINT64: c_uint64,
          IJEPA_TYPE_FLOAT: c_float, IJEPA_TYPE_BOOL: c_int32, IJEPA_TYPE_FLOAT_PAIR: c_float * 2}


def _config_fields(dll):
    """[(name, IJEPA_TYPE_*, offset)] of ijepa_config, in struct order, from the library."""
    out = []
    for i in range(dll.ijepa_config_field_count()):
        name, ty, off = c_char_p(), c_int32(), c_size_t()
        if dll.ijepa_config_field(i, ctypes.byref(name), ctypes.byref(ty), ctypes.byref(off)) != 0:
            raise LibraryNotFoundError("%s: ijepa_config_field(%d) failed" % (library_path, i))
        if ty.value not in _CTYPE:
            raise LibraryNotFoundError("%s: config field %r has unknown type %d"
                                       % (library_path, name.value, ty.value))
        out.append((name.value.decode("ascii"), ty.value, off.value))
    return out


def _config_layout(fields):
    layout, end = [("struct_size", c_uint32)], ctypes.sizeof(c_uint32)
    for name, ty, off in sorted(fields, key=lambda f: f[2]):
        if off < end:
            raise LibraryNotFoundError("%s: config field %r overlaps the previous one"
                                       % (library_path, name))
        if off > end:
            layout.append(("_pad%d" % end, c_uint8 * (off - end)))
        layout.append((name, _CTYPE[ty]))
        end = off + ctypes.sizeof(_CTYPE[ty])
    return layout


#: (name, IJEPA_TYPE_*, offset) of every ijepa_config field, in struct order.
config_fields = tuple(_config_fields(lib))
ijepa_config._fields_ = _config_layout(config_fields)
for _name, _ty, _off in config_fields:
    if getattr(ijepa_config, _name).offset != _off:
        raise LibraryNotFoundError("%s: config field %r is at offset %d in the library, %d here"
                                   % (library_path, _name, _off, getattr(ijepa_config, _name).offset))
