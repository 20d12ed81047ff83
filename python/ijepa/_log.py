"""Routing the library's log messages to Python."""

from __future__ import annotations

import atexit
import sys
import threading

from . import _lib

__all__ = ["set_log_handler", "LEVEL_NAMES"]

LEVEL_NAMES = {_lib.IJEPA_LOG_DEBUG: "debug", _lib.IJEPA_LOG_INFO: "info",
               _lib.IJEPA_LOG_WARN: "warning", _lib.IJEPA_LOG_ERROR: "error"}

_lock = threading.Lock()
_handler = None
_c_callback = None  # the CFUNCTYPE object the library holds: must stay alive while installed


def _trampoline(level, message, user_data):
    h = _handler
    if h is None:
        return
    try:
        h(int(level), (message or b"").decode("utf-8", "replace"))
    except BaseException as e:  # never let an exception unwind into C
        try:
            sys.stderr.write("ijepa: exception in log handler ignored: %r\n" % (e,))
        except Exception:
            pass


def set_log_handler(handler):
    """Routes the library's log messages to ``handler(level: int, message: str)``; None
    restores the default (silent). Levels are ijepa.LOG_DEBUG/INFO/WARN/ERROR (0..3).
    The handler may be called from any thread that calls into the library, in the middle of
    a library call: it must not call into the library (or use a Model) itself. Exceptions it
    raises are printed to stderr and ignored. Returns the previous handler.

    To forward to the ``logging`` module: ``ijepa.set_log_handler(ijepa.logging_handler())``.
    """
    global _handler, _c_callback
    if handler is not None and not callable(handler):
        from .errors import InvalidArgumentError
        raise InvalidArgumentError("log handler must be callable or None, got %r" % (handler,))
    with _lock:
        previous = _handler
        if handler is None:
            _lib.lib.ijepa_log_set(_lib.ijepa_log_callback(), None)
            _handler = None
            # the old callback object may still be running on another thread: keep it
        else:
            _handler = handler
            if _c_callback is None:
                _c_callback = _lib.ijepa_log_callback(_trampoline)
            _lib.lib.ijepa_log_set(_c_callback, None)
        return previous


def logging_handler(logger_name="ijepa"):
    """A handler for set_log_handler that forwards to ``logging.getLogger(logger_name)``."""
    import logging
    logger = logging.getLogger(logger_name)
    levels = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}

    def handler(level, message):
        logger.log(levels.get(level, logging.INFO), "%s", message)
    return handler


@atexit.register
def _uninstall():
    # the library must not call into a Python that is shutting down
    try:
        _lib.lib.ijepa_log_set(_lib.ijepa_log_callback(), None)
    except Exception:
        pass
