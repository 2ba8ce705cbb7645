"""`activity` and `structure` against a real controller and real hosts on loopback: the task stream, the
throughput and the group counts agree with `results`, and bad arguments get one-line errors."""

from __future__ import annotations

import math
import time

import msgpack
import pytest
import zmq

from bxthre3.client.connection import ControllerClient
from bxthre3.common.errors import ClusterError
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.wire import protocol
from bxthre3.wire.security import secure_client
from tests.conftest import REPO, TEST_KEYS, HostProcesses, RunningController, wait_for_hosts


def test_activity_and_structure_match_results(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    hosts.start(controller.address, "stream-a", slots=2)
    hosts.start(controller.address, "stream-b", slots=2)
    wait_for_hosts(client, 2)
    dags = [client.submit(load_dag(REPO / "dags" / name)) for name in ("hello_fanout.yaml", "matrix_mul.yaml")]
    for dag_id in dags:
        assert client.wait(dag_id, timeout=60)["state"] == "succeeded"

    activity = client.activity(60)
    status = client.status()
    assert activity["window_s"] == 60.0 and activity["bucket_s"] == 1.0
    assert set(activity["hosts"]) == {"stream-a", "stream-b"}
    results = {dag_id: client.results(dag_id, with_output=False) for dag_id in dags}
    finished = sum(len(r["tasks"]) for r in results.values())
    assert finished == 4 + 17 == status["totals"]["succeeded"]
    assert sum(activity["throughput"]) == finished, "every finished task is in one bucket of the window"
    assert len(activity["throughput"]) == 60
    # The one rate: what status says and what activity says, a moment apart, decaying together.
    assert activity["tasks_per_s"] > 0 and status["totals"]["tasks_per_s"] > 0
    assert math.isclose(activity["tasks_per_s"], status["totals"]["tasks_per_s"], rel_tol=0.2, abs_tol=0.1)

    # Each task succeeded once, on the host results name; any other attempt of it (a backup that lost its
    # race, one moved to an idle host before it started) ended otherwise.
    ran: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for node, host in activity["hosts"].items():
        for seg in host["segments"]:
            ran.setdefault((seg["dag_id"], seg["task_id"]), []).append((node, dict(seg)))
    assert len(ran) == finished
    for dag_id, r in results.items():
        for t in r["tasks"]:
            attempts = ran[(dag_id, t["task_id"])]
            [(node, seg)] = [(n, s) for n, s in attempts if s["state"] == "succeeded"]
            assert node == t["node_id"] and len(attempts) == t["attempts"]
            assert all(s["state"] in ("aborted", "retrying", "lost") for n, s in attempts if s is not seg)
            assert 0 <= seg["end_ago_s"] <= seg["start_ago_s"] < 60
    for host in activity["hosts"].values():
        starts = [seg["start_ago_s"] for seg in host["segments"]]
        assert starts == sorted(starts, reverse=True), "oldest first"
        assert len(host["busy"]) == 60 and all(0.0 <= b <= 1.0 for b in host["busy"])
        assert sum(host["busy"]) > 0

    # Structure: the for_each tiles are one group; counts add up to the results' states.
    for dag_id, r in results.items():
        shape = client.structure(dag_id)
        assert shape["dag_id"] == dag_id and shape["name"] == r["name"]
        assert sum(g["total"] for g in shape["groups"]) == len(r["tasks"])
        assert sum(sum(g["counts"].values()) for g in shape["groups"]) == len(r["tasks"])
        assert all(g["counts"] == {"succeeded": g["total"]} for g in shape["groups"])
    mm = client.structure(dags[1])
    assert [(g["name"], g["stage"], g["total"]) for g in mm["groups"]] == [("tile", 0, 16), ("checksum", 1, 1)]
    assert [tuple(e) for e in mm["edges"]] == [(0, 1)] and mm["stages"] == 2
    fan = client.structure(dags[0])
    assert [(g["name"], g["stage"], g["total"]) for g in fan["groups"]] == [
        ("init", 0, 1), ("greet_*", 1, 2), ("aggregate", 2, 1),
    ]  # fmt: skip
    assert fan["stages"] == 3 and [tuple(e) for e in fan["edges"]] == [(0, 1), (1, 2)]


def test_the_rate_falls_to_zero_once_work_stops(
    controller: RunningController, client: ControllerClient, hosts: HostProcesses
) -> None:
    hosts.start(controller.address, "decay", slots=2)
    wait_for_hosts(client, 1)
    dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
    assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
    first = client.status()["totals"]["tasks_per_s"]
    assert first > 0.4, "4 tasks in well under 10 s read more than 4 over the whole window"
    deadline = time.monotonic() + 15
    while client.activity(10)["tasks_per_s"] > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.activity(10)["tasks_per_s"] == 0.0 == client.status()["totals"]["tasks_per_s"]


@pytest.mark.parametrize(("window", "error"), [(-1.0, "at least 1 second"), (0, "at least 1 second")])
def test_bad_windows_and_unknown_dags_get_one_line_errors(client: ControllerClient, window: float, error: str) -> None:
    with pytest.raises(ClusterError, match=error):
        client.activity(window)
    with pytest.raises(ClusterError, match="no DAG with id 'dag-nope'"):
        client.structure("dag-nope")
    for bad in (math.nan, math.inf):
        with pytest.raises(ClusterError, match="finite number"):
            client.activity(bad)
    assert client.activity(1e300)["window_s"] == 600.0  # huge: capped, and said so


def test_hostile_activity_and_structure_frames_leave_the_controller_up(
    controller: RunningController, client: ControllerClient
) -> None:
    peer = controller.context.socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    secure_client(peer, TEST_KEYS)
    peer.connect(controller.address.endpoint)
    try:
        v = protocol.PROTOCOL_VERSION
        for fields in (["activity", 1, "60"], ["activity", 2, [1]], ["activity", 3, 2**64 - 1], ["structure", 4, 5],
                       ["structure", 5, None], ["activity", 6, -1e308], ["structure", 7, "x" * 100_000]):  # fmt: skip
            peer.send(msgpack.packb([v, *fields]))
        replies = []
        deadline = time.monotonic() + 5
        while len(replies) < 2 and time.monotonic() < deadline:
            if peer.poll(200):
                replies.append(protocol.decode(peer.recv()))
        assert sorted((r.req_id, r.ok, r.error) for r in replies) == [
            (6, False, "activity: window_s must be at least 1 second (got -1e+308)"),
            (7, False, f"no DAG with id {'x' * 100_000!r}"),
        ]
    finally:
        peer.close()
    assert controller.thread.is_alive()
    assert client.activity()["window_s"] == 120.0
    assert client.status()["controller"]["dropped_frames"] >= 5
