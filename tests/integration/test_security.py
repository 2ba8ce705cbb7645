"""Only members with the cluster token get in; the wire carries no plaintext; plaintext only on loopback.

Everything is real: a controller with CURVE on, host subprocesses, the CLI, a TCP relay on loopback
that records every byte between a host and the controller.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
import zmq

from bxthre3.client.connection import ControllerClient
from bxthre3.common.errors import ClusterError
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.wire import protocol
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import CurveKeys, TokenError, check_token, new_token, secure_client
from tests.conftest import (
    TEST_KEYS,
    TEST_MODULES,
    TEST_TOKEN,
    HostProcesses,
    RunningController,
    subprocess_env,
    wait_for,
)

SECRET = "SECRET-PLAINTEXT-7f3a9c"


def bxthre3(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bxthre3", *args], capture_output=True, text=True, timeout=timeout,
        env=env or subprocess_env(),
    )  # fmt: skip


def other_token_env() -> dict[str, str]:
    return {**subprocess_env(), "BXTHRE3_TOKEN": new_token()}


class Relay:
    """A loopback TCP relay that keeps a copy of every byte it forwards (both directions)."""

    def __init__(self, target: Address) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.address = Address("127.0.0.1", self.listener.getsockname()[1])
        self.captured = bytearray()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((self.target.host, self.target.port))
            for a, b in ((conn, upstream), (upstream, conn)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            with self.lock:
                self.captured += data
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for t in self.threads:
            t.join(2)


def echo_dag(tmp_path: Path) -> Path:
    path = tmp_path / "secret.yaml"
    task = {"id": "echo", "module": str(TEST_MODULES / "echo_stdin.wasm"), "inputs": ["file:secret.txt"]}
    (tmp_path / "secret.txt").write_text(SECRET * 4)
    path.write_text(yaml.safe_dump({"name": "secret", "tasks": [task]}))
    return path


def test_the_wire_carries_no_plaintext_with_curve(
    tmp_path: Path, controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    relay = Relay(controller.address)
    try:
        hosts.start(relay.address, "relayed")
        wait_for(lambda: client.status()["totals"]["hosts"] == 1, 20, "the host to register through the relay")
        dag_id = client.submit(load_dag(echo_dag(tmp_path)))
        assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
        assert client.results(dag_id)["tasks"][0]["output"] == (SECRET * 4).encode()
        with relay.lock:
            captured = bytes(relay.captured)
        assert len(captured) > 1000, "the task's traffic went through the relay"
        assert SECRET.encode() not in captured
        assert b"echo_stdin" not in captured and b"relayed" not in captured, "no metadata in clear either"
    finally:
        relay.close()


def test_the_relay_would_see_plaintext_without_curve(tmp_path: Path, hosts: HostProcesses) -> None:
    """The control experiment: with --insecure (loopback only) the same bytes show the secret."""
    from bxthre3.controller.server import Controller
    from bxthre3.scheduler import SchedulerConfig

    ctx = zmq.Context()
    plain = Controller(host="127.0.0.1", port=0, context=ctx, config=SchedulerConfig(heartbeat_interval=0.25))
    port = plain.bind()
    stop = threading.Event()
    loop = threading.Thread(target=plain.serve, args=(stop,), daemon=True)
    loop.start()
    relay = Relay(Address("127.0.0.1", port))
    try:
        hosts.start(relay.address, "plain", extra=("--insecure",))
        with ControllerClient(Address("127.0.0.1", port), context=ctx) as c:
            wait_for(lambda: c.status()["totals"]["hosts"] == 1, 20, "the plaintext host")
            dag_id = c.submit(load_dag(echo_dag(tmp_path)))
            assert c.wait(dag_id, timeout=30)["state"] == "succeeded"
        with relay.lock:
            assert SECRET.encode() in bytes(relay.captured)
    finally:
        relay.close()
        stop.set()
        loop.join(5)
        plain.close()
        ctx.destroy(linger=0)


def test_no_token_and_a_wrong_token_cannot_register_submit_or_read(
    tmp_path: Path,
    controller: RunningController,
    client: ControllerClient,
    hosts: HostProcesses,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bxthre3.security")
    address = str(controller.address)
    plain_host = hosts.start(controller.address, "no-token", extra=("--insecure",))
    wrong = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "host", "--controller", address, "--node-id", "wrong-token",
         "--cache-dir", str(tmp_path / "c"), "--heartbeat", "0.25"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=other_token_env(),
    )  # fmt: skip
    try:
        dag = str(echo_dag(tmp_path))
        # the CLI: no token (plaintext), and a token of another cluster
        for args, env, why in (
            (("--insecure",), None, "it expects the cluster token"),
            ((), other_token_env(), "the cluster token is not this controller's"),
        ):
            for command in (("status",), ("submit", dag), ("results", "dag-x")):
                proc = bxthre3(*command, "--controller", address, "--timeout", "1", *args, env=env)
                assert proc.returncode == 3 and why in proc.stderr, (command, proc.stderr)
        # a raw ZeroMQ peer with its own CURVE keys that knows the server key (say it was leaked): ZAP refuses it
        stranger = controller.context.socket(zmq.DEALER)
        stranger.setsockopt(zmq.LINGER, 0)
        public, secret = zmq.curve_keypair()
        stranger.curve_serverkey, stranger.curve_publickey, stranger.curve_secretkey = (
            TEST_KEYS.server_public, public, secret,
        )  # fmt: skip
        stranger.setsockopt(zmq.SNDTIMEO, 1500)
        stranger.connect(controller.address.endpoint)
        try:  # once ZAP has refused the handshake there is no connection to queue on: send times out
            stranger.send(protocol.encode(protocol.StatusRequest(1)))
        except zmq.Again:
            pass
        assert not stranger.poll(1500), "the controller answered a peer without the member key"
        stranger.close()
        time.sleep(1.0)  # the hosts had several heartbeats' time to try
        status = client.status()
        assert status["totals"]["hosts"] == 0 and status["dags"] == []
        assert status["controller"]["auth_failures"] >= 3
        assert plain_host.poll() is None and wrong.poll() is None, "refused hosts keep trying; they do not crash"
        logged = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
        assert logged, "the controller logs refused connections"
        assert len(logged) <= 2, "and rate-limits the log (at most one report a minute per cause)"
    finally:
        wrong.kill()
        wrong.wait(5)


def test_a_client_with_the_right_token_through_the_cli(controller: RunningController) -> None:
    proc = bxthre3("status", "--json", "--controller", str(controller.address))
    assert proc.returncode == 0, proc.stderr
    explicit = {**subprocess_env(), "BXTHRE3_TOKEN": ""}
    proc = bxthre3("status", "--controller", str(controller.address), "--token", TEST_TOKEN, env=explicit)
    assert proc.returncode == 0, proc.stderr


def test_token_is_created_once_with_mode_0600_and_used_by_the_controller(tmp_path: Path) -> None:
    env = {k: v for k, v in subprocess_env().items() if k != "BXTHRE3_TOKEN"}
    state = tmp_path / "state"
    first = bxthre3("token", "--state-dir", str(state), env=env)
    assert first.returncode == 0, first.stderr
    token = check_token(first.stdout, "stdout")
    assert stat.S_IMODE(os.stat(state / "token").st_mode) == 0o600
    assert bxthre3("token", "--state-dir", str(state), env=env).stdout == first.stdout, "the same token every time"
    status_file = tmp_path / "status.json"
    controller = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", "0", "--state-dir",
         str(state), "--status-file", str(status_file), "--log-level", "WARNING"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        from bxthre3.common.status_file import read_status_file

        wait_for(lambda: (read_status_file(status_file) or {}).get("controller"), 20, "the controller's status")
        data = read_status_file(status_file) or {}
        assert data["controller"]["token"] == token
        assert stat.S_IMODE(os.stat(status_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700, "the journal holds every input and output"
        address = Address("127.0.0.1", int(data["controller"]["address"].rsplit(":", 1)[1]))
        with ControllerClient(address, keys=CurveKeys.from_token(token), timeout=5) as c:
            assert c.status()["totals"]["hosts"] == 0
        with ControllerClient(address, keys=CurveKeys.from_token(new_token()), timeout=1) as c:
            with pytest.raises(ClusterError, match="not this controller's"):
                c.status()
    finally:
        controller.terminate()
        controller.wait(10)
        assert controller.stderr is not None
        controller.stderr.close()


def test_plaintext_is_refused_off_loopback_and_bad_tokens_are_explained() -> None:
    proc = bxthre3("controller", "--insecure", "--host", "0.0.0.0", "--port", "0", "--state-dir", ":memory:")
    assert proc.returncode == 2 and "only on loopback" in proc.stderr
    proc = bxthre3("status", "--insecure", "--controller", "192.0.2.1:5000", "--timeout", "1")
    assert proc.returncode == 2 and "loopback only" in proc.stderr
    proc = bxthre3("status", "--insecure", "--controller", "127.attacker.example:5000", "--timeout", "1")
    assert proc.returncode == 2 and "loopback only" in proc.stderr, "a name is not loopback, whatever it starts with"
    proc = bxthre3("token", "--state-dir", ":memory:")
    assert proc.returncode == 2 and "keeps no token" in proc.stderr
    proc = bxthre3("status", "--token", "hunter2", "--controller", "127.0.0.1:9")
    assert proc.returncode == 2 and "is not a cluster token" in proc.stderr and "hunter2" in proc.stderr
    with pytest.raises(TokenError, match="bxt1-"):
        check_token("bxt1-short", "test")
    assert check_token(" " + TEST_TOKEN + "\n", "test") == TEST_TOKEN


def test_a_member_socket_without_keys_is_refused_by_a_secure_host_path() -> None:
    """secure_client must set all three keys: a DEALER configured with them completes the handshake."""
    ctx = zmq.Context()
    try:
        server = ctx.socket(zmq.ROUTER)
        server.setsockopt(zmq.LINGER, 0)
        from bxthre3.wire.security import secure_server

        secure_server(server, TEST_KEYS)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        member = ctx.socket(zmq.DEALER)
        member.setsockopt(zmq.LINGER, 0)
        secure_client(member, TEST_KEYS)
        member.connect(f"tcp://127.0.0.1:{port}")
        member.send(b"hello")
        assert server.poll(5000), "the member's frame arrived"
        assert server.recv_multipart()[1] == b"hello"
    finally:
        ctx.destroy(linger=0)


def test_a_member_flooding_submissions_is_slowed_down(controller: RunningController, client: ControllerClient) -> None:
    from bxthre3.common.limits import SUBMIT_BURST

    spec = load_dag(Path(__file__).resolve().parents[2] / "dags" / "hello_fanout.yaml")
    accepted, refused = 0, []
    for _ in range(SUBMIT_BURST + 10):
        try:
            client.submit(spec)
            accepted += 1
        except ClusterError as exc:
            refused.append(str(exc))
    assert SUBMIT_BURST <= accepted < SUBMIT_BURST + 10 and refused
    assert "too many submissions" in refused[0]
    with controller.client() as other:  # another connection has its own allowance
        other.submit(spec)
    time.sleep(0.5)
    client.submit(spec)  # the bucket refills


def test_a_forged_beacon_cannot_make_a_host_join_a_rogue_controller(tmp_path: Path) -> None:
    """A beacon carries no secret: a host follows it, but only a controller with the token's keys gets
    anything from the host. Rogues (other keys, or plaintext) receive not a single frame."""
    from bxthre3.wire.discovery import Beacon, BeaconSender
    from bxthre3.wire.security import cluster_id_for, secure_server

    ours = cluster_id_for(TEST_KEYS)
    rogue_keys = CurveKeys.from_token(new_token())

    ctx = zmq.Context()
    routers: dict[str, zmq.Socket] = {}
    senders: list[BeaconSender] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The first rogue announces its own cluster (the host ignores it); the second copies ours (the host
        # tries it, and its handshake fails); the control is a controller holding our keys.
        rogues = (("other-keys", rogue_keys, cluster_id_for(rogue_keys)), ("plaintext", None, ours))
        for name, keys, cluster in (*rogues, ("ours", TEST_KEYS, ours)):
            router = ctx.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            if keys is not None:
                secure_server(router, keys)
            port = router.bind_to_random_port("tcp://127.0.0.1")
            routers[name] = router
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", 0))
                discovery_port = probe.getsockname()[1]
            sender = BeaconSender(
                Beacon(cluster, port), destinations=lambda: ["127.255.255.255"], port=discovery_port,
                interval=0.2, source_host="127.0.0.1",
            )  # fmt: skip
            sender.start()
            senders.append(sender)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bxthre3",
                        "host",
                        "--node-id",
                        f"victim-{name}",
                        "--discovery-bind",
                        "127.255.255.255",
                        "--discovery-port",
                        str(discovery_port),
                        "--discovery-timeout",
                        "10",
                        "--cache-dir",
                        str(tmp_path / name),
                        "--log-file",
                        str(tmp_path / f"{name}.log"),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=subprocess_env(),
                )  # fmt: skip
            )
        assert routers["ours"].poll(20_000), "control: the host registers with the controller holding the keys"
        _, frame = routers["ours"].recv_multipart()
        assert isinstance(protocol.decode(frame), protocol.Register)
        for name in ("other-keys", "plaintext"):
            assert not routers[name].poll(2000), f"the {name} rogue received a frame from a host"
        assert not (tmp_path / "other-keys.log").exists(), "still listening: another cluster's beacon is ignored"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)
        for sender in senders:
            sender.stop()
        ctx.destroy(linger=0)
