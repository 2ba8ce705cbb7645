"""A fake controller for the monitor's snapshots: fixed `status_view`/`results_view` dicts, no network,
no clocks in the data (ages and durations are frozen), so every render is the same."""

from __future__ import annotations

import copy
import threading
from typing import Any

from bxthre3.common.errors import ClusterError
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.dag.structure import dag_structure, group_counts
from bxthre3.tui.backend import Backend
from bxthre3.wire.addresses import Address

STATES = ("pending", "ready", "running", "retrying", "succeeded", "failed", "upstream_failed", "cancelled")


def _task(
    task_id: str,
    state: str,
    *,
    node_id: str | None = None,
    attempts: int = 0,
    duration_s: float = 0.0,
    finished_at: float | None = None,
    exit_code: int | None = None,
    reason: str | None = None,
    output: bytes | None = None,
    module: str = "hello",
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "state": state,
        "module": module,
        "node_id": node_id,
        "attempts": attempts,
        "recorded": state in ("succeeded", "failed"),
        "duration_s": duration_s,
        "finished_at": finished_at,
        "exit_code": exit_code,
        "reason": reason,
        "error": "",
        "memory_mb": 64,
        "history": ([{"attempt": attempts, "node_id": node_id, "reason": reason, "error": ""}] if node_id else []),
        "output": output,
        "stderr": None,
    }


