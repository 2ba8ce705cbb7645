"""The rules for one field of a DAG, asked by both doors in: the YAML loader and the wire form. Pure.

A task's id, `timeout`, `retries`, `memory`, `verify`, `speculate`, its `/in` file names and the DAG's size limits are
checked twice: by `dag.yaml_loader`, which names the line, and by `dag.wire_form`, since the controller
trusts no client. Each rule is written once, here, so the two cannot disagree; each door adds the
value as it was written. (The same path rule holds for the names of the files a host reports.)
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from bxthre3.common.errors import DagError
from bxthre3.common.limits import (
    MAX_DAG_BYTES,
    MAX_ID_LENGTH,
    MAX_INPUTS_PER_TASK,
    MAX_MODULE_BYTES,
    MAX_NAME_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_OUTPUT_FILES,
    MAX_PATH_BYTES,
    MAX_TASK_MEMORY_MB,
    MAX_TASKS_PER_DAG,
    MAX_TIMEOUT_S,
)

if TYPE_CHECKING:
    from bxthre3.dag.spec import DagSpec

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(?:\[[A-Za-z_]\w*=[\w.-]+(?:,[A-Za-z_]\w*=[\w.-]+)*\])?", re.ASCII)
"""A task id: safe in file names, log lines and `output_of_<id>` references. The optional
`[name=value,...]` suffix is how a YAML `for_each` names its tasks (e.g. `tile[r=0,c=1]`)."""

DEFAULT_FIELDS = ("timeout", "retries", "memory", "verify", "speculate", "cache")
"""The task fields a DAG's `defaults:` may set (the YAML loader's and the Python API's `Dag(defaults=...)`)."""

MAX_RETRIES = 100
"""Most retries one task may ask for; more is a typo or an attempt to pin the cluster."""

MAX_NAME_CHARS = 4096
"""Longest module name or file-input path carried for messages."""


def id_problem(value: str) -> str | None:
    """Why `value` is not a valid task id, or None when it is."""
    if not value:
        return "a task id must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"task id is {len(value)} characters, over the limit of {MAX_ID_LENGTH}"
    if not ID_PATTERN.fullmatch(value):
        return f"invalid task id {_show(value)}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
    return None


# A task's `timeout`, `retries` and `memory` are checked twice: by the YAML loader (which names the line)
# and by the wire form (the controller trusts no client). Both ask these, so the two cannot disagree;
# each adds the value as it was written.


def timeout_problem(seconds: float) -> str | None:
    """What is wrong with `seconds` as a task's timeout, or None (NaN and infinity are wrong)."""
    if math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_S:
        return None
    return f"must be seconds > 0 and <= {MAX_TIMEOUT_S:g}"


def retries_problem(retries: object) -> str | None:
    """What is wrong with `retries` as a task's retry budget, or None."""
    if isinstance(retries, int) and not isinstance(retries, bool) and 0 <= retries <= MAX_RETRIES:
        return None
    return f"must be between 0 and {MAX_RETRIES}"


MAX_PRIORITY = 1000
"""A DAG's `priority:` lies in [-MAX_PRIORITY, MAX_PRIORITY] (default 0; higher goes first)."""


def priority_problem(priority: object) -> str | None:
    """What is wrong with `priority` as a DAG's priority, or None."""
    if isinstance(priority, int) and not isinstance(priority, bool) and -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        return None
    return f"must be a whole number between {-MAX_PRIORITY} and {MAX_PRIORITY}"


def memory_problem(mb: object) -> str | None:
    """What is wrong with `mb` as a task's declared memory in MB, or None."""
    if isinstance(mb, int) and not isinstance(mb, bool) and 1 <= mb <= MAX_TASK_MEMORY_MB:
        return None
    return f"must be between 1 and {MAX_TASK_MEMORY_MB} MB"


MAX_VERIFY = 9
"""Most distinct devices one task may be verified on (`verify:`): each replica repeats the whole task."""


def verify_problem(verify: object) -> str | None:
    """What is wrong with `verify` as a task's replica count (1: off), or None."""
    if isinstance(verify, int) and not isinstance(verify, bool):
        if 1 <= verify <= MAX_VERIFY:
            return None
        if verify > MAX_VERIFY:
            return (
                f"must be at most {MAX_VERIFY} (each replica repeats the whole task on another device: "
                f"verify: N costs N times the work)"
            )
    return f"must be a whole number from 1 (off) to {MAX_VERIFY} (N >= 2 runs the task on N distinct devices)"


def speculate_problem(speculate: object) -> str | None:
    """What is wrong with `speculate` as a task's permission to run a backup attempt, or None."""
    if isinstance(speculate, bool):
        return None
    return "must be true or false"


