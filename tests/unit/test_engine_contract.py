"""Both engines implement one `run_module` (the `Engine` Protocol) and return one `RunResult`.

The executor child runs whichever engine the host chose through this one call, so a parameter one
engine lacks, or a default that differs, would make the same task behave differently per device.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import ModuleType

import pytest

from bxthre3.wasm import choice, contract


def _engines() -> list[ModuleType]:
    from bxthre3.wasm import wasm3

    found = [wasm3]
    if choice.wasmtime_installed():
        from bxthre3.wasm import wasmtime

        found.append(wasmtime)
    return found


@pytest.mark.parametrize("engine", _engines(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_run_module_takes_every_parameter_of_the_protocol_alike(engine: ModuleType) -> None:
    declared = inspect.signature(contract.Engine.__call__).parameters
    actual = inspect.signature(engine.run_module).parameters
    for name, want in declared.items():
        if name == "self":
            continue
        assert name in actual, f"{engine.__name__}.run_module lacks {name!r}"
        got = actual[name]
        assert got.kind == want.kind, name
        assert got.annotation == want.annotation, name
        if want.default is not Ellipsis:  # `...`: the engines share a default, checked below
            assert got.default == want.default, name
        assert (got.default is inspect.Parameter.empty) == (want.default is inspect.Parameter.empty), name
    extra = [p for n, p in actual.items() if n not in declared]
    assert all(p.default is not inspect.Parameter.empty for p in extra), "an engine's own parameters need defaults"
    assert inspect.signature(engine.run_module).return_annotation == "RunResult"
    assert engine.RunResult is contract.RunResult
    assert engine._SATISFIES is engine.run_module


@pytest.mark.skipif(not choice.wasmtime_installed(), reason="wasmtime is not installed")
def test_both_engines_share_the_defaults_the_protocol_leaves_open() -> None:
    from bxthre3.wasm import wasm3, wasmtime

    declared = inspect.signature(contract.Engine.__call__).parameters
    open_defaults = [n for n, p in declared.items() if p.default is Ellipsis]
    assert open_defaults, "the Protocol names the defaults both engines share"
    a, b = (inspect.signature(m.run_module).parameters for m in (wasm3, wasmtime))
    assert {n: a[n].default for n in open_defaults} == {n: b[n].default for n in open_defaults}


@pytest.mark.skipif(not choice.wasmtime_installed(), reason="wasmtime is not installed")
def test_the_wasmtime_engine_does_not_load_wasm3() -> None:
    """A wasmtime executor must not carry pywasm3 (it once did, through the shared result type)."""
    code = (
        "import sys, bxthre3.wasm.wasmtime;"
        "print(sorted(m for m in ('wasm3', 'bxthre3.wasm.wasm3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
