"""The first Python snippet of python/README.md runs as written."""

import os
import re
import subprocess
import sys

from conftest import PYDIR


def test_readme_snippet_runs(tmp_path):
    text = open(os.path.join(PYDIR, "README.md")).read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYDIR, env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tiny32.safetensors").exists()
    assert r.stdout.splitlines()[-1] == "3 192"
