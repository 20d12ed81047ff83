"""`pip install ./python`: the package with libijepa built and bundled (ijepa_build.py). All
metadata is in pyproject.toml."""
import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ijepa_build import BuildPyWithLibrary, Dist  # noqa: E402

setup(distclass=Dist, cmdclass={"build_py": BuildPyWithLibrary})
