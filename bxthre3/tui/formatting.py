"""Pure text helpers for the monitor (tested without Textual)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ..client.outputs import terminal_safe

if TYPE_CHECKING:
    from ..controller.views import HostView, QuarantineView, TaskView, Totals

MAX_TEXT_SHOWN = 64 * 1024
"""The output viewer shows at most this many characters of a text output."""

HEX_HEAD = 64
"""Bytes of a binary output shown as hex."""


def describe_output(data: bytes | str | None) -> str:
    """UTF-8 text as text (truncated) with control characters escaped, anything else as its size and a hex head.

    Escaped, not dropped: a task's output must not drive the terminal (ESC sequences,
    carriage returns, bidi overrides), yet coloured output is still readable as text.
    NUL bytes mark binary data even when they happen to be valid UTF-8.
    """
    if data is None:
        return "(no output yet)"
    if isinstance(data, str):
        data = data.encode()
    if not data:
        return "(empty output)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text[:4096]:
        if len(text) > MAX_TEXT_SHOWN:
            return terminal_safe(text[:MAX_TEXT_SHOWN]) + f"\n… ({len(data)} bytes in all)"
        return terminal_safe(text)
    head = data[:HEX_HEAD]
    lines = [f"{len(data)} bytes of binary output; the first {len(head)}:"]
    for off in range(0, len(head), 16):
        chunk = head[off : off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {hexes:<47}  {ascii_}")
    return "\n".join(lines)


def totals_line(totals: Totals, quarantined: int = 0) -> str:
    """One line of cluster totals from `status_view()["totals"]`; quarantined devices first (a narrow
    screen cuts the end of the line, and they need someone to act)."""
    line = f"{quarantined} device{'s' if quarantined > 1 else ''} quarantined · " if quarantined else ""
    return line + (
        f"{totals.get('devices', 0)} devices · {totals.get('hosts', 0)} hosts · "
        f"{totals.get('slots', 0)} slots · {totals.get('ram_mb', 0)} MB · "
        f"{totals.get('running', 0)} running · {totals.get('ready', 0)} ready · "
        f"{totals.get('tasks_per_s', 0)} tasks/s"
    )


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


def host_row(host: HostView) -> tuple[str, ...]:
    """The monitor's columns (`monitor.HOST_COLUMNS`): the state second, so it shows in a narrow pane."""
    state = cell(host.get("state", ""))
    return (
        cell(host["node_id"]),
        f"[bold red]{state}[/]" if host.get("quarantined") else state,
        cell(host.get("device") or ""),
        cell(host.get("platform") or ""),
        cell(host.get("engine") or ""),
        _ram_use(host),
        str(host.get("slots", 0)),
        str(len(host.get("running") or ())),
        str(host.get("succeeded", 0)),
        str(host.get("failed", 0)),
        f"{float(host.get('speed', 1.0)):.2f}",
        f"{float(host.get('last_seen_s', 0.0)):.1f}",
    )


def _ram_use(host: HostView) -> str:
    """``use/limit MB``: what the host and its executors hold now, against its tasks' limit."""
    rss = host.get("rss_mb", -1)
    limit = host.get("ram_mb", 0)
    return f"{rss}/{limit} MB" if isinstance(rss, int) and rss >= 0 else f"?/{limit} MB"


def task_row(task: TaskView) -> tuple[str, ...]:
    return (
        cell(task["task_id"]),
        cell(task.get("state", "")),
        cell(task.get("node_id") or ""),
        str(task.get("attempts", 0)),
        f"{float(task.get('duration_s') or 0.0):.3f} s",
        cell(task.get("reason") or ""),
    )


MAX_TASK_ROWS = 500
"""The task table shows at most this many tasks of a DAG (the controller picks which)."""
