"""Shared fixtures: a real controller on loopback, real host subprocesses, a real client.

Everything started here is stopped in teardown, hosts by PID. Sockets bind only to 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from bxthre3.client.connection import ControllerClient
from bxthre3.common import scratch
from bxthre3.common.logs import LOG_DIR_ENV
from bxthre3.controller.server import Controller
from bxthre3.scheduler import SchedulerConfig
from bxthre3.wasm.choice import ENGINE_ENV, WASM3, WASMTIME, wasmtime_installed
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import TOKEN_ENV, CurveKeys

REPO = Path(__file__).resolve().parents[1]
TEST_MODULES = REPO / "tests" / "data" / "modules"
WASM_MODULES = REPO / "wasm_modules"

TEST_TOKEN = "bxt1-" + "T" * 43
"""The cluster token of every test cluster (CURVE on, as by default); tests of wrong tokens use others."""
TEST_KEYS = CurveKeys.from_token(TEST_TOKEN)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until true; a bounded wait that fails the test instead of hanging it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("BXTHRE3_CONTROLLER", None)
    env.setdefault(LOG_DIR_ENV, str(SESSION_LOG_DIR))
    # a remembered controller from the machine's user must not leak in
    env["XDG_STATE_HOME"] = str(SESSION_DIR / "state")
    return env


SESSION_DIR = scratch.make_dir("test-session")
"""This test run's own files, removed when it ends (and swept by the next run if it is killed)."""
SESSION_LOG_DIR = SESSION_DIR / "logs"
"""Where every role's logs go when a test names no --log-file: never the checkout's logs/, never ~/.local/state."""
CHECKOUT_LOGS = REPO / "logs"
"""The checkout's log folder (`./bootstrap.sh` writes there): a test run must add nothing to it."""

# Every process of the test run, this one included, keeps its logs and device state in the session
# directory: neither the checkout nor the machine user's XDG directories get anything from the suite.
os.environ[LOG_DIR_ENV] = str(SESSION_LOG_DIR)
os.environ["XDG_STATE_HOME"] = str(SESSION_DIR / "state")

# Every process of the test run, this one included, is a member of the test cluster, and none reads or
# writes the machine user's controller state (~/.local/share/bxthre3: its token, its journal).
os.environ[TOKEN_ENV] = TEST_TOKEN
# Hosts the tests start run Wasm3, the engine every device has, unless the run asks for another
# (BXTHRE3_ENGINE=wasmtime ./bootstrap.sh test runs the whole suite on wasmtime). Tests of the
# engines themselves run on both, through ENGINES.
os.environ.setdefault(ENGINE_ENV, WASM3)

ENGINES = [
    pytest.param(WASM3, id="wasm3"),
    pytest.param(
        WASMTIME, id="wasmtime",
        marks=pytest.mark.skipif(not wasmtime_installed(), reason="wasmtime is not installed (pip install wasmtime)"),
    ),
]  # fmt: skip
"""Parameters for tests that must hold on every engine."""
os.environ["XDG_DATA_HOME"] = str(SESSION_DIR / "data")
# Nor the user's config file (~/.config/bxthre3/config.toml): tests of it write their own.
os.environ["XDG_CONFIG_HOME"] = str(SESSION_DIR / "config")


def _checkout_log_files() -> set[str]:
    if not CHECKOUT_LOGS.is_dir():
        return set()
    return {str(p.relative_to(CHECKOUT_LOGS)) for p in CHECKOUT_LOGS.rglob("*")}


_CHECKOUT_LOGS_BEFORE = _checkout_log_files()


def pytest_configure(config: pytest.Config) -> None:
    # Registered here rather than in pyproject.toml: bootstrap.sh reinstalls every venv when that file changes.
    config.addinivalue_line(
        "markers",
        "one_python: what it proves does not depend on the Python version (mypy with its fixed python_version; "
        "fuzzing and scale of pure code): the whole suite runs it, the fast subsets that `./bootstrap.sh test` "
        "runs on Python 3.10 and 3.13 first leave it out (`-m 'not one_python'`)",
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when it left new files in the checkout's logs/ (a role that ignored $BXTHRE3_LOG_DIR)."""
    new = sorted(_checkout_log_files() - _CHECKOUT_LOGS_BEFORE)
    if new:
        print(f"\nERROR: the test run wrote into {CHECKOUT_LOGS}: {', '.join(new[:10])}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class RunningController:
    def __init__(self, config: SchedulerConfig) -> None:
        self.context = zmq.Context()
        self.controller = Controller(host="127.0.0.1", port=0, config=config, context=self.context, keys=TEST_KEYS)
        self.port = self.controller.bind()
        self.address = Address("127.0.0.1", self.port)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def client(self, timeout: float = 10.0) -> ControllerClient:
        return ControllerClient(self.address, timeout=timeout, context=self.context, keys=TEST_KEYS)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "controller loop did not stop"
        self.controller.close()
        # destroy, not term: a socket a failed test left open must not hang the teardown
        self.context.destroy(linger=0)


@pytest.fixture
def controller() -> Iterator[RunningController]:
    running = RunningController(SchedulerConfig(heartbeat_interval=0.25, liveness=4))
    yield running
    running.close()


@pytest.fixture
def client(controller: RunningController) -> Iterator[ControllerClient]:
    c = controller.client()
    yield c
    c.close()


class HostProcesses:
    """Starts `python -m bxthre3 host` subprocesses and kills every one of them at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, address: Address, node_id: str, *, slots: int = 1, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"host_{node_id}.log"
        cmd = [
            sys.executable, "-m", "bxthre3", "host",
            "--controller", str(address), "--node-id", node_id, "--slots", str(slots),
            "--cache-dir", str(self.tmp_path / f"cache-{node_id}"),
            "--heartbeat", "0.25", "--log-file", str(log), *extra,
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env()
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[HostProcesses]:
    h = HostProcesses(tmp_path)
    yield h
    h.close()


def wait_for_hosts(client: ControllerClient, n: int, timeout: float = 20.0) -> None:
    wait_for(lambda: client.status()["totals"]["hosts"] >= n, timeout, f"{n} hosts to register")
