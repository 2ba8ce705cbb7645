"""The node manager's pure parts (`node.scaling`: formula, plans, backoff, kill bursts), the RAM probe and its
bookkeeping."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import pytest

from bxthre3.common.errors import Bxthre3Error
from bxthre3.node import manager as node_manager
from bxthre3.node import ram_probe
from bxthre3.node.manager import PHANTOM_KILLER_HELP, NodeManager, _ManagedHost
from bxthre3.node.scaling import KillBurst, ScalingPolicy, max_nodes_for, next_backoff, plan, target_nodes
from bxthre3.wire.addresses import Address

# ---------------------------------------------------------------------- RAM probe

MEMINFO_NEW = "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    2048000 kB\n"
MEMINFO_OLD = "MemTotal: 8000000 kB\nMemFree: 102400 kB\nBuffers: 51200 kB\nCached: 204800 kB\n"


def _no_psutil() -> int:
    raise ImportError("No module named 'psutil'")


def _no_sysconf(name: str) -> int:
    raise ValueError(f"unrecognized configuration name {name!r}")


def test_probe_prefers_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ram_probe, "_from_psutil", lambda: 3000 * ram_probe.MiB)
    assert ram_probe.available_ram_mb() == 3000


def test_probe_real_device_gives_a_plausible_number() -> None:
    assert 0 < ram_probe.available_ram_mb() < 16 * 1024 * 1024


@pytest.mark.parametrize(("text", "expected"), [(MEMINFO_NEW, 2000), (MEMINFO_OLD, 350)])
def test_probe_falls_back_to_meminfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: int) -> None:
    monkeypatch.setattr(ram_probe, "_from_psutil", _no_psutil)
    monkeypatch.setattr(ram_probe.os, "sysconf", _no_sysconf)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(text)
    assert ram_probe.available_ram_mb(meminfo) == expected


def test_probe_falls_back_to_sysconf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ram_probe, "_from_psutil", _no_psutil)
    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096 * 256}  # 1000 MiB
    monkeypatch.setattr(ram_probe.os, "sysconf", lambda name: pages[name])
    assert ram_probe.available_ram_mb(tmp_path / "hidden-by-selinux") == 1000


def test_probe_meminfo_without_fields_falls_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ram_probe, "_from_psutil", _no_psutil)
    monkeypatch.setattr(ram_probe.os, "sysconf", lambda name: {"SC_AVPHYS_PAGES": 256, "SC_PAGE_SIZE": 4096}[name])
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("garbage\nMemTotal: x kB\n")
    assert ram_probe.available_ram_mb(meminfo) == 1


def test_probe_raises_when_every_source_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ram_probe, "_from_psutil", _no_psutil)
    monkeypatch.setattr(ram_probe.os, "sysconf", _no_sysconf)
    with pytest.raises(ram_probe.RamProbeError, match="psutil.*missing.*sysconf"):
        ram_probe.available_ram_mb(tmp_path / "missing")


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {}, False),
        ("darwin", {}, False),
        ("android", {}, True),
        ("linux", {"ANDROID_ROOT": "/system"}, True),  # Termux Python before 3.13 says "linux"
        ("linux", {"TERMUX_VERSION": "0.118.0"}, True),
    ],
)
def test_is_android(platform: str, environ: dict[str, str], expected: bool) -> None:
    assert ram_probe.is_android(platform, environ) is expected


def test_cpu_count_is_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ram_probe.cpu_count() >= 1
    monkeypatch.delattr(ram_probe.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(ram_probe.os, "cpu_count", lambda: None)
    assert ram_probe.cpu_count() == 1


# ---------------------------------------------------------------------- scaling policy


def test_max_nodes_for() -> None:
    assert [max_nodes_for(8, False), max_nodes_for(8, True), max_nodes_for(2, True)] == [8, 4, 2]


def test_default_max_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager's ScalingPolicy reads this device's CPUs for its default cap (the pure one has none)."""
    monkeypatch.setattr(node_manager, "cpu_count", lambda: 8)
    monkeypatch.setattr(node_manager, "is_android", lambda: False)
    assert node_manager.ScalingPolicy().max_nodes == 8
    monkeypatch.setattr(node_manager, "is_android", lambda: True)
    assert node_manager.ScalingPolicy().max_nodes == 4
    monkeypatch.setattr(node_manager, "cpu_count", lambda: 2)
    assert node_manager.ScalingPolicy().max_nodes == 2
    with pytest.raises(TypeError):
        ScalingPolicy()  # type: ignore[call-arg]


