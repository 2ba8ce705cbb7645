"""Run as many hosts on this device as its free RAM allows, and keep them running.

The node manager is a supervisor (the model is dask's ``nanny.py``): every ``interval`` it
reads the available RAM and decides how many ``bxthre3 host`` processes this device should
run, starts or stops hosts to match, and restarts hosts that died.

The decisions are pure and live in :mod:`bxthre3.node.scaling` (the formula, its dead band one host
wide, the restart backoff, kill bursts); this module is the I/O around them.

Stopping takes the newest host first (SIGTERM: the host says goodbye and the controller
requeues its running tasks at once; SIGKILL after :data:`STOP_GRACE_S`). A host that exits on
its own is restarted under the same node id with exponential backoff (1 s doubling to 60 s,
reset once it has stayed up 60 s). One that fails at start (within :data:`FAILED_AT_START_S`) the same way
:data:`GIVE_UP_AFTER` times in a row (same exit code, same last line of stderr) is given up with one line
saying why: a wrong flag or a missing engine would otherwise be restarted forever.

**Process budget.** Each logical host is one host process plus one executor child per slot
(the manager starts hosts with one slot unless ``host_args`` says otherwise), so N hosts
cost 2N + 1 processes with the manager. Android's phantom process killer allows 32 phantom
processes across *all* apps and SIGKILLs the excess, hence the Android default cap of 4 hosts
(9 processes). When hosts die by SIGKILL in a burst on Android, the manager logs
:data:`PHANTOM_KILLER_HELP`.

Hosts get ``PR_SET_PDEATHSIG`` (SIGKILL): note that Linux fires it when the *thread* that
started the child exits, so :meth:`NodeManager.run` must stay on one thread for its lifetime
(it does: every spawn happens in ``run``'s thread).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ..common.logs import default_log_dir, rotate_if_large
from ..common.processes import child_env, die_with_parent
from ..wire.addresses import Address
from ..wire.security import TOKEN_ENV
from . import scaling
from .device_identity import new_device_id, node_manager_hint, node_prefix
from .phone_manners import PhoneManners
from .ram_probe import available_ram_mb, cpu_count, is_android
from .scaling import RESTART_BACKOFF_MIN_S, KillBurst, effective_ram, max_nodes_for, next_backoff, plan, target_nodes

log = logging.getLogger("bxthre3.node_manager")  # the name log lines show: kept from before the move to packages

STOP_GRACE_S = 5.0
"""Seconds a host has to say goodbye after SIGTERM before it is SIGKILLed."""

RESTART_BACKOFF_RESET_S = 60.0
"""A host that has stayed up this long gets its restart delay reset to the minimum."""

FAILED_AT_START_S = 30.0
"""A host that exits within this many seconds of its start failed "at start" (bad flags, bad engine, refused)."""

GIVE_UP_AFTER = 5
"""Failures at start, the same way each time (exit code and last line of stderr), before a host is given up:
restarting it again cannot help until someone changes what it is started with."""

PHANTOM_KILLER_HELP = """\
Hosts are being killed by SIGKILL: on Android this is the phantom process killer, which kills
child processes of apps (Termux included) beyond 32 in total. To lift it:
  Android 12 / 12L (from a computer with adb, once per boot on some builds):
    adb shell "/system/bin/device_config set_sync_disabled_for_tests persistent; \
/system/bin/device_config put activity_manager max_phantom_processes 2147483647"
  Android 12L / 13 (also):
    adb shell settings put global settings_enable_monitor_phantom_procs false
  Android 14 and later:
    Settings > Developer options > "Disable child process restrictions"
