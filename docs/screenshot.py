"""Regenerate the README's screenshots of the monitor, from one embedded cluster with a Mandelbrot DAG
running: docs/img/monitor.svg (160x48), monitor_80x24.svg and monitor_phone.svg (45x35, the tasks tab).

    PYTHONPATH=. python docs/screenshot.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from bxthre3.tui.adaptive_table import AdaptiveTable
from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.monitor import MonitorScreen

REPO = Path(__file__).resolve().parents[1]


CENTRE_TILES = ("tile_r3_c4", "tile_r4_c4", "tile_r3_c5", "tile_r4_c5", "tile_r3_c3", "tile_r4_c3")

SHOTS = (((160, 48), "monitor.svg"), ((80, 24), "monitor_80x24.svg"), ((45, 35), "monitor_phone.svg"))


async def shoot(dag: Path, out_dir: Path) -> None:
    backend = Backend(hosts=2, port=0, role_args={"all": ["--state-dir", ":memory:"]})
    app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096)
    try:
        async with app.run_test(size=SHOTS[0][0]) as pilot:
            await pilot.press("5")
            await pilot.pause()
            pilot.app.screen.query_one("#start").press()
            for _ in range(300):
                screen = app.screen
                if isinstance(screen, MonitorScreen) and len(screen.query_one("#hosts", AdaptiveTable).keys) == 2:
                    break
                await pilot.pause(0.1)
            await pilot.press("s")
            await pilot.pause()
            await pilot.press(*str(dag), "enter")
            for _ in range(900):  # until a good share is done and some are still running
                tasks = app.screen.query_one("#tasks", AdaptiveTable)
                states = [tasks.cells(k)["state"] for k in tasks.keys]
                done = {k for k in tasks.keys if "succeeded" in tasks.cells(k)["state"]}
                if len(done) >= 20 and done & set(CENTRE_TILES) and any("running" in s for s in states):
                    break
                await pilot.pause(0.05)
            await pilot.press("2")
            tasks = app.screen.query_one("#tasks", AdaptiveTable)
            done = [k for k in tasks.keys if "succeeded" in tasks.cells(k)["state"]]
            # a finished tile on the set's edge: its picture in the output pane
            shown = next((k for k in CENTRE_TILES if k in done), done[0] if done else None)
            if shown is not None:
                tasks.move_cursor(row=tasks.keys.index(shown), animate=False)
            await pilot.pause(1.5)
            for size, name in SHOTS:
                await pilot.resize_terminal(*size)
                await pilot.pause(1.0)
                if size[0] < 70:
                    await pilot.press("2")
                    await pilot.pause(0.5)
                app.save_screenshot(filename=name, path=str(out_dir))
            await pilot.press("q")
    finally:
        backend.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        dag = Path(tmp) / "mandelbrot_big.yaml"
        subprocess.run(
            [sys.executable, "-m", "bxthre3", "dag", "mandelbrot", "--width", "768", "--height", "768",
             "--tiles", "8x8", "--max-iter", "20000", "-o", str(dag)],
            check=True, cwd=REPO,
        )  # fmt: skip
        text = dag.read_text().replace("module: mandel", f"module: {REPO}/wasm_modules/mandel")
        dag.write_text(text)
        out = REPO / "docs" / "img"
        asyncio.run(shoot(dag, out))
        print(f"wrote {', '.join(name for _, name in SHOTS)} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
