"""Three devices with ONE hostname (cloned VMs, phones of one model) all stay registered while a DAG runs.

Each device is a network namespace (tests/netns_support.py, names ``b3id-<hex>-<role>``) whose node
manager also runs in a UTS namespace of its own with the hostname ``twin``, and keeps its own state
directory (so its own device id). Before device ids, all three named their host ``twin-1``: one
registered, the others were refused and restarted every second, and ``status`` counted one device.

The controller runs in the ``ctl`` namespace; the test asks it through one long-lived client process
in that namespace (a CLI call per status would cost half a second each on a busy machine).

Needs root, ``ip netns`` and ``unshare``; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bxthre3.client.connection import ControllerClient
from bxthre3.node.device_identity import display_name
from tests.chaos_support import interior_pixels
from tests.conftest import WASM_MODULES, RunningController, subprocess_env
from tests.netns_support import NetnsLan, remove_stale, serve_or_skip

pytestmark = pytest.mark.timeout(90)

PREFIX = "b3id-"
DEVICES = ("d1", "d2", "d3")
HOSTNAME = "twin"
PORT = 5000

CLIENT = """
import json, os, sys
from pathlib import Path
from bxthre3.wire.addresses import Address
from bxthre3.client.connection import ControllerClient
from bxthre3.dag.yaml_loader import load_dag
from bxthre3.wire.security import CurveKeys

