"""Helpers for the child processes Bxthre3 starts (hosts of `run` and of the node manager)."""

from __future__ import annotations

import ctypes
import signal


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
