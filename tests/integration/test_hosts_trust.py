"""`bxthre3 hosts` and `bxthre3 hosts trust DEVICE` against a real controller whose journal holds quarantined
devices (the scheduler's tests cover how a device gets there; here the journal is prepared by hand).

The controller is restarted on the same state dir at the end: a trusted device stays trusted, the
others stay quarantined.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from bxthre3.cli import main
from bxthre3.client.connection import ControllerClient
from bxthre3.controller.server import Controller
from bxthre3.controller.store import Store
from bxthre3.scheduler import QuarantineRecord, Scheduler, SchedulerConfig
from bxthre3.wire.addresses import Address
from tests.conftest import TEST_KEYS, HostProcesses, wait_for

PHONE_A = "3f2a" + "a" * 28
PHONE_B = "9c01" + "b" * 28
TABLET = "7777" + "c" * 28
LAPTOP = "beef" + "d" * 28
REASON = "output of dag-1/t7 disagreed with 2 devices"


class JournalledController:
    """A controller on a state dir (the shared fixture's keeps its journal in memory)."""

    def __init__(self, state_dir: Path) -> None:
        self.context = zmq.Context()
        config = SchedulerConfig(heartbeat_interval=0.25, liveness=4)
        self.controller = Controller(
            host="127.0.0.1", port=0, config=config, context=self.context, keys=TEST_KEYS, state_dir=state_dir
        )
        self.address = Address("127.0.0.1", self.controller.bind())
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def client(self) -> ControllerClient:
        return ControllerClient(self.address, timeout=10.0, context=self.context, keys=TEST_KEYS)

    def close(self) -> None:
        if self.stop.is_set():
            return  # closed already (the test restarts it)
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.controller.close()
        self.context.destroy(linger=0)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A journal holding three quarantined devices: two phones of one name, and a tablet."""
    folder = tmp_path / "state"
    s = Scheduler()
    for device_id, name, since in ((PHONE_A, "phone", 1000.0), (PHONE_B, "phone", 1001.0), (TABLET, "tablet", 1002.0)):
        s.quarantined[device_id] = QuarantineRecord(device_id, name, since, 3, REASON)
    s.quarantine_changed = True
    store = Store(folder)
    store.flush(s)
    store.close()
    return folder


@pytest.fixture
def running(state_dir: Path) -> Iterator[JournalledController]:
    c = JournalledController(state_dir)
    yield c
    c.close()


def cli(capsys: pytest.CaptureFixture[str], address: Address, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--controller", str(address)])
    out, err = capsys.readouterr()
    return code, out, err


def test_hosts_trust_lifts_a_quarantine_and_it_survives_a_restart(
    state_dir: Path, running: JournalledController, hosts: HostProcesses, capsys: pytest.CaptureFixture[str]
) -> None:
    addr = running.address
    hosts.start(addr, "phone-1", extra=("--device", "phone", "--device-id", PHONE_A))
    hosts.start(addr, "laptop-1", extra=("--device", "laptop", "--device-id", LAPTOP))
    with running.client() as client:
        wait_for(lambda: client.status()["totals"]["hosts"] == 2, 20, "both hosts")

    code, out, _ = cli(capsys, addr, "status", "--json")
    status = json.loads(out)
    assert code == 0 and [q["device_id"] for q in status["quarantined"]] == [PHONE_A, PHONE_B, TABLET]
    assert status["quarantined"][0]["node_ids"] == ["phone-1"]
    by_node = {h["node_id"]: h for h in status["hosts"]}
    assert by_node["phone-1"]["quarantined"] and by_node["phone-1"]["state"] == "quarantined"
    assert not by_node["laptop-1"]["quarantined"] and by_node["laptop-1"]["speed"] == 1.0

    code, out, _ = cli(capsys, addr, "hosts")
    assert code == 0 and "quarantined devices (no tasks)" in out and PHONE_B in out and "laptop-1" in out
    code, out, _ = cli(capsys, addr, "hosts", "list", "--json")
    assert code == 0 and set(json.loads(out)) == {"format", "hosts", "devices", "quarantined"}

    # Refusals: one line on stderr, exit code 3 (a refused request), nothing trusted.
    for text, error in [
        ("phone", "device 'phone' is ambiguous: 2 quarantined devices are named phone (ids 3f2aaaaa…, 9c01bbbb…)"),
        ("laptop", "device 'laptop' is not quarantined (laptop beefdddd…: its hosts get tasks); nothing to trust"),
        ("nope", "no quarantined device matches 'nope' by id, id prefix or name; quarantined: phone 3f2aaaaa…"),
        ("3f", "device id prefix '3f' is too short: give at least 4 characters of the id"),
    ]:
        code, out, err = cli(capsys, addr, "hosts", "trust", text)
        assert code == 3 and out == "" and err.startswith(f"bxthre3: error: {error}") and err.count("\n") == 1, err

    code, out, _ = cli(capsys, addr, "hosts", "trust", "3f2a")
    assert code == 0
    assert out == (
        f"trusted device phone ({PHONE_A}): its 1 host(s) (phone-1) get tasks again; it was quarantined after "
        f"3 mismatch(es), the last: {REASON}\n"
    )
    code, out, err = cli(capsys, addr, "hosts", "trust", PHONE_A)
    assert code == 3 and "is not quarantined (phone 3f2aaaaa…" in err
    # The other phone is now the only quarantined one of that name; --json prints the reply.
    code, out, _ = main(["hosts", "--controller", str(addr), "trust", "phone", "--json"]), *capsys.readouterr()
    assert code == 0 and json.loads(out)["device_id"] == PHONE_B and json.loads(out)["node_ids"] == []

    with running.client() as client:
        status = client.status()
    assert [q["device_id"] for q in status["quarantined"]] == [TABLET]
    assert not any(h["quarantined"] for h in status["hosts"])

    running.close()
    again = JournalledController(state_dir)
    try:
        with again.client() as client:
            assert [q["device_id"] for q in client.status()["quarantined"]] == [TABLET]
        assert list(again.controller.scheduler.quarantined) == [TABLET]
    finally:
        again.close()


def test_a_trust_request_with_a_bad_value_gets_one_line(
    running: JournalledController, capsys: pytest.CaptureFixture[str]
) -> None:
    """The controller trusts no client: a too-long or empty device gets a reply saying so, and it carries on."""
    code, _, err = cli(capsys, running.address, "hosts", "trust", "x" * 500)
    assert code == 3 and "a device id or name is at most 128 characters, not 500" in err
    code, _, err = cli(capsys, running.address, "hosts", "trust", "")
    assert code == 3 and "give a device id" in err
    code, _, err = cli(capsys, running.address, "hosts", "trust", "tab\x1b[31mlet")
    assert code == 3 and "\x1b" not in err and "tab\\x1b[31mlet" in err
    code, out, _ = cli(capsys, running.address, "hosts", "trust", "tablet")
    assert code == 0 and "trusted device tablet" in out


def test_the_controller_log_tells_of_each_device_quarantined_once(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The scheduler is pure and logs nothing: the controller says which device went into quarantine,
    once, at the flush after it did, and at start which ones still are."""
    controller = Controller(host="127.0.0.1", port=0, keys=TEST_KEYS, state_dir=state_dir)
    try:
        with caplog.at_level("WARNING", logger="bxthre3.controller"):
            controller.open_state()
            [start] = [r.getMessage() for r in caplog.records]
            assert start.startswith("3 device(s) still quarantined: 'phone' (3f2a") and "hosts trust" in start
            caplog.clear()
            s = controller.scheduler
            s.quarantined[LAPTOP] = QuarantineRecord(LAPTOP, "laptop", 2000.0, 4, REASON)
            s.quarantine_changed = True
            assert controller._flush() and not s.quarantine_changed
            s.quarantine_changed = True  # changed again, nothing new: no second line
            assert controller._flush()
        assert [r.getMessage() for r in caplog.records] == [
            f"device 'laptop' ({LAPTOP}) quarantined after 4 mismatch(es): {REASON}; its hosts get no tasks "
            "until `bxthre3 hosts trust DEVICE`"
        ]
    finally:
        controller.close()
    fresh = Scheduler()
    Store(state_dir).load(fresh, 3000.0)
    assert sorted(fresh.quarantined) == sorted([PHONE_A, PHONE_B, TABLET, LAPTOP])
