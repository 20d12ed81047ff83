"""Exceptions: one class per IJEPA_ERR_* status, all subclasses of :class:`ijepa.Error`."""

from __future__ import annotations

from . import _lib

__all__ = [
    "Error", "InvalidArgumentError", "ShapeError", "OutOfMemoryError", "IjepaIOError", "IOError_",
    "FormatError", "StateError", "NumericError", "InternalError", "error_for_status",
]


class Error(Exception):
    """A libijepa failure (or an input the Python layer refused before calling C).

    Attributes:
        status:   the IJEPA_ERR_* code (negative int).
        message:  the detail text (``ijepa_last_error()`` for library failures).
        function: the C function that failed, or None for checks done in Python.
    """

    status = None  # overridden per subclass

    def __init__(self, message, *, status=None, function=None):
        text = message if function is None else "%s: %s" % (function, message)
        super().__init__(text)
        if status is not None:
            self.status = status
        self.message = message
        self.function = function


class InvalidArgumentError(Error, ValueError):
    """IJEPA_ERR_INVALID_ARGUMENT: a NULL/out-of-range value, bad config field, bad dtype."""
    status = _lib.IJEPA_ERR_INVALID_ARGUMENT


class ShapeError(Error, ValueError):
    """IJEPA_ERR_SHAPE: sizes that do not fit together (image shape, batch, mask lengths)."""
    status = _lib.IJEPA_ERR_SHAPE


class OutOfMemoryError(Error, MemoryError):
    """IJEPA_ERR_OUT_OF_MEMORY."""
    status = _lib.IJEPA_ERR_OUT_OF_MEMORY


class IjepaIOError(Error, OSError):
    """IJEPA_ERR_IO: a file could not be read or written."""
    status = _lib.IJEPA_ERR_IO


IOError_ = IjepaIOError


class FormatError(Error, ValueError):
    """IJEPA_ERR_FORMAT: the file is not a valid checkpoint."""
    status = _lib.IJEPA_ERR_FORMAT


class StateError(Error, RuntimeError):
    """IJEPA_ERR_STATE: call out of order (optimizer step without gradients, closed model)."""
    status = _lib.IJEPA_ERR_STATE


class NumericError(Error, ArithmeticError):
    """IJEPA_ERR_NUMERIC: NaN/Inf in inputs, loss or gradients; nothing was updated."""
    status = _lib.IJEPA_ERR_NUMERIC


class InternalError(Error, RuntimeError):
    """IJEPA_ERR_INTERNAL: a bug in the library."""
    status = _lib.IJEPA_ERR_INTERNAL


_BY_STATUS = {cls.status: cls for cls in (InvalidArgumentError, ShapeError, OutOfMemoryError,
                                          IjepaIOError, FormatError, StateError, NumericError,
                                          InternalError)}


def error_for_status(status, function=None):
    """The exception for a non-zero status, with this thread's ijepa_last_error() text."""
    detail = (_lib.lib.ijepa_last_error() or b"").decode("utf-8", "replace")
    if not detail:
        detail = (_lib.lib.ijepa_status_string(status) or b"").decode("utf-8", "replace")
    cls = _BY_STATUS.get(status, Error)
    return cls(detail, status=status, function=function)


def check(status, function):
    """Raises the matching Error when status != IJEPA_OK."""
    if status != _lib.IJEPA_OK:
        raise error_for_status(status, function)


def as_array(x, what="images"):
    """x as a numpy array (no copy when it is one), or InvalidArgumentError saying why not."""
    import numpy as np
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError("%s cannot be converted to an array: %s" % (what, e))
