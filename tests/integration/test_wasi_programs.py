"""Real C programs against the WASI shim and its /in,/out filesystem, on Wasm3 and wasmtime.

The programs (tests/data/wasi/*.c) are compiled here with clang for wasm32-wasi when it is
installed (Debian: clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32); without it these
tests skip and say so. They are stripped (`-Wl,--strip-all`) like every module we ship.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bxthre3.common.failures import FailureReason
from bxthre3.executor.parent import ExecJob, Executor
from bxthre3.wasm import abi
from bxthre3.wasm import choice as engines
from bxthre3.wasm.contract import RunResult
from tests.conftest import ENGINES

SOURCES = Path(__file__).resolve().parents[1] / "data" / "wasi"
COMPILERS = ("clang-19", "clang-18", "clang")
SYSROOTS = ("/usr/share/wasi-sysroot", "/usr/lib/wasi-sysroot", "/opt/wasi-sdk/share/wasi-sysroot")

INPUTS = {"greeting.txt": b"Hi there", "sub/data.txt": b"data!"}


def _find_compiler(workdir: Path) -> list[str] | None:
    """A clang command line that links a wasm32-wasi command, or None."""
    probe = workdir / "probe.c"
    probe.write_text('#include <stdio.h>\nint main(void){puts("ok");return 0;}\n')
    for name in COMPILERS:
        path = shutil.which(name)
        if path is None:
            continue
        for sysroot in (None, *SYSROOTS):
            if sysroot is not None and not os.path.isdir(sysroot):
                continue
            command = [path, "--target=wasm32-wasi", *([f"--sysroot={sysroot}"] if sysroot else [])]
            done = subprocess.run(
                [*command, "-o", str(workdir / "probe.wasm"), str(probe)], capture_output=True, timeout=120
            )
            if done.returncode == 0:
                return command
    return None


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bytes]:
    """Compile tests/data/wasi/<name>.c to a stripped wasm32-wasi command (skips without clang)."""
    workdir = tmp_path_factory.mktemp("wasi-build")
    command = _find_compiler(workdir)
    if command is None:
        pytest.skip(
            "no clang that targets wasm32-wasi (apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)"
        )
    built: dict[str, bytes] = {}

    def compile_(name: str) -> bytes:
        if name not in built:
            output = workdir / f"{name}.wasm"
            subprocess.run(
                [*command, "-O2", "-Wl,--strip-all", f"-I{SOURCES}", "-o", str(output), str(SOURCES / f"{name}.c")],
                check=True,
                capture_output=True,
                timeout=120,
            )
            built[name] = output.read_bytes()
        return built[name]

    return compile_


@pytest.fixture(params=ENGINES)
def run(request: pytest.FixtureRequest) -> Callable[..., RunResult]:
    """The engine's `run_module`."""
    return engines.runner(request.param)


def test_files_in_and_out_through_libc(build: Callable[[str], bytes], run: Callable[..., RunResult]) -> None:
    result = run(build("files"), args=(), stdin=b"", env={}, files=INPUTS)
    assert result.reason is None, result
    assert result.stdout.decode().splitlines() == EXPECTED_FILES_OUTPUT
    assert result.files == {"d/e/a.txt": b"", "d/e/deep.txt": b"deep"}


