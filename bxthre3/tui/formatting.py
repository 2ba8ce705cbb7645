"""Pure text helpers for the monitor and the role screens (tested without Textual). The monitor's table
rows are in `columns.py`, its output pane in `output_render.py`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ..client.outputs import terminal_safe

if TYPE_CHECKING:
    from ..controller.views import QuarantineView


def quarantine_line(device: QuarantineView) -> str:
    """The log's line for a device that was just quarantined: which, why, and the way back."""
    return (
        f"device {device.get('device', '')} ({str(device.get('device_id', ''))[:8]}…) quarantined after "
        f"{device.get('mismatches', 0)} mismatch(es): {device.get('reason', '')}; its hosts get no tasks until "
        "`bxthre3 hosts trust DEVICE`"
    )


def counts_line(counts: dict[str, int]) -> str:
    """Non-zero task-state counts, e.g. ``succeeded 3 · running 1``."""
    return " · ".join(f"{state} {n}" for state, n in counts.items() if n)


def share_text(summary: Mapping[str, Any]) -> str:
    """A DAG's priority (when not 0) and, while it runs, its share of the slots: `` · prio 2 · share 50%``."""
    parts = []
    if summary.get("priority"):
        parts.append(f"prio {summary['priority']}")
    if summary.get("state") == "running":
        parts.append(f"share {float(summary.get('share') or 0.0):.0%}")
    return "".join(f" · {p}" for p in parts)


def cell(value: object) -> str:
    """A table cell from data hosts or tasks report: DataTable reads str cells as rich markup,
    so `[` is escaped (a host called ``[bold red]x`` shows as written) and so are controls."""
    return escape(terminal_safe(str(value), keep=""))


MAX_TASK_ROWS = 500
"""The task table shows at most this many tasks of a DAG (the controller picks which)."""
