"""How the monitor keeps up with a big DAG, and what it costs when nothing happens (issue 21 targets:
median key-to-screen latency <= 50 ms with a 50,000-task DAG running; <= 2 % of one core when idle).

    PYTHONPATH=. python benchmarks/tui_updates.py [--tasks 50000] [--idle-seconds 20] [--size 160x48]

The real app runs headless in this process with an embedded cluster (controller + 2 hosts as child
processes, `--state-dir :memory:`), "All components" started through the role picker like a user would.

Load phase: a DAG of --tasks noop tasks runs; every --key-interval a key (down/up alternately) is posted
to the app as the terminal driver posts it, and the time until the screen shows it is taken: the task
table's cursor moved AND the app has written a frame since (headless Textual skips turning a frame into
terminal bytes; this benchmark does that work anyway, so its cost is in the figures). Also counted:
pushed updates applied per second, frames per second, the UI process's CPU use, and how late a 10 ms
timer wakes up (how long the event loop was blocked).

Idle phase: --settle s after the DAG finished (the controller's tasks/s figure, a 10 s window, has then
reached 0 and nothing changes any more), the finished DAG stays on screen, nothing runs; the CPU time of
this process (the UI; the cluster is in child processes and not counted) over --idle-seconds, as % of one
core, and the frames written meanwhile (an idle screen should write none).

Bounded: the load phase gives up after --timeout s; the embedded cluster is stopped (by PID, through
`Backend.close`) however the run ends. For a profile, run py-spy on the PID printed at the start, e.g.
`py-spy record -p PID -d 20 -o idle.svg` once "idle phase" is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import textual  # noqa: E402
from textual import events  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from bxthre3.tui.app import Bxthre3App, make_app  # noqa: E402
from bxthre3.tui.backend import Backend  # noqa: E402
from bxthre3.tui.monitor import MonitorScreen  # noqa: E402

KEY_LATENCY_TARGET_MS = 50.0
IDLE_CPU_TARGET_PCT = 2.0


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread of the UI; not the cluster's children)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class FrameCounter:
    """Wraps `App._display` (where a frame goes to the terminal): counts frames, renders each to terminal
    bytes as a real driver would, and notes when the first frame showing a moved task cursor was written."""

    def __init__(self, app: Bxthre3App) -> None:
        self.app = app
        self.frames = 0
        self.bytes = 0
        self.table: DataTable[Any] | None = None
        self.waiting_row: int | None = None
        """The cursor row before the key; the next frame with another row ends the wait."""
        self.shown_at: float | None = None
        self._original = app._display
        app._display = self._display  # type: ignore[method-assign]

    def _display(self, screen: Any, renderable: Any) -> None:
        self._original(screen, renderable)
        if renderable is None:
            return
        self.frames += 1
        render = getattr(renderable, "render_segments", None)
        if render is not None:
            self.bytes += len(render(self.app.console))
        if self.waiting_row is not None and self.table is not None and self.table.cursor_row != self.waiting_row:
            self.waiting_row = None
            self.shown_at = time.monotonic()


@dataclass
class Figures:
    tasks: int
    load_s: float = 0.0
    finished: bool = False
    latencies: list[float] = field(default_factory=list)
    unshown: int = 0
    updates: int = 0
    load_frames: int = 0
    load_bytes: int = 0
    load_cpu_s: float = 0.0
    lags: list[float] = field(default_factory=list)
    idle_s: float = 0.0
    idle_cpu_s: float = 0.0
    idle_frames: int = 0
    idle_updates: int = 0


async def start_monitor(app: Bxthre3App, pilot: Any, timeout: float) -> MonitorScreen:
    """Role picker → "All components" → Start, then wait until the monitor shows the hosts."""
    await pilot.press("5")
    await pilot.pause()
    app.screen.query_one("#start").press()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while not (isinstance(app.screen, MonitorScreen) and app.screen.query_one("#hosts", DataTable).row_count):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the embedded cluster did not show its hosts in {timeout:g} s")
        await pilot.pause(0.1)
    return app.screen


async def load_phase(app: Bxthre3App, pilot: Any, dag: Path, figures: Figures, args: argparse.Namespace) -> None:
    frames = FrameCounter(app)
    monitor = await start_monitor(app, pilot, 60.0)
    tasks = monitor.query_one("#tasks", DataTable)
    frames.table = tasks
    await pilot.press("s")
    await pilot.pause()
    await pilot.press(*str(dag), "enter")
    tasks.focus()
    started = time.monotonic()
    cpu0, frames0, bytes0, updates0 = cpu_seconds(), frames.frames, frames.bytes, monitor.updates_received
    next_progress = started + 10.0
    while time.monotonic() - started < args.timeout:
        if time.monotonic() >= next_progress:  # a long run says it is alive (and what the table shows)
            next_progress += 10.0
            print(f"  {time.monotonic() - started:4.0f} s: {len(figures.latencies)} keys timed, "
                  f"{monitor.updates_received - updates0} updates; {tasks.border_title}", flush=True)  # fmt: skip
        # The table shows at most 500 tasks; its border title carries the DAG's state.
        if "(succeeded)" in str(tasks.border_title):
            figures.finished = True
            break
        if tasks.row_count < 2:
            await asyncio.sleep(0.05)
            continue
        row = tasks.cursor_row
        frames.waiting_row, frames.shown_at = row, None
        t = time.monotonic()
        # As the terminal driver delivers a key (Pilot's press() would also wait for animations to end,
        # which never happens while progress bars move).
        app.post_message(events.Key("down" if row == 0 else "up", None))
        while frames.shown_at is None and time.monotonic() - t < 5:
            await asyncio.sleep(0.001)
        if frames.shown_at is None:
            frames.waiting_row = None
            figures.unshown += 1
        else:
            figures.latencies.append(frames.shown_at - t)
        until = time.monotonic() + args.key_interval
        while time.monotonic() < until:  # how late a 10 ms sleep wakes up: how long the event loop was busy
            t = time.monotonic()
            await asyncio.sleep(0.01)
            figures.lags.append(time.monotonic() - t - 0.01)
    figures.load_s = time.monotonic() - started
    figures.load_cpu_s = cpu_seconds() - cpu0
    figures.load_frames = frames.frames - frames0
    figures.load_bytes = frames.bytes - bytes0
    figures.updates = monitor.updates_received - updates0
    if not figures.finished:
        return
    # The controller's tasks/s figure covers the last 10 s (scheduler `throughput_window`): until it reaches 0
    # the controller pushes an update every 0.25 s. Idle is what follows.
    await asyncio.sleep(args.settle)
    print(f"idle phase: {args.idle_seconds:g} s, nothing running (pid {os.getpid()})", flush=True)
    cpu0, frames0, updates0 = cpu_seconds(), frames.frames, monitor.updates_received
    t = time.monotonic()
    await asyncio.sleep(args.idle_seconds)
    figures.idle_s = time.monotonic() - t
    figures.idle_cpu_s = cpu_seconds() - cpu0
    figures.idle_frames = frames.frames - frames0
    figures.idle_updates = monitor.updates_received - updates0


async def measure(dag: Path, figures: Figures, args: argparse.Namespace) -> None:
    backend = Backend(hosts=2, port=0, role_args={"all": ["--state-dir", ":memory:"]})
    app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096)
    try:
        async with app.run_test(size=args.size) as pilot:
            try:
                await load_phase(app, pilot, dag, figures, args)
            finally:
                backend.close()  # before the app's own shutdown: its quit path waits for workers
                app.exit()
    finally:
        backend.close()


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Textual {textual.__version__}"
    )


def report(figures: Figures, args: argparse.Namespace) -> list[str]:
    """The table of figures (and whether each issue-21 target is met)."""
    rows: list[tuple[str, str]] = [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("machine", machine()),
        ("terminal", f"{args.size[0]}x{args.size[1]}"),
        (
            "DAG",
            f"{figures.tasks:,} noop tasks, 2 hosts: "
            + (
                f"finished in {figures.load_s:.1f} s"
                if figures.finished
                else f"NOT finished after {figures.load_s:.0f} s"
            ),
        ),  # fmt: skip
    ]
    lat = [x * 1000 for x in figures.latencies]
    if lat:
        median = statistics.median(lat)
        verdict = "meets" if median <= KEY_LATENCY_TARGET_MS else "MISSES"
        rows += [
            ("key-to-screen median", f"{median:.1f} ms ({verdict} the {KEY_LATENCY_TARGET_MS:g} ms target)"),
            ("key-to-screen p95 / worst", f"{percentile(lat, 0.95):.1f} ms / {max(lat):.1f} ms"),
            ("keys timed", f"{len(lat)}" + (f" ({figures.unshown} not shown within 5 s)" if figures.unshown else "")),
        ]
    else:
        rows.append(("key-to-screen", "no key could be timed"))
    if figures.load_s:
        rows += [
            ("pushed updates applied", f"{figures.updates} ({figures.updates / figures.load_s:.1f}/s; at most 4/s)"),
            (
                "frames written",
                f"{figures.load_frames / figures.load_s:.1f}/s, "
                f"{figures.load_bytes / figures.load_s / 1024:.0f} KiB/s of terminal output",
            ),  # fmt: skip
            ("UI CPU under load", f"{100 * figures.load_cpu_s / figures.load_s:.0f} % of one core"),
        ]
    if figures.lags:
        lags = [x * 1000 for x in figures.lags]
        rows.append(("event loop blocked (10 ms timer late)",
                     f"median {statistics.median(lags):.1f} ms, p99 {percentile(lags, 0.99):.0f} ms, "
                     f"worst {max(lags):.0f} ms"))  # fmt: skip
    if figures.idle_s:
        pct = 100 * figures.idle_cpu_s / figures.idle_s
        verdict = "meets" if pct <= IDLE_CPU_TARGET_PCT else "MISSES"
        rows += [
            (
                "idle UI CPU",
                f"{pct:.2f} % of one core over {figures.idle_s:.0f} s ({verdict} the {IDLE_CPU_TARGET_PCT:g} % target)",
            ),  # fmt: skip
            ("idle frames / updates", f"{figures.idle_frames} frames, {figures.idle_updates} pushed updates"),
        ]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


def size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 160x48") from None
    if width < 20 or height < 10:
        raise argparse.ArgumentTypeError(f"{text!r} is too small (at least 20x10)")
    return width, height


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--tasks", type=int, default=10_000, help="noop tasks in the DAG (default 10000)")
    ap.add_argument("--idle-seconds", type=positive, default=20.0, help="length of the idle phase (default 20)")
    ap.add_argument("--key-interval", type=positive, default=0.1, help="seconds between key presses (default 0.1)")
    ap.add_argument("--settle", type=positive, default=12.0, help="wait after the DAG ends before idle (default 12)")
    ap.add_argument("--timeout", type=positive, default=600.0, help="give up on the DAG after this (default 600)")
    ap.add_argument("--size", type=size, default=(160, 48), help="terminal size WIDTHxHEIGHT (default 160x48)")
    args = ap.parse_args()
    if args.tasks < 2:
        ap.error("--tasks must be at least 2 (the cursor needs two rows to move between)")
    print(f"UI process pid {os.getpid()}; {args.tasks:,} tasks", flush=True)
    figures = Figures(args.tasks)
    with tempfile.TemporaryDirectory() as tmp:
        dag = Path(tmp) / "many.yaml"
        noop = str(REPO / "wasm_modules" / "noop.wasm")
        tasks = [{"id": f"t{i}", "module": noop} for i in range(args.tasks)]
        dag.write_text(yaml.safe_dump({"name": "many", "tasks": tasks}))
        os.environ.setdefault("BXTHRE3_LOG_DIR", tmp)
        try:
            asyncio.run(measure(dag, figures, args))
        except TimeoutError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted: the embedded cluster was stopped", file=sys.stderr)
            return 130
    print("\n".join(report(figures, args)))
    return 0 if figures.finished and figures.latencies else 1


if __name__ == "__main__":
    sys.exit(main())
