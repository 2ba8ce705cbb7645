"""Choosing the engine: auto, explicit choices, and a clear error when wasmtime is missing."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import pytest

from bxthre3.common.errors import Bxthre3Error
from bxthre3.wasm import choice as engines


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test probes anew (the result is cached per process)."""
    monkeypatch.setattr(engines, "_probe", engines._Probe())


@pytest.fixture
def without_wasmtime(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wasmtime" else real(name, *a))


@pytest.fixture
def with_wasmtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "wasmtime_installed", lambda: True)
    monkeypatch.setattr(engines, "_probe", engines._Probe(done=True))  # as if it loaded


def _stub_wasmtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """A `wasmtime` package ahead of the real one on the probe child's path, as on a platform where pip
    installed the py3-none-any wheel without a native library."""
    (tmp_path / "wasmtime").mkdir()
    (tmp_path / "wasmtime" / "__init__.py").write_text(body)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))


def test_auto_prefers_wasmtime_when_installed(with_wasmtime: None) -> None:
    assert engines.resolve("auto") == "wasmtime"
    assert engines.resolve("WASM3 ") == "wasm3"


def test_auto_falls_back_to_wasm3_as_on_android(without_wasmtime: None) -> None:
    assert not engines.wasmtime_installed()
    assert engines.resolve("auto") == "wasm3"


@pytest.mark.skipif(not engines.wasmtime_installed(), reason="wasmtime is not installed")
def test_auto_picks_wasmtime_after_loading_it_for_real() -> None:
    assert engines.wasmtime_problem() is None
    assert engines.resolve("auto") == "wasmtime"


def test_auto_steps_aside_when_wasmtime_does_not_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engines, "wasmtime_installed", lambda: True)
    _stub_wasmtime(tmp_path, monkeypatch, "raise ImportError('wasmtime: no native library for this platform')\n")
    with caplog.at_level(logging.WARNING, logger="bxthre3.engines"):
        assert engines.resolve("auto") == "wasm3"
        assert engines.resolve("auto") == "wasm3"  # cached: probed and said once
    assert [r.getMessage() for r in caplog.records] == [
        "--engine auto: wasmtime is installed but does not load here "
        "(ImportError: wasmtime: no native library for this platform); using wasm3"
    ]


def test_a_probe_that_kills_its_process_is_reported_by_signal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "wasmtime_installed", lambda: True)
    _stub_wasmtime(tmp_path, monkeypatch, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert engines.wasmtime_problem() == "loading it killed the process (signal 9)"
    assert engines.resolve("auto") == "wasm3"


def test_a_probe_that_computes_wrongly_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe calls the compiled function: an engine that imports but cannot run code is not picked."""
    monkeypatch.setattr(engines, "wasmtime_installed", lambda: True)
    _stub_wasmtime(
        tmp_path,
        monkeypatch,
        "class Store:\n    engine = None\n"
        "def Module(engine, data):\n    return data\n"
        "class Instance:\n    def __init__(self, store, module, imports):\n        pass\n"
        "    def exports(self, store):\n        return {'f': lambda store: 7}\n",
    )
    assert engines.wasmtime_problem() == "the probe module returned 7, not 42"


def test_asking_for_a_missing_wasmtime_says_how_to_install_it(without_wasmtime: None) -> None:
    with pytest.raises(Bxthre3Error, match=r"pip install 'bxthre3\[wasmtime\]'.*--engine wasm3"):
        engines.resolve("wasmtime")


def test_unknown_engine_lists_the_choices() -> None:
    with pytest.raises(Bxthre3Error, match="choose one of auto, wasm3, wasmtime"):
        engines.resolve("v8")


@pytest.mark.parametrize(
    ("value", "expected"), [("wasmtime", "wasmtime"), (" Wasm3", "wasm3"), ("", "auto"), ("x", "auto")]
)
def test_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv(engines.ENGINE_ENV, value)
    assert engines.default_choice() == expected


def test_choosing_does_not_import_an_engine() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from bxthre3.wasm import choice as engines; engines.resolve('auto');"
        "print('wasm3' in sys.modules, 'wasmtime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.skipif(not engines.wasmtime_installed(), reason="wasmtime is not installed")
def test_wasmtime_links_wasi_through_raw_callbacks() -> None:
    """The fast path (raw values, ~3x cheaper per WASI call) is in use with this wasmtime; a release
    without it falls back to wasmtime-py's boxed callbacks, which this test would flag."""
    from bxthre3.wasm.wasmtime import WasmtimeEngine

    engine = WasmtimeEngine()
    assert len(engine._callbacks) == 2 * len(engines_signatures())


def engines_signatures() -> dict[str, str]:
    from bxthre3.wasm.wasi import SIGNATURES

    return SIGNATURES
