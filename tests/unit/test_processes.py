"""`processes.die_with_parent`: the one way every child Bxthre3 starts ties its life to its parent."""

from __future__ import annotations

import subprocess
import sys

from bxthre3.common.processes import PACKAGE_ROOT, child_env

CHILD = """
import os, sys
from bxthre3.common.processes import die_with_parent
die_with_parent()  # as a preexec_fn calls it
die_with_parent(os.getppid())  # the parent it was told is its parent: carry on
print("alive", flush=True)
die_with_parent(os.getppid() + 1)  # an executor whose parent died before prctl took effect
print("still alive", flush=True)
"""


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=child_env(), cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=30
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "alive\n", "")
