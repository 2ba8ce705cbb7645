"""Writing task outputs to files, named so that a viewer opens them (`run --out DIR`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .dag_model import DagSpec
from .errors import Bxthre3Error


def extension_for(data: bytes) -> str:
    """Guess a file extension from content: images by magic bytes, UTF-8 as text."""
    if data[:2] in (b"P5", b"P2"):
        return ".pgm"
    if data[:2] in (b"P6", b"P3"):
        return ".ppm"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return ".bin"
    return ".txt"


def final_task_ids(spec: DagSpec) -> list[str]:
    """Tasks nothing depends on: a DAG's results, in file order."""
    upstream = {dep for task in spec.tasks for dep in task.depends_on}
    return [task.id for task in spec.tasks if task.id not in upstream]


def write_final_outputs(spec: DagSpec, results: dict[str, Any], directory: Path) -> list[Path]:
    """Write each succeeded final task's output; returns the paths written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Bxthre3Error(f"cannot create output directory {directory}: {exc.strerror}") from exc
    outputs = {t["task_id"]: t for t in results.get("tasks", [])}
    written = []
    for task_id in final_task_ids(spec):
        task = outputs.get(task_id)
        if not task or task.get("state") != "succeeded" or task.get("output") is None:
            continue
        data = task["output"]
        path = directory / f"{task_id}{extension_for(data)}"
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise Bxthre3Error(f"cannot write {path}: {exc.strerror}") from exc
        written.append(path)
    return written
