"""The conformance suite's machinery: toolchains, cached builds, and running a program natively and in each engine.

Every program under `programs/` takes its input and output directories as its first two arguments:
`prog IN_DIR OUT_DIR [ARGS...]`. The WebAssembly builds run in the real executor (`bxthre3.executor`) with
`IN_DIR=/in` (the job's read-only `files`) and `OUT_DIR=/out` (what comes back as `ExecResult.files`); the
native build of the same source runs with two temporary directories holding the same files, the same
argv after argv[0], exactly the same environment and the same stdin. The programs never print their
directories or argv[0], so the two runs' stdout, stderr, exit code and output files compare byte for byte.

Builds are cached on disk by a hash of (source, compiler identity, flags) in `$BXTHRE3_CONFORMANCE_CACHE`
(default `~/.cache/bxthre3/conformance`), built once per session, two at a time. A toolchain that is missing
skips its builds — or fails them when `BXTHRE3_REQUIRE_TOOLCHAINS=1`, which `./bootstrap.sh test` sets (it
installs them), so CI cannot pass by skipping.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bxthre3.executor.parent import ExecJob, Executor
from bxthre3.wasm.choice import WASM3, WASMTIME
from tests.conftest import ENGINES

PROGRAMS = Path(__file__).resolve().parent / "programs"
REQUIRE_ENV = "BXTHRE3_REQUIRE_TOOLCHAINS"
CACHE_ENV = "BXTHRE3_CONFORMANCE_CACHE"
CACHE_VERSION = b"1"
"""Bump to rebuild every cached program (e.g. after changing how builds are invoked)."""
RUN_TIMEOUT_S = 120.0
PRUNE_AFTER_S = 30 * 86400


def toolchains_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """One way of compiling: a compiler command for one language and target."""

    name: str
    language: str  # "c", "c++" or "rust"
    command: tuple[str, ...]
    native: bool = False
    package_hint: str = ""

    @property
    def executable(self) -> str:
        return self.command[0]


def _clang(version: int, language: str) -> Toolchain:
    driver = f"clang-{version}" if language == "c" else f"clang++-{version}"
    return Toolchain(
        f"{driver}-wasm32-wasi", language, (driver, "--target=wasm32-wasi"),
        package_hint=f"clang-{version} lld-{version} libclang-rt-{version}-dev-wasm32 wasi-libc"
        + (" libc++-14-dev-wasm32 libc++abi-14-dev-wasm32" if language == "c++" else ""),
    )  # fmt: skip


# Debian's rustc by full path: a rustup toolchain earlier on PATH usually has no wasm32-wasi std.
DEBIAN_RUSTC = "/usr/bin/rustc"
TOOLCHAINS: dict[str, Toolchain] = {
    t.name: t
    for t in (
        _clang(14, "c"), _clang(19, "c"), _clang(14, "c++"), _clang(19, "c++"),
        Toolchain("rustc-wasm32-wasi", "rust", (DEBIAN_RUSTC, "--edition", "2021", "--target", "wasm32-wasi"),
                  package_hint="rustc libstd-rust-dev-wasm32"),
        Toolchain("gcc-native", "c", ("gcc",), native=True, package_hint="gcc"),
        Toolchain("g++-native", "c++", ("g++", "-std=c++17"), native=True, package_hint="g++"),
        Toolchain("rustc-native", "rust", (DEBIAN_RUSTC, "--edition", "2021"), native=True, package_hint="rustc"),
    )
}  # fmt: skip
NATIVE = {"c": "gcc-native", "c++": "g++-native", "rust": "rustc-native"}
NATIVE_FLAGS = {"c": ("-O2",), "c++": ("-O2",), "rust": ("-O",)}
LANGUAGE_FLAGS = {"c": (), "c++": ("-std=c++17", "-fno-exceptions"), "rust": ()}
"""Flags every WebAssembly build of the language gets (wasm32-wasi has no C++ exceptions)."""
PROGRAM_FLAGS: dict[str, tuple[str, ...]] = {
    "clocks.c": ("-D_WASI_EMULATED_PROCESS_CLOCKS", "-lwasi-emulated-process-clocks"),  # clock() on WASI
}
NATIVE_LIBS = {"c": ("-lm",), "c++": (), "rust": ()}

C_FLAG_SETS = {"default": (), "g": ("-g",), "O0": ("-O0",), "O2": ("-O2",), "Os": ("-Os",)}
"""How people build: default flags (unstripped), debug info, and the usual optimisation levels."""
CXX_FLAG_SETS = {"default": (), "O2": ("-O2",), "Os-g": ("-Os", "-g")}
RUST_FLAG_SETS = {"default": (), "O": ("-O",)}


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    program: str
    toolchain: str
    flags: tuple[str, ...]
    label: str

    @property
    def id(self) -> str:
        return f"{Path(self.program).stem}-{self.toolchain.split('-wasm32')[0]}-{self.label}"


def wasm_builds(program: str) -> list[BuildSpec]:
    """Every WebAssembly build of one program: both clangs x the flag sets, or rustc x its flag sets."""
    language = language_of(program)
    if language == "rust":
        return [BuildSpec(program, "rustc-wasm32-wasi", f, label) for label, f in RUST_FLAG_SETS.items()]
    sets = C_FLAG_SETS if language == "c" else CXX_FLAG_SETS
    driver = "clang" if language == "c" else "clang++"
    return [
        BuildSpec(program, f"{driver}-{version}-wasm32-wasi", flags, label)
        for version in (14, 19)
        for label, flags in sets.items()
    ]


def native_build(program: str) -> BuildSpec:
    language = language_of(program)
    return BuildSpec(program, NATIVE[language], NATIVE_FLAGS[language], "native")


def language_of(program: str) -> str:
    return {".c": "c", ".cc": "c++", ".rs": "rust"}[Path(program).suffix]


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bxthre3" / "conformance"


class BuildFailed(Exception):
    pass


class ToolchainMissing(Exception):
    pass


class Builder:
    """Compiles programs, at most two at a time, each once per session and once per (source, compiler, flags)."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        self._prune()
        self._identity: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._futures: dict[BuildSpec, object] = {}
        self.compiled = 0
        self.cached = 0

    def identity(self, toolchain: Toolchain) -> str | None:
        """The compiler's version text (part of the cache key), or None when it is not installed."""
        with self._lock:
            if toolchain.executable not in self._identity:
                found = shutil.which(toolchain.executable)
                text = None
                if found:
                    proc = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
                    text = f"{os.path.realpath(found)}\n{proc.stdout}" if proc.returncode == 0 else None
                self._identity[toolchain.executable] = text
            return self._identity[toolchain.executable]

    def _prune(self) -> None:
        """Builds no session used for PRUNE_AFTER_S go (sources and compilers change; the cache must not grow)."""
        cutoff = time.time() - PRUNE_AFTER_S
        for entry in self.cache.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
            except OSError:
                pass  # another session's build, renamed or removed meanwhile

    def command(self, spec: BuildSpec, output: Path) -> list[str]:
        toolchain = TOOLCHAINS[spec.toolchain]
        source = PROGRAMS / spec.program
        extra = () if toolchain.native else LANGUAGE_FLAGS[toolchain.language] + PROGRAM_FLAGS.get(spec.program, ())
        libs = NATIVE_LIBS[toolchain.language] if toolchain.native else ()
        return [*toolchain.command, *spec.flags, *extra, "-o", str(output), str(source), *libs]

    def submit_all(self, specs: list[BuildSpec]) -> None:
        for spec in specs:
            with self._lock:
                if spec not in self._futures:
                    self._futures[spec] = self._pool.submit(self._build, spec)

    def get(self, spec: BuildSpec) -> Path:
        self.submit_all([spec])
        return self._futures[spec].result()  # type: ignore[attr-defined,no-any-return]

    def _build(self, spec: BuildSpec) -> Path:
        toolchain = TOOLCHAINS[spec.toolchain]
        identity = self.identity(toolchain)
        if identity is None:
            raise ToolchainMissing(
                f"{toolchain.executable} is not installed (Debian: apt-get install {toolchain.package_hint}; "
                "./bootstrap.sh test installs it)"
            )
        key = hashlib.sha256()
        key.update(CACHE_VERSION + b"\0" + (PROGRAMS / spec.program).read_bytes() + b"\0" + identity.encode())
        key.update("\0".join(self.command(spec, Path("OUT"))).encode())
        suffix = "" if toolchain.native else ".wasm"
        output = self.cache / f"{spec.id}-{key.hexdigest()[:24]}{suffix}"
        # The suite runs in several pytest processes (pytest -n), each with its own Builder on the same cache:
        # one builds a program while the others wait for it, instead of every process compiling everything.
        with open(output.with_name(f".{output.name}.lock"), "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if output.exists():
                os.utime(output)  # used: kept by _prune
                with self._lock:
                    self.cached += 1
                return output
            partial = output.with_name(f".{output.name}.{os.getpid()}.{threading.get_ident()}")
            proc = subprocess.run(self.command(spec, partial), capture_output=True, text=True, timeout=300)
            if proc.returncode != 0 or not partial.exists():
                partial.unlink(missing_ok=True)
                raise BuildFailed(f"{' '.join(self.command(spec, output))} failed:\n{proc.stderr[-4000:]}")
            os.replace(partial, output)
        with self._lock:
            self.compiled += 1
        return output

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def builder() -> Iterator[Builder]:
    b = Builder(cache_dir())
    try:
        yield b
    finally:
        b.close()


def build_or_skip(builder: Builder, spec: BuildSpec) -> Path:
    """The built program; a missing toolchain skips, or fails when toolchains are required."""
    try:
        return builder.get(spec)
    except ToolchainMissing as missing:
        if toolchains_required():
            pytest.fail(f"{missing} ({REQUIRE_ENV}=1)")
        pytest.skip(str(missing))


# ------------------------------------------------------------------------------------------ running


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What one program run gets: argv after the two directories, environment, stdin, input files."""

    args: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    stdin: bytes = b""
    files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outcome:
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    files: dict[str, bytes]
    error: str = ""


def run_native(binary: Path, scenario: Scenario) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bxthre3-native-") as tmp:
        in_dir, out_dir, cwd = Path(tmp, "in"), Path(tmp, "out"), Path(tmp, "cwd")
        for d in (in_dir, out_dir, cwd):
            d.mkdir()
        for rel, data in scenario.files.items():
            (in_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (in_dir / rel).write_bytes(data)
        proc = subprocess.run(
            [str(binary), str(in_dir), str(out_dir), *scenario.args], input=scenario.stdin, capture_output=True,
            env=dict(scenario.env), cwd=cwd, timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        files = {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file()}
    return Outcome(proc.returncode, proc.stdout, proc.stderr, files)


class EngineRunner:
    """One real executor child per engine for the whole session; restarted if a run hangs."""

    def __init__(self, engine: str, log_dir: Path) -> None:
        self.engine = engine
        self.log_dir = log_dir
        self._executor: Executor | None = None
        self._job_ids = iter(range(1, 1 << 62))

    def _start(self) -> Executor:
        if self._executor is None:
            self._executor = Executor(log_path=self.log_dir / f"executor-{self.engine}.log", engine=self.engine)
            self._executor.start()
        return self._executor

    def run(self, module: Path, scenario: Scenario) -> Outcome:
        executor = self._start()
        data = module.read_bytes()
        job = ExecJob(
            next(self._job_ids), hashlib.sha256(data).hexdigest(), str(module), ("/in", "/out", *scenario.args),
            scenario.stdin, dict(scenario.env), program_name=module.stem, files=dict(scenario.files),
        )  # fmt: skip
        executor.submit(job)
        try:
            # read_result also writes what the pipe did not take at once (a job with MBs of files).
            result = executor.read_result(timeout=RUN_TIMEOUT_S)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"{module.name} gave no result on {self.engine} within {RUN_TIMEOUT_S} s") from None
        assert result.job_id == job.job_id
        error = "" if result.reason is None else f"{result.reason.value}: {result.error}"
        return Outcome(result.exit_code, result.stdout, result.stderr, dict(result.files), error)

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.kill()
            self._executor.close()
            self._executor = None


ENGINE_PARAMS = ENGINES
"""Both engines (wasmtime skipped where it is not installed), as in the rest of the suite."""


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EngineRunner]]:
    log_dir = tmp_path_factory.mktemp("conformance-executors")
    runners = {engine: EngineRunner(engine, log_dir) for engine in (WASM3, WASMTIME)}
    try:
        yield runners
    finally:
        for runner in runners.values():
            runner.stop()


# ------------------------------------------------------------------------------------------ comparing


def first_difference(a: bytes, b: bytes) -> str:
    """Where two outputs part, with the lines around it, for an assertion message."""
    if a == b:
        return "identical"
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    line = a[:at].count(b"\n") + 1
    start = max(a.rfind(b"\n", 0, at) + 1, at - 160)
    return (
        f"lengths {len(a)} vs {len(b)}, first difference at byte {at} (line {line}):\n"
        f"  native: {a[start : at + 80]!r}\n  wasm:   {b[start : at + 80]!r}"
    )


def assert_same(native: Outcome, wasm: Outcome, what: str) -> None:
    """Exit code, stdout, stderr and output files identical, with a readable account of the first difference."""
    problems = []
    if wasm.exit_code != native.exit_code:
        problems.append(f"exit code native {native.exit_code} wasm {wasm.exit_code} {wasm.error}".rstrip())
    if wasm.stdout != native.stdout:
        problems.append("stdout: " + first_difference(native.stdout, wasm.stdout))
    if wasm.stderr != native.stderr:
        problems.append("stderr: " + first_difference(native.stderr, wasm.stderr))
    if sorted(wasm.files) != sorted(native.files):
        problems.append(f"output files: native {sorted(native.files)} wasm {sorted(wasm.files)}")
    differing = [name for name in sorted(set(native.files) & set(wasm.files)) if native.files[name] != wasm.files[name]]
    for name in differing[:3]:
        problems.append(f"/out/{name}: " + first_difference(native.files[name], wasm.files[name]))
    if len(differing) > 3:
        problems.append(f"... and {len(differing) - 3} more files differ")
    if problems:
        pytest.fail(f"{what} differs from its native build:\n" + "\n".join(problems), pytrace=False)