Until then, run fewer hosts (--max-nodes 2) or keep Termux in the foreground."""
"""Logged (once per burst) when hosts die by SIGKILL in a burst on Android."""


# ---------------------------------------------------------------------- this device's policy


def default_max_nodes() -> int:
    """One host per CPU of this device; on Android at most :data:`scaling.ANDROID_MAX_NODES`."""
    return max_nodes_for(cpu_count(), is_android())


@dataclass(frozen=True, slots=True)
class ScalingPolicy(scaling.ScalingPolicy):
    """:class:`scaling.ScalingPolicy` with ``max_nodes`` defaulting to this device's CPUs (reading them is I/O,
    so the default lives here); the same class name, so the line `node-manager` prints is unchanged."""

    max_nodes: int = field(default_factory=default_max_nodes)
    """Never more hosts than this."""


# ---------------------------------------------------------------------- I/O shell


class HostState(str, Enum):
    RUNNING = "running"
    """Process started and alive (it may still be registering)."""
    BACKOFF = "backoff"
    """Exited on its own; waiting out the restart delay."""
    STOPPING = "stopping"
    """SIGTERM sent; SIGKILL at ``kill_at``."""
    GAVE_UP = "gave_up"
    """Failed the same way at start :data:`GIVE_UP_AFTER` times: not restarted (it keeps its place, so no
    replacement is started to fail the same way); `why` says what failed."""


@dataclass(slots=True)
class _ManagedHost:
    node_id: str
    index: int
    state: HostState = HostState.BACKOFF
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = RESTART_BACKOFF_MIN_S
    restart_at: float = 0.0
    kill_at: float = 0.0
    last_exit: int | None = None
    failure: tuple[int, str] | None = None
    """How the last start failed: exit code and the last line of its stderr (None once it ran a while)."""
    same_failures: int = 0
    """Consecutive failures at start that looked like ``failure``."""
    why: str = ""
    """Once given up: the failure, for the snapshot."""
    stderr_from: int = 0
    """Size of its stderr file when this run started: what it said before belongs to an earlier run."""


def last_line(path: Path, limit: int = 8192) -> str:
    """The last non-empty line of a (host's stderr) file, or "" (what a failed start said last)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class NodeManager:
    """Supervise this device's hosts: ``NodeManager(addr, ScalingPolicy()).run(stop_event)``."""

    def __init__(
        self,
        controller: Address,
        policy: scaling.ScalingPolicy,
        *,
        name: str | None = None,
        probe: Callable[[], int] = available_ram_mb,
        interval: float = 5.0,
        log_dir: Path | None = None,
        cache_dir: Path | None = None,
        host_args: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
        insecure: bool = False,
        manners: PhoneManners | None = None,
        give_up_after: int = GIVE_UP_AFTER,
        device_id: str | None = None,
    ) -> None:
        self.controller = controller
        self.policy = policy
        self.device_id = device_id or new_device_id()
        """Tells this device from others of the same name; its hosts report it (the controller counts devices by it)."""
        self.name = name or socket.gethostname()
        """The device's name for people (status, the TUI): the hostname unless --device-name says otherwise."""
        self.prefix = name or node_prefix(self.device_id)
        """Node ids are <prefix>-1, -2...: a chosen --device-name as is, else <hostname>-<6 of the device id>."""
        self.duplicate_hint = node_manager_hint(name, self.device_id)
        """What the hosts say fixes a taken node id: the flag of *this* command."""
        self.probe = probe
        self.interval = interval
        self.log_dir = log_dir if log_dir is not None else default_log_dir()
        self.cache_dir = cache_dir
        self.manners = manners
        """On a phone: pauses the hosts (through their pause file) when the battery is low or it is hot."""
        self.host_args = list(host_args or []) + (["--insecure"] if insecure else [])
        if manners is not None:
            self.host_args += ["--pause-file", str(manners.pause_file)]
        self.clock = clock
        self._env = {TOKEN_ENV: token} if token else None
        """What the hosts' environment adds: the cluster token (never in argv, which any user can read)."""
        self.hosts: list[_ManagedHost] = []
        """Oldest first; a restarted host keeps its place (it is the same logical node)."""
        self.kills = KillBurst()
        self.sigkill_deaths = 0
        self.last_reading: int | None = None
        self.last_target: int | None = None
        self.probe_error: str | None = None
        self.give_up_after = give_up_after
        self._lock = threading.Lock()

    # -- lifecycle

    def run(self, stop: threading.Event) -> None:
        """Re-evaluate every ``interval`` until ``stop`` is set; every host is stopped on the way out."""
        log.info(
            "node manager %s (device id %s, hosts %s-N): %d MB per host, %d MB kept free, at most %d hosts, "
            "controller %s",
            self.name, self.device_id, self.prefix, self.policy.ram_per_node, self.policy.min_free_ram,
            self.policy.max_nodes, self.controller,
        )  # fmt: skip
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.interval)
        finally:
            self.stop_all()

    def tick(self) -> None:
        """One evaluation: phone manners, reap exits, restart the due, read RAM, start or stop hosts."""
        if self.manners is not None:
            self.manners.check()  # may take up to its timeout: outside the lock
        now = self.clock()
        with self._lock:
            self._reap(now)
            self._restart_due(now)
            self._rotate_stderr()
        try:
            reading = int(self.probe())
        except Exception as exc:  # no reading, no change: better than stopping everything
            if self.probe_error is None:
                log.warning("cannot read available RAM, keeping %d hosts: %s", len(self.hosts), exc)
            self.probe_error = str(exc)
            return
        self.probe_error = None
        with self._lock:
            held = len(self.hosts)  # every host we run or will restart, stopping ones included
            target = target_nodes(reading, held, self.policy)
            if target == 0 and self.last_target != 0:
                log.warning("%s", self._why_no_hosts(reading, held))
            self.last_reading, self.last_target = reading, target
            active = [h for h in self.hosts if h.state is not HostState.STOPPING]
            to_start, to_stop = plan([h.node_id for h in active], target, self._id_maker())
            if to_start or to_stop:
                log.info(
                    "%d MB available with %d hosts held: target %d hosts (start %s, stop %s)",
                    reading, held, target, to_start or "-", to_stop or "-",
                )  # fmt: skip
            by_id = {h.node_id: h for h in active}
            for node_id in to_stop:
                self._stop(by_id[node_id], now)
            for node_id in to_start:
                index = int(node_id.rsplit("-", 1)[1])
                host = _ManagedHost(node_id, index)
                self.hosts.append(host)
                self._spawn(host, now)

    def _why_no_hosts(self, reading: int, held: int) -> str:
        """One line for a target of 0 hosts: a node manager that runs nothing must say so, and what to change."""
        p = self.policy
        if p.max_nodes == 0:
            return "running no hosts: --max-nodes is 0"
        spare = effective_ram(reading, held, p) - p.min_free_ram
        return (
            f"running no hosts: {reading} MB available, {p.min_free_ram} MB kept free (--min-free-ram) leaves "
            f"{max(0, spare)} MB, less than one host's {p.ram_per_node} MB (--ram-per-node); lower either to run one"
        )

    def stop_all(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM every host, SIGKILL those still alive after ``grace`` seconds, reap them all."""
        with self._lock:
            procs = [h.proc for h in self.hosts if h.proc is not None and h.proc.poll() is None]
            for proc in procs:
                self._signal(proc, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in procs:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("host pid %d ignored SIGTERM for %.0f s: SIGKILL", proc.pid, grace)
                    self._signal(proc, signal.SIGKILL)
                    proc.wait()
            self.hosts.clear()

    # -- snapshot for the UI

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            held = len(self.hosts)
            return {
                "name": self.name,
                "device_id": self.device_id,
                "platform": "android" if is_android() else sys.platform,
                "controller": str(self.controller),
                "ram_available_mb": self.last_reading,
                "probe_error": self.probe_error,
                "cpus": cpu_count(),
                "policy": {
                    "ram_per_node": self.policy.ram_per_node,
                    "min_free_ram": self.policy.min_free_ram,
                    "max_nodes": self.policy.max_nodes,
                },
                "formula": {
                    "available_ram_mb": self.last_reading,
                    "held_nodes": held,
                    "effective_ram_mb": (
                        None if self.last_reading is None else effective_ram(self.last_reading, held, self.policy)
                    ),
                    "target_nodes": self.last_target,
                },
                "processes_estimate": sum(1 for h in self.hosts if h.proc is not None) * 2 + 1,  # 1 slot per host
                "sigkill_deaths": self.sigkill_deaths,
                "manners": self.manners.snapshot() if self.manners is not None else None,
                "hosts": [
                    {
                        "node_id": h.node_id,
                        "pid": h.proc.pid if h.proc is not None else None,
                        "state": h.state.value,
                        "restarts": h.restarts,
                        "uptime_s": round(now - h.started_at, 3) if h.state is HostState.RUNNING else None,
                        "restart_in_s": (
                            round(max(0.0, h.restart_at - now), 3) if h.state is HostState.BACKOFF else None
                        ),
                        "last_exit": h.last_exit,
                        "why": h.why or None,
                    }
                    for h in self.hosts
                ],
            }

    # -- internals (called with the lock held)

    def _id_maker(self) -> Callable[[], str]:
        """Lowest free index first, so a device's hosts keep short, stable names (<prefix>-1, -2 ...)."""
        used = {h.index for h in self.hosts}

        def make_id() -> str:
            index = 1
            while index in used:
                index += 1
            used.add(index)
            return f"{self.prefix}-{index}"

        return make_id

    def _reap(self, now: float) -> None:
        for host in list(self.hosts):
            proc = host.proc
            if proc is None:
                continue
            code = proc.poll()
            if host.state is HostState.STOPPING:
                if code is not None:
                    log.info("host %s (pid %d) stopped with code %d", host.node_id, proc.pid, code)
                    self.hosts.remove(host)
                elif now >= host.kill_at:
                    log.warning("host %s (pid %d) still alive %.0f s after SIGTERM: SIGKILL",
                                host.node_id, proc.pid, STOP_GRACE_S)  # fmt: skip
                    self._signal(proc, signal.SIGKILL)
                    host.kill_at = math.inf  # reaped on a later tick
                continue
            if code is None:
                if now - host.started_at >= RESTART_BACKOFF_RESET_S:
                    host.backoff = RESTART_BACKOFF_MIN_S
                continue
            self._exited(host, code, now)

    def _exited(self, host: _ManagedHost, code: int, now: float) -> None:
        host.proc = None
        host.last_exit = code
        if self._gives_up(host, code, now):
            return
        host.state = HostState.BACKOFF
        host.restart_at = now + host.backoff
        last = _last_error_line(self._stderr_path(host), host.stderr_from)
        log.warning("host %s exited unexpectedly (%s%s): restart in %.0f s, see %s", host.node_id, _describe_exit(code),
                    f": {last}" if last else "", host.backoff, self._stderr_path(host))  # fmt: skip
        host.backoff = next_backoff(host.backoff)
        if code == -signal.SIGKILL:
            self.sigkill_deaths += 1
            if self.kills.record(now) and is_android():
                log.warning("%s", PHANTOM_KILLER_HELP)

    def _gives_up(self, host: _ManagedHost, code: int, now: float) -> bool:
        """Count a failure at start; after :attr:`give_up_after` alike in a row, stop restarting the host."""
        if now - host.started_at > FAILED_AT_START_S or code == -signal.SIGKILL:
            host.failure, host.same_failures = None, 0  # it ran a while, or was killed: not a start problem
            return False
        failure = (code, last_line(self._stderr_path(host)))
        host.same_failures = host.same_failures + 1 if failure == host.failure else 1
        host.failure = failure
        if host.same_failures < self.give_up_after:
            return False
        said = f": {failure[1]}" if failure[1] else ""
        host.why = f"{_describe_exit(code)}{said}"
        host.state = HostState.GAVE_UP
        log.error(
            "host %s failed %d times in a row at start, the same way (%s); not restarting it: fix the cause "
            "(see %s) and restart the node manager",
            host.node_id, host.same_failures, host.why, self._stderr_path(host),
        )  # fmt: skip
        return True

    def _restart_due(self, now: float) -> None:
        for host in self.hosts:
            if host.state is HostState.BACKOFF and host.proc is None and now >= host.restart_at:
                host.restarts += 1
                self._spawn(host, now)

    def _stop(self, host: _ManagedHost, now: float) -> None:
        if host.proc is None or host.proc.poll() is not None:  # also a host given up
            self.hosts.remove(host)  # waiting for a restart, or just exited: nothing to stop
            return
        log.info("stopping host %s (pid %d)", host.node_id, host.proc.pid)
        host.state = HostState.STOPPING
        host.kill_at = now + STOP_GRACE_S
        self._signal(host.proc, signal.SIGTERM)

    def _rotate_stderr(self) -> None:
        """Keep each running host's captured stdout/stderr as bounded as its log (it repeats the log's lines)."""
        for host in self.hosts:
            if host.proc is not None:
                rotate_if_large(self._stderr_path(host))

    def _stderr_path(self, host: _ManagedHost) -> Path:
        return self.log_dir / f"host_{host.node_id}.stderr"

    def _command(self, host: _ManagedHost) -> list[str]:
        cmd = [
            sys.executable, "-m", "bxthre3", "host",
            "--controller", str(self.controller),
            "--node-id", host.node_id,
            "--ram-limit", str(self.policy.ram_per_node),
            "--device", self.name,
            "--device-id", self.device_id,
            "--duplicate-hint", self.duplicate_hint,
            "--log-file", str(self.log_dir / f"host_{host.node_id}.log"),
        ]  # fmt: skip
        if self.cache_dir is not None:
            cmd += ["--cache-dir", str(self.cache_dir)]
        return cmd + self.host_args

    def _spawn(self, host: _ManagedHost, now: float) -> None:
        env = child_env(self._env)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stderr_path = self._stderr_path(host)
            rotate_if_large(stderr_path)
            # The host logs to its own rotated --log-file; stdout/stderr (the same lines, plus
            # anything printed before logging starts or by a crash) go beside it.
            with open(stderr_path, "ab") as out:
                host.stderr_from = os.fstat(out.fileno()).st_size
                host.proc = subprocess.Popen(
                    self._command(host),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    env=env,
                    start_new_session=True,  # Ctrl-C reaches the manager only; it stops the hosts
                    preexec_fn=die_with_parent,  # a no-op where prctl does not exist
                )
        except OSError as exc:  # EAGAIN on a process-limited phone, a full disk...
            log.warning("cannot start host %s: %s", host.node_id, exc)
            host.proc = None
            host.state = HostState.BACKOFF
            host.restart_at = now + host.backoff
            host.backoff = next_backoff(host.backoff)
            return
        host.state = HostState.RUNNING
        host.started_at = now
        log.info("started host %s (pid %d)", host.node_id, host.proc.pid)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            proc.send_signal(sig)  # by PID; a no-op once the process has been reaped
        except ProcessLookupError:
            pass


def _last_error_line(path: Path, start: int = 0, tail: int = 4096) -> str:
    """The last ``bxthre3: error:`` line a host wrote after ``start`` (its run's first byte) before
    exiting (e.g. its node id is taken), or "".

    Said in the node manager's own log, because that is where a user of `node-manager` looks."""
    try:
        with open(path, "rb") as f:
            f.seek(max(start, f.seek(0, os.SEEK_END) - tail))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    errors = [line for line in text.splitlines() if line.startswith("bxthre3: error:")]
    return errors[-1][len("bxthre3: error:") :].strip()[:500] if errors else ""


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