def _counts(tasks: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for t in tasks:
        counts[t["state"]] += 1
    return counts


def _hosts(running: list[list[str]], succeeded: tuple[int, int]) -> list[dict[str, Any]]:
    return [
        {
            "node_id": f"node-{i}",
            "device": "lab-box",
            "platform": "linux-x86_64",
            "engine": "wasmtime",
            "ram_mb": 1024,
            "slots": 2,
            "running": running[i],
            "succeeded": succeeded[i],
            "failed": 0,
            "recent": [],
            "modules": 1,
            "last_seen_s": 0.4 + i,
            "state": "busy" if running[i] else "idle",
            "rss_mb": 61 + 7 * i,
            "uptime_s": 120.0,
            "speed": (1.25, 0.87)[i],
            "quarantined": False,
        }
        for i in range(2)
    ]


QUARANTINED_ID = "9c01" + "b" * 28


def quarantine(status: dict[str, Any]) -> dict[str, Any]:
    """`status` with node-1 on a second device, "old-phone", quarantined (as views.status_view shows it)."""
    status = copy.deepcopy(status)
    host = status["hosts"][1]
    host.update(device="old-phone", device_id=QUARANTINED_ID, state="quarantined", quarantined=True)
    status["totals"]["devices"] = 2
    status["quarantined"] = [
        {"device_id": QUARANTINED_ID, "device": "old-phone", "since": 1000.0, "mismatches": 3,
         "reason": "output of d-0001/hello_fr disagreed with 2 devices", "node_ids": ["node-1"]},
    ]  # fmt: skip
    return status


def _scenario(dag_state: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(status_view, results_view with outputs) of a 5-task fan-out DAG, running or succeeded."""
    dag_id = "d-0001"
    greet = [
        ("hello_en", b"Hello, Bxthre3!\n"),
        ("hello_es", b"Hola, Bxthre3!\n"),
        ("hello_fr", b"Bonjour, Bxthre3!\n"),
    ]
    if dag_state == "running":
        tasks = [
            _task("prepare", "succeeded", node_id="node-0", attempts=1, duration_s=0.012, finished_at=10.0,
                  exit_code=0, output=b"prepared 3 greetings\n"),
            _task(greet[0][0], "succeeded", node_id="node-1", attempts=1, duration_s=0.021, finished_at=11.0,
                  exit_code=0, output=greet[0][1]),
            _task(greet[1][0], "running", node_id="node-0", attempts=1),
            _task(greet[2][0], "running", node_id="node-1", attempts=2, reason="host_lost"),
            _task("aggregate", "pending"),
        ]  # fmt: skip
        hosts = _hosts([[f"{dag_id}/hello_es"], [f"{dag_id}/hello_fr"]], (1, 1))
        elapsed, tps = 1.5, 1.33
    else:
        tasks = [
            _task("prepare", "succeeded", node_id="node-0", attempts=1, duration_s=0.012, finished_at=10.0,
                  exit_code=0, output=b"prepared 3 greetings\n"),
            *(
                _task(name, "succeeded", node_id=f"node-{i % 2}", attempts=1, duration_s=0.02 + i / 1000,
                      finished_at=11.0 + i, exit_code=0, output=out)
                for i, (name, out) in enumerate(greet)
            ),
            _task("aggregate", "succeeded", node_id="node-1", attempts=1, duration_s=0.034, finished_at=15.0,
                  exit_code=0, output=b"".join(out for _, out in greet), module="aggregate"),
        ]  # fmt: skip
        hosts = _hosts([[], []], (3, 2))
        elapsed, tps = 5.0, 0.0
    counts = _counts(tasks)
    summary = {
        "dag_id": dag_id,
        "name": "hello_fanout",
        "state": dag_state,
        "total": len(tasks),
        "done": sum(counts[s] for s in ("succeeded", "failed", "upstream_failed", "cancelled")),
        "counts": counts,
        "failures": {},
        "elapsed_s": elapsed,
        "priority": 0,
        "share": counts["running"] / max(1, sum(h["slots"] for h in hosts)),  # as views.status_view computes it
    }
    status = {
        "totals": {
            "devices": 1,
            "hosts": len(hosts),
            "slots": sum(h["slots"] for h in hosts),
            "ram_mb": sum(h["ram_mb"] for h in hosts),
            "running": sum(len(h["running"]) for h in hosts),
            "ready": 0,
            "dags": 1,
            "succeeded": counts["succeeded"],
            "failed": 0,
            "tasks_per_s": tps,
        },
        "waiting": {},
        "hosts": hosts,
        "devices": {
            "lab-box": {
                "hosts": 2,
                "slots": 4,
                "ram_mb": 2048,
                "platform": "linux-x86_64",
                "ram_total_mb": 4096,
                "cpus": 4,
                "node_ids": ["node-0", "node-1"],
            },
        },  # fmt: skip
        "dags": [summary],
        "quarantined": [],
    }
    return status, {**summary, "tasks": tasks}


_FANOUT_DEPS = {
    "prepare": (),
    "hello_en": ("prepare",),
    "hello_es": ("prepare",),
    "hello_fr": ("prepare",),
    "aggregate": ("hello_en", "hello_es", "hello_fr"),
}


def _segment(task_id: str, start: float, end: float | None, state: str) -> dict[str, Any]:
    return {"dag_id": "d-0001", "task_id": task_id, "start_ago_s": start, "end_ago_s": end, "state": state}


def _activity(dag_state: str, window_s: float) -> dict[str, Any]:
    """The `activity` shape of the scenario (views.activity_view), ending at a fixed `now`: the running
    DAG has a lost attempt of hello_fr on node-1 and one attempt running on each host."""
    if window_s < 1:
        raise ClusterError(f"activity: window_s must be at least 1 second (got {window_s:g})")
    n = int(min(600, -(-window_s // 1)))
    if dag_state == "running":
        streams = {
            "node-0": [_segment("prepare", 3.0, 2.988, "succeeded"), _segment("hello_es", 1.0, None, "running")],
            "node-1": [
                _segment("hello_fr", 2.95, 1.2, "lost"),
                _segment("hello_en", 2.9, 2.879, "succeeded"),
                _segment("hello_fr", 1.1, None, "running"),
            ],
        }
        recent = {"node-0": [0.012, 0.0, 1.0, 0.5], "node-1": [0.6, 0.5, 1.0, 0.5]}  # 2 slots each
        finished = [1, 1, 0, 0]
        tps = 1.33
    else:
        streams = {
            "node-0": [_segment("prepare", 9.0, 8.988, "succeeded"), _segment("hello_es", 8.0, 7.979, "succeeded")],
            "node-1": [
                _segment("hello_en", 8.0, 7.98, "succeeded"),
                _segment("hello_fr", 7.0, 6.978, "succeeded"),
                _segment("aggregate", 6.0, 5.966, "succeeded"),
            ],
        }
        recent = {"node-0": [0.006, 0.011, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                  "node-1": [0.0, 0.01, 0.011, 0.017, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}  # fmt: skip
        finished = [1, 2, 1, 1, 0, 0, 0, 0, 0, 0]
        tps = 0.0

    def tail(values: list[Any], zero: Any) -> list[Any]:
        return ([zero] * n + values)[-n:]

    return {
        "window_s": float(n),
        "bucket_s": 1.0,
        "throughput": tail(finished, 0),
        "tasks_per_s": tps,
        "hosts": {
            node: {
                "busy": tail(recent[node], 0.0),
                "segments": [s for s in segs if s["end_ago_s"] is None or s["end_ago_s"] <= n],
            }
            for node, segs in streams.items()
        },
    }


def _structure(results: dict[str, Any]) -> dict[str, Any]:
    """The `structure` shape of the scenario's DAG, made by the real (pure) grouping."""
    tasks = results["tasks"]
    spec = DagSpec(
        name=results["name"],
        tasks=tuple(TaskSpec(id=t["task_id"], module="0" * 64, module_name="hello.wasm",
                             depends_on=_FANOUT_DEPS[t["task_id"]]) for t in tasks),
        modules={},
    )  # fmt: skip
    found = dag_structure(spec)
    counts = group_counts(found, (t["state"] for t in tasks), (t.get("cached", False) for t in tasks))
    return {
        "dag_id": results["dag_id"],
        "name": results["name"],
        "stages": found.stages,
        "groups": [
            {"name": g.name, "stage": g.stage, "total": g.total, "counts": c}
            for g, c in zip(found.groups, counts, strict=True)
        ],
        "edges": [list(e) for e in found.edges],
    }


class FakeClient:
    """Implements the `Client` protocol over fixed dicts."""

    def __init__(self, status: dict[str, Any], results: dict[str, Any], closed: threading.Event) -> None:
        self._status = status
        self._results = results
        self._closed = closed
        self._updates = 0

    def status(self) -> dict[str, Any]:
        return copy.deepcopy(self._status)

    def results(
        self, dag_id: str, *, with_output: bool = True, task_id: str = "", limit: int = 0, with_files: bool = False
    ) -> dict[str, Any]:
        if dag_id != self._results["dag_id"]:
            raise KeyError(dag_id)
        tasks = [t for t in self._results["tasks"] if not task_id or t["task_id"] == task_id]
        if task_id and not tasks:
            raise KeyError(task_id)
        if not with_output:
            tasks = [{k: v for k, v in t.items() if k not in ("output", "stderr", "files")} for t in tasks]
        elif not with_files:  # named outputs' contents only when asked for, as the controller does
            tasks = [{**t, "files": [{k: v for k, v in f.items() if k != "data"} for f in t["files"]]}
                     if t.get("files") else t for t in tasks]  # fmt: skip
        return copy.deepcopy({**self._results, "tasks": tasks})

    def submit(self, spec: Any) -> str:
        raise RuntimeError("the fake controller takes no DAGs")

    def cancel(self, dag_id: str) -> dict[str, Any]:
        return {**self._results, "tasks": None, "state": "cancelled"}

    def retry(self, dag_id: str) -> dict[str, Any]:
        raise RuntimeError(f"DAG {dag_id!r} has no failed, upstream-failed or cancelled task to retry")

    def watch(self, lease: float = 10.0) -> dict[str, Any]:
        return {"lease": 10, "push_interval": 0.25}

    def next_update(self, timeout: float) -> dict[str, Any] | None:
        # Block like the real one (the controller pushes at most every 0.25 s): an immediate reply
        # would race the monitor's first render (see the report on DagItem.update before mount).
        self._closed.wait(timeout)
        self._updates += 1
        return self.status() if self._updates == 1 else None

    def activity(self, window_s: float = 120.0) -> dict[str, Any]:
        return _activity(self._results["state"], window_s)

    def structure(self, dag_id: str) -> dict[str, Any]:
        if dag_id != self._results["dag_id"]:
            raise ClusterError(f"no DAG with id {dag_id!r}")
        return _structure(self._results)

    def close(self) -> None:
        pass


FAKE_TOKEN = "bxt1-" + "F" * 43
"""The fake controller takes any token; the backend needs one to open the monitor directly."""


class FakeBackend(Backend):
    """Connects to the fake controller; starts nothing."""

    def __init__(self, dag_state: str = "running", *, quarantined: bool = False) -> None:
        super().__init__(hosts=2, token=FAKE_TOKEN)  # with none, `ui --controller` opens the token form
        self.status, self.results = _scenario(dag_state)
        if quarantined:
            self.status = quarantine(self.status)
        self._stop = threading.Event()

    def connect(self, address: Address) -> FakeClient:  # type: ignore[override]
        return FakeClient(self.status, self.results, self._stop)

    def start_cluster(self, ram_per_node: int) -> Address:
        raise RuntimeError("the fake backend starts no cluster")

    def close(self) -> None:
        self._stop.set()


def _node_manager_status() -> dict[str, Any]:
    return {
        "name": "lab-box",
        "platform": "linux",
        "controller": "127.0.0.1:5000",
        "ram_available_mb": 3328,
        "probe_error": None,
        "cpus": 4,
        "policy": {"ram_per_node": 128, "min_free_ram": 512, "max_nodes": 4},
        "formula": {"available_ram_mb": 3328, "held_nodes": 2, "effective_ram_mb": 3584, "target_nodes": 4},
        "sigkill_deaths": 0,
        "hosts": [
            {"node_id": "lab-box-1", "pid": 2101, "state": "running", "restarts": 0, "uptime_s": 95.0,
             "restart_in_s": None, "last_exit": None},
            {"node_id": "lab-box-2", "pid": 2102, "state": "backoff", "restarts": 2, "uptime_s": None,
             "restart_in_s": 3.5, "last_exit": "killed by signal 9 (SIGKILL)"},
        ],
    }  # fmt: skip


def role_status(role: str) -> dict[str, Any]:
    """What each role's status file holds, frozen (ages fixed), for the role screens' snapshots."""
    if role == "host":
        return {
            "role": "host", "node_id": "phone-1", "device": "pixel-7", "controller": "192.168.1.10:5000",
            "state": "registered", "registered_for_s": 42.0, "registrations": 1, "uptime_s": 43.0,
            "ram_mb": 128, "slots": 1, "engine": "wasm3", "succeeded": 2, "failed": 1, "queued": 0, "unacked": 0,
            "running": [{"dag_id": "d-0001", "task_id": "tile_3", "attempt": 1, "elapsed_s": 1.2, "timeout_s": 60}],
            "history": [
                {"dag_id": "d-0001", "task_id": "tile_2", "attempt": 2, "reason": None, "error": "",
                 "duration_s": 0.3141, "ago_s": 1.5},
                {"dag_id": "d-0001", "task_id": "tile_1", "attempt": 1, "reason": "timeout", "error": "",
                 "duration_s": 60.0, "ago_s": 3.0},
                {"dag_id": "d-0001", "task_id": "prepare", "attempt": 1, "reason": None, "error": "",
                 "duration_s": 0.0021, "ago_s": 40.0},
            ],
        }  # fmt: skip
    if role == "node-manager":
        return {"role": "node-manager", "node_manager": _node_manager_status()}
    status, _ = _scenario("running")
    return {
        "role": "controller",
        "controller": {"address": "0.0.0.0:5000", "token": "bxt1-" + "x" * 43,
                       "state_dir": "/home/me/.local/share/bxthre3/controller",
                       "version": "0.1.0", "uptime_s": 300.0, "dropped_frames": 0, "watchers": 1, "retrying": 0},
        "status": status,
        "node_manager": _node_manager_status(),
    }  # fmt: skip


class FakeRoleProcess:
    """Stands in for `RoleProcess`: a fixed status and a few output lines, no process."""

    def __init__(self, role: str, argv: list[str]) -> None:
        self.role = role
        self.command_line = " ".join(["bxthre3", *argv])
        self.pid = 4242
        self._lines = [f"bxthre3 {role} started", "INFO everything is fine"]

    def returncode(self) -> int | None:
        return None

    def status(self) -> dict[str, Any]:
        return role_status(self.role)

    def new_output_lines(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines

    def tail(self, lines: int = 5) -> list[str]:
        return []

    def host_pids(self) -> list[int]:
        return []

    def stop(self, grace: float = 0.0) -> int | None:
        return 0
