"""Per-call WASI conformance: `programs/wasi_calls.c` prints one line per call (its value, or errno by name).

Three checks, on both engines:
- the portable part (POSIX calls on the output directory, stdio fds, argv, environ, nanosleep) is byte for
  byte what the same source prints natively on Linux, and leaves the same files in its output directory;
- the whole output, including the WASI-only part (preopens, escapes from them, the read-only /in, raw
  poll_oneoff / fd_seek / fd_readdir / clocks), is the same on Wasm3 and on wasmtime;
- the WASI-only part meets the expectations documented in EXPECTED below.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bxthre3.wasm.choice import WASM3, WASMTIME, wasmtime_installed
from tests.conformance.conftest import (
    ENGINE_PARAMS,
    Builder,
    BuildSpec,
    EngineRunner,
    Outcome,
    Scenario,
    assert_same,
    build_or_skip,
    native_build,
    run_native,
)

pytestmark = pytest.mark.timeout(600)

PROGRAM = "wasi_calls.c"
BUILDS = [
    BuildSpec(PROGRAM, "clang-14-wasm32-wasi", ("-O2",), "O2"),
    BuildSpec(PROGRAM, "clang-19-wasm32-wasi", (), "default"),
]
SCENARIO = Scenario(
    args=("one", "two words", ""),
    env={"CONF_GREETING": "hi there"},
    stdin=b"some input\n",
    files={"text.txt": b"b\na\nc\n", "sub/y": b"y\n", "sub/deeper/z.bin": bytes(range(256))},
)
WASI_MARKER = b"== wasi\n"

REFUSED = {"ENOTCAPABLE", "EPERM"}
"""Leaving a preopen: preview 1 says ENOTCAPABLE; wasmtime's own WASI (cap-std) answers EPERM. Never success."""
OPENED_READ_ONLY = "opened, write EBADF"
"""Bxthre3's answer to opening a file in /in for writing (docs/protocol.md): wasi-libc asks path_open only for
the rights the directory grants, so the open succeeds without the write right and the write is EBADF."""
READ_ONLY = {"EROFS", "EACCES", "EPERM", "ENOTCAPABLE"}
"""Changing anything under the read-only /in, opening a file there for writing included (POSIX refuses that
at open, EROFS; wasmtime's own WASI with a read-only preopen says EPERM)."""

EXPECTED: dict[str, str | set[str]] = {
    # Descriptors: stdio is not a preopen and cannot seek; an fd that is not open is EBADF everywhere.
    "prestat stdout": "EBADF",
    "prestat after the preopens": "EBADF",
    "raw fd_seek stdout": "ESPIPE",
    "raw fd_seek stdin": "ESPIPE",
    "raw fd_tell stdout": "ESPIPE",
    "raw fd_write 99": "EBADF",
    "raw fd_close 99": "EBADF",
    "raw fd_fdstat_get 99": "EBADF",
    "isatty stdout": "0",  # stdout is captured, not a terminal (a terminal would make libc line-buffer it)
    "sched_yield": "ok",
    "random_get 0": "ok",
    "random_get 1024": "ok",
    "random bytes mostly nonzero": "yes",
    "args_sizes_get": "ok",
    "environ_sizes_get": "ok count 1",
    # Clocks: realtime and monotonic exist with a positive resolution; an unknown clock id is EINVAL.
    "clock 0": "res ok (>0: 1) time ok (>0: 1)",
    "clock 1": "res ok (>0: 1) time ok (>0: 1)",
    "clock 99": "res EINVAL (>0: 0) time EINVAL (>0: 0)",
    # poll_oneoff with clock subscriptions: sleeps at least as asked, reports the first to expire.
    "poll 20 ms": "ok events 1 userdata 1234567890abcdef type 0 error ok slept enough 1",
    "poll 2 s or 10 ms": "ok first userdata 2 slept 10 ms..1 s 1",
    "poll absolute +15 ms": "ok events 1 userdata 3 slept enough 1",
    "poll absolute in the past": "ok events 1 quick 1",
    "poll no subscriptions": "EINVAL",
    # Outside the preopens: wasi-libc finds no preopen for /etc and says ENOTCAPABLE itself (as under wasmtime's
    # own WASI); '..' out of a preopen is refused by the host; '..' that stays inside is fine; symlinks do
    # not lead out either.
    "open /etc/passwd (no preopen)": "ENOTCAPABLE",
    "unlink an empty path": "ENOTCAPABLE",  # wasi-libc: "" is relative to "/", under no preopen
    "open an empty path": "ENOTCAPABLE",
    "open /out/../etc/passwd": REFUSED,
    "create /in/../out/x": REFUSED,
    "stat /out/..": REFUSED,
    "raw path_open absolute": REFUSED,
    "raw path_open ../x": REFUSED,
    "create through a missing dir and ..": "ENOENT",
    "mkdir /out/inside": "0",
    "create through dir/..": "ok",
    "open /out/link/passwd": REFUSED | {"ENOENT", "ENOTSUP"},
    "open /out/up/etc/passwd": REFUSED | {"ENOENT", "ENOTSUP"},
    # /in is read-only: every change is refused and nothing changes.
    "open /in/text.txt write-only": READ_ONLY | {OPENED_READ_ONLY},  # see OPENED_READ_ONLY
    "open /in/text.txt read-write": READ_ONLY | {OPENED_READ_ONLY},
    "open /in/text.txt truncating": READ_ONLY,
    "create /in/new.txt": READ_ONLY,
    "mkdir /in/d": READ_ONLY,
    "unlink /in/text.txt": READ_ONLY,
    "rmdir /in/sub": READ_ONLY | {"ENOTEMPTY"},
    "rename in /in": READ_ONLY,
    "rename /in to /out": READ_ONLY | {"EXDEV"},
    "truncate /in/text.txt": READ_ONLY,
    "utimensat /in/text.txt": READ_ONLY,
    "write a read-only /in fd": "EBADF",  # as POSIX says for an fd not open for writing
    "ftruncate a read-only /in fd": READ_ONLY | {"EBADF", "EINVAL"},
    "symlink in /in": READ_ONLY | {"ENOTSUP"},
    "link from /in to /out": READ_ONLY | {"ENOTSUP", "EXDEV"},
    "/in/text.txt unchanged": "yes",
    "stat /in/new.txt": "ENOENT",
    # fd_readdir resumes from cookies through a buffer too small for more than a few entries.
    "raw fd_readdir 200-byte buffer": {
        "ok, 150 names, several calls 1, dot entries 0",
        "ok, 150 names, several calls 1, dot entries 2",
    },  # fmt: skip
}
"""The WASI-only lines and what each must say. Lines not listed must still be the same on both engines."""


