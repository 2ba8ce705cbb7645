"""Checks of the values people type — flags, TUI form fields, bootstrap answers — with one wording.

The same RAM figure used to be accepted up to 1,048,576 MB by the CLI, 4096 by the TUI and anything by
bootstrap; a node id was checked by the TUI only, so `--node-id a/b` wrote `logs/host_a/b.log`. Every
surface now asks these functions (bootstrap.sh repeats the numbers; a test keeps them equal), and every
message names the value and its range in whole numbers.
"""

from __future__ import annotations

import re

from .errors import Bxthre3Error
from .limits import MAX_TASK_MEMORY_MB

MIN_NODE_RAM_MB = 16
"""Least RAM per host (its tasks' memory limit): below it no module of ours even instantiates."""

MAX_NODE_RAM_MB = MAX_TASK_MEMORY_MB
"""Most RAM per host worth giving: a task's wasm32 memory cannot address more than 4096 MB."""

NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""What a node id may be: a name in logs and file names (no '/', no spaces), never mistaken for a flag."""

NODE_ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def node_id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a node id, or None."""
    if NODE_ID_RE.match(text):
        return None
    return f"{text!r} is not a node id: {NODE_ID_RULE}"


def check_node_id(text: str, what: str = "--node-id") -> str:
    problem = node_id_problem(text)
    if problem:
        raise Bxthre3Error(f"{what}: {problem}")
    return text


def range_problem(value: int | float, low: int | float, high: int | float) -> str | None:
    """'must be between 16 and 4096' (whole numbers shown as such, never 1.04858e+06), or None."""
    if low <= value <= high:  # also false for nan
        return None
    return f"must be between {_number(low)} and {_number(high)}"


def ram_problem(value: int) -> str | None:
    """Why ``value`` MB cannot be the RAM per host, or None."""
    problem = range_problem(value, MIN_NODE_RAM_MB, MAX_NODE_RAM_MB)
    if problem is None:
        return None
    return f"{problem} MB (a task's wasm32 memory tops out at {MAX_NODE_RAM_MB} MB), not {value}"


def _number(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
