"""Helpers of the chaos tests and the fault-tolerance benchmark.

A `ChaosCluster` runs the controller and every host as real subprocesses
(`python -m bxthre3 ...`) bound to 127.0.0.1, so tests can SIGKILL, SIGSTOP and restart any
of them. Every process ever started, and every descendant (executor children), is killed by
PID in `close()`; every wait here is bounded.

DAG builders return the YAML path and the outputs Python expects of each task, so a test can
check every byte a task printed.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

from bxthre3.client.connection import ControllerClient
from bxthre3.common.errors import ClusterError
from bxthre3.wire.addresses import Address
from tests.conftest import TEST_KEYS, subprocess_env

REPO = Path(__file__).resolve().parents[1]
WASM_MODULES = REPO / "wasm_modules"
TEST_MODULES = REPO / "tests" / "data" / "modules"

T = TypeVar("T")


# ---------------------------------------------------------------------- waiting


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll until `predicate()` is truthy and return it; AssertionError after `timeout` s.

    A ClusterError (controller not answering, e.g. while it restarts) counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ClusterError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)


def retry(call: Callable[[], T], timeout: float, what: str) -> T:
    """`call()` retried on ClusterError for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClusterError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: controller still not answering after {timeout:g}s: {exc}") from exc
            time.sleep(0.05)


# ---------------------------------------------------------------------- processes


