"""The monitor's table columns (in priority order, with their widths) and the cells of each row.

Pure: a row is built from the controller's view of a task or host, as rich `Text` cells (never markup,
so a host called ``[bold red]x`` shows as written), with every control character escaped. The widths
follow what the cells hold: `✗ upstream_failed` is 17 cells, a node id rarely more than 16.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.text import Text

from ..client.outputs import terminal_safe
from .layout import ColumnSpec
from .states import look, state_text, task_look_state

if TYPE_CHECKING:
    from ..controller.views import HostView, TaskView

TASK_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("task", "task", minimum=10, preferred=22, priority=1, flex=2),
    ColumnSpec("state", "state", minimum=11, preferred=17, priority=2),
    ColumnSpec("time", "time", minimum=7, preferred=8, priority=3, right=True),
    ColumnSpec("node", "node", minimum=8, preferred=14, priority=4, flex=1),
    ColumnSpec("tries", "tries", minimum=5, preferred=5, priority=6, right=True),
    ColumnSpec("reason", "reason", minimum=10, preferred=16, priority=5, flex=2),
)
"""`time` is the run time of a finished task and the live elapsed time of a running one."""

TASK_ROW_FIELDS = ("task_id", "state", "cached", "verify", "running_s", "duration_s", "finished_at", "node_id",
                   "attempts", "reason")  # fmt: skip
"""Every field `task_cells` reads: a row built from the same values is the same row (the monitor reuses it)."""

HOST_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("node", "node", minimum=8, preferred=12, priority=1, flex=1),
    ColumnSpec("state", "state", minimum=7, preferred=13, priority=2),
    ColumnSpec("run", "run", minimum=5, preferred=5, priority=3, right=True),
    ColumnSpec("done", "done", minimum=4, preferred=6, priority=4, right=True),
    ColumnSpec("failed", "failed", minimum=6, preferred=6, priority=7, right=True),
    ColumnSpec("speed", "speed", minimum=5, preferred=5, priority=6, right=True),
    ColumnSpec("ram", "RAM use", minimum=11, preferred=13, priority=5, right=True),
    ColumnSpec("device", "device", minimum=8, preferred=12, priority=8, flex=1),
    ColumnSpec("engine", "engine", minimum=8, preferred=8, priority=9),
    ColumnSpec("platform", "platform", minimum=8, preferred=12, priority=11),
    ColumnSpec("seen", "seen", minimum=6, preferred=6, priority=10, right=True),
)


def plain(value: object) -> Text:
    """A cell of data from hosts or tasks: controls escaped, no markup read."""
    return Text(terminal_safe(str(value), keep=""), no_wrap=True, end="")


def seconds(value: float) -> str:
    """A duration as people read it: ``0.012 s``, ``12.3 s``, ``3m 05s``, ``2h 03m``."""
    if value < 10:
        return f"{value:.3f} s"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)}m {int(value % 60):02d}s"
    return f"{int(value // 3600)}h {int(value % 3600 // 60):02d}m"


def task_cells(task: TaskView | Mapping[str, Any], running_for: float | None = None) -> tuple[Text, ...]:
    """A task's row (`TASK_COLUMNS` order). `running_for`: its live elapsed time when it runs."""
    state = str(task.get("state", ""))
    shown = task_look_state(state, cached=bool(task.get("cached")), verify=int(task.get("verify") or 1))
    if state == "running":
        elapsed = running_for if running_for is not None else float(task.get("running_s") or 0.0)
        time = Text(seconds(max(0.0, elapsed)), style=look("running").style)
    elif state in ("succeeded", "failed") or task.get("finished_at") is not None:
        time = Text(seconds(float(task.get("duration_s") or 0.0)))
    else:
        time = Text("–", style="dim")
    reason = task.get("reason") or ""
    return (
        plain(task.get("task_id", "")),
        state_text(shown),
        time,
        plain(task.get("node_id") or ""),
        Text(str(task.get("attempts", 0))),
        plain(reason) if reason else Text(""),
    )


def host_cells(host: HostView | Mapping[str, Any]) -> tuple[Text, ...]:
    """A host's row (`HOST_COLUMNS` order)."""
    running = len(host.get("running") or ())
    slots = int(host.get("slots", 0))
    failed = int(host.get("failed", 0))
    speed = float(host.get("speed", 1.0))
    return (
        plain(host.get("node_id", "")),
        state_text(str(host.get("state", ""))),
        Text(f"{running}/{slots}"),
        Text(str(host.get("succeeded", 0))),
        Text(str(failed), style=look("failed").style if failed else ""),
        Text(f"{speed:.2f}", style="" if speed >= 0.5 else look("retrying").style),
        Text(_ram_use(host)),
        plain(host.get("device") or ""),
        plain(host.get("engine") or ""),
        plain(host.get("platform") or ""),
        Text(f"{float(host.get('last_seen_s', 0.0)):.1f}s"),
    )


def _ram_use(host: HostView | Mapping[str, Any]) -> str:
    """``use/limit MB``: what the host and its executors hold now, against its tasks' limit."""
    rss = host.get("rss_mb", -1)
    limit = host.get("ram_mb", 0)
    return f"{rss}/{limit} MB" if isinstance(rss, int) and rss >= 0 else f"?/{limit} MB"
