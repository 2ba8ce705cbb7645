"""`bxthre3 controller --metrics-port`: Prometheus text, with values that move as a DAG runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bxthre3 import __version__
from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.wire.addresses import Address
from tests.conftest import REPO, TEST_KEYS, TEST_MODULES, HostProcesses, subprocess_env, wait_for
from tests.integration.test_cli import free_port


def scrape_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def scrape(port: int) -> dict[str, float]:
    values = {}
    for line in scrape_text(port).splitlines():
        m = re.match(r"^((?:bxthre3|process)_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+|NaN)$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def counter_names(text: str) -> list[str]:
    """The sample names of every counter family in a scrape (``# TYPE <family> counter``)."""
    lines = text.splitlines()
    families = {
        line.split()[2].removesuffix("_total")
        for line in lines
        if line.startswith("# TYPE ") and line.endswith(" counter")
    }
    names = {line.split("{")[0].split()[0] for line in lines if line and not line.startswith("#")}
    return sorted(n for n in names if n.removesuffix("_total").removesuffix("_created") in families)


def test_metrics_endpoint_serves_cluster_numbers(tmp_path: Path, hosts: HostProcesses) -> None:
    port, metrics_port = free_port(), free_port()
    controller = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "controller", "--host", "127.0.0.1", "--port", str(port),
         "--state-dir", str(tmp_path / "state"), "--metrics-port", str(metrics_port), "--heartbeat", "0.25"],
        env=subprocess_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = ControllerClient(Address("127.0.0.1", port), timeout=5, keys=TEST_KEYS)
        wait_for(lambda: _up(metrics_port), 20, "the metrics endpoint")
        before = scrape(metrics_port)
        text = scrape_text(metrics_port)
        for name in (
            'bxthre3_tasks{state="running"}', "bxthre3_hosts", "bxthre3_slots", "bxthre3_queue_depth",
            "bxthre3_task_retries_total", "bxthre3_dropped_frames_total", 'bxthre3_dags{state="succeeded"}',
            "bxthre3_tasks_succeeded_total", "process_resident_memory_bytes", "process_cpu_seconds_total",
        ):  # fmt: skip
            assert name in before, f"{name} missing from /metrics"
        counters = counter_names(text)
        assert "bxthre3_task_retries_total" in counters and "process_cpu_seconds_total" in counters
        odd = [n for n in counters if not n.endswith("_total") or not n.startswith(("bxthre3_", "process_"))]
        assert odd == [], "counters are bxthre3_..._total (or the standard process_..._total)"
        assert before["bxthre3_hosts"] == 0 and before["process_resident_memory_bytes"] > 0
        assert before[f'bxthre3_build_info{{engine="{_engine()}",version="{__version__}"}}'] == 1
        assert "bxthre3_attempt_duration_seconds_count" not in text, "no attempt ended yet"
        hosts.start(Address("127.0.0.1", port), "m1")
        dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
        assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
        failing = tmp_path / "fails.yaml"
        failing.write_text(
            f"name: fails\ntasks:\n  - id: bad\n    module: {TEST_MODULES / 'exit3.wasm'}\n    retries: 0\n"
        )
        assert client.wait(client.submit(load_dag(failing)), timeout=30)["state"] == "failed"
        time.sleep(0.3)  # one controller tick publishes the new numbers
        after = scrape(metrics_port)
        assert after["bxthre3_hosts"] == 1 and after["bxthre3_slots"] == 1
        assert after['bxthre3_tasks{state="succeeded"}'] == 4
        assert after['bxthre3_dags{state="succeeded"}'] == 1
        assert after["bxthre3_tasks_succeeded_total"] == 4
        assert after['bxthre3_tasks_failed_total{reason="exit_code"}'] == 1
        assert after["bxthre3_task_retries_total"] == 0
        engine = os.environ.get("BXTHRE3_ENGINE", "wasm3")  # what the test hosts run
        attempts = 'bxthre3_attempt_duration_seconds_count{{engine="{}",outcome="{}"}}'
        assert after[attempts.format(engine, "succeeded")] == 4
        assert after[attempts.format(engine, "exit_code")] == 1, "failed attempts count too"
        client.close()
    finally:
        controller.terminate()
        controller.wait(10)


def _up(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False


def _engine() -> str:
    from bxthre3.wasm.choice import AUTO, resolve

    return resolve(AUTO)