client = ControllerClient(Address("127.0.0.1", int(sys.argv[1])), timeout=5,
                          keys=CurveKeys.from_token(os.environ["BXTHRE3_TOKEN"]))
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    try:
        if command == "status":
            out = client.status()
        elif command == "submit":
            out = {"dag_id": client.submit(load_dag(Path(arg)))}
        elif command == "results":
            out = client.results(arg, with_output=False)
        else:
            break
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out), flush=True)
"""
"""Reads one command per line (status, submit PATH, results DAG_ID) and prints each reply as one JSON line."""


@pytest.fixture
def lan() -> Any:
    if shutil.which("unshare") is None:
        pytest.skip("util-linux `unshare` is not installed (UTS namespaces give the devices one hostname)")
    try:
        remove_stale(prefix=PREFIX)
        net = NetnsLan(("ctl", *DEVICES), prefix=PREFIX)
    except Exception as e:  # pragma: no cover - environment dependent
        pytest.skip(f"network namespaces unavailable: {e}")
    yield from serve_or_skip(net)


class Client:
    """The long-lived client process in the controller's namespace; every answer bounded in time."""

    def __init__(self, net: NetnsLan) -> None:
        self.proc = net.popen(
            "ctl", [sys.executable, "-c", CLIENT, str(PORT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=subprocess_env(), text=True, bufsize=1,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def ask(self, command: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"no answer to {command!r} within {timeout} s") from None


def poll(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def spread_dag(path: Path, tasks: int) -> None:
    """Independent tasks of ~0.1 s each (an interior mandel pixel never escapes), enough for three hosts."""
    x, y = interior_pixels(64)[0]
    lines = ["name: twins", "defaults: {timeout: 60, retries: 0}", "tasks:"]
    for i in range(tasks):
        lines += [f"  - id: t{i}", f"    module: {WASM_MODULES / 'mandel_tile.wasm'}",
                  f"    inputs: ['64', '64', '{x}', '{y}', '1', '1', '{5_000_000 + i}']"]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def test_three_devices_with_one_hostname_all_stay_registered_while_a_dag_runs(lan: NetnsLan, tmp_path: Path) -> None:
    started = time.monotonic()
    py = [sys.executable, "-m", "bxthre3"]
    env = subprocess_env()
    env.pop("BXTHRE3_DEVICE_ID", None)
    lan.popen(
        "ctl",
        [*py, "controller", "--host", "0.0.0.0", "--port", str(PORT), "--state-dir", str(tmp_path / "ctl"),
         "--heartbeat", "0.25", "--liveness", "4", "--no-beacon", "--log-file", str(tmp_path / "controller.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    for dev in DEVICES:
        state = tmp_path / f"{dev}-state"  # its own XDG_STATE_HOME: its own device id, host keys and logs
        dev_env = {**env, "XDG_STATE_HOME": str(state), "BXTHRE3_LOG_DIR": str(tmp_path / f"{dev}-logs")}
        nm = [*py, "node-manager", "--controller", f"{lan.ip['ctl']}:{PORT}", "--ram-per-node", "64",
              "--min-free-ram", "0", "--max-nodes", "1", "--log-file", str(tmp_path / f"nm_{dev}.log")]  # fmt: skip
        # A UTS namespace of its own with the one shared hostname; unshare and sh exec, so the PID is the manager's.
        same_name = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', HOSTNAME, *nm]
        lan.popen(dev, same_name, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                  env=dev_env)  # fmt: skip
    client = Client(lan)
    try:
        status = poll(lambda: (s := client.ask("status")).get("totals", {}).get("hosts") == 3 and s, 30,
                      "three hosts to register")  # fmt: skip
        kept = {dev: (tmp_path / f"{dev}-state" / "bxthre3" / "device_id").read_text().strip() for dev in DEVICES}
        assert len(set(kept.values())) == 3, kept
        expected = {f"{HOSTNAME}-{device_id[:6]}-1": device_id for device_id in kept.values()}
        hosts = {h["node_id"]: h for h in status["hosts"]}
        assert set(hosts) == set(expected), (sorted(hosts), expected)
        assert all(h["device"] == HOSTNAME and h["device_id"] == expected[n] for n, h in hosts.items()), hosts
        assert status["totals"]["devices"] == 3
        assert set(status["devices"]) == set(kept.values())
        assert all(d["name"] == HOSTNAME and d["hosts"] == 1 for d in status["devices"].values())

        spread_dag(tmp_path / "twins.yaml", 9)
        dag_id = client.ask(f"submit {tmp_path / 'twins.yaml'}")["dag_id"]
        uptime = {n: h["uptime_s"] for n, h in hosts.items()}
        polls = 0
        deadline = time.monotonic() + 60
        while True:  # every host stays, never registered again (its uptime would restart), until the DAG ends
            status = client.ask("status")
            polls += 1
            now_hosts = {h["node_id"]: h["uptime_s"] for h in status["hosts"]}
            assert set(now_hosts) == set(expected), f"hosts changed during the DAG: {sorted(now_hosts)}"
            assert all(now_hosts[n] >= uptime[n] for n in expected), f"a host registered again: {now_hosts} {uptime}"
            assert status["totals"]["devices"] == 3, status["devices"]
            uptime = now_hosts
            dag = next(d for d in status["dags"] if d["dag_id"] == dag_id)
            if dag["state"] != "running":
                break
            assert time.monotonic() < deadline, f"DAG still running after 60 s: {dag}"
            time.sleep(0.1)
        assert dag["state"] == "succeeded", dag
        ran_on = {t["node_id"] for t in client.ask(f"results {dag_id}")["tasks"]}
        assert ran_on == set(expected), f"the DAG ran on {sorted(ran_on)}, not on all three devices"
        controller_log = (tmp_path / "controller.log").read_text(errors="replace")
        assert "refused a registration" not in controller_log and "removed:" not in controller_log, controller_log
        for dev in DEVICES:
            nm_log = (tmp_path / f"nm_{dev}.log").read_text(errors="replace")
            assert "exited unexpectedly" not in nm_log, nm_log
        print(f"3 devices named {HOSTNAME!r}, {len(expected)} hosts, DAG over all of them, {polls} status polls: "
              f"{time.monotonic() - started:.2f} s")  # fmt: skip
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        raise


# ---------------------------------------------------------------------- a clone of a state directory


def _node_manager(controller: RunningController, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """A real `bxthre3 node-manager` of the "device" whose XDG_STATE_HOME is ``state`` (one host); its
    hosts' logs go beside ``log``."""
    env = {**subprocess_env(), "XDG_STATE_HOME": str(state)}
    env.pop("BXTHRE3_DEVICE_ID", None)
    cmd = [sys.executable, "-m", "bxthre3", "node-manager", "--controller", str(controller.address),
           "--ram-per-node", "64", "--min-free-ram", "0", "--max-nodes", "1", "--log-file", str(log)]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the manager stops its hosts on the way out
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_a_clone_of_a_state_dir_is_told_the_one_command_that_fixes_it(
    controller: RunningController, client: ControllerClient, tmp_path: Path
) -> None:
    """Device B is a copy of device A's state directory (its device id and host keys): their hosts
    take the same node id from each other, and the one put out says `bxthre3 device-id --new`; run on
    B, that command gives B its own id, and B's host registers under a node id of its own."""
    a_state, b_state = tmp_path / "a", tmp_path / "b"
    procs = [_node_manager(controller, a_state, a_state / "logs" / "nm.log")]
    try:
        poll(lambda: client.status()["totals"]["hosts"] == 1, 20, "device A's host")
        a_id = (a_state / "bxthre3" / "device_id").read_text().strip()
        node_id = f"{display_name()}-{a_id[:6]}-1"
        shutil.copytree(a_state / "bxthre3", b_state / "bxthre3")  # the clone, made after A's first start
        procs.append(_node_manager(controller, b_state, b_state / "logs" / "nm.log"))

        def said() -> str:
            # What the host put out printed last (its node manager repeats it in its log at its next check).
            lines = [line for state in (a_state, b_state) if (state / "logs" / f"host_{node_id}.stderr").exists()
                     for line in (state / "logs" / f"host_{node_id}.stderr").read_text(errors="replace").splitlines()
                     if line.startswith("bxthre3: error:")]  # fmt: skip
            return lines[0] if lines else ""

        line = poll(said, 20, "the host put out to say why")
        assert "bxthre3 device-id --new" in line and a_id[:6] in line and "--node-id" not in line, line

        _stop(procs.pop())
        env = {**subprocess_env(), "XDG_STATE_HOME": str(b_state)}
        renewed = subprocess.run([sys.executable, "-m", "bxthre3", "device-id", "--new"], capture_output=True,
                                 text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
        b_id = renewed.stdout.strip()
        assert renewed.returncode == 0 and b_id[:6] != a_id[:6], renewed
        procs.append(_node_manager(controller, b_state, b_state / "logs" / "nm2.log"))
        b_node = f"{display_name()}-{b_id[:6]}-1"

        def b_registered() -> dict[str, Any] | None:
            status = client.status()
            return status if b_node in {h["node_id"] for h in status["hosts"]} else None

        status = poll(b_registered, 20, "B's host under its own node id")
        assert status["devices"][b_id]["node_ids"] == [b_node]
    finally:
        for proc in procs:
            _stop(proc)
