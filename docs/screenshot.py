"""Regenerate docs/img/monitor.svg: the monitor of an embedded cluster with a DAG running.

    PYTHONPATH=. python docs/screenshot.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from textual.widgets import DataTable

from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.monitor import MonitorScreen

REPO = Path(__file__).resolve().parents[1]


async def shoot(dag: Path, out: Path) -> None:
    backend = Backend(hosts=2, port=0, role_args={"all": ["--state-dir", ":memory:"]})
    app = make_app(backend=backend, environ={}, ram_probe=lambda: 4096)
    try:
        async with app.run_test(size=(120, 34)) as pilot:
            await pilot.press("5")
            await pilot.pause()
            pilot.app.screen.query_one("#start").press()
            for _ in range(300):
                if isinstance(app.screen, MonitorScreen) and app.screen.query_one("#hosts", DataTable).row_count == 2:
                    break
                await pilot.pause(0.1)
            await pilot.press("s")
            await pilot.pause()
            await pilot.press(*str(dag), "enter")
            tasks = app.screen.query_one("#tasks", DataTable)
            for _ in range(600):  # until a good share is done and some are still running
                states = [tasks.get_row(k)[1] for k in tasks.rows] if tasks.row_count else []
                if states.count("succeeded") >= 20 and "running" in states:
                    break
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            app.save_screenshot(filename=out.name, path=str(out.parent))
            await pilot.press("q")
    finally:
        backend.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        dag = Path(tmp) / "mandelbrot_big.yaml"
        subprocess.run(
            [sys.executable, "-m", "bxthre3", "dag", "mandelbrot", "--width", "768", "--height", "768",
             "--tiles", "8x8", "--max-iter", "3000", "-o", str(dag)],
            check=True, cwd=REPO,
        )  # fmt: skip
        text = dag.read_text().replace("module: mandel", f"module: {REPO}/wasm_modules/mandel")
        dag.write_text(text)
        out = REPO / "docs" / "img" / "monitor.svg"
        asyncio.run(shoot(dag, out))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
