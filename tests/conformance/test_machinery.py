"""The conformance machinery itself: missing toolchains fail when required, builds are cached by content."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conformance.conftest import (
    PRUNE_AFTER_S,
    REQUIRE_ENV,
    TOOLCHAINS,
    Builder,
    BuildSpec,
    Toolchain,
    build_or_skip,
    native_build,
)


def test_a_missing_toolchain_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(TOOLCHAINS, "absent-cc", Toolchain("absent-cc", "c", ("bxthre3-no-such-compiler",)))
    builder = Builder(tmp_path)
    try:
        spec = BuildSpec("clocks.c", "absent-cc", (), "default")
        monkeypatch.setenv(REQUIRE_ENV, "1")
        with pytest.raises(pytest.fail.Exception, match="bxthre3-no-such-compiler is not installed"):
            build_or_skip(builder, spec)
        monkeypatch.setenv(REQUIRE_ENV, "0")
        with pytest.raises(pytest.skip.Exception):
            build_or_skip(builder, spec)
    finally:
        builder.close()


def test_builds_are_cached_by_source_compiler_and_flags(tmp_path: Path) -> None:
    spec = native_build("clocks.c")
    first = Builder(tmp_path)
    try:
        built = build_or_skip(first, spec)
    finally:
        first.close()
    assert first.compiled == 1 and built.parent == tmp_path
    again = Builder(tmp_path)
    try:
        assert build_or_skip(again, spec) == built and (again.compiled, again.cached) == (0, 1)
        other = build_or_skip(again, BuildSpec(spec.program, spec.toolchain, ("-O0",), "O0"))
        assert other != built and again.compiled == 1
    finally:
        again.close()


def test_builds_unused_for_a_month_are_pruned(tmp_path: Path) -> None:
    old, recent = tmp_path / "old.wasm", tmp_path / "recent.wasm"
    for f in (old, recent):
        f.write_bytes(b"\0asm")
    os.utime(old, (time.time() - PRUNE_AFTER_S - 60,) * 2)
    Builder(tmp_path).close()
    assert not old.exists() and recent.exists()
