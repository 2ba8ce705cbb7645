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


def die_with_parent(parent_pid: int | None = None, *, sig: int = signal.SIGKILL) -> None:
    """Runs in a child: have the kernel send it `sig` (SIGKILL) when its parent thread goes away.

    Without it a `kill -9` of `bxthre3 run`, of a node manager or of the TUI would leave hosts and roles
    behind, and a `kill -9` of a host a module spinning in its executor. Hosts and roles call it before
    exec (`preexec_fn`); the executor child first thing after, passing the `parent_pid` it was given, so
    a parent that died before prctl took effect ends it at once. Linux and Android only (prctl
    PR_SET_PDEATHSIG); elsewhere a host ends on its own liveness check, and an executor at its job pipe's
    EOF once its current job is done. The browser UI's sessions ask for SIGTERM instead: a UI quits on it
    as on `q`, stopping the roles it started.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