def test_the_policy_prints_as_before() -> None:
    """`node-manager` prints its policy on start: the subclass keeps the name and the fields."""
    shown = "ScalingPolicy(ram_per_node=64, min_free_ram=0, max_nodes=2)"
    assert repr(node_manager.ScalingPolicy(64, 0, 2)) == repr(ScalingPolicy(64, 0, max_nodes=2)) == shown


@pytest.mark.parametrize("kwargs", [{"ram_per_node": 0}, {"min_free_ram": -1}, {"max_nodes": -1}])
def test_policy_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(Bxthre3Error):
        ScalingPolicy(**{"max_nodes": 4, **kwargs})
    with pytest.raises(Bxthre3Error):
        node_manager.ScalingPolicy(**kwargs)


POLICY = ScalingPolicy(ram_per_node=128, min_free_ram=512, max_nodes=4)


@pytest.mark.parametrize(
    ("available", "running", "expected"),
    [
        (0, 0, 0),
        (511, 0, 0),
        (639, 0, 0),  # one MB short of min_free + one host
        (640, 0, 1),
        (767, 0, 1),
        (768, 0, 2),
        (10_000, 0, 4),  # capped by max_nodes
        (640, 1, 2),  # 640 + 128 held
        (512, 2, 2),  # exactly min_free left with 2 running: keep both
        (511, 2, 1),  # one MB under min_free: give one back
        (384, 2, 1),
        (383, 2, 0),
        (0, 4, 0),
        (100, 4, 0),  # 100 + 512 - 512 = 100 < 128
        (128, 4, 1),
    ],
)
def test_target_nodes(available: int, running: int, expected: int) -> None:
    assert target_nodes(available, running, POLICY) == expected


def test_target_nodes_zero_cap() -> None:
    assert target_nodes(100_000, 0, ScalingPolicy(max_nodes=0)) == 0


