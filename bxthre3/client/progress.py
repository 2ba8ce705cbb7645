"""Progress of the CLI's long waits, drawn on stderr so stdout stays parseable.

On a terminal: rich bars. Otherwise (a log file, CI): plain lines, one when the count of finished
tasks moves (at most every `PLAIN_EVERY_S`) and one at the end, so a log shows how far a DAG got.

Either way, a DAG that stops moving says why: after `STALL_NOTICE_S` seconds without progress the
waiter asks the controller which tasks run where and for how long, and why the others wait, and
prints it (again every `STALL_REPEAT_S` while it lasts). A wedged host or a task no host can take
used to look exactly like a slow task: a bar stuck at 14/16, forever.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # rich is imported where a bar is drawn: `validate` and `--help` need none of its 35 ms
    from rich.console import Console
    from rich.progress import Progress

    from ..controller.views import DagSummary, ResultsView, StatusView, TaskView

STALL_NOTICE_S = 10.0
"""Seconds without any task changing state before the waiter says what the DAG waits for."""

STALL_REPEAT_S = 30.0
"""While it stays stuck, the explanation is printed again this often (elapsed times move on)."""

PLAIN_EVERY_S = 5.0
"""Without a terminal, at most one progress line this often (and one whenever the DAG ends)."""

MAX_NAMED_TASKS = 5
"""Running (or retrying) tasks named one by one in an explanation; the rest are counted."""


def _progress(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@dataclass(slots=True)
class StallWatch:
    """Notices when a DAG's progress snapshots stop changing (pure: the caller passes the time)."""

    after: float = STALL_NOTICE_S
    repeat: float = STALL_REPEAT_S
    _key: tuple[Any, ...] | None = None
    _since: float = 0.0
    _next_notice: float = 0.0

    def idle_for(self, now: float) -> float:
        """Seconds since the last change seen."""
        return now - self._since

    def update(self, snapshot: DagSummary, now: float) -> bool:
        """Take a snapshot; True when an explanation is due (first after `after` s still, then every `repeat` s)."""
        key = (snapshot.get("state"), snapshot.get("done"), tuple(sorted((snapshot.get("counts") or {}).items())))
        if key != self._key:
            self._key = key
            self._since = now
            self._next_notice = now + self.after
            return False
        if snapshot.get("state") != "running" or now < self._next_notice:
            return False
        self._next_notice = now + self.repeat
        return True


