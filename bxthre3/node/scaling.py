"""How many hosts a node manager runs, and when it restarts one: its decisions, pure.

No I/O, no clock, no processes: `node.manager` reads the RAM, the CPUs and its clock and hands the
numbers in, so these tests read "this reading gives exactly this target" (`tests/unit/test_node_manager.py`).
The formula (:func:`target_nodes`, :func:`plan`)::

    effective = available_ram + hosts_we_run * ram_per_node
    target    = clamp(floor((effective - min_free_ram) / ram_per_node), 0, max_nodes)

Counting the RAM our own hosts hold is what keeps the manager from oscillating: starting a
host lowers the available RAM, but it raises the credit by ``ram_per_node``, so the target
stays put. In effect a host is added when ``available >= min_free + ram_per_node`` and one is
removed only when ``available < min_free``: a dead band one host wide. It would oscillate
only if a host really used more than ``ram_per_node`` (``--ram-limit`` caps a task's
linear memory, not the whole process, so keep ``ram_per_node`` at or above a busy host's RSS).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..common.errors import Bxthre3Error

DEFAULT_RAM_PER_NODE_MB = 128
"""MB reserved per host, and the ``--ram-limit`` each host is started with."""

DEFAULT_MIN_FREE_RAM_MB = 512
"""MB of available RAM the manager always leaves to the device's owner."""

ANDROID_MAX_NODES = 4
"""Default host cap on Android: 4 hosts = 9 processes, well under the phantom process limit of 32."""

RESTART_BACKOFF_MIN_S = 1.0
"""First delay before restarting a host that exited unexpectedly."""

RESTART_BACKOFF_MAX_S = 60.0
"""The restart delay doubles up to this."""

KILL_BURST_WINDOW_S = 10.0
"""Window in which SIGKILL deaths are counted to recognise Android's phantom process killer."""

KILL_BURST_COUNT = 2
"""SIGKILL deaths within the window that trigger `node.manager.PHANTOM_KILLER_HELP` (on Android)."""


def max_nodes_for(cpus: int, android: bool) -> int:
    """The default host cap: one host per CPU; on Android at most :data:`ANDROID_MAX_NODES`."""
    return min(cpus, ANDROID_MAX_NODES) if android else cpus


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """How many hosts a device may run: the three numbers :func:`target_nodes` decides from."""

    ram_per_node: int = DEFAULT_RAM_PER_NODE_MB
    """MB reserved per host (and each host's ``--ram-limit``)."""
    min_free_ram: int = DEFAULT_MIN_FREE_RAM_MB
    """MB of available RAM left untouched."""
    max_nodes: int = field(kw_only=True)
    """Never more hosts than this (no default here: the default, :func:`max_nodes_for` this device's
    CPUs, reads the device; ``node.manager.ScalingPolicy`` adds it)."""

    def __post_init__(self) -> None:
        if self.ram_per_node < 1:
            raise Bxthre3Error(f"ram per node must be at least 1 MB, not {self.ram_per_node}")
        if self.min_free_ram < 0:
            raise Bxthre3Error(f"min free RAM cannot be negative ({self.min_free_ram})")
        if self.max_nodes < 0:
            raise Bxthre3Error(f"max nodes cannot be negative ({self.max_nodes})")


def effective_ram(available_ram_mb: int, running_nodes: int, policy: ScalingPolicy) -> int:
    """Available RAM plus what our own hosts hold (each counted at ``ram_per_node``)."""
    return available_ram_mb + running_nodes * policy.ram_per_node


def target_nodes(available_ram_mb: int, running_nodes: int, policy: ScalingPolicy) -> int:
    """How many hosts this device should run, given a RAM reading taken while ``running_nodes`` ran."""
    spare = effective_ram(available_ram_mb, running_nodes, policy) - policy.min_free_ram
    return max(0, min(policy.max_nodes, math.floor(spare / policy.ram_per_node)))


def plan(current: list[str], target: int, make_id: Callable[[], str]) -> tuple[list[str], list[str]]:
    """Node ids to start and to stop to go from ``current`` (oldest first) to ``target`` hosts.

    The ids to stop are the newest, newest first; new ids come from ``make_id``.
    """
    target = max(0, target)
    if target > len(current):
        return [make_id() for _ in range(target - len(current))], []
    return [], list(reversed(current[target:]))


def next_backoff(delay: float) -> float:
    """The restart delay after ``delay``: doubled, at most :data:`RESTART_BACKOFF_MAX_S`."""
    return min(RESTART_BACKOFF_MAX_S, max(RESTART_BACKOFF_MIN_S, delay * 2))


class KillBurst:
    """Counts SIGKILL deaths in a sliding window; ``record`` is True when a burst is complete."""

    def __init__(self, window: float = KILL_BURST_WINDOW_S, count: int = KILL_BURST_COUNT) -> None:
        self.window = window
        self.count = count
        self.times: deque[float] = deque()

    def record(self, now: float) -> bool:
        self.times.append(now)
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        if len(self.times) >= self.count:
            self.times.clear()  # report each burst once
            return True
        return False
