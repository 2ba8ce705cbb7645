"""`backends.worker_side.engine_from_probes`: which engine a backend run uses, from the workers' own answers."""

from __future__ import annotations

from typing import Any

import pytest

from bxthre3 import __version__
from bxthre3.backends.worker_side import engine_from_probes
from bxthre3.common.errors import ClusterError

NOT_INSTALLED = "the wasmtime package is not installed"


def answer(problem: str | None = None, installed: bool = True, version: str = __version__) -> dict[str, Any]:
    return {"version": version, "wasmtime_problem": problem, "wasmtime_installed": installed}


def test_auto_is_wasmtime_only_when_every_worker_loads_it() -> None:
    assert engine_from_probes("dask:local", "auto", {"w1": answer(), "w2": answer()}) == ("wasmtime", None)


def test_no_wasmtime_on_any_worker_is_wasm3_without_a_warning() -> None:
    """As on one machine: `pip install 'bxthre3[dask]'` has no wasmtime, and that is no news."""
    workers = {"w1": answer(NOT_INSTALLED, installed=False), "w2": answer(NOT_INSTALLED, installed=False)}
    assert engine_from_probes("dask:local", "auto", workers) == ("wasm3", None)


def test_a_worker_lacking_what_others_have_or_failing_to_load_it_is_said() -> None:
    mixed = {"w1": answer(), "w2": answer(NOT_INSTALLED, installed=False)}
    assert engine_from_probes("dask:local", "auto", mixed) == (
        "wasm3", f"--engine auto: worker w2 cannot load wasmtime ({NOT_INSTALLED}); running on wasm3",
    )  # fmt: skip
    broken = {"w1": answer("loading it killed the process (signal 9)")}
    engine, warning = engine_from_probes("dask:local", "auto", broken)
    assert engine == "wasm3" and warning is not None and "signal 9" in warning


def test_explicit_engines_and_refusals() -> None:
    without = {"w1": answer(NOT_INSTALLED, installed=False)}
    assert engine_from_probes("dask:local", "wasm3", without) == ("wasm3", None)
    with pytest.raises(ClusterError, match=r"worker w1 cannot run wasmtime .* or use --engine wasm3"):
        engine_from_probes("dask:local", "wasmtime", without)
    with pytest.raises(ClusterError, match="worker w1 has bxthre3 0.0.1, this is"):
        engine_from_probes("dask:local", "auto", {"w1": answer(version="0.0.1")})
