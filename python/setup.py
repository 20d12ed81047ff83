"""Only here to mark wheels that bundle libijepa (make bundle) as platform-specific;
all metadata is in pyproject.toml."""
import glob
import os

from setuptools import setup
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


class _Dist(Distribution):
    def has_ext_modules(self):
        return bool(glob.glob(os.path.join(HERE, "ijepa", "lib", "libijepa.so*")))


setup(distclass=_Dist)
