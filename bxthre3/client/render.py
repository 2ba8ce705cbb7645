"""Human-readable rendering of status and results snapshots (rich tables on stdout)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .outputs import terminal_safe
from .progress import done_text

if TYPE_CHECKING:
    from ..controller.views import ResultsView, StatusView, TaskView

_STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "upstream_failed": "red",
    "running": "yellow",
    "ready": "cyan",
    "pending": "dim",
    "retrying": "yellow",
    "cancelled": "magenta",
}


HOST_COLUMNS = (
    "node", "device", "platform", "engine", "RAM use/limit", "slots", "running", "done", "failed", "speed", "seen",
    "state",
)  # fmt: skip


def describe_output(data: bytes | str | None, limit: int = 4096) -> str:
    """Text as text; binary as its size and a hex head, so a terminal never gets garbage."""
    if data is None:
        return ""
    if isinstance(data, str):
        data = data.encode()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data):,} bytes of binary: {data[:32].hex(' ')}{' …' if len(data) > 32 else ''}>"
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(data):,} bytes in all; use --json for everything)"
    return text


def _safe(text: object) -> str:
    """Text from a task or a host, for rich markup: control sequences escaped, `[` literal.

    A module (or a member's host) must not be able to move the cursor, clear the screen,
    retitle the window, reverse the text or style it with rich markup.
    """
    return escape(terminal_safe(str(text)))


def print_results(results: ResultsView, console: Console | None = None) -> None:
    """A DAG's results for people. On a terminal every task-controlled string is escaped;
    in a pipe a text output goes out as it is (`--json` is the byte-exact form).

    In a pipe or a file (no colours), the lines rich would print are built as plain strings in
    one pass: a rule and a markup parse per task made 20,000 tasks take 3.9 s; any line that rich
    would change (tabs, wide characters, `:emoji:` codes, a title wider than the rule) still goes
    through rich, so the text is the same byte for byte."""
    console = console or Console(highlight=False, soft_wrap=True)
    state = results.get("state", "?")
    style = _STATE_STYLE.get(state, "")
    console.print(
        f"[bold]{_safe(results.get('name', ''))}[/] ({results.get('dag_id')}): [{style}]{state}[/] — "
        f"{done_text(results)} tasks in {results.get('elapsed_s', 0):.2f}s"
    )
    terminal = console.is_terminal  # rich reads the environment each time it is asked
    plain = _PlainLines(console) if console.color_system is None and not terminal else None
    for task in results.get("tasks", []):
        _print_task(task, console, plain, terminal)
    if plain is not None:
        plain.flush()


def _print_task(task: TaskView, console: Console, plain: _PlainLines | None, terminal: bool) -> None:
    tstate = task["state"]
    node = terminal_safe(str(task["node_id"])) if task.get("node_id") else ""
    where = f" on {node}" if node else ""
    took = f", {task['duration_s'] * 1000:.1f} ms" if task.get("duration_s") else ""
    tries = f", {task['attempts']} attempts" if task.get("attempts", 0) > 1 else ""
    if tstate == "succeeded" and task.get("verify", 1) > 1:
        agreed = sum(1 for a in task.get("history", ()) if a["reason"] is None and not a["error"])
        more = task.get("attempts", 0) > agreed
        tries = f", verified by {agreed} devices" + (f", {task['attempts']} attempts" if more else "")
    cached = bool(task.get("cached"))
    if cached:
        where, took, tries = " cached", "", ""
    task_id = terminal_safe(str(task["task_id"]))
    if plain is None or not plain.rule(f"{task_id} {tstate}{where}{took}{tries}"):
        _flush(plain)
        where = " [cyan]cached[/]" if cached else (f" on {escape(node)}" if node else "")
        console.rule(
            f"[bold]{escape(task_id)}[/] [{_STATE_STYLE.get(tstate, '')}]{tstate}[/]{where}{took}{tries}",
            align="left",
        )
    if tstate == "succeeded":
        text = describe_output(task.get("output")).rstrip("\n")
        if text and terminal:
            console.out(terminal_safe(text), highlight=False)
        elif text:  # rich would drop carriage returns and expand tabs
            if plain is not None:
                plain.add(text)
            else:
                console.file.write(text + "\n")
                console.file.flush()
        for f in task.get("files") or []:  # named outputs: what the task wrote under /out
            label = terminal_safe(f"{task['task_id']}/{f['name']}", keep="")
            line = f"{label} {f['size']:,} bytes, sha256 {f['sha256']}"
            if plain is None or not plain.line(line):
                _flush(plain)
                console.print(f"[cyan]{escape(label)}[/] {f['size']:,} bytes, sha256 {f['sha256']}")
    else:
        reason = terminal_safe(str(task.get("reason") or ""))
        error = terminal_safe(str(task.get("error") or ""))
        if (reason or error) and (plain is None or not plain.line(f"{reason} {error}")):
            _flush(plain)
            console.print(f"[red]{escape(reason)}[/] {escape(error)}")
        stderr = describe_output(task.get("stderr")).rstrip("\n")
        if stderr:
            tail = terminal_safe(
                "\n".join(stderr.split("\n")[-10:])
            )  # not splitlines(): it also splits at \r, \x1c, \x85
            if plain is None or not plain.line(f"stderr (tail):\n{tail}"):
                _flush(plain)
                console.print(f"[dim]stderr (tail):[/]\n{escape(tail)}")


def _flush(plain: _PlainLines | None) -> None:
    if plain is not None:
        plain.flush()


class _PlainLines:
    """Lines for a console without colours, gathered and written at once.

    `rule` and `line` take a line only when rich would print exactly its text: ASCII with no tab
    (rich expands tabs), no `:` (rich turns `:smile:` into an emoji), no backslash (markup escapes
    one at the end of a text, and rich shows it doubled) and, for a rule, a title that
    fits; otherwise they return False and the caller has rich print it (after `flush`)."""

    def __init__(self, console: Console) -> None:
        self.file = console.file
        self.width = console.width
        self.bar = "-" if console.options.ascii_only else "\u2500"
        self.parts: list[str] = []

    @staticmethod
    def _plain(text: str) -> bool:
        return text.isascii() and "\t" not in text and ":" not in text and "\\" not in text

    def rule(self, title: str) -> bool:
        if not (self._plain(title) and "\n" not in title and 0 < len(title) <= self.width - 2):
            return False
        self.parts.append(f"{title} {self.bar * (self.width - len(title) - 1)}\n")
        return True

    def line(self, text: str) -> bool:
        if not self._plain(text):
            return False
        self.parts.append(text + "\n")
        return True

    def add(self, text: str) -> None:
        """A task's output: written as it is, as the rich path does in a pipe."""
        self.parts.append(text + "\n")

    def flush(self) -> None:
        if self.parts:
            self.file.write("".join(self.parts))
            self.parts.clear()
            self.file.flush()


def _failed_cell(counts: dict[str, int], failures: dict[str, int]) -> str:
    """'3 (timeout 2, trap 1) +5 upstream': failures by reason, then what they took down."""
    failed = counts.get("failed", 0)
    text = str(failed)
    if failures:
        text += " (" + ", ".join(f"{reason} {n}" for reason, n in sorted(failures.items())) + ")"
    if counts.get("upstream_failed"):
        text += f" +{counts['upstream_failed']} upstream"
    return text


def _console() -> Console:
    """On a terminal, its width; in a pipe or a file, wide enough that tables never fold ids."""
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _hosts_table(status: StatusView) -> Table:
    hosts = Table(title="hosts", title_justify="left", box=box.SIMPLE_HEAD)
    for col in HOST_COLUMNS:
        hosts.add_column(col, overflow="fold", no_wrap=col == "node")
    for h in status.get("hosts", []):
        state = _safe(h.get("state", ""))
        hosts.add_row(
            _safe(h["node_id"]),
            _safe(h.get("device", "")),
            _safe(h.get("platform", "")),
            _safe(h.get("engine", "")),
            f"{h['rss_mb'] if h.get('rss_mb', -1) >= 0 else '?'}/{h.get('ram_mb')} MB",
            str(h.get("slots")),
            _safe(", ".join(h.get("running", []))) or "-",
            str(h.get("succeeded")),
            str(h.get("failed")),
            f"{h.get('speed', 1.0):.2f}",
            f"{h.get('last_seen_s', 0):.1f}s ago",
            f"[bold red]{state}[/]" if h.get("quarantined") else state,
        )
    return hosts


def _when(at: float) -> str:
    """A wall-clock time of the controller's, in this machine's local time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def print_hosts(status: StatusView, console: Console | None = None) -> None:
    """The hosts table and, when there are any, the quarantined devices (`status`, `hosts`)."""
    console = console or _console()
    console.print(_hosts_table(status))
    quarantined = status.get("quarantined") or []
    if not quarantined:
        return
    table = Table(title="quarantined devices (no tasks)", title_justify="left", title_style="bold red",
                  box=box.SIMPLE_HEAD)  # fmt: skip
    for col in ("device id", "name", "since", "mismatches", "hosts", "reason"):
        table.add_column(col, overflow="fold", no_wrap=col == "device id")
    for q in quarantined:
        table.add_row(
            _safe(q["device_id"]),
            _safe(q["device"]),
            _when(q["since"]),
            str(q["mismatches"]),
            _safe(", ".join(q.get("node_ids", []))) or "-",
            _safe(q["reason"]),
        )
    console.print(table)
    console.print("[dim]`bxthre3 hosts trust DEVICE` gives a device tasks again once you have checked it[/]")


def print_status(status: StatusView, console: Console | None = None) -> None:
    console = console or _console()
    t = status.get("totals", {})
    console.print(
        f"[bold]cluster[/]: {t.get('devices', 0)} devices, {t.get('hosts', 0)} hosts, {t.get('slots', 0)} slots, "
        f"{t.get('ram_mb', 0)} MB RAM, "
        f"{t.get('running', 0)} running, {t.get('ready', 0)} queued, "
        f"{t.get('succeeded', 0)} succeeded, {t.get('failed', 0)} failed, {t.get('tasks_per_s', 0)} tasks/s"
    )
    for reason in status.get("waiting", []):
        console.print(f"[yellow]waiting:[/] {_safe(reason)}")
    print_hosts(status, console)
    dags = Table(title="DAGs", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("id", "name", "state", "prio", "done", "running", "share", "failed", "elapsed"):
        dags.add_column(col, overflow="fold")
    for d in status.get("dags", []):
        counts = d.get("counts", {})
        style = _STATE_STYLE.get(d["state"], "")
        dags.add_row(
            d["dag_id"],
            _safe(d["name"]),
            f"[{style}]{d['state']}[/]",
            str(d.get("priority", 0)),
            done_text(d),
            str(counts.get("running", 0)),
            f"{d.get('share', 0.0):.0%}" if d["state"] == "running" else "-",
            _failed_cell(counts, d.get("failures", {})),
            f"{d.get('elapsed_s', 0):.2f}s",
        )
    console.print(dags)
