"""What every long-running role (controller, host, node manager) sets up around its loop: its log
file, a stop event that SIGTERM and SIGINT set (and which remembers the signal, for the exit code), and
the status file the TUI reads.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from ..common.stop_event import StopEvent


def _role_log(args: argparse.Namespace, name: str) -> Path:
    """The role's log file: --log-file, else <name> in logs.default_log_dir() (never ./logs)."""
    from ..common.logs import role_log_file

    return role_log_file(args.log_file, name)


def _stop_on_signals() -> StopEvent:
    stop = StopEvent()

    def handler(signum: int, frame: object) -> None:
        stop.signal = signum  # type: ignore[attr-defined]
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _status_file(args: argparse.Namespace) -> Any:
    from ..common.status_file import StatusFile

    return StatusFile(args.status_file) if getattr(args, "status_file", None) else None
