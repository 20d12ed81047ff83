"""`pip install .` at the top of the repository: the package in python/ with libijepa built and
bundled (python/ijepa_build.py). The metadata is python/pyproject.toml's, read here, so that it is
written once."""
import os
import re
import sys

from setuptools import setup

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.path.join(HERE, "python")
sys.path.insert(0, PY)
from ijepa_build import BuildPyWithLibrary, Dist  # noqa: E402

with open(os.path.join(PY, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
with open(os.path.join(PY, "ijepa", "__init__.py")) as f:
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
with open(os.path.join(PY, project["readme"])) as f:
    long_description = f.read()

setup(
    name=project["name"],
    version=version,
    description=project["description"],
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=project["requires-python"],
    install_requires=project["dependencies"],
    extras_require=project.get("optional-dependencies", {}),
    classifiers=project.get("classifiers", []),
    package_dir={"": "python"},
    packages=["ijepa"],
    package_data={"ijepa": ["lib/libijepa.so*"]},
    distclass=Dist,
    cmdclass={"build_py": BuildPyWithLibrary},
)
