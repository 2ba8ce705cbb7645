"""mypy finds nothing in the package: the settings are pyproject.toml's `[tool.mypy]`.

mypy is in the `test` extra (pinned in constraints.txt), so `./bootstrap.sh test` and CI run this; it
skips only where mypy is not installed. Its cache lives in `~/.cache/bxthre3/mypy/`, one directory per
checkout and venv (the cache records the paths of both): a warm run takes about half a second, a cold
one about ten.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("~/.cache/bxthre3/mypy").expanduser() / hashlib.sha256(f"{REPO}\0{sys.prefix}".encode()).hexdigest()[:16]


@pytest.mark.one_python  # [tool.mypy] python_version fixes what it checks against, whichever Python runs it
def test_mypy_finds_nothing_in_the_package() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (it comes with the `test` extra: pip install -e .[test])")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(CACHE)],  # files and settings: [tool.mypy]
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
