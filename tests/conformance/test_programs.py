"""C, C++ and Rust programs built as people build them, run on both engines, compared with native builds.

Each WebAssembly build (clang 14 and 19 x default/-g/-O0/-O2/-Os for C; libc++ iostreams for C++; Rust std)
runs in the real executor on Wasm3 and on wasmtime; its exit code, stdout, stderr and /out files must be
byte for byte those of the same source compiled for this machine (gcc, g++, rustc) and run on the same
inputs (see conftest.py for how the directories line up).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.conformance.conftest import (
    ENGINE_PARAMS,
    Builder,
    EngineRunner,
    Outcome,
    Scenario,
    assert_same,
    build_or_skip,
    native_build,
    run_native,
    wasm_builds,
)

pytestmark = pytest.mark.timeout(600)  # the first test waits for the session's builds

WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
         "Ärger", "naïve", "日本", "x", "")  # fmt: skip


def input_files(seed: int = 20261205) -> dict[str, bytes]:
    """Text with words and blank lines, and a few MB of binary data (every byte value, runs of NUL and 0xff)."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 9))) for _ in range(400)]
    text = ("\n".join(lines) + "\n").encode()
    big = bytearray(rng.randbytes(2 * 1024 * 1024 + 12345))
    for start in range(0, len(big), 99991):
        big[start : start + 300] = b"\0" * 150 + b"\xff" * 100 + b"\x80" * 50
    return {"text.txt": text, "big.bin": bytes(big), "sub/y": b"y\n"}


ENV = {"CONF_GREETING": "hello, world", "CONF_EMPTY": "", "CONF_UTF8": "grüße ✓", "CONF_EQUALS": "a=b=c"}
ARGS = ("alpha", "with space", "", "ünïcödé", "--flag=1")
STDIN = b"first line\nsecond line\n\nlast line without newline"

SCENARIOS = {
    "stdio.c": Scenario(args=ARGS, env=ENV, stdin=STDIN),
    "files.c": Scenario(files=input_files()),
    "clocks.c": Scenario(env={"TZ": "UTC"}),
    "iostreams.cc": Scenario(args=ARGS, env=ENV, files=input_files()),
    "rust_std.rs": Scenario(args=ARGS, env=ENV, stdin=STDIN, files=input_files()),
}
SPECS = [spec for program in SCENARIOS for spec in wasm_builds(program)]


@pytest.fixture(scope="session")
def natives(builder: Builder) -> Iterator[dict[str, Outcome]]:
    """Each program's native outcome, run once per session."""
    builder.submit_all(SPECS + [native_build(p) for p in SCENARIOS])  # every build starts now, two at a time
    outcomes: dict[str, Outcome] = {}
    yield outcomes


def native_outcome(builder: Builder, natives: dict[str, Outcome], program: str) -> Outcome:
    if program not in natives:
        natives[program] = run_native(build_or_skip(builder, native_build(program)), SCENARIOS[program])
    return natives[program]


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_program_matches_its_native_build(
    spec, engine: str, builder: Builder, natives: dict[str, Outcome], engines: dict[str, EngineRunner]
) -> None:  # fmt: skip
    native = native_outcome(builder, natives, spec.program)
    module = build_or_skip(builder, spec)
    wasm = engines[engine].run(module, SCENARIOS[spec.program])
    assert_same(native, wasm, f"{spec.id} on {engine}")


def test_native_runs_are_meaningful(builder: Builder, natives: dict[str, Outcome]) -> None:
    """The reference runs themselves did the work (a program that printed nothing would compare equal)."""
    stdio = native_outcome(builder, natives, "stdio.c")
    assert stdio.exit_code == 3 and b"getenv CONF_GREETING [hello, world]" in stdio.stdout
    assert "argv[4] 11 [ünïcödé]".encode() in stdio.stdout and b"bin\0\x80\xff\xfe\0" in stdio.stdout
    files = native_outcome(builder, natives, "files.c")
    assert files.exit_code == 0 and len(files.files["big_xor.bin"]) > 2_000_000 and len(files.stdout) > 196_608
    assert files.files["sorted.txt"].endswith(b"-- 400 lines\n")
    clocks = native_outcome(builder, natives, "clocks.c")
    assert clocks.exit_code == 0 and b"NO" not in clocks.stdout and clocks.stdout.count(b"yes") >= 15
    rust = native_outcome(builder, natives, "rust_std.rs")
    assert rust.exit_code == 0 and set(rust.files) == {"sorted.txt", "copy.bin", "sub/dir/seek.bin"}
    cxx = native_outcome(builder, natives, "iostreams.cc")
    assert cxx.exit_code == 0 and b"words " in cxx.stdout and len(cxx.files["big_flipped.bin"]) > 2_000_000
