"""`--backend dask`: DAGs on a real Dask LocalCluster started here on 127.0.0.1 (skipped without Dask).

What a user of `bxthre3 run --backend dask://…` is promised (docs/BACKENDS.md): every example DAG gives the
default backend's per-task states, outputs, reasons and named files; hostile modules stop at their limits
inside the Dask workers on both engines; Bxthre3's retry policy decides, not Dask's; `memory:` that no
worker can meet is refused in one line instead of waiting forever.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("distributed")

from bxthre3.backends.dask_backend import DaskBackend, check_memory, run_dag  # noqa: E402
from bxthre3.backends.driver import Policy  # noqa: E402
from bxthre3.backends.opening import new_run, parse_backend  # noqa: E402
from bxthre3.common.errors import ClusterError  # noqa: E402
from bxthre3.dag.yaml_loader import load_dag  # noqa: E402
from bxthre3.wasm import choice as engines  # noqa: E402
from tests.backend_checks import (  # noqa: E402
    EXAMPLES,
    GREET,
    check_hostile,
    check_retries,
    comparable,
    hostile_tasks,
    printed_json,
    retry_tasks,
)
from tests.conftest import REPO, TEST_MODULES, subprocess_env  # noqa: E402

ENGINES = [engines.WASM3] + ([engines.WASMTIME] if engines.wasmtime_installed() else [])


@pytest.fixture(scope="module")
def dask_client() -> Any:
    with DaskBackend(parse_backend("dask:local"), workers=2, threads=1) as backend:
        yield backend.client


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bxthre3", *args], capture_output=True, text=True, timeout=180,
        env=subprocess_env(), cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def write_dag(tmp_path: Path, tasks: list[dict[str, Any]]) -> Path:
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump({"name": "dag", "tasks": tasks}, sort_keys=False))
    return path


def run(tmp_path: Path, client: Any, tasks: list[dict[str, Any]], **policy: Any) -> dict[str, dict[str, Any]]:
    path = write_dag(tmp_path, tasks)
    policy = {"engine": engines.WASM3, "ram_mb": 64, "retry_backoff": 0.05, **policy}
    done = run_dag(new_run(load_dag(path), Policy(**policy)), client)
    return {t["task_id"]: t for t in done.results(time.time())["tasks"]}


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_dag_gives_the_default_backends_results(example: str, dask_client: Any) -> None:
    proc = cli("run", f"dags/{example}", "--json")
    assert proc.returncode == 0, proc.stderr
    default = json.loads(proc.stdout)
    done = run_dag(new_run(load_dag(REPO / "dags" / example), Policy(engine=engines.resolve("auto"))), dask_client)
    code, on_dask = printed_json(done.results(time.time()))
    assert code == proc.returncode
    assert comparable(on_dask) == comparable(default)
    assert all(t["state"] == "succeeded" for t in on_dask["tasks"])


def test_run_out_writes_the_same_tree_and_exit_code_through_the_cli(tmp_path: Path) -> None:
    default, dask = tmp_path / "default", tmp_path / "dask"
    assert cli("run", "dags/image_pipeline.yaml", "--out", str(default)).returncode == 0
    proc = cli("run", "dags/image_pipeline.yaml", "--out", str(dask), "--backend", "dask:local")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "INFO" not in proc.stderr
    compared = filecmp.dircmp(default, dask)

    def same(c: filecmp.dircmp[str]) -> bool:
        return not (c.left_only or c.right_only or c.diff_files or c.funny_files) and all(
            same(sub) for sub in c.subdirs.values()
        )

    assert same(compared), compared.report_full_closure()
    assert sorted(p.name for p in dask.iterdir()) == sorted(p.name for p in default.iterdir()) != []


@pytest.mark.parametrize("engine", ENGINES)
def test_hostile_modules_stop_at_their_limits_in_the_workers(tmp_path: Path, dask_client: Any, engine: str) -> None:
    started = time.monotonic()
    check_hostile(run(tmp_path, dask_client, hostile_tasks(), engine=engine))
    assert time.monotonic() - started < 30


def test_retries_follow_bxthre3s_policy_not_dasks(tmp_path: Path, dask_client: Any) -> None:
    check_retries(run(tmp_path, dask_client, retry_tasks()))


def test_memory_raises_the_modules_cap_and_one_no_worker_offers_is_refused(tmp_path: Path, dask_client: Any) -> None:
    bomb = str(TEST_MODULES / "membomb.wasm")
    by_id = run(tmp_path, dask_client, [{"id": "bomb", "module": bomb, "retries": 0, "memory": 96}])
    assert by_id["bomb"]["reason"] == "memory_limit" and "96 MiB" in by_id["bomb"]["error"]
    gib = 2**30  # without declared MEMORY resources, the workers' memory limits decide
    workers = {"tcp://a:1": {"memory_limit": 2 * gib}, "tcp://b:1": {"memory_limit": 3 * gib}}
    spec = load_dag(write_dag(tmp_path, [{"id": "big", "module": GREET, "inputs": ["x"], "memory": 4000}]))
    with pytest.raises(
        ClusterError, match=r"task 'big': memory: 4000 MB, but the largest Dask worker's memory limit is 3072 MB"
    ):
        check_memory(spec, workers, "dask://x:1")
    assert (
        check_memory(load_dag(write_dag(tmp_path, [{"id": "t", "module": GREET, "memory": 3000}])), workers, "")
        is False
    )


def test_memory_reserves_the_workers_declared_memory_resource(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    # One worker of two threads that declares MEMORY=200 (dask worker --resources MEMORY=200).
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                     resources={"MEMORY": 200}) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        spin = {"module": str(TEST_MODULES / "spin.wasm"), "timeout": 1, "retries": 0, "memory": 150}
        started = time.monotonic()
        by_id = run(tmp_path, client, [{"id": "a", **spin}, {"id": "b", **spin}])
        assert time.monotonic() - started >= 1.9  # two threads, but 150 + 150 MB > 200: one after the other
        assert {t["reason"] for t in by_id.values()} == {"timeout"}
        with pytest.raises(ClusterError, match=r"memory: 300 MB, but the largest Dask worker declares MEMORY=200"):
            run(tmp_path, client, [{"id": "c", **spin, "memory": 300}])


def test_an_unknown_backend_or_a_silent_scheduler_is_one_line() -> None:
    proc = cli("run", "dags/hello_fanout.yaml", "--backend", "dask:locl")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert "dask://HOST:PORT, dask:local" in proc.stderr


def test_a_worker_killed_mid_attempt_is_host_lost_and_the_task_runs_again(tmp_path: Path) -> None:
    import os
    import signal
    import threading

    import dask
    from distributed import Client, LocalCluster

    # allowed-failures 0: Dask gives a lost task up at once (KilledWorker) instead of rerunning it unseen
    # (its default is 3 reruns; either way the task ends at its own reason), so Bxthre3's path is what runs.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)  # the worker processes (their Nannies start new ones)
        spin = {"module": str(TEST_MODULES / "spin.wasm"), "timeout": 3, "retries": 0}

        def kill_the_busy_worker() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    time.sleep(0.5)  # well inside the attempt
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_the_busy_worker, daemon=True)
        killer.start()
        by_id = run(tmp_path, client, [{"id": "s", **spin}])
        killer.join(timeout=5)
    history = by_id["s"]["history"]
    assert [h["reason"] for h in history] == ["host_lost", "timeout"], history
    assert by_id["s"]["reason"] == "timeout"  # the rerun did not spend `retries: 0`


def test_the_python_apis_client_runs_on_a_dask_backend(tmp_path: Path) -> None:
    import bxthre3
    from bxthre3.common.errors import DagError

    dag = bxthre3.Dag("api")
    hello = dag.task("hello", GREET, args=["api"])
    dag.task("again", GREET, stdin=[hello])
    spin = bxthre3.Dag("spin")
    spin.task("spin", str(TEST_MODULES / "spin.wasm"), timeout=120)
    with bxthre3.Client(backend="dask:local", engine="wasm3") as client:
        twin = client.submit(dag)  # two DAGs with the same modules at once: one modules plugin, kept for both
        handle = client.submit(dag)
        assert twin.wait(timeout=60).ok
        status = handle.wait(timeout=60)
        assert status.ok and status.state == "succeeded"
        assert handle.results()["again"].text == "Hola, Hola, api!!\n"  # as on a LocalCluster
        assert sorted(t.id for t in handle.as_completed(timeout=10)) == ["again", "hello"]
        long = client.submit(spin)
        time.sleep(0.5)
        started = time.monotonic()
        assert long.cancel().state == "cancelled"
        assert time.monotonic() - started < 5
        with pytest.raises(ClusterError, match="retry is not available on --backend dask:local"):
            long.retry()
        verified = bxthre3.Dag("verified")
        verified.task("v", GREET, args=["x"], verify=2)
        with pytest.raises(DagError, match="verify=2"):
            client.submit(verified)


def test_workers_with_another_bxthre3_are_refused_before_any_task(
    tmp_path: Path, dask_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bxthre3

    real = bxthre3.__version__
    monkeypatch.setattr(bxthre3, "__version__", "9.9.9")  # this side; the workers answer with the real one
    with pytest.raises(ClusterError, match=rf"worker tcp://127\.0\.0\.1:\d+ has bxthre3 {real}, this is 9\.9\.9"):
        run(tmp_path, dask_client, [{"id": "t", "module": GREET, "inputs": ["x"]}])


def test_a_separate_scheduler_runs_the_dag_and_its_death_is_one_line(tmp_path: Path) -> None:
    """`dask://HOST:PORT` as users run it: a `dask scheduler` and a `dask worker` process (127.0.0.1 only);
    the DAG runs there, and when the scheduler dies under a running task `run` ends with one line, exit 3."""
    from tests.chaos_support import free_port

    port = free_port()
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(),
        ))  # fmt: skip
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}", "--host", "127.0.0.1",
             "--nthreads", "1", "--dashboard-address", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(),
        ))  # fmt: skip
        url = f"dask://127.0.0.1:{port}"
        proc = None
        for _ in range(40):  # the worker registers within a few seconds
            proc = cli("run", "dags/hello_fanout.yaml", "--json", "--backend", url)
            if proc.returncode == 0 or "has no workers" not in proc.stderr:
                break
            time.sleep(0.25)
        assert proc is not None and proc.returncode == 0, proc and proc.stderr
        assert json.loads(proc.stdout)["tasks"][-1]["output"] == "Hello, Bxthre3!\nHola, Bxthre3!\n"

        dag = write_dag(tmp_path, [{"id": "spin", "module": str(TEST_MODULES / "spin.wasm"), "timeout": 60}])
        running = subprocess.Popen(
            [sys.executable, "-m", "bxthre3", "run", str(dag), "--backend", url], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=subprocess_env(), cwd=REPO, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(3)  # the spin is running on the worker
        started[0].kill()
        out, err = running.communicate(timeout=60)
        assert running.returncode == 3, err
        assert "Traceback" not in err
        assert f"bxthre3: error: --backend {url}: the run stopped:" in err
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=30)


def test_a_local_cluster_on_dask_shares_one_dask_cluster_between_its_clients(tmp_path: Path) -> None:
    import bxthre3

    with pytest.raises(ClusterError, match=r"starts a cluster of its own: use dask:local or ray:local"):
        bxthre3.LocalCluster(backend="dask://10.0.0.5:8786")
    dag = bxthre3.Dag("twice")
    dag.task("hello", GREET, args=["dask"])
    with bxthre3.LocalCluster(hosts=2, backend="dask:local", engine="wasm3") as cluster:
        assert cluster.address == "dask:local"
        with pytest.raises(ClusterError, match="has no token"):
            _ = cluster.token
        first, second = cluster.client(), cluster.client()
        assert first.submit(dag).wait(timeout=60).ok
        first.close()  # the cluster and the other client go on
        handle = second.submit(dag)
        assert handle.wait(timeout=60).ok and handle.results()["hello"].text == "Hola, dask!\n"
    with pytest.raises(ClusterError, match="closed"):
        second.submit(dag)


def test_a_script_dask_cannot_re_import_gets_one_line_saying_why() -> None:
    """dask:local's workers start by re-importing the caller's __main__; from stdin that cannot work."""
    script = (
        "import bxthre3\n"
        "from bxthre3.common.errors import ClusterError\n"
        "try:\n"
        "    bxthre3.Client(backend='dask:local', engine='wasm3')\n"
        "except ClusterError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120,
                          env=subprocess_env(), cwd=REPO)  # fmt: skip
    assert "Dask could not start its worker processes" in proc.stdout, proc.stderr[-2000:]
    assert 'under `if __name__ == "__main__":`' in proc.stdout
