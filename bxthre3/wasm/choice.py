"""Which WebAssembly engine runs a host's tasks: Wasm3 everywhere, wasmtime where it loads.

Choosing happens in the host (it advertises the engine when it registers); running
happens in the executor child, the only process that imports an engine. Being installed
is not enough for auto: pip falls back to wasmtime's ``py3-none-any`` wheel on platforms
without a native one, and there ``import wasmtime`` fails -- every task would then end
``executor_crashed``. So auto picks wasmtime only after :func:`wasmtime_problem` has loaded
it for real (import, compile and call a tiny module) in a child process, once per process.
A child because a native library that does not fit the CPU or libc can kill the process
that loads it (SIGILL, SIGSEGV) rather than raise, and because the choosing host stays as
light as before (it never imports an engine).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bxthre3.common.errors import Bxthre3Error

if TYPE_CHECKING:  # the host imports this module: it stays free of even the engines' contract
    from bxthre3.wasm.contract import Engine

WASM3 = "wasm3"
WASMTIME = "wasmtime"
AUTO = "auto"
CHOICES = (AUTO, WASM3, WASMTIME)
"""What `--engine` accepts."""

ENGINE_ENV = "BXTHRE3_ENGINE"
"""Environment variable holding the default `--engine` (the tests pin it)."""

PROBE_TIMEOUT_S = 60.0
"""How long the load probe may take: a first wasmtime import on a slow phone takes seconds, never a minute."""

# () -> i32 returning 42, exported as "f": compiling and calling it needs executable memory, which is
# what fails on a platform whose wasmtime cannot JIT (W^X policies), not only the import.
_PROBE_MODULE = (
    b"\0asm\x01\0\0\0"
    b"\x01\x05\x01\x60\x00\x01\x7f"  # type section: () -> i32
    b"\x03\x02\x01\x00"  # function section: one function of type 0
    b"\x07\x05\x01\x01f\x00\x00"  # export section: "f" = function 0
    b"\x0a\x06\x01\x04\x00\x41\x2a\x0b"  # code section: i32.const 42; end
)
_PROBE_CODE = (
    "import sys, wasmtime\n"
    "store = wasmtime.Store()\n"
    f"module = wasmtime.Module(store.engine, {_PROBE_MODULE!r})\n"
    "got = wasmtime.Instance(store, module, []).exports(store)['f'](store)\n"
    "sys.exit(0 if got == 42 else f'the probe module returned {got!r}, not 42')\n"
)

log = logging.getLogger("bxthre3.engines")  # the name log lines show: kept from before the move to packages


@dataclass
class _Probe:
    """This process's one probe: whether it ran, why wasmtime does not load (None: it does), whether auto said so."""

    done: bool = False
    problem: str | None = None
    said: bool = False


_probe = _Probe()


def wasmtime_installed() -> bool:
    """True when `import wasmtime` would find a package (it is not imported here)."""
    try:
        return importlib.util.find_spec("wasmtime") is not None
    except (ImportError, ValueError):
        return False


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _run_probe() -> str | None:
    """Load wasmtime in a child Python; None when it works, else why not (one line)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE],  # same interpreter and environment as the executor children
            stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"loading it took over {PROBE_TIMEOUT_S:.0f} s"
    except OSError as exc:
        return f"the probe could not start ({exc.strerror or exc})"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"loading it killed the process (signal {-done.returncode})"
    return _last_line(done.stderr) or f"the probe exited with status {done.returncode}"


def wasmtime_problem() -> str | None:
    """Why wasmtime cannot run tasks here (one line), or None when it loads; probed once per process."""
    if not _probe.done:
        _probe.problem = _run_probe() if wasmtime_installed() else "the wasmtime package is not installed"
        _probe.done = True
    return _probe.problem


def default_choice() -> str:
    """`--engine`'s default: $BXTHRE3_ENGINE when it names an engine, else auto."""
    value = os.environ.get(ENGINE_ENV, "").strip().lower()
    return value if value in CHOICES else AUTO


def resolve(choice: str) -> str:
    """The engine a host will use for `choice`; raises when wasmtime is asked for but missing.

    auto means wasmtime when it loads (it compiles modules to machine code: compute kernels
    run several times faster), otherwise Wasm3, which runs everywhere; when wasmtime is
    installed but does not load, one warning says why. An explicit wasmtime is trusted
    without the probe (node managers pass the engine they resolved to every host they start).
    """
    choice = choice.strip().lower()
    if choice == AUTO:
        if not wasmtime_installed():
            return WASM3
        problem = wasmtime_problem()
        if problem is None:
            return WASMTIME
        if not _probe.said:  # once per process, however often auto is resolved
            log.warning("--engine auto: wasmtime is installed but does not load here (%s); using wasm3", problem)
            _probe.said = True
        return WASM3
    if choice == WASMTIME and not wasmtime_installed():
        raise Bxthre3Error(
            "--engine wasmtime: the wasmtime package is not installed here "
            "(pip install 'bxthre3[wasmtime]'; where it has no wheel, use --engine wasm3 or auto)"
        )
    if choice not in (WASM3, WASMTIME):
        raise Bxthre3Error(f"--engine {choice!r}: choose one of {', '.join(CHOICES)}")
    return choice


def runner(name: str) -> Engine:
    """The named engine's `run_module`, importing the engine (executor child only)."""
    if name == WASMTIME:
        from bxthre3.wasm import wasmtime as engine_wasmtime

        return engine_wasmtime.run_module
    if name == WASM3:
        from bxthre3.wasm import wasm3 as engine

        return engine.run_module
    raise ValueError(f"unknown engine {name!r}")
