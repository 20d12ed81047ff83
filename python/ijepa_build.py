"""The build step shared by python/setup.py (`pip install ./python`) and the repository's
setup.py (`pip install .`): libijepa built with the installed Swift toolchain by the
repository's Makefile (`make lib`) and copied into the built package as ijepa/lib/libijepa.so.1.
Not part of the package.

- `make lib` needs Swift 6 on PATH or in /opt/swift/usr/bin, and libopenblas-dev + pkg-config
  (`make deps` installs the latter).
- IJEPA_TARGET_CPU=haswell builds for any AVX2 machine (default: this machine's vector width;
  use it for a wheel other machines install).
- IJEPA_NO_BUILD=1 builds nothing and bundles nothing: the package then finds the library
  through IJEPA_LIBRARY or the system (see ijepa/_lib.py). A copy already bundled with
  `make -C python bundle` is shipped as it is.
"""
import glob
import os
import shutil
import subprocess

from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))   # python/
ROOT = os.path.dirname(HERE)                        # the repository


def _bundled(directory):
    return glob.glob(os.path.join(directory, "ijepa", "lib", "libijepa.so*"))


def _will_bundle():
    return bool(_bundled(HERE)) or not os.environ.get("IJEPA_NO_BUILD")


class BuildPyWithLibrary(build_py):
    """build_py, then libijepa built by the repository's Makefile and copied into the package."""

    def run(self):
        super().run()
        if _bundled(HERE) or os.environ.get("IJEPA_NO_BUILD"):
            return
        if not os.path.exists(os.path.join(ROOT, "Package.swift")):
            raise SystemExit("ijepa: no Package.swift in %s: build from the repository (python/ inside it), "
                             "or set IJEPA_NO_BUILD=1 and point IJEPA_LIBRARY at an installed libijepa" % ROOT)
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "") + os.pathsep + "/opt/swift/usr/bin"
        cmd = ["make", "-C", ROOT, "--no-print-directory", "lib"]
        if env.get("IJEPA_TARGET_CPU"):
            cmd.append("TARGET_CPU=" + env["IJEPA_TARGET_CPU"])
        self.announce("ijepa: building libijepa: " + " ".join(cmd), level=2)
        subprocess.check_call(cmd, env=env)
        built = os.path.join(ROOT, "build", "lib", "libijepa.so")   # -> libijepa.so.ABI -> .so.VERSION
        if not os.path.exists(built):
            raise SystemExit("ijepa: make lib produced no %s" % built)
        dest = os.path.join(self.build_lib, "ijepa", "lib")
        os.makedirs(dest, exist_ok=True)
        shutil.copyfile(built, os.path.join(dest, "libijepa.so.1"))


class Dist(Distribution):
    def has_ext_modules(self):
        # a bundled library makes the wheel platform-specific
        return _will_bundle()

