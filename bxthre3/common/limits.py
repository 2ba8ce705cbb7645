"""Every size limit of Bxthre3, each a number with a unit, in one place.

The wire spec (docs/protocol.md) quotes these; a test checks the two agree.
"""

from __future__ import annotations

MiB = 1024 * 1024

MAX_FRAME_BYTES = 64 * MiB
"""Largest ZeroMQ frame any socket accepts (ZMQ_MAXMSGSIZE); larger frames are dropped."""

MAX_SMALL_FRAME_BYTES = 1 * MiB
"""Largest frame of a command kind (heartbeat, status, cancel, ...); only data-carrying kinds may be bigger."""

MAX_WIRE_CONTAINERS = 2_000_000
"""Most msgpack arrays and maps one frame may hold (a 100,000-task DAG needs about 500,000).

An empty array is 1 byte on the wire and about 60 in Python: without this cap a 64 MiB frame of
them would take about 4 GB to decode."""

MAX_MODULE_BYTES = 16 * MiB
"""Largest WebAssembly module accepted in a DAG."""

MAX_TASKS_PER_DAG = 100_000
"""Most tasks one DAG may hold."""

MAX_DAG_BYTES = 48 * MiB
"""Largest total of a submission: modules plus file inputs plus literal inputs."""


def input_file_over_limit(path: str, size: int, earlier_uses: int) -> str:
    """Why a `file:` input is refused; when other tasks already read the same file, what to do instead:
    each task that names a file carries its own copy in the submission, an upstream output does not."""
    said = f"input file {path!r} ({size} bytes) takes the DAG over the limit of {MAX_DAG_BYTES} bytes"
    if earlier_uses:
        said += (
            f"; each task that names it carries its own copy (this is use {earlier_uses + 1}): let one task "
            "read it and the others take that task's output (output_of_ID)"
        )
    return said


MAX_YAML_BYTES = 8 * MiB
"""Largest DAG YAML file read from disk."""

MAX_ID_LENGTH = 128
"""Longest task id or DAG name."""

MAX_INPUTS_PER_TASK = 10_000
"""Most inputs (literal, upstream or file) one task may list."""

MAX_OUTPUT_BYTES = 16 * MiB
"""Largest output a task may produce: its stdout plus every file under `/out`, counted together.

The WASI shim checks before each write or growth, so a task passing it ends at once with reason
`output_limit` (stdout keeps what fitted). Bytes of a file that is truncated, or unlinked and closed,
stop counting: the cap is on what would be returned.
"""

MAX_TASK_INPUT_BYTES = 32 * MiB
"""Largest stdin one task may receive (its upstream outputs plus file inputs, concatenated).

It keeps an assignment (stdin + module) inside one frame; a task whose inputs add up to
more fails with reason `input_limit` before it is sent anywhere.
"""

MAX_OUTPUT_FILES = 1_000
"""Most files and directories that may exist under `/out` at once; creating one more fails with `output_limit`."""

MAX_PATH_BYTES = 1024
"""Longest path (UTF-8 bytes, relative to `/in` or `/out`) a task's file may have; longer is ENAMETOOLONG.

Also the longest path a WASI call may pass, and a rename that would push a file below the
renamed directory past it is refused the same way.
"""

MAX_NAME_BYTES = 255
"""Longest single path component under `/in` or `/out` (UTF-8 bytes); longer is ENAMETOOLONG."""

MAX_STDERR_BYTES = 64 * 1024
"""Largest stderr kept per task (the tail is kept; the rest is discarded)."""

MAX_TASK_MEMORY_MB = 4096
"""Largest `memory` a task may declare: wasm32 linear memory cannot address more than 4 GiB."""

DEFAULT_TASK_TIMEOUT_S = 300.0
"""Wall-clock limit of one task attempt unless the DAG says otherwise."""

MAX_TIMEOUT_S = 7 * 24 * 3600.0
"""Longest per-attempt timeout, in seconds (one week): a DAG asking for more is refused, and a host
runs no attempt longer whatever its assignment says."""

DEFAULT_TASK_RETRIES = 3
"""Extra attempts after a task's own failure unless the DAG says otherwise."""

MAX_TASKS_HELD = 1_000_000
"""Most tasks the controller holds over all its DAGs; a submission that would pass it is refused."""

SUBMIT_BURST = 20
"""Submissions one peer may send at once ..."""

SUBMIT_RATE = 5.0
"""... and per second after that (a token bucket per connection)."""

SUBMIT_TOTAL_BURST = 100
"""Submissions from all connections together at once ..."""

SUBMIT_TOTAL_RATE = 20.0
"""... and per second after that (opening new connections does not get around it)."""

MAX_SUBMISSIONS_QUEUED_BYTES = 256 * MiB
"""Most bytes of submissions waiting to be validated at once; one more is refused ("retry in a few
seconds"): the rate limits alone would let 100 frames of 64 MiB pile up in the controller's memory."""
