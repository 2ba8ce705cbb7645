"""The one error family of Bxthre3.

Every expected failure (bad DAG, bad module, unreachable controller, bad frame) is a
subclass of :class:`Bxthre3Error`; the CLI catches that root once, prints a single line
on stderr and maps it to an exit code. Anything else is a bug and is not swallowed.
"""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """Escape control and format characters (newlines, ESC, right-to-left overrides, ...).

    Error messages echo what the user (or a hostile peer) wrote; escaping keeps them one
    line and stops them from rewriting the terminal.
    """
    if text.isprintable():
        return text
    return "".join(
        ch if unicodedata.category(ch)[0] != "C" else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


class Bxthre3Error(Exception):
    """Root of every error the user can cause or fix (exit code 2: bad input or usage)."""

    exit_code = 2


class DagError(Bxthre3Error):
    """A DAG file or submission is invalid.

    The fields locate the problem so the message can say *where*: which file (and line),
    which task and which field.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.task = task
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.task is not None:
            where.append(f"task '{self.task}'")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        prefix = ": ".join(where)
        return printable(f"{prefix}: {self.message}" if prefix else self.message)


class ModuleError(Bxthre3Error):
    """A WebAssembly module is unusable: not wasm, truncated, wrong imports, no `_start`."""

    exit_code = 2

    def __init__(self, message: str, *, module: str | None = None) -> None:
        self.message = message
        self.module = module
        super().__init__(f"{module}: {message}" if module else message)


class ProtocolError(Bxthre3Error):
    """A frame could not be decoded or violates the wire spec (docs/protocol.md)."""


class ClusterError(Bxthre3Error):
    """The cluster could not do what was asked: controller unreachable, request rejected."""

    exit_code = 3


# The exit codes a command ends with when no error is raised (README, "Exit codes"); an error's is its
# class's `exit_code` above. Here rather than in cli.py: commands/ returns them, and cli.py maps errors.
EXIT_OK = 0
EXIT_DAG_FAILED = 1
EXIT_INTERRUPTED = 130