@pytest.fixture(scope="session")
def wasi_runs(builder: Builder, engines: dict[str, EngineRunner]) -> Iterator[dict[tuple[str, str], Outcome]]:
    builder.submit_all([*BUILDS, native_build(PROGRAM)])
    yield {}


def outcome(builder: Builder, engines: dict[str, EngineRunner], runs: dict, spec: BuildSpec, engine: str) -> Outcome:
    """One run per (build, engine) per session, shared by the three checks."""
    key = (spec.id, engine)
    if key not in runs:
        runs[key] = engines[engine].run(build_or_skip(builder, spec), SCENARIO)
    return runs[key]  # type: ignore[no-any-return]


def wasi_lines(stdout: bytes) -> dict[str, list[str]]:
    """'name: value' lines of the WASI-only part, by name (a name may repeat: one line per preopen)."""
    assert WASI_MARKER in stdout, f"no WASI section: the program stopped early? {stdout[-300:]!r}"
    lines: dict[str, list[str]] = {}
    for line in stdout.split(WASI_MARKER, 1)[1].decode().splitlines():
        name, _, value = line.partition(": ")
        lines.setdefault(name, []).append(value)
    return lines


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("spec", BUILDS, ids=[s.id for s in BUILDS])
def test_portable_calls_match_native_linux(
    spec: BuildSpec, engine: str, builder: Builder, engines: dict[str, EngineRunner], wasi_runs: dict
) -> None:  # fmt: skip
    native = run_native(build_or_skip(builder, native_build(PROGRAM)), SCENARIO)
    assert native.exit_code == 0 and b"nanosleep 20 ms: 0" in native.stdout, native.stdout[-500:]
    wasm = outcome(builder, engines, wasi_runs, spec, engine)
    portable = Outcome(wasm.exit_code, wasm.stdout.split(WASI_MARKER, 1)[0], wasm.stderr, wasm.files, wasm.error)
    assert_same(native, portable, f"{spec.id} on {engine} (the portable part)")


@pytest.mark.skipif(not wasmtime_installed(), reason="wasmtime is not installed (pip install wasmtime)")
@pytest.mark.parametrize("spec", BUILDS, ids=[s.id for s in BUILDS])
def test_engines_agree_on_every_call(
    spec: BuildSpec, builder: Builder, engines: dict[str, EngineRunner], wasi_runs: dict
) -> None:  # fmt: skip
    wasm3 = outcome(builder, engines, wasi_runs, spec, WASM3)
    wasmtime = outcome(builder, engines, wasi_runs, spec, WASMTIME)
    assert (wasm3.exit_code, wasm3.error) == (wasmtime.exit_code, wasmtime.error)
    differ = [
        f"  wasm3:    {a}\n  wasmtime: {b}"
        for a, b in zip(wasm3.stdout.decode(errors="replace").splitlines(),
                        wasmtime.stdout.decode(errors="replace").splitlines(), strict=False)
        if a != b
    ]  # fmt: skip
    if differ or wasm3.stdout != wasmtime.stdout:
        pytest.fail(f"{spec.id}: the engines differ:\n" + "\n".join(differ or ["  (in length)"]), pytrace=False)
    assert wasm3.files == wasmtime.files


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("spec", BUILDS, ids=[s.id for s in BUILDS])
def test_wasi_calls_meet_the_documented_expectations(
    spec: BuildSpec, engine: str, builder: Builder, engines: dict[str, EngineRunner], wasi_runs: dict
) -> None:  # fmt: skip
    wasm = outcome(builder, engines, wasi_runs, spec, engine)
    lines = wasi_lines(wasm.stdout)
    assert sorted(v.split(" name ")[1] for v in lines.get("preopen", [])) == ["/in (ok)", "/out (ok)"], lines
    wrong = []
    for name, want in EXPECTED.items():
        got = lines.get(name, ["(missing)"])[0]
        if (got not in want) if isinstance(want, set) else (got != want):
            wrong.append(f"  {name}: {got!r}, expected {want if isinstance(want, str) else sorted(want)}")
    for name in ("fdstat 0", "fdstat 1", "fdstat 2"):
        if not lines.get(name, [""])[0].startswith("ok "):
            wrong.append(f"  {name}: {lines.get(name)}")
    if wrong:
        pytest.fail(f"{spec.id} on {engine}:\n" + "\n".join(wrong), pytrace=False)
