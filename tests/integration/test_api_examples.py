"""The Python API for real: the `python` blocks of README's "DAGs in Python" section and of docs/API.md
run as written (each document as one script, its blocks in order) on real LocalClusters, plus what the
examples do not show: connection errors, a Client used from threads, a stopped cluster.

Every cluster here binds 127.0.0.1 only and is stopped before the test ends (a leftover is closed).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bxthre3 import Client, Dag, LocalCluster
from bxthre3.common.errors import Bxthre3Error, ClusterError, DagError
from bxthre3.wire.security import new_token

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def readme_api_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## DAGs in Python\n", 1)[1].split("\n## ", 1)[0]


def run_blocks(blocks: list[str], name: str) -> dict[str, object]:
    """Run `blocks` as one script; a LocalCluster an example left running is closed (and fails the test)."""
    assert blocks, f"{name}: no python blocks"
    namespace: dict[str, object] = {"__name__": f"example_{name}"}
    try:
        for n, block in enumerate(blocks, 1):
            exec(compile(block, f"<{name} block {n}>", "exec"), namespace)
    finally:
        left = [v for v in namespace.values() if isinstance(v, LocalCluster) and v._embedded is not None]
        for cluster in left:
            cluster.close()
    assert not left, f"{name}: an example left a LocalCluster running"
    return namespace


def test_the_readme_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    namespace = run_blocks(python_blocks(readme_api_section()), "README")
    assert "name: hello" in capsys.readouterr().out  # it prints dag.to_yaml()
    assert isinstance(namespace["dag"], Dag)


def test_the_api_md_examples_run() -> None:
    blocks = python_blocks((ROOT / "docs" / "API.md").read_text())
    assert len(blocks) >= 6
    run_blocks(blocks, "API.md")


def test_the_docs_name_every_public_method() -> None:
    """docs/API.md documents each public method of the API's classes."""
    from bxthre3.api.client import DagHandle

    doc = (ROOT / "docs" / "API.md").read_text()
    for cls in (Dag, Client, DagHandle, LocalCluster):
        for name in dir(cls):
            if not name.startswith("_") and callable(getattr(cls, name)):
                assert f"{name}(" in doc, f"docs/API.md does not mention {cls.__name__}.{name}()"


# -- what the examples do not show ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(hosts=1, engine="wasm3") as c:
        assert c.address.startswith("127.0.0.1:")
        yield c


def hello() -> Dag:
    dag = Dag("hello")
    init = dag.task("init", "init.wasm", args=["API"])
    dag.task("greet", "greet_1.wasm", stdin=[init])
    return dag


def test_a_client_by_address_and_token_and_from_threads(cluster: LocalCluster) -> None:
    with Client(cluster.address, token=cluster.token) as client:
        handles = []

        def submit() -> None:
            handles.append(client.submit(hello()))

        threads = [threading.Thread(target=submit) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({h.id for h in handles}) == 4
        for handle in handles:
            assert handle.wait(timeout=60).ok
            assert handle.results()["greet"].text == "Hello, API!\n"
        again = client.dag(handles[0].id)
        assert (again.name, again.total) == ("hello", 2)
        assert client.status().hosts == 1
        assert {d.id for d in client.status().dags} >= {h.id for h in handles}
    with pytest.raises(ClusterError, match="closed"):
        handles[0].status()


def test_submit_takes_a_yaml_file_and_a_priority(cluster: LocalCluster) -> None:
    client = cluster.client()
    run = client.submit(ROOT / "dags" / "hello_fanout.yaml", priority=5)
    assert run.wait(timeout=60).ok and run.status().priority == 5
    assert [t.id for t in run.results()] == ["init", "greet_1", "greet_2", "aggregate"]
    with pytest.raises(TypeError):
        client.submit(42)  # type: ignore[arg-type]


def test_a_wrong_token_and_a_missing_controller_are_cluster_errors(cluster: LocalCluster) -> None:
    with pytest.raises(ClusterError, match="refused the security handshake"):
        with Client(cluster.address, token=new_token()) as client:
            client.status()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(ClusterError, match="nothing is listening"):
        with Client(f"127.0.0.1:{port}", insecure=True) as client:
            client.status()


def test_a_wait_in_one_thread_ends_when_another_cancels(cluster: LocalCluster) -> None:
    dag = Dag("slow")
    dag.task("slow", "mandel_tile.wasm", args=[512, 512, 0, 0, 512, 512, 1_000_000])  # minutes on Wasm3
    run = cluster.client().submit(dag)
    waited: list[object] = []
    waiter = threading.Thread(target=lambda: waited.append(run.wait(timeout=60)))
    waiter.start()
    deadline = time.monotonic() + 30
    while run.status().counts.get("running", 0) == 0:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    assert run.cancel().state == "cancelled"
    waiter.join(10)
    assert not waiter.is_alive() and waited[0].state == "cancelled"  # type: ignore[attr-defined]
    assert run.result("slow").state == "cancelled"


def test_a_local_cluster_refuses_verified_tasks(cluster: LocalCluster) -> None:
    dag = hello()
    dag.task("checked", "noop.wasm", verify=2)
    with pytest.raises(DagError, match="task 'checked': field 'verify': verify=2 runs it on 2 distinct devices"):
        cluster.client().submit(dag)


def test_a_stopped_or_unstarted_cluster_says_so() -> None:
    cluster = LocalCluster(hosts=1)
    with pytest.raises(ClusterError, match="not running"):
        cluster.client()
    with pytest.raises(Bxthre3Error, match="at least one host"):
        LocalCluster(hosts=0)