@pytest.mark.parametrize("host_rss", [40, 100, 128])
@pytest.mark.parametrize("free_without_us", [500, 640, 700, 767, 768, 1000, 1100, 5000])
def test_no_oscillation(host_rss: int, free_without_us: int) -> None:
    """Simulated device: each host really uses host_rss MB (at most ram_per_node).

    The count only ever grows towards its resting value and then stays, and the device keeps
    min_free_ram. Hosts lighter than their reservation let more hosts start (never fewer).
    """
    running = 0
    history = []
    for _ in range(20):
        available = free_without_us - running * host_rss
        running = target_nodes(available, running, POLICY)
        history.append(running)
    assert history == sorted(history), history
    assert len(set(history[-10:])) == 1, history
    settled = history[-1]
    assert settled >= max(0, min(4, (free_without_us - 512) // 128))
    if settled:
        assert free_without_us - settled * host_rss >= POLICY.min_free_ram
    if host_rss == POLICY.ram_per_node:
        assert settled == max(0, min(4, (free_without_us - 512) // 128))


def test_heavy_hosts_are_the_only_oscillation_risk() -> None:
    """Documented limit: hosts using more than ram_per_node can flip the count (dead band is one host)."""
    running, history = 0, []
    for _ in range(6):
        running = target_nodes(700 - running * 300, running, POLICY)
        history.append(running)
    assert history == [1, 0, 1, 0, 1, 0]


def test_boundary_hover_changes_at_most_once() -> None:
    """Readings jittering a few MB around a threshold never flip the count back and forth."""
    running = 2  # at 768 free before our 2 hosts took ~80 MB each
    seen = set()
    for jitter in [0, 3, -3, 5, -5, 1, -1, 0] * 5:
        available = 768 - running * 80 + jitter
        running = target_nodes(available, running, POLICY)
        seen.add(running)
    assert seen == {2}


@pytest.mark.parametrize(
    ("current", "target", "start", "stop"),
    [
        ([], 0, [], []),
        ([], 2, ["n-1", "n-2"], []),
        (["a", "b"], 2, [], []),
        (["a", "b"], 3, ["n-1"], []),
        (["a", "b", "c"], 1, [], ["c", "b"]),  # newest first
        (["a", "b", "c"], 0, [], ["c", "b", "a"]),
        (["a"], -1, [], ["a"]),
    ],
)
def test_plan(current: list[str], target: int, start: list[str], stop: list[str]) -> None:
    counter = iter(range(1, 100))
    assert plan(current, target, lambda: f"n-{next(counter)}") == (start, stop)


def test_backoff_doubles_to_a_minute() -> None:
    delays = [1.0]
    for _ in range(8):
        delays.append(next_backoff(delays[-1]))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_kill_burst_window() -> None:
    burst = KillBurst(window=10, count=2)
    assert not burst.record(0.0)
    assert not burst.record(11.0)  # the first fell out of the window
    assert burst.record(20.0)
    assert not burst.record(21.0)  # reported once, counting starts over
    assert burst.record(25.0)


# ---------------------------------------------------------------------- manager bookkeeping (no processes)


def _manager(tmp_path: Path, probe: object = lambda: 0) -> NodeManager:
    return NodeManager(
        Address("127.0.0.1", 1), POLICY, name="phone", probe=probe, log_dir=tmp_path, clock=lambda: 100.0
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("android", [True, False])
def test_phantom_killer_help_on_android_sigkill_burst(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path, android: bool
) -> None:
    monkeypatch.setattr(node_manager, "is_android", lambda: android)
    manager = _manager(tmp_path)
    a, b = _ManagedHost("phone-1", 1), _ManagedHost("phone-2", 2)
    manager.hosts += [a, b]
    with caplog.at_level(logging.WARNING, logger="bxthre3.node_manager"):
        manager._exited(a, -signal.SIGKILL, 100.0)
        manager._exited(b, -signal.SIGKILL, 103.0)
    assert manager.sigkill_deaths == 2
    assert (PHANTOM_KILLER_HELP in caplog.text) is android
    assert a.state is node_manager.HostState.BACKOFF and a.restart_at == 101.0 and a.backoff == 2.0


def test_help_names_every_android_fix() -> None:
    assert "max_phantom_processes 2147483647" in PHANTOM_KILLER_HELP
    assert "set_sync_disabled_for_tests persistent" in PHANTOM_KILLER_HELP
    assert "settings_enable_monitor_phantom_procs false" in PHANTOM_KILLER_HELP
    assert "Disable child process restrictions" in PHANTOM_KILLER_HELP


def test_failed_probe_changes_nothing(tmp_path: Path) -> None:
    def broken() -> int:
        raise ram_probe.RamProbeError("no source")

    manager = _manager(tmp_path, broken)
    manager.tick()
    snap = manager.snapshot()
    assert snap["hosts"] == [] and snap["probe_error"] == "no source"
    assert snap["name"] == "phone" and snap["cpus"] >= 1


def test_ids_reuse_the_lowest_free_index(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    manager.hosts += [_ManagedHost("phone-2", 2)]
    make_id = manager._id_maker()
    assert [make_id(), make_id(), make_id()] == ["phone-1", "phone-3", "phone-4"]


class FakeProc:
    """Just enough of Popen for the manager's bookkeeping: poll, send_signal, pid."""

    def __init__(self, pid: int = 4242) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


def test_stop_escalates_to_sigkill_after_grace(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    proc = FakeProc()
    host = _ManagedHost("phone-1", 1, node_manager.HostState.RUNNING, proc)  # type: ignore[arg-type]
    manager.hosts.append(host)
    manager._stop(host, 100.0)
    assert proc.signals == [signal.SIGTERM] and host.state is node_manager.HostState.STOPPING
    manager._reap(100.0 + node_manager.STOP_GRACE_S - 0.1)
    assert proc.signals == [signal.SIGTERM]
    manager._reap(100.0 + node_manager.STOP_GRACE_S)
    assert proc.signals == [signal.SIGTERM, signal.SIGKILL]
    proc.returncode = -signal.SIGKILL
    manager._reap(106.0)
    assert manager.hosts == [] and manager.sigkill_deaths == 0  # our own kill is no phantom-killer death


def test_backoff_resets_after_a_minute_up(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    proc = FakeProc()
    host = _ManagedHost("phone-1", 1, node_manager.HostState.RUNNING, proc, started_at=0.0, backoff=16.0)  # type: ignore[arg-type]
    manager.hosts.append(host)
    manager._reap(59.0)
    assert host.backoff == 16.0
    manager._reap(60.0)
    assert host.backoff == 1.0
    proc.returncode = 1
    manager._reap(61.0)
    assert host.state is node_manager.HostState.BACKOFF and host.restart_at == 62.0 and host.proc is None


def test_stopping_a_host_waiting_to_restart_just_forgets_it(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    host = _ManagedHost("phone-1", 1)
    manager.hosts.append(host)
    manager._stop(host, 0.0)
    assert manager.hosts == []


def test_probe_survives_psutil_denied_by_android(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Android 10+ hides /proc/meminfo details from apps in some builds: psutil raises PermissionError."""
    import types

    fake = types.ModuleType("psutil")

    def denied() -> object:
        raise PermissionError(13, "Permission denied: '/proc/meminfo'")

    fake.virtual_memory = denied  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "psutil", fake)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO_NEW)
    assert ram_probe.available_ram_mb(meminfo) == 2000
    assert ram_probe.resident_mb([999_999_999]) == -1, "an unreadable process gives -1, not an exception"
