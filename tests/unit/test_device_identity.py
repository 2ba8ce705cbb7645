"""Device identity: the kept device id, node ids derived from it, devices counted by it, and the one
line a host prints when its node id is taken, naming the flag of the command that started it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bxthre3.cli import main
from bxthre3.common.errors import Bxthre3Error, ClusterError
from bxthre3.controller import views
from bxthre3.host.module_cache import ModuleCache
from bxthre3.host.session import Host, HostConfig
from bxthre3.node import device_identity as di
from bxthre3.node.manager import NodeManager, ScalingPolicy
from bxthre3.scheduler import HostJoined, RefuseHost, Scheduler, SchedulerConfig
from bxthre3.wire import protocol
from bxthre3.wire.addresses import Address
from bxthre3.wire.security import host_key_pin

ID_A, ID_B = "3fa2c1" + "0" * 26, "9b07e4" + "1" * 26


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv(di.DEVICE_ID_ENV, raising=False)
    return tmp_path / "state" / "bxthre3"


# ---------------------------------------------------------------------- the kept id


def test_the_device_id_is_made_once_and_kept_in_the_state_dir(state_home: Path) -> None:
    first = di.load_or_create_device_id()
    assert di.DEVICE_ID_RE.match(first) and len(first) == 32
    assert di.device_id_path() == state_home / "device_id"
    assert (state_home / "device_id").read_text() == first + "\n"
    assert di.load_or_create_device_id() == first
    assert not [p for p in state_home.iterdir() if p.name != "device_id"], "a temporary file was left behind"


def test_processes_starting_at_once_agree_on_one_id(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "device_id"
    got: list[str] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        got.append(di.load_or_create_device_id(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 8 and len(set(got)) == 1 and path.read_text().strip() == got[0]


def test_a_damaged_id_file_is_one_line_naming_the_file_and_the_fix(state_home: Path) -> None:
    state_home.mkdir(parents=True)
    (state_home / "device_id").write_text("not an id!\n")
    with pytest.raises(Bxthre3Error) as err:
        di.load_or_create_device_id()
    text = str(err.value)
    assert str(state_home / "device_id") in text and "bxthre3 device-id --new" in text and "\n" not in text


def test_flag_then_environment_then_file(state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = di.load_or_create_device_id()
    assert di.resolve_device_id(None) == kept
    monkeypatch.setenv(di.DEVICE_ID_ENV, ID_B)
    assert di.resolve_device_id(None) == ID_B
    assert di.resolve_device_id(ID_A) == ID_A
    with pytest.raises(Bxthre3Error, match=r"^--device-id: .*not 'NOPE'"):
        di.resolve_device_id("NOPE")
    monkeypatch.setenv(di.DEVICE_ID_ENV, "a/b")
    with pytest.raises(Bxthre3Error, match=r"^\$BXTHRE3_DEVICE_ID: "):
        di.resolve_device_id(None)


def test_device_id_command_prints_the_kept_id_and_new_renews_it(
    state_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["device-id"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["device-id"]) == 0 and capsys.readouterr().out.strip() == first
    assert main(["device-id", "--new"]) == 0
    out = capsys.readouterr()
    renewed = out.out.strip()
    assert di.DEVICE_ID_RE.match(renewed) and renewed != first and f"was {first}" in out.err
    assert (state_home / "device_id").read_text().strip() == renewed
    (state_home / "device_id").write_text("garbage!")
    assert main(["device-id"]) == 2  # damaged: one line, and --new repairs it
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["device-id", "--new"]) == 0


def test_a_bad_device_id_flag_is_one_line_on_host_and_node_manager(
    state_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["host"], ["node-manager"]):
        log = ["--log-file", str(tmp_path / "role.log")]
        assert main([*command, "--controller", "127.0.0.1:9", "--device-id", "Bad_Id", *log]) == 2
        err = capsys.readouterr().err
        assert err.startswith("bxthre3: error: --device-id: ") and err.count("\n") == 1, err


# ---------------------------------------------------------------------- node ids from it


def test_default_node_ids_carry_the_hostname_and_six_of_the_device_id() -> None:
    assert di.node_prefix(ID_A, "twin") == "twin-3fa2c1"
    assert di.node_prefix(ID_A, "twin") != di.node_prefix(ID_B, "twin")
    assert di.default_host_id(ID_A, 4242, "twin") == "twin-3fa2c1-4242"
    assert di.display_name("my box!.local") == "my-box-.local"
    assert di.display_name("") == "device" and di.display_name("---") == "device"
    assert len(di.node_prefix(ID_A, "x" * 300)) == di.MAX_NAME_LENGTH + 7


def _manager(name: str | None, device_id: str, tmp_path: Path) -> NodeManager:
    return NodeManager(
        Address("127.0.0.1", 5000), ScalingPolicy(max_nodes=2), name=name, device_id=device_id, log_dir=tmp_path
    )


def test_node_managers_of_one_hostname_name_their_hosts_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "twin")
    a, b = _manager(None, ID_A, tmp_path), _manager(None, ID_B, tmp_path)
    assert (a._id_maker()(), b._id_maker()()) == ("twin-3fa2c1-1", "twin-9b07e4-1")
    assert a.name == b.name == "twin"  # the name stays for people
    assert a.snapshot()["device_id"] == ID_A
    named = _manager("lab", ID_A, tmp_path)
    make = named._id_maker()
    assert (make(), make()) == ("lab-1", "lab-2")  # a chosen --device-name is the prefix as given


def test_hosts_of_a_node_manager_carry_its_device_id_and_its_fix(tmp_path: Path) -> None:
    from bxthre3.node.manager import _ManagedHost

    cmd = _manager(None, ID_A, tmp_path)._command(_ManagedHost("twin-3fa2c1-1", 1))
    assert cmd[cmd.index("--device-id") + 1] == ID_A
    hint = cmd[cmd.index("--duplicate-hint") + 1]
    assert "bxthre3 device-id --new" in hint and "--device-id" in hint and "--node-id" not in hint
    cmd = _manager("lab", ID_A, tmp_path)._command(_ManagedHost("lab-1", 1))
    assert "--device-name" in cmd[cmd.index("--duplicate-hint") + 1]


# ---------------------------------------------------------------------- the duplicate message


def _refused(hint: str | None, reject: protocol.Reject, tmp_path: Path) -> str:
    extra = {"duplicate_hint": hint} if hint is not None else {}
    config = HostConfig(node_id="twin-3fa2c1-1", device_id=ID_A, **extra)
    host = Host(Address("127.0.0.1", 5000), config, cache=ModuleCache(tmp_path / "cache"))
    try:
        with pytest.raises(ClusterError) as err:
            host._on_message(protocol.decode(protocol.encode(reject)))
    finally:
        host.context.term()  # never connected: no socket, no executor started
    return str(err.value)


def test_a_taken_node_id_is_one_line_naming_the_flag_of_that_command(tmp_path: Path) -> None:
    s = Scheduler(SchedulerConfig())
    s.handle(HostJoined("conn-1", "twin-3fa2c1-1", 1, 128, 0.0, key=host_key_pin(b"a" * 32), device_id=ID_A))
    [refusal] = s.handle(HostJoined("conn-2", "twin-3fa2c1-1", 1, 128, 1.0, key=host_key_pin(b"b" * 32)))
    assert isinstance(refusal, RefuseHost) and "--" not in refusal.duplicate
    reject = protocol.Reject(refusal.reason, refusal.duplicate)

    by_hand = _refused(None, reject, tmp_path)
    assert by_hand.count("--node-id") == 1 and "held by another live host" in by_hand and "\n" not in by_hand
    managed = _refused(di.node_manager_hint(None, ID_A), reject, tmp_path)
    assert "bxthre3 device-id --new" in managed and "--node-id" not in managed and "\n" not in managed
    named = _refused(di.node_manager_hint("lab", ID_A), reject, tmp_path)
    assert "--device-name" in named and "--node-id" not in named
    # From a controller without `duplicate` (older), the reason is said as it is.
    assert _refused(di.node_manager_hint(None, ID_A), protocol.Reject("bad slots"), tmp_path).endswith("bad slots")


def test_register_and_reject_stay_compatible_with_older_peers() -> None:
    reg = protocol.Register("n", 1, 128, "linux", "wasm3", key=b"k" * 32, device_id=ID_A)
    assert protocol.decode(protocol.encode(reg)) == reg
    wire = protocol.Register("n", 1, 128, "linux", "wasm3", key=b"k" * 32).to_wire()[:-1]  # no device_id
    import msgpack

    assert protocol.decode(msgpack.packb(wire, use_bin_type=True)).device_id == ""
    assert protocol.decode(msgpack.packb([2, "reject", "why"], use_bin_type=True)) == protocol.Reject("why", "")
    with pytest.raises(protocol.ProtocolError, match="device_id"):
        protocol.decode(msgpack.packb([*reg.to_wire()[:-1], 7], use_bin_type=True))


# ---------------------------------------------------------------------- devices counted by id


def test_status_counts_devices_by_id_and_shows_their_name() -> None:
    s = Scheduler(SchedulerConfig())
    for n, (node, device_id) in enumerate([("twin-3fa2c1-1", ID_A), ("twin-3fa2c1-2", ID_A), ("twin-9b07e4-1", ID_B)]):
        s.handle(HostJoined(f"c{n}", node, 1, 128, 0.0, device="twin", device_id=device_id, key=f"k{n}"))
    s.handle(HostJoined("old", "legacy-1", 1, 128, 0.0, device="legacy", key="k9"))  # a host sending no id
    status = views.status_view(s, 0.0)
    assert status["totals"]["devices"] == 3
    assert set(status["devices"]) == {ID_A, ID_B, "legacy"}
    assert status["devices"][ID_A]["hosts"] == 2 and status["devices"][ID_A]["name"] == "twin"
    assert status["devices"][ID_B]["node_ids"] == ["twin-9b07e4-1"] and status["devices"][ID_B]["name"] == "twin"
    assert {h["node_id"]: h["device_id"] for h in status["hosts"]}["legacy-1"] == ""


def test_the_node_manager_logs_the_line_its_host_exited_with(tmp_path: Path) -> None:
    from bxthre3.node.manager import _last_error_line

    path = tmp_path / "host_twin-3fa2c1-1.stderr"
    path.write_text(
        "x" * 10_000 + "\nINFO registered\nbxthre3: error: controller 1.2.3.4:5000 refused this host: taken\n"
    )
    assert _last_error_line(path) == "controller 1.2.3.4:5000 refused this host: taken"
    assert _last_error_line(path, start=path.stat().st_size) == ""  # an earlier run's words are not this run's
    assert _last_error_line(tmp_path / "missing") == ""


def test_the_tui_host_form_defaults_to_a_stable_id_of_this_device(state_home: Path) -> None:
    kept = di.load_or_create_device_id()
    assert di.form_host_id({}) == f"{di.node_prefix(kept)}-host" == di.form_host_id({})
    assert di.form_host_id({di.DEVICE_ID_ENV: ID_B}) == f"{di.node_prefix(ID_B)}-host"
    (state_home / "device_id").write_text("damaged!")
    assert di.form_host_id({}).startswith(di.display_name() + "-")  # the form still opens
