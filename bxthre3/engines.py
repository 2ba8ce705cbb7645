"""Which WebAssembly engine runs a host's tasks: Wasm3 everywhere, wasmtime where it installs.

Choosing happens in the host (it advertises the engine when it registers); running
happens in the executor child, the only process that imports an engine. Checking
whether wasmtime is installed uses the import system's finder, not an import, so a
host that only chooses stays as light as before.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from bxthre3.errors import Bxthre3Error

WASM3 = "wasm3"
WASMTIME = "wasmtime"
AUTO = "auto"
CHOICES = (AUTO, WASM3, WASMTIME)
"""What `--engine` accepts."""

ENGINE_ENV = "BXTHRE3_ENGINE"
"""Environment variable holding the default `--engine` (the tests pin it)."""


def wasmtime_installed() -> bool:
    """True when `import wasmtime` would find a package (it is not imported here)."""
    try:
        return importlib.util.find_spec("wasmtime") is not None
    except (ImportError, ValueError):
        return False


def default_choice() -> str:
    """`--engine`'s default: $BXTHRE3_ENGINE when it names an engine, else auto."""
    value = os.environ.get(ENGINE_ENV, "").strip().lower()
    return value if value in CHOICES else AUTO


def resolve(choice: str) -> str:
    """The engine a host will use for `choice`; raises when wasmtime is asked for but missing.

    auto means wasmtime when installed (it compiles modules to machine code: compute
    kernels run several times faster), otherwise Wasm3, which runs everywhere.
    """
    choice = choice.strip().lower()
    if choice == AUTO:
        return WASMTIME if wasmtime_installed() else WASM3
    if choice == WASMTIME and not wasmtime_installed():
        raise Bxthre3Error(
            "--engine wasmtime: the wasmtime package is not installed here "
            "(pip install 'bxthre3[wasmtime]'; there is no wheel for Android, use --engine wasm3)"
        )
    if choice not in (WASM3, WASMTIME):
        raise Bxthre3Error(f"--engine {choice!r}: choose one of {', '.join(CHOICES)}")
    return choice


def runner(name: str) -> Callable[..., Any]:
    """The named engine's `run_module`, importing the engine (executor child only)."""
    if name == WASMTIME:
        from bxthre3 import engine_wasmtime

        return engine_wasmtime.run_module
    if name == WASM3:
        from bxthre3 import engine

        return engine.run_module
    raise ValueError(f"unknown engine {name!r}")
