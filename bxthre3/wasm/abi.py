"""The module ABI: what a task's WebAssembly module may import and how inputs reach it.

Kept apart from the engine so that the validator (which runs on clients and the
controller) can check modules without importing wasm3.
"""

from __future__ import annotations

WASI_MODULE = "wasi_snapshot_preview1"
"""The only import namespace a task module may use."""

NONDETERMINISTIC_IMPORTS: frozenset[str] = frozenset({"clock_time_get", "clock_res_get", "random_get", "poll_oneoff"})
"""WASI calls whose answers change from run to run (time, randomness, and `poll_oneoff`, which sleeps on a clock):
a module importing one is not cached unless it runs seeded (see README 'Reuse of results')."""

SUPPORTED_WASI_IMPORTS: frozenset[str] = frozenset(
    {
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_advise",
        "fd_allocate",
        "fd_close",
        "fd_datasync",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_filestat_set_times",
        "fd_pread",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_renumber",
        "fd_seek",
        "fd_sync",
        "fd_tell",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "proc_raise",
        "sched_yield",
        "random_get",
        "sock_accept",
        "sock_recv",
        "sock_send",
        "sock_shutdown",
    }
)
"""Every `wasi_snapshot_preview1` function: the engine links all 46 (see `bxthre3/wasm/wasi.py`).

A WASI program is never refused for the WASI functions it imports: a libc that links
`open` or `lseek` imports `path_open` and `fd_tell` even when the program only reads
stdin. What a task cannot do (sockets, links) answers with the errno the spec gives.
Imports from any other namespace are refused at submission.
"""


def import_hint(module: str, name: str, kind: str) -> str | None:
    """How to build without an import a task module may not have, or None when there is no general advice.

    Most refused imports come from a build flag or the wrong target, not from the program:
    the message should name the flag (see wasm.inspect.check_wasi_command).
    """
    if module == "env" and kind == "memory":
        return "env.memory: build without -Wl,--import-memory (a task module defines its own memory)"
    if module == "env" and kind == "table":
        return f"env.{name}: build without -Wl,--import-table"
    if module == "wasi" and name == "thread-spawn":
        return "wasi.thread-spawn: built for wasm32-wasi-threads; build for --target=wasm32-wasi without -pthread"
    if module == "wasi_unstable":
        return "wasi_unstable.*: built for the old WASI snapshot 0; rebuild with a current toolchain"
    if module.startswith("wasi:"):
        return f"{module}: a WASI preview 2 interface; build a preview 1 command (--target=wasm32-wasip1)"
    if module == "env" and kind == "func" and (name.startswith("emscripten_") or name.startswith("__syscall_")):
        return f"env.{name}: Emscripten output; build with clang --target=wasm32-wasi (or wasi-sdk) instead"
    if module == "env" and kind == "func":
        return (
            f"env.{name}: a function the linker left undefined (-Wl,--allow-undefined, or a library not linked): "
            "define it or link the library that does"
        )
    return None


PREOPEN_DIRECTORIES = ("/in", "/out")
"""The directories a task finds preopened, as fds 3 and 4: its input files (read-only) and its outputs."""

ENTRY_POINT = "_start"
"""A task module is a WASI *command*: it must export this function."""

INPUT_SIZES_ENV = "BXTHRE3_INPUT_SIZES"
"""Environment variable holding the byte length of each stdin part, comma-separated.

Upstream outputs and file inputs are concatenated on stdin in the order the DAG lists
them; a consumer that needs to split binary inputs reads this variable. Empty string
when there are no stdin inputs.
"""

TASK_ID_ENV = "BXTHRE3_TASK_ID"
"""Environment variable holding the task's id within its DAG (for logs and seeds)."""
