"""Hosts slowed on purpose: a real `bxthre3 host` process, and its executor children, given a fraction of a CPU.

Issue 19 item 4: a pool of unequal devices made measurable on one machine. :class:`SlowHost` starts
``python -m bxthre3 host`` so that it and every process it starts run ``factor`` times slower than a
normal host with the same number of slots. Two ways, the first that works:

- **cgroup CPU bandwidth control** (``method == "cgroup-v1"`` or ``"cgroup-v2"``): a cgroup of the
  test's own (``bxthre3-slow-<pid>-<n>``) under the ``cpu`` controller (v1: ``cpu.cfs_quota_us`` over
  ``cpu.cfs_period_us``; v2: ``cpu.max``) with a quota of ``slots / factor`` CPUs. The host process
  joins it before it runs any Python (a ``/bin/sh`` wrapper writes its own PID to ``cgroup.procs`` then
  ``exec``s the host; no ``preexec_fn``, which is unsafe in a process that runs a controller thread),
  so its executor children inherit it. The kernel enforces the quota per period (10 ms here), so the
  slowdown is smooth.
- **stop/continue duty cycle** (``method == "duty-cycle"``), when no CPU controller is writable: the
  host starts in a session of its own (its executors share its process group) and a small thread sends
  the group SIGCONT for ``period / factor`` seconds then SIGSTOP for the rest of each ``period``. Coarser
  (the host also misses heartbeats while stopped, so keep ``period`` well under the liveness window).

Everything is bounded: :meth:`SlowHost.close` stops the duty thread, SIGTERMs the host, kills by PID
whatever is left in its cgroup (or process group) after a few seconds, and removes the cgroup, also
when starting failed. The first cgroup a process makes also sweeps the ``bxthre3-slow-*`` cgroups of
runs that were killed (their owner PID is gone). Needs root for the cgroup; the duty cycle works for
any user.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 10_000
"""Period of the cgroup quota: short, so a throttled host is slow evenly rather than in 100 ms bursts."""
DUTY_PERIOD_S = 0.1
"""Period of the stop/continue fallback."""
PREFIX = "bxthre3-slow-"
_counter = itertools.count()


def _cpu_controller() -> tuple[str, Path] | None:
    """("cgroup-v1", /sys/fs/cgroup/cpu) or ("cgroup-v2", the unified root) if it can be written, else None."""
    v1 = CGROUP_ROOT / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists() and os.access(v1, os.W_OK):
        return "cgroup-v1", v1
    for v2 in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        controllers = v2 / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split() and os.access(v2, os.W_OK):
            subtree = (v2 / "cgroup.subtree_control").read_text().split()
            if "cpu" not in subtree:
                try:
                    (v2 / "cgroup.subtree_control").write_text("+cpu")
                except OSError:
                    continue
            return "cgroup-v2", v2
    return None


def slowing_method() -> str:
    """The method :class:`SlowHost` would use here: "cgroup-v1", "cgroup-v2" or "duty-cycle"."""
    found = _cpu_controller()
    return found[0] if found else "duty-cycle"


class CpuCgroup:
    """A cgroup of our own with a CPU quota of `cpus` CPUs; `remove()` kills what is left in it by PID."""

    def __init__(self, cpus: float, *, version: str, root: Path) -> None:
        self.version = version
        self.path = root / f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.path.mkdir()
        try:
            quota = max(1000, int(CFS_PERIOD_US * cpus))
            if version == "cgroup-v1":
                (self.path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            else:
                (self.path / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
        except BaseException:
            self.path.rmdir()
            raise

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def throttled_s(self) -> float:
        """Seconds the kernel held the group back so far (the proof that the quota bites)."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if line.strip())
        if "throttled_time" in stat:  # v1: nanoseconds
            return int(stat["throttled_time"]) / 1e9
        return int(stat.get("throttled_usec", 0)) / 1e6

    def remove(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.path.exists():
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _wait_dead(procs: list[psutil.Process], timeout: float) -> None:
    """Until every process is gone or a zombie (an orphan's reaper is not ours to wait for), at most `timeout`."""
    deadline = time.monotonic() + timeout
    for p in procs:
        while time.monotonic() < deadline:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:
                break
            time.sleep(0.01)


class _DutyCycle(threading.Thread):
    """SIGCONT for `period / factor`, SIGSTOP for the rest, of one process group, until stopped."""

    def __init__(self, pgid: int, factor: float, period: float = DUTY_PERIOD_S) -> None:
        super().__init__(daemon=True, name=f"duty-cycle-{pgid}")
        self.pgid, self.run_s, self.stop_s = pgid, period / factor, period - period / factor
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                os.killpg(self.pgid, signal.SIGCONT)
                if self.done.wait(self.run_s):
                    break
                os.killpg(self.pgid, signal.SIGSTOP)
                self.done.wait(self.stop_s)
        except ProcessLookupError:
            pass
        finally:
            try:
                os.killpg(self.pgid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self.done.set()
        self.join(5)


class SlowHost:
    """`python -m bxthre3 host cmd...` run `factor` times slower; `close()` (or `with`) stops it and cleans up.

    `cmd` is the whole argument list after the Python executable (``["-m", "bxthre3", "host", ...]``);
    `slots` sets the quota (``slots / factor`` CPUs). `method=None` picks the cgroup when it is usable.
    """

    def __init__(
        self,
        cmd: list[str],
        *,
        factor: float,
        slots: int = 1,
        env: dict[str, str] | None = None,
        stderr: int | None = subprocess.DEVNULL,
        method: str | None = None,
    ) -> None:
        if factor < 1:
            raise ValueError("factor must be at least 1")
        found = _cpu_controller() if method in (None, "cgroup-v1", "cgroup-v2") else None
        if method in ("cgroup-v1", "cgroup-v2") and (found is None or found[0] != method):
            raise RuntimeError(f"{method} CPU control is not usable here")
        self.method = found[0] if found else "duty-cycle"
        self.cgroup: CpuCgroup | None = None
        self._duty: _DutyCycle | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            argv = [sys.executable, *cmd]
            if found is not None:
                _sweep_once()
                self.cgroup = CpuCgroup(slots / factor, version=found[0], root=found[1])
                procs = str(self.cgroup.path / "cgroup.procs")
                # The shell joins the cgroup, then becomes the host: nothing runs outside the quota.
                argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv]
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                start_new_session=True,
            )  # fmt: skip
            if self.cgroup is None:
                self._duty = _DutyCycle(self.proc.pid, factor)
                self._duty.start()
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def close(self, timeout: float = 5.0) -> None:
        if self._duty is not None:
            self._duty.close()
        proc = self.proc
        if proc is not None:
            try:  # its executors, by PID, before it can exit and orphan them
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                children = []
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            if self.cgroup is None:  # executors still alive (the cgroup case kills them below)
                for child in children:
                    try:
                        child.kill()
                    except psutil.Error:
                        pass
                _wait_dead(children, timeout)
            if proc.stderr:
                proc.stderr.close()
        if self.cgroup is not None:
            self.cgroup.remove(timeout)

    def __enter__(self) -> SlowHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_swept = False


def _sweep_once() -> None:
    global _swept
    if not _swept:
        _swept = True
        sweep_leftovers()


def sweep_leftovers() -> list[str]:
    """Remove cgroups a killed test run left behind (their processes killed by PID first)."""
    found = _cpu_controller()
    removed: list[str] = []
    if found is None:
        return removed
    for path in found[1].glob(PREFIX + "*"):
        try:
            owner = int(path.name[len(PREFIX) :].split("-")[0])
        except ValueError:
            continue
        if Path(f"/proc/{owner}").exists():
            continue  # a live run's (this one's included)
        group = CpuCgroup.__new__(CpuCgroup)
        group.path, group.version = path, found[0]
        try:
            group.remove(2.0)
            removed.append(path.name)
        except OSError:
            pass
    return removed
