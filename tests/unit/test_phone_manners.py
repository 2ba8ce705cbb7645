"""Phone manners: pause on low battery (unplugged) or heat, resume with hysteresis; the battery read
never hangs the node manager."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bxthre3.node.phone_manners import (
    BatteryReading,
    MannersPolicy,
    PhoneManners,
    decide,
    parse_battery_status,
    read_battery,
)

POLICY = MannersPolicy()


def r(pct: int | None = 80, plugged: bool | None = False, temp: float | None = 30.0) -> BatteryReading:
    return BatteryReading(pct, plugged, temp)


def test_low_battery_pauses_unplugged_and_resumes_at_30_or_on_the_charger() -> None:
    assert decide(r(25), "", POLICY) == ""
    reason = decide(r(19), "", POLICY)
    assert reason == "battery 19%, unplugged (pauses below 20%)"
    assert decide(r(19, plugged=True), "", POLICY) == "", "on the charger it may work"
    assert decide(r(25), reason, POLICY).startswith("battery 25%, unplugged (resumes at 30%"), "hysteresis"
    assert decide(r(30), reason, POLICY) == ""
    assert decide(r(22, plugged=True), reason, POLICY) == ""


def test_heat_pauses_at_42_and_resumes_at_39() -> None:
    hot = decide(r(temp=42.0), "", POLICY)
    assert hot == "too hot: 42.0 °C (pauses at 42 °C)"
    assert decide(r(temp=40.5), hot, POLICY) == "cooling down: 40.5 °C (resumes at 39 °C)"
    assert decide(r(temp=40.5), "cooling down: 41 °C", POLICY).startswith("cooling down")
    assert decide(r(temp=39.0), hot, POLICY) == ""
    assert decide(r(temp=40.5), "", POLICY) == "", "below the pause threshold a cool phone keeps working"


def test_no_reading_changes_nothing() -> None:
    assert decide(None, "", POLICY) == ""
    assert decide(None, "battery 10%, unplugged", POLICY) == "battery 10%, unplugged"
    assert decide(r(None, None, None), "", POLICY) == ""


def test_parse_termux_battery_status() -> None:
    text = '{"health":"GOOD","percentage":57,"plugged":"UNPLUGGED","status":"DISCHARGING","temperature":31.2}'
    assert parse_battery_status(text) == BatteryReading(57, False, 31.2)
    assert parse_battery_status('{"percentage": 90, "plugged": "PLUGGED_AC"}') == BatteryReading(90, True, None)
    assert parse_battery_status('{"percentage": true, "temperature": "hot"}') == BatteryReading(None, None, None)
    with pytest.raises(ValueError):
        parse_battery_status("[1, 2]")


@pytest.fixture
def fake_termux_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real `termux-battery-status` on PATH whose behaviour each test writes (a shell script)."""

    def install(body: str) -> None:
        script = tmp_path / "termux-battery-status"
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return install


def test_read_battery_runs_the_real_command_and_survives_it_hanging_failing_or_missing(
    fake_termux_api, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_termux_api('echo \'{"percentage": 15, "plugged": "UNPLUGGED", "temperature": 33.5}\'')
    assert read_battery() == BatteryReading(15, False, 33.5)
    fake_termux_api("exec sleep 30")  # Termux:API app missing: the command hangs
    started = time.monotonic()
    assert read_battery(timeout=0.5) is None
    assert time.monotonic() - started < 3
    fake_termux_api("echo broken >&2; exit 1")
    assert read_battery() is None
    fake_termux_api("echo not json")
    assert read_battery() is None
    monkeypatch.setenv("PATH", "/nonexistent")
    assert read_battery() is None


def test_phone_manners_keeps_the_pause_file_in_step(tmp_path: Path) -> None:
    readings = iter([r(50), r(15), r(25), r(35), None, r(35, temp=45.0)])
    manners = PhoneManners(tmp_path / "phone.paused", reader=lambda: next(readings))
    pause = tmp_path / "phone.paused"
    assert manners.check() == "" and not pause.exists()
    assert manners.check().startswith("battery 15%") and pause.read_text().startswith("battery 15%")
    assert manners.check().startswith("battery 25%"), "still paused until 30%"
    assert manners.check() == "" and not pause.exists()
    assert manners.check() == "", "no reading: unchanged"
    assert manners.check().startswith("too hot") and manners.snapshot()["battery"]["temperature_c"] == 45.0
    assert "45.0 °C" in manners.describe()


def test_a_stale_pause_file_is_cleared_at_start(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("battery 3%\n")
    PhoneManners(tmp_path / "p", reader=lambda: None)
    assert not (tmp_path / "p").exists()


def test_the_node_manager_cli_turns_manners_on_as_if_on_android(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`--phone-manners auto` follows is_android(); here a Python reporting sys.platform == "android"."""
    code = (
        "import sys; sys.platform = 'android'\n"
        "from bxthre3 import cli\n"
        "from bxthre3.commands.node_manager_role import _node_manager\n"
        "from bxthre3.wire.addresses import Address\n"
        "args = cli.build_parser().parse_args(['node-manager', '--controller', '127.0.0.1:9', '--insecure'])\n"
        "nm = _node_manager(args, Address('127.0.0.1', 9), None)\n"
        "print(nm.manners is not None, '--pause-file' in nm.host_args)\n"
    )
    env = {**os.environ, "BXTHRE3_PHONE_MANNERS": "auto", "XDG_STATE_HOME": str(tmp_path)}  # its device id
    env.pop("TERMUX_VERSION", None)
    env.pop("ANDROID_ROOT", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert out.stdout.split() == ["True", "True"], out.stderr
    env["BXTHRE3_PHONE_MANNERS"] = "off"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert out.stdout.split() == ["False", "False"], out.stderr
