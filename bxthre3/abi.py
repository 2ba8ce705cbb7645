"""The module ABI: what a task's WebAssembly module may import and how inputs reach it.

Kept apart from the engine so that the validator (which runs on clients and the
controller) can check modules without importing wasm3.
"""

from __future__ import annotations

WASI_MODULE = "wasi_snapshot_preview1"
"""The only import namespace a task module may use."""

SUPPORTED_WASI_IMPORTS: frozenset[str] = frozenset(
    {
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "fd_read",
        "fd_write",
        "fd_close",
        "fd_seek",
        "fd_fdstat_get",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "clock_time_get",
        "clock_res_get",
        "random_get",
        "proc_exit",
        "sched_yield",
    }
)
"""The `wasi_snapshot_preview1` functions the engine implements.

This is what clang's wasi-libc programs import for argv, environ, stdio, clocks and
randomness. `fd_prestat_*` are answered with "no preopened directories", so a module
that tries to open files fails cleanly inside its own libc instead of at load time.
"""

def import_hint(module: str, name: str, kind: str) -> str | None:
    """How to build without an import a task module may not have, or None when there is no general advice.

    Most refused imports come from a build flag or the wrong target, not from the program:
    the message should name the flag (see wasm_inspect.check_wasi_command).
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
