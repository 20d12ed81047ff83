"""Library loading, version/ABI, status strings, and the ctypes mirror of the header."""

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys

import pytest

import ijepa
from ijepa import _lib
from conftest import PYDIR, ROOT


def test_version_and_abi():
    assert re.fullmatch(r"\d+\.\d+\.\d+", ijepa.version())
    assert ijepa.__version__ == ijepa.version(), "the package's version is the library's"
    assert ijepa.abi_version() == ijepa.ABI_VERSION == 1
    assert os.path.exists(ijepa.library_path) or "/" not in ijepa.library_path


def test_status_strings():
    assert ijepa.status_string(0) == "ok"
    names = {ijepa.status_string(s) for s in range(0, -9, -1)}
    assert len(names) == 9
    assert ijepa.status_string(-100) not in names


def test_every_function_has_a_prototype():
    header = open(os.path.join(ROOT, "include", "ijepa.h")).read() \
        if os.path.exists(os.path.join(ROOT, "include", "ijepa.h")) else None
    if header is None:
        pytest.skip("include/ijepa.h not found")
    declared = set(re.findall(r"\b(ijepa_[a-z_0-9]+)\s*\(", header)) - {"ijepa_log_callback"}
    assert declared == set(_lib.PROTOTYPES), declared ^ set(_lib.PROTOTYPES)
    for name in declared:
        if name in _lib.OPTIONAL and not _lib.has_function(name):
            continue  # appended to the ABI after the loaded library was built
        f = getattr(_lib.lib, name)
        assert f.argtypes is not None, name


def _c_prototypes():
    path = os.path.join(ROOT, "include", "ijepa.h")
    if not os.path.exists(path):
        pytest.skip("include/ijepa.h not found")
    text = re.sub(r"/\*.*?\*/", " ", open(path).read(), flags=re.S)
    protos = {}
    for ret, name, args in re.findall(r"([\w\s\*]+?)\b(ijepa_\w+)\s*\(([^()]*)\)\s*;", text):
        args = [a.strip() for a in args.split(",")]
        protos[name] = (ret.strip(), [] if args == ["void"] else args)
    return protos


def test_argtypes_match_header_signatures():
    """Same number of parameters; pointers where the header has pointers, integers/floats of
    the same width elsewhere; same return kind."""
    pointerish = (ctypes.c_void_p, ctypes.c_char_p, ctypes._Pointer, ctypes._CFuncPtr)
    widths = {"int": 4, "int32_t": 4, "uint32_t": 4, "int64_t": 8, "uint64_t": 8, "float": 4,
              "size_t": ctypes.sizeof(ctypes.c_size_t)}
    protos = _c_prototypes()
    assert set(protos) == set(_lib.PROTOTYPES)
    for name, (ret, args) in protos.items():
        restype, argtypes = _lib.PROTOTYPES[name]
        assert len(argtypes) == len(args), name
        for c_arg, ct in zip(args, argtypes):
            if "*" in c_arg or c_arg.startswith("ijepa_log_callback"):
                assert issubclass(ct, pointerish), (name, c_arg, ct)
            else:
                ctype = c_arg.replace("const ", "").split()[0]
                assert ctypes.sizeof(ct) == widths[ctype], (name, c_arg, ct)
                assert (ctype == "float") == (ct is ctypes.c_float), (name, c_arg, ct)
                assert ctype.startswith("u") == (ct in (ctypes.c_uint32, ctypes.c_uint64)), (name, c_arg)
        if ret == "void":
            assert restype is None, name
        elif "*" in ret:
            assert issubclass(restype, pointerish), name
        elif ret == "ijepa_config":
            assert restype is _lib.ijepa_config
        else:
            assert ctypes.sizeof(restype) == widths[ret.replace("const ", "")], name


def test_error_classes():
    assert issubclass(ijepa.InvalidArgumentError, ijepa.Error)
    assert issubclass(ijepa.InvalidArgumentError, ValueError)
    assert issubclass(ijepa.IjepaIOError, OSError) and ijepa.IOError_ is ijepa.IjepaIOError
    statuses = [c.status for c in (ijepa.InvalidArgumentError, ijepa.ShapeError,
                                   ijepa.OutOfMemoryError, ijepa.IjepaIOError, ijepa.FormatError,
                                   ijepa.StateError, ijepa.NumericError, ijepa.InternalError)]
    assert statuses == [-1, -2, -3, -4, -5, -6, -7, -8]
    with pytest.raises(ijepa.InvalidArgumentError) as e:
        ijepa.Config.preset("no_such_preset")
    assert e.value.status == -1 and "no_such_preset" in e.value.message
    assert e.value.function == "ijepa_config_preset"


