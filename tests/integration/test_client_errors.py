"""Why a CLI request failed, told apart: each case through the real `bxthre3` CLI as a subprocess,
one line naming what to check, within 3 s (the default --timeout is 10 s: none of these waits for it).

Real components only: a real controller subprocess (stopped, killed), a real closed port, a real
network namespace whose only route leads into a dummy interface (a device that never answers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bxthre3.wire.security import new_token
from tests.conftest import REPO, subprocess_env, wait_for
from tests.integration.test_cli import free_port

BOUND_S = 3.0
"""Each verdict, measured from the CLI's start to its exit (Python start-up included)."""


def cli(
    *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], float]:  # noqa: E501
    started = time.monotonic()
    proc = subprocess.run([*prefix, sys.executable, "-m", "bxthre3", *args], capture_output=True, text=True,
                          timeout=30, env=env or subprocess_env(), cwd=REPO, stdin=subprocess.DEVNULL)  # fmt: skip
    return proc, time.monotonic() - started


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bxthre3: error: "), proc.stderr
    return lines[0]


class ControllerProcess:
    """`bxthre3 controller` on 127.0.0.1, in memory; stopped, killed or ended by PID."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", str(self.port),
                "--no-beacon", "--state-dir", ":memory:", "--log-file", str(tmp_path / "controller.log")]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=subprocess_env(), cwd=REPO)  # fmt: skip
        wait_for(lambda: cli("status", "--controller", self.address, "--timeout", "1")[0].returncode == 0, 20,
                 "the controller")  # fmt: skip

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    c = ControllerProcess(tmp_path)
    try:
        yield c
    finally:
        c.close()


def test_a_wrong_token_is_named_at_once(controller: ControllerProcess) -> None:
    other = {**subprocess_env(), "BXTHRE3_TOKEN": new_token()}
    proc, took = cli("status", "--controller", controller.address, env=other)
    line = one_line(proc)
    assert "refused the security handshake" in line and "the cluster token is not this controller's" in line, line
    assert took < BOUND_S, took


def test_no_token_at_all_is_named_at_once(controller: ControllerProcess) -> None:
    proc, took = cli("status", "--controller", controller.address, "--insecure")
    line = one_line(proc)
    assert "refused the security handshake" in line and "it expects the cluster token" in line, line
    assert took < BOUND_S, took


def test_nothing_listening_is_not_blamed_on_the_token() -> None:
    proc, took = cli("submit", str(REPO / "dags" / "hello_fanout.yaml"), "--controller", f"127.0.0.1:{free_port()}")
    line = one_line(proc)
    assert "nothing is listening at 127.0.0.1:" in line and "connection refused" in line, line
    assert "token" not in line
    assert took < BOUND_S, took


def test_a_hung_controller_is_told_from_a_wrong_token(controller: ControllerProcess) -> None:
    os.kill(controller.proc.pid, signal.SIGSTOP)  # the kernel still accepts connections; nobody answers
    proc, took = cli("status", "--controller", controller.address)
    line = one_line(proc)
    assert "did not complete the ZeroMQ handshake" in line and "hung or overloaded" in line, line
    assert "token" not in line
    assert took < BOUND_S, took


def _connected(pid: int, port: int) -> bool:
    try:
        return any(c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"
                   for c in psutil.Process(pid).net_connections("tcp"))  # fmt: skip
    except psutil.Error:
        return False


def test_a_controller_dying_during_a_request_is_named(controller: ControllerProcess) -> None:
    os.kill(controller.proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    waiting = subprocess.Popen([sys.executable, "-m", "bxthre3", "status", "--controller", controller.address],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=subprocess_env(), cwd=REPO)  # fmt: skip
    try:
        wait_for(lambda: _connected(waiting.pid, controller.port), 5, "the CLI to connect")
        os.kill(controller.proc.pid, signal.SIGKILL)  # the kernel closes its connections
        killed = time.monotonic()
        _, stderr = waiting.communicate(timeout=30)
        ended = time.monotonic()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(5)
    assert waiting.returncode == 3 and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"bxthre3: error: the controller at {controller.address} "), stderr
    assert "stopped or crashed" in stderr, stderr
    assert "token" not in stderr
    assert ended - started < BOUND_S and ended - killed < 1.0, (ended - started, ended - killed)


def test_a_controller_going_away_while_the_cli_waits_for_a_dag_is_named(controller: ControllerProcess) -> None:
    # no host: the DAG waits, and `--wait` polls its progress until the controller is killed
    waiting = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "submit", str(REPO / "dags" / "hello_fanout.yaml"), "--wait",
         "--controller", controller.address],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(), cwd=REPO,
    )  # fmt: skip
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline().startswith("dag-")  # accepted: the connection is up and trusted
        time.sleep(0.3)
        os.kill(controller.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = waiting.communicate(timeout=30)
        ended = time.monotonic()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(5)
    assert waiting.returncode == 3, stderr
    last = stderr.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("bxthre3: error: the controller at ") and "stopped or crashed" in last, stderr
    assert "token" not in last
    assert ended - killed < BOUND_S, ended - killed


@pytest.fixture
def silent_network() -> Iterator[str]:
    """A network namespace with a LAN (a veth pair, 10.77.250.1/24 on one end) where no device answers:
    connecting to 10.77.250.2 gets no ARP reply, as to a phone that is off. Named like
    tests/netns_support.py's namespaces, so a crashed run's leftover is removed by its cleanup."""
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 for a network namespace")
    name = f"bx3-{secrets.token_hex(4)}-silent"
    if subprocess.run([ip, "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    etc = Path("/etc/netns") / name  # `ip netns exec` mounts these over /etc: its DNS server is the silent device
    try:
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text("nameserver 10.77.250.2\noptions timeout:5 attempts:2\n")
        for args in (("link", "set", "lo", "up"), ("link", "add", "v0", "type", "veth", "peer", "name", "v1"),
                     ("addr", "add", "10.77.250.1/24", "dev", "v0"), ("link", "set", "v0", "up"),
                     ("link", "set", "v1", "up")):  # fmt: skip
            subprocess.run([ip, "-n", name, *args], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def test_a_device_that_never_answers_is_named(silent_network: str) -> None:
    proc, took = cli("status", "--controller", "10.77.250.2:5000", prefix=("ip", "netns", "exec", silent_network))
    line = one_line(proc)
    assert "no answer from 10.77.250.2:5000 to connecting within 2s" in line and "firewall" in line, line
    assert "token" not in line
    assert took < BOUND_S, took


def test_an_unresolvable_name_is_named_even_when_dns_never_answers(silent_network: str) -> None:
    proc, took = cli("status", "--controller", "no-such-controller.invalid:5000")
    line = one_line(proc)
    assert "cannot resolve controller host 'no-such-controller.invalid'" in line and "check the name" in line, line
    assert took < BOUND_S, took
    # the resolver's own timeouts would take 10 s here; the CLI gives the verdict after 2
    inside = ("ip", "netns", "exec", silent_network)
    proc, took = cli("status", "--controller", "controller.example:5000", prefix=inside)
    line = one_line(proc)
    assert "cannot resolve controller host 'controller.example': no answer from DNS within 2s" in line, line
    assert took < BOUND_S, took