EXPECTED_FILES_OUTPUT = """\
cat /in/greeting.txt: [Hi there]
cat in/sub/data.txt: [data!]
stat /in/sub/data.txt: ok
size 5 dir 0 reg 1
ftell 5 getc e
ls /in: . .. greeting.txt sub
fopen /in/new w: ENOTCAPABLE
mkdir /in/d: ENOTCAPABLE
unlink /in/greeting.txt: ENOTCAPABLE
write to /in file: EBADF
ftell after E: 2
ftell at end: 5
cat /out/a.txt: [hEllo]
fcntl flags append: 1
cat /out/a.txt: [hEllo world!]
pread: [wo] pos 0
ftruncate 7: ok
size after sparse write: 10
truncate 5: ok
cat /out/a.txt: [hEllo]
creat excl: ok
creat excl again: EEXIST
O_DIRECTORY on file: ENOTDIR
open missing: ENOENT
stat a.txt: ok
size after O_TRUNC: 0
mkdir d: ok
mkdir d again: EEXIST
mkdir d/e: ok
rename x -> d/moved: ok
rename a.txt -> d/e/a.txt: ok
rmdir d (not empty): ENOTEMPTY
unlink d/moved: ok
unlink d (a dir): EISDIR
rmdir missing: ENOENT
mkdir t: ok
rmdir t: ok
ls /out: . .. d
ls /out/d/e: . .. a.txt deep.txt
stat d/e/deep.txt: ok
deep size 4 nlink 1
open /out/../etc/passwd: ENOTCAPABLE
open /etc/passwd: ENOTCAPABLE
symlink: EPERM
link: EPERM
readlink: EINVAL
lseek stdout: ESPIPE
isatty 0 0 0""".splitlines()
"""What files.c prints: every line is one libc call on /in or /out and how it ended."""


def test_both_engines_give_identical_results(build: Callable[[str], bytes]) -> None:
    if not engines.wasmtime_installed():
        pytest.skip("wasmtime is not installed")
    wasm3, wasmtime = (
        engines.runner(name)(build("files"), args=(), stdin=b"", env={}, files=INPUTS)
        for name in (engines.WASM3, engines.WASMTIME)
    )
    assert (wasm3.stdout, wasm3.stderr, wasm3.files) == (wasmtime.stdout, wasmtime.stderr, wasmtime.files)


