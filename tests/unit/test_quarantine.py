"""Quarantined devices in `status` (views) and which one `bxthre3 hosts trust DEVICE` means (resolve).

The scheduler's own tests cover when a device is quarantined; here its `quarantined` dict is filled
directly, as the journal restores it.
"""

from __future__ import annotations

import pytest

from bxthre3.client.render import print_hosts, print_status
from bxthre3.controller import views
from bxthre3.controller.quarantine import MAX_DEVICE_TEXT, resolve
from bxthre3.scheduler import DeviceTrusted, HostJoined, QuarantineRecord, Scheduler, SchedulerConfig

PHONE_A = "3f2a" + "0" * 28
PHONE_B = "9c01" + "1" * 28
TABLET = "3f2b" + "2" * 28
LAPTOP = "beef" + "3" * 28


def cluster() -> Scheduler:
    """Two quarantined phones of one name and a quarantined tablet; hosts on phone A and on a laptop."""
    s = Scheduler(SchedulerConfig(heartbeat_interval=1.0))
    s.handle(HostJoined("h1", "phone-1", 2, 128, 100.0, device="phone", device_id=PHONE_A))
    s.handle(HostJoined("h2", "phone-2", 1, 128, 100.0, device="phone", device_id=PHONE_A))
    s.handle(HostJoined("h3", "laptop-1", 4, 256, 100.0, device="laptop", device_id=LAPTOP))
    for device_id, name, since in ((PHONE_A, "phone", 90.0), (PHONE_B, "phone", 95.0), (TABLET, "tablet", 99.0)):
        reason = "output of dag-1/t7 disagreed with 2 devices"
        s.quarantined[device_id] = QuarantineRecord(device_id, name, since, 3, reason)
    s.hosts["h3"].speed = 1.23456
    return s


def test_status_marks_hosts_of_quarantined_devices_and_lists_the_devices() -> None:
    s = cluster()
    status = views.status_view(s, 100.5)
    by_node = {h["node_id"]: h for h in status["hosts"]}
    assert by_node["phone-1"]["quarantined"] and by_node["phone-1"]["state"] == "quarantined"
    assert by_node["phone-2"]["quarantined"] and by_node["phone-2"]["state"] == "quarantined"
    assert not by_node["laptop-1"]["quarantined"] and by_node["laptop-1"]["state"] == "idle"
    assert by_node["laptop-1"]["speed"] == 1.23 and by_node["phone-1"]["speed"] == 1.0
    assert [q["device_id"] for q in status["quarantined"]] == [PHONE_A, PHONE_B, TABLET]
    assert status["quarantined"][0] == {
        "device_id": PHONE_A,
        "device": "phone",
        "since": 90.0,
        "mismatches": 3,
        "reason": "output of dag-1/t7 disagreed with 2 devices",
        "node_ids": ["phone-1", "phone-2"],
    }
    assert status["quarantined"][1]["node_ids"] == []


def test_a_silent_host_reads_silent_even_when_quarantined() -> None:
    status = views.status_view(cluster(), 110.0)
    assert {h["state"] for h in status["hosts"]} == {"silent"}
    assert [h["quarantined"] for h in status["hosts"]] == [True, True, False]


def test_trusted_device_is_no_longer_listed_and_its_hosts_take_tasks() -> None:
    s = cluster()
    s.handle(DeviceTrusted(PHONE_A, 100.2))
    status = views.status_view(s, 100.5)
    assert [q["device_id"] for q in status["quarantined"]] == [PHONE_B, TABLET]
    assert not any(h["quarantined"] for h in status["hosts"]) and s.quarantine_changed


def test_status_without_quarantine_has_an_empty_list() -> None:
    s = Scheduler()
    s.handle(HostJoined("h1", "n1", 1, 64, 1.0, device_id=LAPTOP))
    status = views.status_view(s, 1.0)
    assert status["quarantined"] == [] and status["hosts"][0]["quarantined"] is False


@pytest.mark.parametrize(
    ("text", "device_id"),
    [(PHONE_A, PHONE_A), ("3f2a", PHONE_A), ("3f2a00", PHONE_A), ("9c01", PHONE_B), ("tablet", TABLET)],
)
def test_trust_resolves_an_id_a_unique_prefix_or_a_unique_name(text: str, device_id: str) -> None:
    s = cluster()
    record, error = resolve(s.quarantined, s.hosts.values(), text)
    assert record is not None and record.device_id == device_id and error == ""


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "phone",
            "device 'phone' is ambiguous: 2 quarantined devices are named phone (ids 3f2a0000…, 9c011111…); "
            "give the id",
        ),
        (
            "3f2",
            "device id prefix '3f2' is too short: give at least 4 characters of the id",
        ),
        (
            "laptop",
            "device 'laptop' is not quarantined (laptop beef3333…: its hosts get tasks); nothing to trust",
        ),
        (
            LAPTOP[:6],
            "device 'beef33' is not quarantined (laptop beef3333…: its hosts get tasks); nothing to trust",
        ),
        (
            "nope",
            "no quarantined device matches 'nope' by id, id prefix or name; quarantined: phone 3f2a0000…, "
            "phone 9c011111…, tablet 3f2b2222… (`bxthre3 status` lists them)",
        ),
        ("  ", "give a device id (4 or more characters of it) or name; `bxthre3 status` lists quarantined ones"),
        ("x" * (MAX_DEVICE_TEXT + 1), f"a device id or name is at most {MAX_DEVICE_TEXT} characters, not 129"),
        ("ph\x1b[2Jone", "no quarantined device matches 'ph\\x1b[2Jone' by id"),
    ],
)
def test_trust_refusals_say_what_matched_and_what_to_give(text: str, error: str) -> None:
    s = cluster()
    record, why = resolve(s.quarantined, s.hosts.values(), text)
    assert record is None and why.startswith(error) and "\n" not in why


def test_a_prefix_of_two_quarantined_ids_is_ambiguous() -> None:
    s = cluster()
    s.quarantined[PHONE_A[:8] + "f" * 24] = QuarantineRecord(PHONE_A[:8] + "f" * 24, "watch", 1.0, 3, "r")
    record, why = resolve(s.quarantined, s.hosts.values(), "3f2a0000")
    assert record is None
    assert why == (
        "device id prefix '3f2a0000' is ambiguous: 2 quarantined devices' ids start with it (3f2a0000…, 3f2a0000…); "
        "give more of the id"
    )


def test_nothing_quarantined() -> None:
    s = Scheduler()
    assert resolve(s.quarantined, [], "phone") == (
        None,
        "no device matches 'phone', and no device is quarantined; nothing to trust",
    )


def test_status_text_marks_quarantined_hosts_and_lists_the_devices(capsys: pytest.CaptureFixture[str]) -> None:
    status = views.status_view(cluster(), 100.5)
    print_status(status)
    out = capsys.readouterr().out
    assert "quarantined devices (no tasks)" in out and out.count(" quarantined ") >= 2
    assert PHONE_B in out and "tablet" in out and "disagreed with 2 devices" in out
    assert "bxthre3 hosts trust DEVICE" in out and "1.23" in out
    print_hosts(views.status_view(Scheduler(), 1.0))
    out = capsys.readouterr().out
    assert "hosts" in out and "quarantined" not in out