def _import_in_subprocess(env_lib):
    env = dict(os.environ, IJEPA_LIBRARY=env_lib, PYTHONPATH=PYDIR)
    return subprocess.run([sys.executable, "-c", "import ijepa"], env=env, capture_output=True,
                          text=True, timeout=60)


def test_missing_library_gives_clear_import_error(tmp_path):
    r = _import_in_subprocess(str(tmp_path / "nope.so"))
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr and "IJEPA_LIBRARY" in r.stderr
    assert "nope.so" in r.stderr


def test_non_ijepa_library_is_refused():
    libm = ctypes.util.find_library("m")
    if not libm:
        pytest.skip("no libm to try")
    r = _import_in_subprocess(libm)
    assert r.returncode != 0 and "is not libijepa" in r.stderr


def test_abi_mismatch_is_refused():
    class Fake:
        @staticmethod
        def ijepa_abi_version():
            return 2
    with pytest.raises(ImportError, match="ABI version 2.*ABI version 1"):
        _lib._check_abi(Fake(), "fake.so")


STRUCTS = {
    "ijepa_config": [f for f, _ in _lib.ijepa_config._fields_ if not f.startswith("_pad")],
    "ijepa_masks": [f for f, _ in _lib.ijepa_masks._fields_],
    "ijepa_ragged_masks": [f for f, _ in _lib.ijepa_ragged_masks._fields_],
    "ijepa_step_stats": [f for f, _ in _lib.ijepa_step_stats._fields_],
    "ijepa_tensor_info": [f for f, _ in _lib.ijepa_tensor_info._fields_],
}
CONSTANTS = ["IJEPA_ABI_VERSION", "IJEPA_OK", "IJEPA_ERR_INVALID_ARGUMENT", "IJEPA_ERR_SHAPE",
             "IJEPA_ERR_OUT_OF_MEMORY", "IJEPA_ERR_IO", "IJEPA_ERR_FORMAT", "IJEPA_ERR_STATE",
             "IJEPA_ERR_NUMERIC", "IJEPA_ERR_INTERNAL", "IJEPA_BUF_PARAMS", "IJEPA_BUF_GRADS",
             "IJEPA_BUF_TARGET", "IJEPA_BUF_ADAM_M", "IJEPA_BUF_ADAM_V", "IJEPA_TARGET_ENCODER",
             "IJEPA_CONTEXT_ENCODER", "IJEPA_SAVE_WEIGHTS", "IJEPA_SAVE_TRAINING_STATE",
             "IJEPA_LOG_DEBUG", "IJEPA_LOG_INFO", "IJEPA_LOG_WARN", "IJEPA_LOG_ERROR"]


def test_struct_layout_and_constants_match_the_header(tmp_path):
    """Compiles a C program against include/ijepa.h that prints sizeof/offsetof of every
    field and every constant, and compares with the ctypes mirror."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    inc = os.path.join(ROOT, "include")
    if cc is None or not os.path.exists(os.path.join(inc, "ijepa.h")):
        pytest.skip("no C compiler or include/ijepa.h")
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "ijepa.h"', "int main(void) {"]
    for s, fields in STRUCTS.items():
        lines.append('printf("%s sizeof %%zu\\n", sizeof(%s));' % (s, s))
        for f in fields:
            lines.append('printf("%s %s %%zu\\n", offsetof(%s, %s));' % (s, f, s, f))
    for c in CONSTANTS:
        lines.append('printf("const %s %%d\\n", (int)(%s));' % (c, c))
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", inc, str(src), "-o", str(exe)], check=True, timeout=120)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    for line in filter(None, out):
        a, b, v = line.split()
        if a == "const":
            name = "ABI_VERSION" if b == "IJEPA_ABI_VERSION" else b
            assert getattr(_lib, name) == int(v), b
            continue
        st = getattr(_lib, a)
        got = ctypes.sizeof(st) if b == "sizeof" else getattr(st, b).offset
        assert got == int(v), (a, b, got, v)


def test_bundled_copy_is_found(tmp_path):
    """Without IJEPA_LIBRARY, a library copied into ijepa/lib/ (make -C python bundle) is used."""
    pkg = tmp_path / "ijepa"
    shutil.copytree(os.path.dirname(ijepa.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "libijepa.so*"))
    (pkg / "lib").mkdir(exist_ok=True)
    shutil.copy(os.path.realpath(_lib.library_path) if os.sep in _lib.library_path
                else ctypes.util.find_library("ijepa"), pkg / "lib" / "libijepa.so.1")
    env = {k: v for k, v in os.environ.items() if k != "IJEPA_LIBRARY"}
    env["PYTHONPATH"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import ijepa; print(ijepa.library_path)"],
                       env=env, capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(pkg / "lib" / "libijepa.so.1")
