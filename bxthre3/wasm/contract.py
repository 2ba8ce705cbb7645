"""What every engine promises: the `run_module` call (:class:`Engine`) and how a run ended (:class:`RunResult`).

Both engines, Wasm3 (:mod:`bxthre3.wasm.wasm3`) and wasmtime (:mod:`bxthre3.wasm.wasmtime`), implement
this one call and return this one result, so the executor child runs either without knowing which. The
result lives here, not in either engine, because importing an engine loads its native library: when
wasmtime's module took `RunResult` from the Wasm3 one, every wasmtime executor also loaded pywasm3.
This module imports neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bxthre3.common.failures import FailureReason


@dataclass(frozen=True, slots=True)
class RunResult:
    """How one run of a module ended.

    `reason` is None on success (exit code 0). On failure `error` says what happened in
    one line; `stdout` and `stderr` hold whatever the module wrote before it ended.
    """

    exit_code: int | None
    """The module's exit code; None when it did not exit (trap, limit, invalid)."""
    stdout: bytes
    stderr: bytes
    reason: FailureReason | None
    error: str
    duration: float
    """Wall-clock seconds from loading the module to its end."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Every regular file the module left under `/out` (relative '/'-path -> contents), whatever the outcome."""


class Engine(Protocol):
    """An engine's `run_module`: load `wasm`, call its `_start` with `args` and `stdin`, capture its output.

    The keyword-only parameters are the ones every engine takes, with the same defaults (an engine may
    add its own, with defaults: Wasm3's `stack_bytes`). `tests/unit/test_engine_contract.py` checks
    both engines against this signature; the executor child calls only what is declared here.

    `deterministic` runs the module with logical clocks and random bytes seeded from `program_name`
    (hosts pass the task id): the same bytes on any device and either engine (see `wasm.wasi`).
    """

    def __call__(
        self,
        wasm: bytes,
        *,
        args: Sequence[str],
        stdin: bytes,
        env: Mapping[str, str],
        program_name: str = ...,
        max_stdout: int = ...,
        max_stderr: int = ...,
        memory_limit_bytes: int | None = None,
        timeout_s: float | None = None,
        files: Mapping[str, bytes] | None = None,
        deterministic: bool = False,
    ) -> RunResult: ...