def descendants(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cpu_seconds(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class ChaosCluster:
    """A controller and hosts as subprocesses on 127.0.0.1; kill, stop and restart any of them."""

    def __init__(
        self,
        workdir: Path,
        *,
        heartbeat: float = 0.25,
        liveness: int = 4,
        state_dir: str | Path | None = "default",
        log_level: str = "INFO",
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.heartbeat = heartbeat
        self.liveness = liveness
        self.log_level = log_level
        if state_dir == "default":
            state_dir = self.workdir / "state"
        self.state_dir = state_dir
        self.port = free_port()
        self.address = Address("127.0.0.1", self.port)
        self.controller: subprocess.Popen[bytes] | None = None
        self.controller_starts = 0
        self.hosts: dict[str, subprocess.Popen[bytes]] = {}
        self.host_starts: dict[str, int] = {}
        self._all: list[subprocess.Popen[bytes]] = []
        self._clients: list[ControllerClient] = []

    # -- processes

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{log_name}.stderr", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bxthre3", *args],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=subprocess_env(),
            )  # fmt: skip
        self._all.append(proc)
        return proc

    def start_controller(self, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        assert self.controller is None or self.controller.poll() is not None, "controller already running"
        self.controller_starts += 1
        args = [
            "controller", "--host", "127.0.0.1", "--port", str(self.port),
            "--heartbeat", str(self.heartbeat), "--liveness", str(self.liveness),
            "--log-level", self.log_level, "--log-file", str(self.workdir / "controller.log"),
        ]  # fmt: skip
        if self.state_dir is not None:
            args += ["--state-dir", str(self.state_dir)]
        self.controller = self._spawn([*args, *extra], "controller")
        return self.controller

    def wait_controller(self, timeout: float = 20.0) -> None:
        """Until the controller answers `status` (fails fast if its process exited)."""

        def answers() -> bool:
            assert self.controller is not None
            if self.controller.poll() is not None:
                raise AssertionError(
                    f"controller exited with {self.controller.returncode}: {self.controller_stderr()[-2000:]}"
                )
            with self.client(timeout=0.5) as c:
                c.status()
            return True

        wait_until(answers, timeout, "the controller to answer")

    def controller_stderr(self) -> str:
        path = self.workdir / "controller.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_controller(self, sig: int = signal.SIGKILL) -> None:
        assert self.controller is not None
        kill_pid(self.controller.pid, sig)
        self.controller.wait(10)

    def start_host(self, node_id: str, *, slots: int = 1) -> subprocess.Popen[bytes]:
        old = self.hosts.get(node_id)
        assert old is None or old.poll() is not None, f"host {node_id} still running"
        self.host_starts[node_id] = self.host_starts.get(node_id, 0) + 1
        args = [
            "host", "--controller", str(self.address), "--node-id", node_id, "--slots", str(slots),
            "--heartbeat", str(self.heartbeat), "--cache-dir", str(self.workdir / f"cache-{node_id}"),
            "--log-level", self.log_level, "--log-file", str(self.workdir / f"host-{node_id}.log"),
            "--engine", "wasm3",  # kills are timed by Wasm3's speed (tile_cpu_seconds), whatever BXTHRE3_ENGINE is
        ]  # fmt: skip
        proc = self._spawn(args, f"host-{node_id}")
        self.hosts[node_id] = proc
        return proc

    def kill_host(self, node_id: str) -> None:
        """SIGKILL the host and (like a dying device) its executor children, then reap it."""
        proc = self.hosts[node_id]
        children = descendants(proc.pid)
        kill_pid(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pid in children:  # PDEATHSIG should have done it; make sure
            kill_pid(pid, signal.SIGKILL)

    def client(self, timeout: float = 5.0) -> ControllerClient:
        c = ControllerClient(self.address, timeout=timeout, keys=TEST_KEYS)
        self._clients.append(c)
        return c

    def registered(self, c: ControllerClient) -> dict[str, dict[str, Any]]:
        return {h["node_id"]: h for h in c.status()["hosts"]}

    def wait_hosts(self, c: ControllerClient, node_ids: Iterable[str], timeout: float = 20.0) -> None:
        wanted = set(node_ids)
        wait_until(lambda: wanted <= set(self.registered(c)), timeout, f"hosts {sorted(wanted)} to register")

    def close(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - teardown goes on
                pass
        pids: list[int] = []
        for proc in self._all:
            if proc.poll() is None:
                pids.extend(descendants(proc.pid))
                pids.append(proc.pid)
        for pid in pids:
            kill_pid(pid, signal.SIGCONT)  # a stopped process still dies of SIGKILL, but be explicit
            kill_pid(pid, signal.SIGKILL)
        for proc in self._all:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> ChaosCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- DAGs and expected outputs


def inc_output(value: int) -> bytes:
    return f"{value}\n".encode()


def _in_mandelbrot_interior(cr: float, ci: float) -> bool:
    """True when c is well inside the main cardioid or the period-2 bulb (so the orbit stays bounded)."""
    x = cr - 0.25
    q = x * x + ci * ci
    if q * (q + x) < 0.2 * ci * ci and q < 0.3:  # cardioid test q(q+x) < y^2/4, with margin
        return True
    return (cr + 1.0) ** 2 + ci * ci < 0.04  # bulb radius 1/4, with margin


def interior_pixels(side: int) -> list[tuple[int, int]]:
    """Pixels of a side x side mandel_tile image that are 0 whatever max_iter is."""
    s = 3.0 / side
    found = []
    for y in range(side):
        ci = 1.5 - (y + 0.5) * s
        for x in range(side):
            cr = -2.25 + (x + 0.5) * s
            if _in_mandelbrot_interior(cr, ci):
                found.append((x, y))
    return found


def tile_task(task_id: str, side: int, x: int, y: int, w: int, h: int, max_iter: int) -> dict[str, Any]:
    """A mandel_tile task whose pixels must all be interior (checked); its cost is w*h*max_iter iterations."""
    inside = set(interior_pixels(side))
    assert all((px, py) in inside for px in range(x, x + w) for py in range(y, y + h)), "tile leaves the interior"
    args = [side, side, x, y, w, h, max_iter]
    return {"id": task_id, "module": str(WASM_MODULES / "mandel_tile.wasm"), "inputs": [str(a) for a in args]}


def tile_output(task: dict[str, Any]) -> bytes:
    """What mandel_tile prints for an interior tile: the 32-byte header, then w*h zero pixels."""
    width, height, x0, y0, w, h, max_iter = (int(a) for a in task["inputs"])
    return b"MTL1" + struct.pack("<7I", width, height, x0, y0, w, h, max_iter) + bytes(w * h)


def tile_cpu_seconds(task: dict[str, Any], sample_iterations: int = 2_000_000) -> float:
    """Estimated CPU seconds of an interior tile task in Wasm3, from a small in-process run."""
    from bxthre3.wasm.wasm3 import run_module

    width, height, x0, y0, w, h, max_iter = (int(a) for a in task["inputs"])
    module = (WASM_MODULES / "mandel_tile.wasm").read_bytes()
    args = [str(a) for a in (width, height, x0, y0, 1, 1, sample_iterations)]
    run_module(module, args=args, stdin=b"", env={})  # warm-up
    start = time.thread_time()
    run_module(module, args=args, stdin=b"", env={})
    return (time.thread_time() - start) * w * h * max_iter / sample_iterations


def write_dag(path: Path, name: str, tasks: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"name": name, "tasks": tasks}, sort_keys=False))
    return path


def chains_with_tiles(
    chains: int, steps: int, tile_every: int, max_iter: int, side: int = 64
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """`chains` chains of `steps` inc tasks; after every `tile_every` steps a slow mandel tile sits in the chain.

    Chain k's step i prints 1000*k + i + 1 (inc of the previous step's output; step 0 gets the
    literal 1000*k). Tile (k, j) depends on step tile_every*(j+1)-1 and the next step depends on
    the tile too, so tiles are spread over the whole run and a lost tile delays its chain.
    """
    inc = str(WASM_MODULES / "inc.wasm")
    pixels = interior_pixels(side)
    tasks: list[dict[str, Any]] = []
    expected: dict[str, bytes] = {}
    n_tile = 0
    for k in range(chains):
        prev_tile = None
        for i in range(steps):
            tid = f"k{k}_s{i}"
            if i == 0:
                task: dict[str, Any] = {"id": tid, "module": inc, "inputs": [str(1000 * k)]}
            else:
                deps = [f"k{k}_s{i - 1}"] + ([prev_tile] if prev_tile else [])
                task = {"id": tid, "module": inc, "inputs": [f"output_of_k{k}_s{i - 1}"], "depends_on": deps}
            task["retries"] = 0  # host losses do not use retries; a real failure should show
            tasks.append(task)
            expected[tid] = inc_output(1000 * k + i + 1)
            prev_tile = None
            if (i + 1) % tile_every == 0:
                x, y = pixels[n_tile % len(pixels)]
                tile = tile_task(f"k{k}_tile{(i + 1) // tile_every}", side, x, y, 1, 1, max_iter + n_tile)
                tile["depends_on"] = [tid]
                tile["retries"] = 0
                tasks.append(tile)
                expected[tile["id"]] = tile_output(tile)
                prev_tile = tile["id"]
                n_tile += 1
    return tasks, expected


# ---------------------------------------------------------------------- result checks


def by_id(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task_id"]: t for t in results["tasks"]}


def has_recorded_field(results: dict[str, Any]) -> bool:
    return any("recorded" in t for t in results["tasks"])


def check_all_succeeded_once(results: dict[str, Any], expected: dict[str, bytes], context: str = "") -> None:
    """Every task succeeded exactly once with exactly the expected output."""
    ids = [t["task_id"] for t in results["tasks"]]
    assert len(ids) == len(set(ids)), f"{context}duplicate task ids in results"
    assert set(ids) == set(expected), f"{context}tasks differ: {sorted(set(ids) ^ set(expected))[:10]}"
    assert results["state"] == "succeeded", f"{context}DAG ended {results['state']}"
    check_tasks_succeeded_once(results, expected, context)


def check_tasks_succeeded_once(results: dict[str, Any], expected: dict[str, bytes], context: str = "") -> None:
    tasks = by_id(results)
    recorded = has_recorded_field(results)
    bad = []
    for tid, want in expected.items():
        t = tasks[tid]
        # A success has no failure reason and no error: an attempt stopped because another one ran the task
        # (moved off a busy host, a backup that lost its race, cancelled) has no reason either, but says why.
        successes = [a for a in t["history"] if a["reason"] is None and not a["error"]]
        problems = []
        if t["state"] != "succeeded":
            problems.append(f"state {t['state']} ({t['reason']}: {t['error']})")
        if bytes(t["output"]) != want:
            problems.append(f"output {bytes(t['output'])[:40]!r} != {want[:40]!r}")
        # A task served from the result cache (an identical task ran before, maybe before a restart) ran no
        # successful attempt of its own; any other success ran exactly one.
        if len(successes) != (0 if t.get("cached") else 1):
            cached = " (served from the cache)" if t.get("cached") else ""
            problems.append(f"{len(successes)} successful attempts{cached} in history {t['history']}")
        if len(t["history"]) != t["attempts"]:
            problems.append(f"attempts {t['attempts']} but {len(t['history'])} history entries")
        if recorded and t.get("recorded") != 1:
            problems.append(f"recorded {t.get('recorded')} times")
        if successes and successes[0]["node_id"] != t["node_id"]:
            problems.append(f"node {t['node_id']} but the success ran on {successes[0]['node_id']}")
        if problems:
            bad.append(f"{tid}: {'; '.join(problems)}")
    assert not bad, f"{context}{len(bad)} task(s) wrong:\n" + "\n".join(bad[:20])