def test_stdio_matches_a_native_build_writing_to_a_pipe(
    build: Callable[[str], bytes], run: Callable[..., RunResult], tmp_path: Path
) -> None:
    """Not a tty, not seekable, fully buffered: byte for byte what gcc's build prints into a pipe."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no native C compiler to compare with")
    native = tmp_path / "stdio"
    subprocess.run([compiler, "-O2", f"-I{SOURCES}", "-o", str(native), str(SOURCES / "stdio.c")], check=True)
    stdin = b"first\nsecond\n"
    expected = subprocess.run([str(native)], input=stdin, capture_output=True, check=True, timeout=30)
    result = run(build("stdio"), args=(), stdin=stdin, env={})
    assert result.reason is None, result
    assert result.stdout == expected.stdout
    assert result.stderr == expected.stderr == b"to stderr\n"


def test_stdout_is_fully_buffered_after_wasi_libcs_first_flush(
    build: Callable[[str], bytes], run: Callable[..., RunResult]
) -> None:
    """A raw write overtakes buffered lines, as into a pipe; on a tty (line-buffered) it would not."""
    result = run(build("stdio"), args=("mixed",), stdin=b"", env={})
    assert result.stdout == (
        b"buffered 1\nraw\nbuffered 2\nbuffered 3\nafter flush\nfstat stdout 0, a character device 0\n"
    )


@pytest.mark.parametrize("how", ["usleep", "nanosleep"])
def test_sleeping_works_within_the_timeout(
    build: Callable[[str], bytes], run: Callable[..., RunResult], how: str
) -> None:
    started = time.perf_counter()
    result = run(build("sleep"), args=("150", how), stdin=b"", env={}, timeout_s=10.0)
    assert result.reason is None, result
    assert result.stdout == b"slept at least 150 ms: yes\n"
    assert 0.15 <= time.perf_counter() - started < 5.0


def test_sleeping_past_the_timeout_ends_as_a_timeout_at_the_deadline(
    build: Callable[[str], bytes], run: Callable[..., RunResult]
) -> None:
    started = time.perf_counter()
    result = run(build("sleep"), args=("60000", "sleep"), stdin=b"", env={}, timeout_s=0.4)
    elapsed = time.perf_counter() - started
    assert result.reason is FailureReason.TIMEOUT
    assert result.error == "stopped after the 0.4s timeout"
    assert 0.35 <= elapsed < 3.0


@pytest.mark.parametrize("engine", ENGINES)
def test_files_cross_the_executor_pipe(build: Callable[[str], bytes], tmp_path: Path, engine: str) -> None:
    """ExecJob.files become /in and ExecResult.files come back from the executor child."""
    wasm = build("files")
    path = tmp_path / "files.wasm"
    path.write_bytes(wasm)
    from bxthre3.common.digests import sha256_hex

    with Executor(engine=engine) as executor:
        executor.submit(
            ExecJob(
                job_id=1,
                module_sha=sha256_hex(wasm),
                module_path=str(path),
                args=(),
                stdin=b"",
                env={abi.TASK_ID_ENV: "t"},
                files=INPUTS,
                memory_limit_bytes=64 * 1024 * 1024,  # the module is rewritten (wasm_sandbox) and still works
            )
        )
        result = executor.read_result()
    assert result.reason is None, result
    assert result.files == {"d/e/a.txt": b"", "d/e/deep.txt": b"deep"}
    assert b"cat /in/greeting.txt: [Hi there]" in result.stdout


def test_out_bytes_and_stdout_share_the_output_limit(
    build: Callable[[str], bytes], run: Callable[..., RunResult]
) -> None:
    wasm = build("limits")
    fits = run(wasm, args=("bytes", "90"), stdin=b"", env={}, max_stdout=100)
    assert fits.reason is None, fits
    assert (fits.stdout, fits.files) == (b"0123456789", {"big": b"x" * 90})
    over = run(wasm, args=("bytes", "91"), stdin=b"", env={}, max_stdout=100)
    assert over.reason is FailureReason.OUTPUT_LIMIT
    assert over.error == "output exceeded 100 bytes (stdout plus files under /out)"
    assert len(over.stdout) + sum(len(data) for data in over.files.values()) <= 100


def test_out_holds_at_most_max_output_files_entries(
    build: Callable[[str], bytes], run: Callable[..., RunResult]
) -> None:
    from bxthre3.common import limits

    wasm = build("limits")
    full = run(wasm, args=("files", str(limits.MAX_OUTPUT_FILES)), stdin=b"", env={})
    assert full.reason is None, full
    assert len(full.files) == limits.MAX_OUTPUT_FILES
    over = run(wasm, args=("files", str(limits.MAX_OUTPUT_FILES + 1)), stdin=b"", env={})
    assert over.reason is FailureReason.OUTPUT_LIMIT
    assert over.error == f"more than {limits.MAX_OUTPUT_FILES} files and directories under /out"


def test_long_names_and_paths_are_enametoolong(build: Callable[[str], bytes], run: Callable[..., RunResult]) -> None:
    result = run(build("limits"), args=("names",), stdin=b"", env={})
    assert result.reason is None, result
    # 100-byte components: the 11th would make the path below /out 1,110 bytes (> MAX_PATH_BYTES).
    assert result.stdout == b"256-byte name: ENAMETOOLONG\n255-byte name: ok\nmkdir stopped at depth 10: ENAMETOOLONG\n"
    assert list(result.files) == ["n" * 255]


def test_readdir_continues_from_cookies_over_many_calls(
    build: Callable[[str], bytes], run: Callable[..., RunResult]
) -> None:
    """300 entries of 144 bytes each: far more than wasi-libc's 4 KiB readdir buffer holds."""
    result = run(build("limits"), args=("listing", "300"), stdin=b"", env={})
    assert result.reason is None, result
    assert result.stdout == f"listed 300, sum {sum(range(300))}\n".encode()
    assert len(result.files) == 300


def test_a_real_libc_program_passes_the_submission_check(build: Callable[[str], bytes]) -> None:
    """wasi-libc's file functions import path_open, fd_readdir, fd_filestat_get...: all accepted."""
    from bxthre3.wasm.inspect import check_wasi_command

    info = check_wasi_command(build("files"), name="files.wasm")
    imported = {imp.name for imp in info.imports}
    assert {"path_open", "fd_readdir", "path_rename", "path_unlink_file", "fd_filestat_set_size"} <= imported
    assert imported <= abi.SUPPORTED_WASI_IMPORTS


