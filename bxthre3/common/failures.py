"""The closed set of reasons a task attempt can fail, shown by `status` and `results`."""

from __future__ import annotations

from enum import Enum


class FailureReason(str, Enum):
    """Why an attempt ended without a result. Values are stable: they go on the wire."""

    EXIT_CODE = "exit_code"
    """The module ran to the end and exited non-zero."""
    TRAP = "trap"
    """The module trapped: unreachable, out-of-bounds access, stack overflow, div by zero."""
    TIMEOUT = "timeout"
    """The attempt ran past its wall-clock `timeout` (Wasm3: the host killed the executor; wasmtime: an epoch trap)."""
    MEMORY_LIMIT = "memory_limit"
    """The module needed more linear memory than the host allows."""
    OUTPUT_LIMIT = "output_limit"
    """The module wrote more stdout and `/out` files than the limit allows, or too many files."""
    INPUT_LIMIT = "input_limit"
    """The task's inputs add up to more than one task may receive."""
    MISSING_INPUT = "missing_input"
    """The task reads `output_of_T/NAME` but task T wrote no file NAME under `/out`."""
    INVALID_MODULE = "invalid_module"
    """The module could not be loaded or linked (not wasm, unsupported import, no `_start`)."""
    EXECUTOR_CRASHED = "executor_crashed"
    """The executor process died while running the attempt (signal, OS kill)."""
    HOST_LOST = "host_lost"
    """The host running the attempt went away; the task is requeued."""
    UNVERIFIED = "unverified"
    """`verify: N`: the replicas' outputs did not reach a majority of distinct devices (or no devices were left)."""
    INTERNAL = "internal"
    """A bug in Bxthre3 itself; the message says what."""

    @property
    def retryable(self) -> bool:
        """Deterministic rejections are not retried: running them again gives the same."""
        return self not in _DETERMINISTIC


_DETERMINISTIC = frozenset(
    {
        FailureReason.INVALID_MODULE,
        FailureReason.OUTPUT_LIMIT,
        FailureReason.INPUT_LIMIT,
        FailureReason.MEMORY_LIMIT,
        # Its upstream task succeeded without that file, and succeeded tasks are not run again.
        FailureReason.MISSING_INPUT,
        # Replicas on distinct devices already disagreed past the replica budget.
        FailureReason.UNVERIFIED,
    }
)
