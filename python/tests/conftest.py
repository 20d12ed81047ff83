"""pytest setup for the ijepa Python package.

Run from the repository root after `make stage`:

    IJEPA_LIBRARY=build/stage/lib/libijepa.so.1 pytest python/tests tools/test_interop.py

When the package is not pip-installed, python/ is put on sys.path; when IJEPA_LIBRARY is unset
and no bundled copy exists, the staged library (build/stage/lib/libijepa.so.1) is used if present.
"""

import glob
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
ROOT = os.path.dirname(PYDIR)

if importlib.util.find_spec("ijepa") is None:
    sys.path.insert(0, PYDIR)
if os.sep in os.environ.get("IJEPA_LIBRARY", ""):
    # absolute, so that subprocesses started in other directories find it too
    os.environ["IJEPA_LIBRARY"] = os.path.abspath(os.environ["IJEPA_LIBRARY"])
if not os.environ.get("IJEPA_LIBRARY"):
    spec = importlib.util.find_spec("ijepa")
    pkg_dir = os.path.dirname(spec.origin) if spec and spec.origin else None
    bundled = pkg_dir and glob.glob(os.path.join(pkg_dir, "lib", "libijepa.so*"))
    staged = os.path.join(ROOT, "build", "stage", "lib", "libijepa.so.1")
    if not bundled and os.path.exists(staged):
        os.environ["IJEPA_LIBRARY"] = staged

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ijepa  # noqa: E402


def pytest_report_header(config):
    return "ijepa %s (ABI %d) from %s" % (ijepa.version(), ijepa.abi_version(), ijepa.library_path)


def tiny_config(**kw):
    """A 24 px / patch 4 (6x6 grid) model with width 32, depth 1: builds and steps in ms."""
    base = dict(image_size=24, patch_size=4, in_chans=3, embed_dim=32, depth=1, num_heads=2,
                pred_embed_dim=16, pred_depth=1, min_keep=2, warmup_steps=2, total_steps=20,
                seed=5, n_threads=1)
    base.update(kw)
    return ijepa.Config(**base)


def images_for(config, batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, config.in_chans, config.image_size, config.image_size),
                               dtype=np.float32)


@pytest.fixture
def cfg():
    return tiny_config()


@pytest.fixture
def model(cfg):
    with ijepa.Model(cfg) as m:
        yield m
