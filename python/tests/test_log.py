"""ijepa.set_log_handler."""

import logging

import pytest

import ijepa
from conftest import tiny_config

# a 4x4 grid with big target blocks: the sampler must relax its overlap constraint and says so
CROWDED = dict(image_size=16, pred_mask_scale=(0.3, 0.4), min_keep=2)


def test_log_handler_receives_relaxation_warnings():
    got = []
    prev = ijepa.set_log_handler(lambda level, msg: got.append((level, msg)))
    try:
        with ijepa.Model(tiny_config(**CROWDED)) as m:
            for _ in range(5):
                m.sample_masks(4)
    finally:
        assert ijepa.set_log_handler(prev) is not None
    assert got, "no log message"
    assert all(level == ijepa.LOG_WARN for level, _ in got)
    assert all(isinstance(msg, str) for _, msg in got)
    assert any("Valid mask not found" in msg for _, msg in got)


def test_removed_handler_is_not_called():
    got = []
    ijepa.set_log_handler(lambda level, msg: got.append(msg))
    ijepa.set_log_handler(None)
    with ijepa.Model(tiny_config(**CROWDED)) as m:
        m.sample_masks(4)
    assert got == []


def test_raising_handler_does_not_break_the_call(capfd):
    def bad(level, msg):
        raise RuntimeError("handler bug")
    ijepa.set_log_handler(bad)
    try:
        with ijepa.Model(tiny_config(**CROWDED)) as m:
            masks = m.sample_masks(4)
        assert masks.batch == 4
    finally:
        ijepa.set_log_handler(None)
    assert "handler bug" in capfd.readouterr().err


def test_logging_bridge(caplog):
    ijepa.set_log_handler(ijepa.logging_handler())
    try:
        with caplog.at_level(logging.WARNING, logger="ijepa"):
            with ijepa.Model(tiny_config(**CROWDED)) as m:
                m.sample_masks(4)
    finally:
        ijepa.set_log_handler(None)
    assert any("Valid mask not found" in r.getMessage() for r in caplog.records)


def test_bad_handler():
    with pytest.raises(ijepa.InvalidArgumentError):
        ijepa.set_log_handler(42)