def cache_problem(cache: object) -> str | None:
    """What is wrong with `cache` as a task's permission to reuse a cached output, or None."""
    if isinstance(cache, bool):
        return None
    return "must be true or false"


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a file under `/in` or `/out`, or None when it can.

    The same rule holds for `/in` names in a DAG, output names a host reports and the files
    `--out` writes: relative, '/'-separated, no empty, '.' or '..' component (so it can never
    leave its directory, whatever joins it), no NUL, within MAX_PATH_BYTES and MAX_NAME_BYTES.
    """
    if not path:
        return "a file name must not be empty"
    if "\0" in path:
        return f"file name {_show(path)} contains a NUL character"
    if path.startswith("/"):
        return f"file name {_show(path)} must be relative (no leading '/')"
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        return f"file name {_show(path)} is {size} bytes, over the limit of {MAX_PATH_BYTES}"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            shown = "an empty" if not part else f"a {part!r}"
            return f"file name {_show(path)} has {shown} component; write a plain relative path like 'dir/name'"
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            return f"file name {_show(path)} has a component over {MAX_NAME_BYTES} bytes"
    return None


def paths_problem(paths: Iterable[str]) -> str | None:
    """Why these paths cannot live in one directory tree together (one names a directory the
    other needs as a file, or a name is repeated), or None. Assumes each passed `path_problem`."""
    seen: set[str] = set()
    listed = list(paths)
    for path in listed:
        if path in seen:
            return f"file name {_show(path)} is listed twice"
        seen.add(path)
    for path in listed:
        parent, sep, _ = path.rpartition("/")
        while sep:
            if parent in seen:
                return f"{_show(parent)} cannot be both a file and the directory of {_show(path)}"
            parent, sep, _ = parent.rpartition("/")
    return None


def output_files_problem(files: Mapping[str, bytes], stdout_bytes: int) -> tuple[str, bool] | None:
    """Why a host's report of a task's `/out` files cannot be true, or None: (message, over_limit).

    The controller does not trust the wire: names must pass `path_problem` and `paths_problem`,
    and the files with stdout must fit the limits the engine enforces. `over_limit` tells a
    size or count overflow (the module's doing: `output_limit`) from a malformed name.
    """
    if len(files) > MAX_OUTPUT_FILES:
        return f"{len(files)} files under /out, over the limit of {MAX_OUTPUT_FILES}", True
    total = stdout_bytes + sum(len(data) for data in files.values())
    if total > MAX_OUTPUT_BYTES:
        return f"stdout and /out files add up to {total:,} bytes, over the {MAX_OUTPUT_BYTES:,}-byte limit", True
    for name in files:
        problem = path_problem(name)
        if problem:
            return f"output {problem}", False
    problem = paths_problem(files)
    return (f"outputs: {problem}", False) if problem else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' hint for a misspelt key or id, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: object, limit: int = 60) -> str:
    """repr() of a hostile value, cut short so an error message stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def submission_bytes(spec: DagSpec) -> int:
    """The bytes a submission carries: modules, file inputs and literal inputs, `/in` files."""
    total = sum(len(data) for data in spec.modules.values())
    for task in spec.tasks:
        for item in task.inputs:
            total += len(item.data) + len(item.value) + len(item.output)
        for f in task.files:
            total += len(f.path) + len(f.source.data) + len(f.source.value) + len(f.source.output)
    return total


def check_limits(spec: DagSpec) -> None:
    """Refuse a DAG over any size limit of `bxthre3.common.limits`.

    Shared by the loader (so the user hears it before submitting) and by
    :meth:`DagSpec.from_wire` (so the controller enforces it anyway).
    """
    if len(spec.tasks) > MAX_TASKS_PER_DAG:
        raise DagError(
            f"{len(spec.tasks)} tasks, over the limit of {MAX_TASKS_PER_DAG}",
            file=spec.source,
            field="tasks",
        )
    for task in spec.tasks:
        if len(task.inputs) > MAX_INPUTS_PER_TASK:
            raise DagError(
                f"{len(task.inputs)} inputs, over the limit of {MAX_INPUTS_PER_TASK}",
                file=spec.source,
                task=task.id,
                field="inputs",
            )
        if len(task.files) > MAX_INPUTS_PER_TASK:
            raise DagError(
                f"{len(task.files)} files, over the limit of {MAX_INPUTS_PER_TASK}",
                file=spec.source,
                task=task.id,
                field="files",
            )
    for digest, data in spec.modules.items():
        if len(data) > MAX_MODULE_BYTES:
            raise DagError(
                f"module {_module_label(spec, digest)} is {len(data)} bytes, over the limit of {MAX_MODULE_BYTES}",
                file=spec.source,
                task=_first_user(spec, digest),
                field="module",
            )
    total = submission_bytes(spec)
    if total > MAX_DAG_BYTES:
        raise DagError(
            f"the DAG carries {total} bytes of modules and inputs, over the limit of {MAX_DAG_BYTES}",
            file=spec.source,
        )


def _first_user(spec: DagSpec, digest: str) -> str | None:
    return next((t.id for t in spec.tasks if t.module == digest), None)


def _module_label(spec: DagSpec, digest: str) -> str:
    name = next((t.module_name for t in spec.tasks if t.module == digest), "")
    return f"{_show(name)} ({digest[:12]})" if name else digest[:12]
