"""`bxthre3 controller --metrics-port`: Prometheus text, with values that move as a DAG runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bxthre3.addresses import Address
from bxthre3.client import ControllerClient
from bxthre3.dag_loader import load_dag
from tests.conftest import REPO, TEST_KEYS, HostProcesses, subprocess_env, wait_for
from tests.integration.test_cli import free_port


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(bxthre3_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+|NaN)$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


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
        for name in (
            'bxthre3_tasks{state="running"}', "bxthre3_hosts", "bxthre3_slots", "bxthre3_queue_depth",
            "bxthre3_retries_total", "bxthre3_dropped_frames_total", 'bxthre3_dags{state="succeeded"}',
            "bxthre3_task_duration_seconds_count", "bxthre3_tasks_succeeded_total",
        ):  # fmt: skip
            assert name in before, f"{name} missing from /metrics"
        assert before["bxthre3_hosts"] == 0 and before["bxthre3_task_duration_seconds_count"] == 0
        hosts.start(Address("127.0.0.1", port), "m1")
        dag_id = client.submit(load_dag(REPO / "dags" / "hello_fanout.yaml"))
        assert client.wait(dag_id, timeout=30)["state"] == "succeeded"
        time.sleep(0.3)  # one controller tick publishes the new numbers
        after = scrape(metrics_port)
        assert after["bxthre3_hosts"] == 1 and after["bxthre3_slots"] == 1
        assert after['bxthre3_tasks{state="succeeded"}'] == 4
        assert after['bxthre3_dags{state="succeeded"}'] == 1
        assert after["bxthre3_task_duration_seconds_count"] == 4
        assert after["bxthre3_tasks_succeeded_total"] == 4
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
