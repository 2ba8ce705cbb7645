"""Task outputs for people: files named so that a viewer opens them (`run --out DIR`), and text
escaped so that a task's output can never drive the terminal that shows it.

The bytes themselves are never changed on the way (protocol, store, `results --json`, `--out`):
only what is *displayed* is escaped.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from ..common.errors import Bxthre3Error
from ..dag.fields import id_problem, path_problem
from ..dag.spec import DagSpec

if TYPE_CHECKING:
    from ..controller.views import FileView, ResultsView

_HARMLESS_FORMAT = frozenset("\u200c\u200d")
"""Zero-width (non-)joiners: they build emoji and join scripts, and move no cursor."""


def terminal_safe(text: str, keep: str = "\n\t") -> str:
    """`text` with every character that could act on a terminal shown as an escape (``\\x1b``).

    Escaped: C0 and C1 controls (ESC and so CSI/OSC sequences, BEL, backspace, carriage
    return, the 8-bit CSI U+009B), DEL, format characters such as the bidi overrides
    U+202A-U+202E and U+2066-U+2069 (which make text read differently from what it is),
    and line/paragraph separators. Kept: printable text, spaces, the characters in `keep`
    (newline and tab by default), zero-width joiners. A task's output, stderr and errors
    are shown through this; `--json` and `--out` carry the bytes unchanged.
    """
    if text.isprintable():  # fast path: nothing of categories C or Z but the space
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch in keep:
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if category in ("Zs", "Co", "Cn") or ch in _HARMLESS_FORMAT:  # spaces, private use, unassigned
            out.append(ch)
        else:  # Cc, Cf, Cs, Zl, Zp
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


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


def prepare_output_directory(directory: Path) -> None:
    """Make `--out DIR` before anything runs: a directory that cannot be made is told at once, not after
    the whole DAG has run."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Bxthre3Error(f"cannot create output directory {directory}: {exc.strerror or exc}") from exc


def stdout_file_name(task_id: str, extension: str, task_ids: set[str]) -> str:
    """`<task>.<ext>` for a final task's stdout, unless that is another task's id (whose named outputs
    are the directory `<id>/`): then `<task>.stdout<ext>` (numbered if that is taken too)."""
    name = f"{task_id}{extension}"
    n = 1
    while name in task_ids:
        name = f"{task_id}.stdout{'' if n == 1 else f'-{n}'}{extension}"
        n += 1
    return name


def write_final_outputs(spec: DagSpec, results: ResultsView, directory: Path) -> list[Path]:
    """Write each succeeded final task's output; returns the paths written."""
    prepare_output_directory(directory)
    outputs = {t["task_id"]: t for t in results.get("tasks", [])}
    task_ids = {task.id for task in spec.tasks}
    written = []
    for task_id in final_task_ids(spec):
        task = outputs.get(task_id)
        data = task.get("output") if task else None
        if not task or task.get("state") != "succeeded" or data is None:
            continue
        path = directory / stdout_file_name(task_id, extension_for(data), task_ids)
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise Bxthre3Error(f"cannot write {path}: {exc.strerror}") from exc
        written.append(path)
    return written


def named_output_path(directory: Path, task_id: str, name: str) -> Path:
    """`directory/task_id/name` for a named output, or Bxthre3Error when either part could lead out
    of `directory` (the names come from modules and over the network: nothing is taken on trust)."""
    problem = id_problem(task_id) or path_problem(name)
    if problem:
        raise Bxthre3Error(f"not writing output {task_id!r}/{name!r}: {problem}")
    return directory.joinpath(task_id, *name.split("/"))


def write_named_outputs(directory: Path, task_id: str, files: list[FileView]) -> list[Path]:
    """Write one task's named outputs (entries with `name` and `data`) as `directory/task_id/name`.

    Names are checked by `named_output_path`; on top, every directory is created by us and
    checked to resolve inside `directory`, and files are opened with O_NOFOLLOW, so a symlink
    left in the tree cannot redirect a write elsewhere.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        root = directory.resolve(strict=True)
    except OSError as exc:
        raise Bxthre3Error(f"cannot create output directory {directory}: {exc.strerror}") from exc
    written = []
    for entry in files:
        name, data = entry.get("name"), entry.get("data")
        if not isinstance(name, str) or not isinstance(data, bytes):
            raise Bxthre3Error(f"task {task_id!r}: an output entry without a name and bytes")
        path = named_output_path(directory, task_id, name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.parent.resolve(strict=True).is_relative_to(root):
                raise Bxthre3Error(f"not writing {path}: its directory leads outside {directory} (a symlink?)")
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(path, flags, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise Bxthre3Error(f"cannot write {path}: {exc.strerror or exc}") from exc
        written.append(path)
    return written
