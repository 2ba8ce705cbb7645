"""A real NodeManager starting, stopping and restarting real hosts against a real controller.

The RAM reading is simulated: a mutable "free RAM without our hosts" minus what the hosts the
manager holds would use, so the manager sees its own hosts' footprint as on a real device.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bxthre3.client.connection import ControllerClient
from bxthre3.node.manager import NodeManager, ScalingPolicy
from bxthre3.scheduler import SchedulerConfig
from tests.conftest import HostProcesses, RunningController, wait_for

RAM_PER_NODE = 100
MIN_FREE = 1000


class Device:
    """Free RAM as the probe reports it: what is free without our hosts, minus our hosts' use."""

    def __init__(self) -> None:
        self.free_without_us = 0
        self.manager: NodeManager | None = None

    def probe(self) -> int:
        assert self.manager is not None
        return self.free_without_us - len(self.manager.hosts) * RAM_PER_NODE


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.controller = RunningController(SchedulerConfig(heartbeat_interval=0.25, liveness=4))
        self.client: ControllerClient = self.controller.client(timeout=5.0)
        self.device = Device()
        self.manager = NodeManager(
            self.controller.address,
            ScalingPolicy(ram_per_node=RAM_PER_NODE, min_free_ram=MIN_FREE, max_nodes=3),
            name="itest",
            probe=self.device.probe,
            interval=0.2,
            log_dir=tmp_path / "logs",
            cache_dir=tmp_path / "cache",
            host_args=["--heartbeat", "0.25"],
        )
        self.device.manager = self.manager
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.manager.run, args=(self.stop,), name="node-manager", daemon=True)
        self.families: dict[int, set[int]] = {}
        """Every host PID seen, with its executors' PIDs, to prove at the end that none is left."""

    def registered(self) -> list[str]:
        return sorted(h["node_id"] for h in self.client.status()["hosts"])

    def remember_pids(self) -> None:
        for host in self.manager.snapshot()["hosts"]:
            if host["pid"] is None:
                continue
            family = self.families.setdefault(host["pid"], {host["pid"]})
            try:
                family.update(c.pid for c in psutil.Process(host["pid"]).children(recursive=True))
            except psutil.NoSuchProcess:
                pass

    def wait_registered(self, expected: list[str], timeout: float) -> float:
        """Seconds until the controller lists exactly these hosts."""
        start = time.monotonic()
        wait_for(lambda: self.remember_pids() or self.registered() == expected, timeout, f"hosts {expected}")
        return time.monotonic() - start

    @property
    def pids(self) -> set[int]:
        return set().union(*self.families.values())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
        for pid in self.pids:  # only if the manager failed to: by PID, never by name
            try:
                proc = psutil.Process(pid)
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    os.kill(pid, signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.client.close()
        self.controller.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(60)
def test_scale_up_down_restart_and_stop(harness: Harness) -> None:
    harness.thread.start()
    time.sleep(0.5)
    assert harness.manager.snapshot()["hosts"] == [] and harness.registered() == []

    # Plenty of RAM: three hosts (the cap).
    harness.device.free_without_us = MIN_FREE + 3 * RAM_PER_NODE + 50
    up = harness.wait_registered(["itest-1", "itest-2", "itest-3"], 20)
    print(f"\nscale-up 0 -> 3 hosts: {up:.2f} s from probe change to controller")
    snap = harness.manager.snapshot()
    assert snap["formula"]["target_nodes"] == 3 and [h["state"] for h in snap["hosts"]] == ["running"] * 3

    # RAM shrinks: keep one host, stop the newest two (they say goodbye: no liveness wait).
    harness.device.free_without_us = MIN_FREE + RAM_PER_NODE + 50
    down = harness.wait_registered(["itest-1"], 10)
    print(f"scale-down 3 -> 1 hosts: {down:.2f} s from probe change to controller")
    wait_for(lambda: [h["node_id"] for h in harness.manager.snapshot()["hosts"]] == ["itest-1"], 10, "stopped reaped")
    kept = harness.manager.snapshot()["hosts"][0]["pid"]
    stopped = [pid for host, family in harness.families.items() if host != kept for pid in family]
    assert len(stopped) >= 2
    wait_for(lambda: not any(_alive(pid) for pid in stopped), 5, "stopped hosts and executors gone")

    # A host that dies is restarted under the same node id (1 s backoff).
    first = harness.manager.snapshot()["hosts"][0]
    os.kill(first["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(
        lambda: (h := harness.manager.snapshot()["hosts"][0])["restarts"] == 1 and h["state"] == "running",
        10, "restart",
    )  # fmt: skip
    again = harness.manager.snapshot()["hosts"][0]
    assert again["node_id"] == "itest-1" and again["pid"] != first["pid"]
    assert harness.manager.snapshot()["sigkill_deaths"] == 1
    # The controller has the new process (a re-registration under the same node id replaces the old one).

    def reregistered() -> bool:
        harness.remember_pids()
        hosts = harness.client.status()["hosts"]
        return [h["node_id"] for h in hosts] == ["itest-1"] and hosts[0]["uptime_s"] < time.monotonic() - killed_at

    wait_for(reregistered, 10, "re-registration")
    print(f"restart after SIGKILL: {time.monotonic() - killed_at:.2f} s to registered again")
    wait_for(lambda: _alive(again["pid"]), 2, "restarted host alive")

    # Stop: every host and executor is gone, by PID.
    harness.remember_pids()
    harness.stop.set()
    harness.thread.join(15)
    assert not harness.thread.is_alive()
    assert harness.manager.snapshot()["hosts"] == []
    wait_for(lambda: not any(_alive(pid) for pid in harness.pids), 5, "no process left")
    assert len(harness.pids) >= 4  # hosts and at least one executor seen


def test_hosts_report_their_device_and_status_groups_them(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    # Devices are told apart by their id (every process of the test run shares one state dir, so one
    # kept id: each "device" names its own); the name is for people.
    phone, laptop = "a1" * 16, "b2" * 16
    hosts.start(controller.address, "phone-1", extra=("--device", "phone", "--device-id", phone))
    hosts.start(controller.address, "phone-2", extra=("--device", "phone", "--device-id", phone))
    hosts.start(controller.address, "laptop-1", extra=("--device", "laptop", "--device-id", laptop))
    wait_for(lambda: client.status()["totals"]["hosts"] == 3, 20, "three hosts")
    status = client.status()
    assert status["totals"]["devices"] == 2
    assert status["devices"][phone]["hosts"] == 2 and status["devices"][laptop]["hosts"] == 1
    assert (status["devices"][phone]["name"], status["devices"][laptop]["name"]) == ("phone", "laptop")
    assert {h["node_id"]: h["device"] for h in status["hosts"]}["phone-2"] == "phone"
    assert {h["node_id"]: h["device_id"] for h in status["hosts"]}["laptop-1"] == laptop
    phone = status["devices"][phone]
    assert sorted(phone["node_ids"]) == ["phone-1", "phone-2"]
    assert phone["cpus"] >= 1 and phone["ram_total_mb"] > 100 and phone["platform"]
