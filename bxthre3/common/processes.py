"""Helpers for the child processes Bxthre3 starts (hosts of `run` and of the node manager)."""

from __future__ import annotations

import ctypes
import os
import signal

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
"""The directory holding the `bxthre3` package, so children find it even from a source checkout."""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a `python -m bxthre3...` child, the package root first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def die_with_parent() -> None:
    """Runs in the child before exec: have the kernel SIGKILL it when its parent thread goes away.

    Without it a `kill -9` of `bxthre3 run` or of a node manager would leave hosts behind.
    Linux only (prctl PR_SET_PDEATHSIG); elsewhere the host's own liveness check ends it.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
