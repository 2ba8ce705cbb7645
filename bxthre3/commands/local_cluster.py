"""An embedded cluster on loopback: a controller thread and N host processes.

`bxthre3 run` and the integration tests use it. Hosts are real subprocesses (the same
`bxthre3 host` a user starts by hand), so this path exercises the real thing. Every
process started here is killed by PID on exit, on Ctrl-C, and if this process dies
(PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import zmq

from ..client.connection import ControllerClient
from ..common import scratch
from ..common.errors import ClusterError
from ..common.logs import LOG_DIR_ENV
from ..common.processes import child_env, die_with_parent
from ..common.stop_event import StopEvent
from ..controller.server import Controller
from ..scheduler import SchedulerConfig
from ..wire.addresses import Address
from ..wire.security import TOKEN_ENV, CurveKeys, new_token

log = logging.getLogger("bxthre3.local_cluster")  # the name log lines show: kept from before the move to packages

HOST_START_TIMEOUT_S = 30.0
"""How long to wait for the hosts to register before giving up."""


class LocalCluster:
    """Context manager: ``with LocalCluster(hosts=2) as cluster: cluster.client.submit(...)``."""

    def __init__(
        self,
        *,
        hosts: int = 2,
        slots: int = 1,
        ram_mb: int = 128,
        log_dir: Path | None = None,
        cache_dir: Path | None = None,
        config: SchedulerConfig | None = None,
        on_stage: Callable[[str, int, int], None] | None = None,
        engine: str = "auto",
    ) -> None:
        self.n_hosts = hosts
        self.engine = engine
        self.slots = slots
        self.ram_mb = ram_mb
        self.log_dir = log_dir
        self.cache_dir = cache_dir
        self.on_stage = on_stage or (lambda stage, done, total: None)
        self.context = zmq.Context()
        self.token = new_token()
        """This run's own cluster token: even on loopback, another user of the machine cannot join."""
        self.keys = CurveKeys.from_token(self.token)
        self.controller = Controller(host="127.0.0.1", port=0, config=config, context=self.context, keys=self.keys)
        self.stop = StopEvent()
        self.thread: threading.Thread | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.client: ControllerClient | None = None
        self.address: Address | None = None
        self._stderr_dir = scratch.make_dir("hosts")
        """The hosts' stderr (and their logs without ``log_dir``): removed on close, at exit, or by a later sweep."""

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        port = self.controller.bind()
        self.address = Address("127.0.0.1", port)
        self.thread = threading.Thread(
            target=self.controller.serve, args=(self.stop,), name="bxthre3-controller", daemon=True
        )
        self.thread.start()
        for i in range(self.n_hosts):
            self.procs.append(self._spawn_host(f"local-{i + 1}"))
        self.client = ControllerClient(self.address, context=self.context, keys=self.keys)
        self._wait_for_hosts()

    def _spawn_host(self, node_id: str) -> subprocess.Popen[bytes]:
        assert self.address is not None
        cmd = [
            sys.executable, "-m", "bxthre3", "host",
            "--controller", str(self.address),
            "--node-id", node_id,
            "--ram-limit", str(self.ram_mb),
            "--slots", str(self.slots),
            "--engine", self.engine,
            "--warm-executors",  # the DAG comes as soon as the hosts are in
        ]  # fmt: skip
        if self.cache_dir is not None:
            cmd += ["--cache-dir", str(self.cache_dir)]
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--log-file", str(self.log_dir / f"host_{node_id}.log")]
        # not ./logs: `run` leaves nothing behind
        env = child_env({TOKEN_ENV: self.token})
        if self.log_dir is None:
            env[LOG_DIR_ENV] = str(self._stderr_dir)
        with open(self._stderr_dir / f"{node_id}.stderr", "wb") as stderr:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                preexec_fn=die_with_parent,
            )

    def _wait_for_hosts(self) -> None:
        assert self.client is not None
        deadline = time.monotonic() + HOST_START_TIMEOUT_S
        while True:
            joined = int(self.client.status()["totals"]["hosts"])
            self.on_stage("hosts", joined, self.n_hosts)
            if joined >= self.n_hosts:
                return
            dead = [i for i, p in enumerate(self.procs) if p.poll() is not None]
            if dead:
                i = dead[0]
                raise ClusterError(
                    f"local host local-{i + 1} exited with code {self.procs[i].returncode} before registering: "
                    + self._last_words(f"local-{i + 1}")
                )
            if time.monotonic() > deadline:
                raise ClusterError(f"only {joined} of {self.n_hosts} local hosts registered in time")
            time.sleep(0.01)  # a status request costs the controller ~0.1 ms; hosts register ~0.15 s in

    def _last_words(self, node_id: str) -> str:
        """The host's last stderr line (its one-line error), or a hint when it said nothing."""
        try:
            text = (self._stderr_dir / f"{node_id}.stderr").read_text(errors="replace")
        except OSError:
            text = ""
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            return "it printed nothing (run `bxthre3 host` by hand to see why)"
        return lines[-1].strip().removeprefix("bxthre3: error: ")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5.0)
            if not self.thread.is_alive():
                self.stop.close()
            self.thread = None
        self.controller.close()
        self.context.term()
        scratch.remove(self._stderr_dir)