def _printable(text: object, limit: int = 200) -> str:
    """One line of plain text: what hosts and modules wrote must not move the cursor or recolour the terminal."""
    cleaned = "".join(c if c.isprintable() else "?" for c in str(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def describe_stall(results: ResultsView, status: StatusView, idle_s: float) -> list[str]:
    """Why a DAG has not moved for `idle_s` seconds, from the controller's own snapshots (pure).

    `results` is `bxthre3 results --json`'s shape (without outputs; running tasks first), `status`
    `bxthre3 status --json`'s. First line: the headline; the others: running tasks with their hosts
    and elapsed times, then why the rest wait.
    """
    counts: dict[str, int] = results.get("counts") or {}
    tasks: list[TaskView] = results.get("tasks") or []
    hosts = {h.get("node_id"): h for h in status.get("hosts") or []}
    done = f"{results.get('done', 0)}/{results.get('total', 0)} done"
    lines = [f"no progress for {_seconds(idle_s)} ({done}); waiting on:"]

    running = [t for t in tasks if t.get("state") == "running"]
    if running:
        named = []
        for t in running[:MAX_NAMED_TASKS]:
            node = t.get("node_id") or "?"
            bit = f"{_printable(t['task_id'])} on {_printable(node)}"
            running_s = t.get("running_s")
            if running_s is not None:
                bit += f" for {_seconds(float(running_s))}"
            if int(t.get("attempts") or 1) > 1:
                bit += f" (attempt {t['attempts']})"
            host = hosts.get(node)
            if host is None:
                bit += " (host gone)"
            elif host.get("state") == "silent":
                bit += f" (host silent for {_seconds(float(host.get('last_seen_s', 0)))})"
            named.append(bit)
        more = counts.get("running", len(running)) - len(named)
        lines.append(f"  running: {', '.join(named)}" + (f" and {more} more" if more > 0 else ""))

    ready = counts.get("ready", 0)
    if ready:
        # A task's own reason (the memory no host offers) comes with it; the rest wait for a place.
        reasons = Counter(
            _printable(str(t["error"]).removeprefix("waiting: "))
            for t in tasks
            if t.get("state") == "ready" and t.get("error")
        )
        lines += [f"  {n} ready: {why}" for why, n in reasons.items()]
        rest = ready - sum(reasons.values())
        if rest > 0:
            paused = [f"{_printable(n)} ({_printable(h['paused'])})" for n, h in hosts.items() if h.get("paused")]
            totals = status.get("totals") or {}
            if not hosts:
                why = "no host is registered with the controller"
            elif len(paused) == len(hosts):
                why = f"every host is paused: {', '.join(paused)}"
            elif totals.get("slots") and totals.get("running", 0) >= totals["slots"]:
                why = f"every slot is busy ({totals['running']} running on {totals['slots']} slots)"
            else:
                why = "next in line for a free slot"
            lines.append(f"  {rest} ready: {why}")

    retrying = [t for t in tasks if t.get("state") == "retrying"]
    if retrying:
        named = [
            f"{_printable(t['task_id'])} ({t.get('reason') or 'failed'}: {_printable(t.get('error') or '?')})"
            for t in retrying[:MAX_NAMED_TASKS]
        ]
        more = counts.get("retrying", len(retrying)) - len(named)
        lines.append(f"  retrying after a failure: {', '.join(named)}" + (f" and {more} more" if more > 0 else ""))

    pending = counts.get("pending", 0)
    if pending:
        lines.append(f"  {pending} pending: their upstream tasks have not finished")
    return lines


def finished_counts(snapshot: DagSummary) -> tuple[int, int]:
    """(tasks that ran to an end, tasks cancelled) of a DAG snapshot.

    The snapshot's ``done`` counts every task in a final state, cancelled ones too; shown as is, a DAG
    cancelled before most of its tasks ran read "65/65" and a full bar, as if it had completed."""
    cancelled = int((snapshot.get("counts") or {}).get("cancelled", 0) or 0)
    return max(0, int(snapshot.get("done", 0) or 0) - cancelled), cancelled


def done_text(snapshot: DagSummary) -> str:
    """'12/65' or, when tasks were cancelled, '12/65, 53 cancelled' (never a completed-looking count)."""
    ran, cancelled = finished_counts(snapshot)
    text = f"{ran}/{snapshot.get('total', 0)}"
    return text + (f", {cancelled} cancelled" if cancelled else "")


Explain = Callable[[float], list[str]]
"""Asks the controller why the DAG waits (given the seconds it has not moved); returns lines to print."""


class DagProgress:
    """One DAG's progress: done/total with running and failed counts, and why it waits when it stalls."""

    def __init__(
        self,
        name: str,
        total: int,
        console: Console | None = None,
        *,
        explain: Explain | None = None,
        clock: Callable[[], float] = time.monotonic,
        watch: StallWatch | None = None,
        plain: TextIO | None = None,
    ) -> None:
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.name = name
        self.total = total
        self.explain = explain
        self.clock = clock
        self.watch = watch or StallWatch()
        self.terminal = self.console.is_terminal
        """Rich bar on a terminal; otherwise plain lines (to `plain`, default stderr)."""
        self._plain = plain
        self._last_plain = -float("inf")
        self._last_line = ""
        self.progress = _progress(self.console) if self.terminal else None
        self.task = self.progress.add_task(name, total=total, detail="") if self.progress else None

    def __enter__(self) -> DagProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _say(self, line: str) -> None:
        if self.progress is not None:
            from rich.markup import escape

            self.progress.console.print(escape(line), highlight=False, soft_wrap=True)
        else:
            out = self._plain or sys.stderr
            print(line, file=out, flush=True)

    def update(self, snapshot: DagSummary) -> None:
        now = self.clock()
        counts = snapshot.get("counts", {})
        keys = ("running", "failed", "cancelled")
        bits = [f"{counts.get(k, 0)} {k.replace('_', ' ')}" for k in keys if counts.get(k)]
        state = snapshot.get("state", "")
        if state != "running":
            bits.insert(0, f"DAG {state}")
        stalled = self.watch.update(snapshot, now)
        idle = self.watch.idle_for(now)
        if self.progress is not None and self.task is not None:
            detail = ", ".join(bits + ([f"no progress for {_seconds(idle)}"] if idle >= self.watch.after else []))
            done, _ = finished_counts(snapshot)
            self.progress.update(self.task, completed=done, total=snapshot.get("total"), detail=detail)
        else:
            line = f"{self.name}: {finished_counts(snapshot)[0]}/{snapshot.get('total', self.total)} done"
            line += "".join(f", {b}" for b in bits)
            ended = state not in ("running", "")
            if line != self._last_line and (ended or now - self._last_plain >= PLAIN_EVERY_S):
                self._say(line)
                self._last_line = line
                self._last_plain = now
        if stalled and self.explain is not None:
            for line in self.explain(idle):
                self._say(line)


@dataclass(slots=True)
class _Stage:
    progress: Progress | None = None
    task: Any = None
    said: set[int] = field(default_factory=set)


def stage_printer(console: Console | None = None) -> Callable[[str, int, int], None]:
    """A callback showing 'starting local hosts' as a bar until they have all registered."""
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    state = _Stage()

    def on_stage(stage: str, done: int, total: int) -> None:
        if not console.is_terminal:
            if done >= total and total not in state.said:
                state.said.add(total)
                print(f"local {stage} registered: {done}/{total}", file=sys.stderr, flush=True)
            return
        if state.progress is None:
            state.progress = _progress(console)
            state.task = state.progress.add_task("starting local hosts", total=total, detail="")
            state.progress.start()
        state.progress.update(state.task, completed=done, total=total)
        if done >= total:
            state.progress.stop()

    return on_stage