def test_removing_entries_while_reading_the_directory_removes_them_all(
    build: Callable[[str], bytes], run: Callable[..., RunResult]
) -> None:
    """`rm -r`'s pattern: with positional cookies the continued listings would skip entries."""
    result = run(build("limits"), args=("rmrf", "300"), stdin=b"", env={})
    assert result.reason is None, result
    assert result.stdout == b"removed 300, rmdir: ok\n"
    assert result.files == {"keep": b""}


def test_runs_with_files_do_not_grow_memory(build: Callable[[str], bytes], run: Callable[..., RunResult]) -> None:
    """Each run's filesystem and descriptors go with its shim."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        pytest.skip("needs /proc")
    wasm = build("limits")
    for _ in range(20):
        run(wasm, args=("listing", "50"), stdin=b"", env={})
    before = int(statm.read_text().split()[1])
    for _ in range(150):
        assert run(wasm, args=("listing", "50"), stdin=b"", env={}).reason is None
    grown_kib = (int(statm.read_text().split()[1]) - before) * os.sysconf("SC_PAGE_SIZE") // 1024
    assert grown_kib < 8 * 1024, f"RSS grew {grown_kib} KiB over 150 runs"


# -- deterministic runs (verified tasks): the same bytes on any device and either engine ----------------------


def _clocks(engine: str, wasm: bytes, task_id: str, deterministic: bool, wait_ms: str = "5000") -> RunResult:
    result = engines.runner(engine)(
        wasm, args=(wait_ms,), stdin=b"", env={}, program_name=task_id, deterministic=deterministic, timeout_s=30.0
    )
    assert result.reason is None, result
    return result


def _lines(result: RunResult) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())


EXPECTED_CLOCKS = {
    "time": "946684800 year 2000",
    "realtime": "946684800.001000000",
    "monotonic": "0.002000000",
    "process": "0.003000000",
    "thread": "0.004000000",
    "resolution": "1000000 ns",
    "slept": "201 ms",  # the 200 ms nanosleep moved the logical clock, plus the one read after it
    "waited": "5000 ms",  # 5,000 reads of a 1 ms clock: a busy wait ends at once
}


def test_a_deterministic_run_is_byte_identical_across_runs_and_engines(build: Callable[[str], bytes]) -> None:
    wasm = build("clocks")
    available = [engines.WASM3, *([engines.WASMTIME] if engines.wasmtime_installed() else [])]
    started = time.perf_counter()
    runs = [_clocks(engine, wasm, "t1", True) for engine in available for _ in range(2)]
    assert time.perf_counter() - started < 10.0  # nothing slept for real, nothing busy-waited 5 s
    assert len({(r.stdout, r.stderr) for r in runs}) == 1, [r.stdout for r in runs]
    lines = _lines(runs[0])
    assert {k: v for k, v in lines.items() if k in EXPECTED_CLOCKS} == EXPECTED_CLOCKS
    seed = hashlib.sha256(b"t1").digest()
    assert (
        lines["getentropy"]
        == hashlib.sha256(seed + bytes(8)).hexdigest()
        + hashlib.sha256(seed + (1).to_bytes(8, "little")).hexdigest()[:16]
    )
    other = _lines(_clocks(available[-1], wasm, "t2", True))
    assert other["getentropy"] != lines["getentropy"] and other["arc4random"] != lines["arc4random"]
    assert {k: v for k, v in other.items() if k in EXPECTED_CLOCKS} == EXPECTED_CLOCKS  # time is the same


@pytest.mark.parametrize("engine", ENGINES)
def test_a_run_that_is_not_deterministic_sees_real_time_and_chance(build: Callable[[str], bytes], engine: str) -> None:
    wasm = build("clocks")
    first, second = (_lines(_clocks(engine, wasm, "t1", False, wait_ms="20")) for _ in range(2))
    assert int(first["time"].split(" year ")[1]) >= 2026
    assert abs(float(first["realtime"]) - time.time()) < 60
    assert first["resolution"] == "1000 ns"
    assert int(first["slept"].split()[0]) >= 200
    assert first["getentropy"] != second["getentropy"]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_executor_child_runs_a_deterministic_job(
    build: Callable[[str], bytes], tmp_path: Path, engine: str
) -> None:
    """ExecJob.deterministic crosses the pipe to the engine; program_name (the task id) seeds it."""
    from bxthre3.common.digests import sha256_hex

    wasm = build("clocks")
    path = tmp_path / "clocks.wasm"
    path.write_bytes(wasm)
    job = ExecJob(1, sha256_hex(wasm), str(path), ("10",), b"", {}, program_name="t1", deterministic=True)
    with Executor(engine=engine) as executor:
        executor.submit(job)
        first = executor.read_result()
        executor.submit(dataclasses.replace(job, job_id=2, deterministic=False))
        second = executor.read_result()
    assert first.reason is None, first
    assert first.stdout == _clocks(engine, wasm, "t1", True, wait_ms="10").stdout
    assert b"time 946684800 year 2000\n" in first.stdout and b"year 2000" not in second.stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_a_host_runs_a_deterministic_assignment_deterministically(
    build: Callable[[str], bytes], tmp_path: Path, engine: str
) -> None:
    """`assign` with `deterministic` through a real Host (its session, slots and executor) to the engine."""
    import zmq

    from bxthre3.common.digests import sha256_hex
    from bxthre3.host.module_cache import ModuleCache
    from bxthre3.host.session import Host, HostConfig
    from bxthre3.wire import protocol
    from bxthre3.wire.addresses import parse_address
    from bxthre3.wire.sockets import configure
    from tests.integration.test_host_link import _receive

    wasm = build("clocks")
    context = zmq.Context()
    router = configure(context.socket(zmq.ROUTER))
    port = router.bind_to_random_port("tcp://127.0.0.1")
    config = HostConfig(node_id="det-1", engine=engine)
    host = Host(parse_address(f"127.0.0.1:{port}"), config, cache=ModuleCache(tmp_path / "c"), context=context)
    try:
        host._connect()
        identity, _ = _receive(router, host, protocol.Register)
        router.send_multipart([identity, protocol.encode(protocol.Welcome("det-1", 1.0, 3))])
        results = []
        for attempt, deterministic in ((1, True), (2, False)):
            assign = protocol.Assign(
                "d1", "t1", attempt, sha256_hex(wasm), wasm, ["10"], b"", [], 30.0, {}, deterministic
            )
            router.send_multipart([identity, protocol.encode(assign)])
            _, result = _receive(router, host, protocol.Result, timeout=20.0)
            results.append(result)
    finally:
        host._shutdown()
        router.close(linger=0)
        context.term()
    verified, plain = results
    assert verified.reason is None, verified
    assert verified.output == _clocks(engine, wasm, "t1", True, wait_ms="10").stdout
    assert b"year 2000" not in plain.output


def test_the_hostile_test_host_answers_a_deterministic_assignment_as_a_real_host(
    build: Callable[[str], bytes],
) -> None:
    from bxthre3.common.digests import sha256_hex
    from bxthre3.wire import protocol
    from bxthre3.wire.addresses import parse_address
    from tests.conftest import TEST_KEYS
    from tests.hostile_host import HostileHost

    wasm = build("clocks")
    honest = HostileHost(parse_address("127.0.0.1:1"), TEST_KEYS, lie_fraction=0.0)
    try:
        assign = protocol.Assign("d1", "t1", 1, sha256_hex(wasm), wasm, ["10"], b"", [], 30.0, {}, True)
        result = honest._answer(*honest._start(assign))
    finally:
        honest.worker.shutdown()
        honest.context.term()
    assert result.reason is None, result
    assert result.output == _clocks(engines.WASM3, wasm, "t1", True, wait_ms="10").stdout
