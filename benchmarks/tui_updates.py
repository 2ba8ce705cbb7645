"""How the monitor keeps up with a 10,000-task DAG: pushed updates applied per second and
how long a key press waits while the cluster is busy.

    PYTHONPATH=. python benchmarks/tui_updates.py [--tasks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textual import events  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from bxthre3.tui.app import make_app  # noqa: E402
from bxthre3.tui.backend import Backend  # noqa: E402
from bxthre3.tui.monitor import MonitorScreen  # noqa: E402


async def measure(dag: Path, n: int) -> None:
    backend = Backend(hosts=2, port=0, role_args={"all": ["--state-dir", ":memory:"]})
    app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("5")
            await pilot.pause()
            pilot.app.screen.query_one("#start").press()
            while not (isinstance(app.screen, MonitorScreen) and app.screen.query_one("#hosts", DataTable).row_count):
                await pilot.pause(0.1)
            monitor = app.screen
            await pilot.press("s")
            await pilot.pause()
            await pilot.press(*str(dag), "enter")
            started = time.monotonic()
            before = monitor.updates_received
            tasks = monitor.query_one("#tasks", DataTable)
            tasks.focus()
            lags: list[float] = []
            unmoved = 0
            latencies = []
            done = False
            while not done and time.monotonic() - started < 300:
                # A key event as the terminal driver sends it; time until its binding ran. (Pilot's
                # press() also waits for animations to finish, which progress bars never do here.)
                # A key as the terminal driver delivers it, timed until the task table's cursor moved.
                # (Pilot's press() also waits for animations to end, which never happens here.)
                if tasks.row_count < 2:
                    await asyncio.sleep(0.05)
                    done = "(succeeded)" in str(tasks.border_title)
                    continue
                row = tasks.cursor_row
                key = "down" if row == 0 else "up"
                t = time.monotonic()
                app.post_message(events.Key(key, None))
                while tasks.cursor_row == row and time.monotonic() - t < 5:
                    await asyncio.sleep(0.001)
                if tasks.cursor_row != row:
                    latencies.append(time.monotonic() - t)
                else:
                    unmoved += 1
                for _ in range(20):  # how late a 10 ms sleep wakes up: how long the event loop was busy
                    t = time.monotonic()
                    await asyncio.sleep(0.01)
                    lags.append(time.monotonic() - t - 0.01)
                # The table shows at most 500 tasks; its border title carries the DAG's state.
                done = "(succeeded)" in str(tasks.border_title)
            elapsed = time.monotonic() - started
            updates = monitor.updates_received - before
            print(f"{n:,} tasks finished in {elapsed:.1f} s; {updates} pushed updates applied "
                  f"({updates / elapsed:.1f} per s, at most 4 per s by design)")  # fmt: skip
            print(f"key press handled in {statistics.median(latencies) * 1000:.0f} ms median, "
                  f"{max(latencies) * 1000:.0f} ms worst, over {len(latencies)} presses during the run"
                  f"{f' ({unmoved} did not move the cursor in 5 s)' if unmoved else ''}")  # fmt: skip
            lags.sort()
            print(f"event loop busy (late wake-ups of a 10 ms timer): median {statistics.median(lags) * 1000:.1f} ms, "
                  f"p99 {lags[int(len(lags) * 0.99)] * 1000:.0f} ms, worst {lags[-1] * 1000:.0f} ms")  # fmt: skip
            await pilot.press("q")
    finally:
        backend.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        dag = Path(tmp) / "many.yaml"
        noop = str(REPO / "wasm_modules" / "noop.wasm")
        tasks = [{"id": f"t{i}", "module": noop} for i in range(args.tasks)]
        dag.write_text(yaml.safe_dump({"name": "many", "tasks": tasks}))
        os.environ.setdefault("BXTHRE3_LOG_DIR", tmp)
        asyncio.run(measure(dag, args.tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
