"""Rich progress bars for the CLI's long waits, drawn on stderr so stdout stays parseable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


def _progress(console: Console) -> Progress:
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


class DagProgress:
    """One bar for one DAG: done/total, with running and failed counts beside it."""

    def __init__(self, name: str, total: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = _progress(self.console)
        self.task = self.progress.add_task(name, total=total, detail="")

    def __enter__(self) -> DagProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, snapshot: dict[str, Any]) -> None:
        counts = snapshot.get("counts", {})
        bits = [f"{counts.get(k, 0)} {k.replace('_', ' ')}" for k in ("running", "failed") if counts.get(k)]
        state = snapshot.get("state", "")
        if state != "running":
            bits.insert(0, f"DAG {state}")
        self.progress.update(
            self.task,
            completed=snapshot.get("done", 0),
            total=snapshot.get("total"),
            detail=", ".join(bits),
        )


def stage_printer(console: Console | None = None) -> Callable[[str, int, int], None]:
    """A callback showing 'starting local hosts' as a bar until they have all registered."""
    console = console or Console(stderr=True)
    state: dict[str, Any] = {}

    def on_stage(stage: str, done: int, total: int) -> None:
        if "progress" not in state:
            progress = _progress(console)
            state["progress"] = progress
            state["task"] = progress.add_task("starting local hosts", total=total, detail="")
            progress.start()
        progress = state["progress"]
        progress.update(state["task"], completed=done, total=total)
        if done >= total:
            progress.stop()

    return on_stage
