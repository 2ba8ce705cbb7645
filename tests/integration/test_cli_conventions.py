"""The config file and the systemd unit with real processes: `bxthre3 status` configured only by the
file reaches a real controller; the unit's ExecStart really starts a controller from the home directory."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bxthre3.wire.security import TOKEN_ENV
from tests.conftest import REPO, TEST_TOKEN, RunningController, subprocess_env


def test_status_takes_address_and_token_from_the_config_file(tmp_path: Path, controller: RunningController) -> None:
    config = tmp_path / "xdg" / "bxthre3" / "config.toml"
    config.parent.mkdir(parents=True)
    (config.parent / "token").write_text(TEST_TOKEN + "\n")
    config.write_text(f"[controller]\naddress = '{controller.address}'\n\n[security]\ntoken_file = 'token'\n")
    env = subprocess_env()
    env.pop(TOKEN_ENV, None)  # only the file can tell it the token
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    status = subprocess.run([sys.executable, "-m", "bxthre3", "status", "--json", "--timeout", "5"],
                            capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert '"hosts"' in status.stdout
    env["XDG_CONFIG_HOME"] = str(tmp_path / "elsewhere")  # no file: no token, and it says how to give one
    status = subprocess.run([sys.executable, "-m", "bxthre3", "status", "--timeout", "5"],
                            capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
    assert status.returncode != 0 and "token" in status.stderr


def unit(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bxthre3", "systemd", *args],
                          capture_output=True, text=True, timeout=30, env=subprocess_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_systemd_units_verify(tmp_path: Path) -> None:
    for role in ("controller", "node-manager"):
        text = unit(role)
        found = directives(text)
        assert found["Restart"] == ["on-failure"] and found["WantedBy"] == ["default.target"]
        program = shlex.split(found["ExecStart"][0])
        assert Path(program[0]).is_absolute() and os.access(program[0], os.X_OK)
        assert program[-1] == role
        if shutil.which("systemd-analyze") is None:
            continue  # the directives above are all that can be checked here
        path = tmp_path / f"bxthre3-{role}.service"
        path.write_text(text)
        runtime = tmp_path / "runtime"
        runtime.mkdir(exist_ok=True, mode=0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
        check = subprocess.run(["systemd-analyze", "verify", "--user", str(path)],
                               capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
        if check.returncode != 0 and "Failed to initialize manager" in check.stderr:
            pytest.skip(f"systemd-analyze cannot run here: {check.stderr.strip()}")
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr


def test_systemd_unit_execstart_starts_the_controller_from_home(tmp_path: Path) -> None:
    """Run the unit's ExecStart as systemd would: in the home directory, with only the unit's environment."""
    state = tmp_path / "state with space"
    found = directives(unit("controller", "--host", "127.0.0.1", "--port", "0", "--state-dir", str(state)))
    command = [word.replace("%%", "%").replace("$$", "$") for word in shlex.split(found["ExecStart"][0])]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), TOKEN_ENV: TEST_TOKEN,
           "XDG_STATE_HOME": str(tmp_path / "xdg-state"), "BXTHRE3_LOG_DIR": str(tmp_path / "logs")}  # fmt: skip
    for assignment in found.get("Environment", []):
        key, value = shlex.split(assignment)[0].split("=", 1)
        env[key] = value
    assert env.get("PYTHONPATH") == str(REPO), "run from a checkout, the unit must find this checkout"
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline and "bxthre3 controller listening" not in line:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
        assert "bxthre3 controller listening on 127.0.0.1:" in line and str(state) in line, line
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, "SIGTERM (what systemctl stop sends) is a clean stop"


def test_systemd_refuses_flags_the_role_does_not_have() -> None:
    done = subprocess.run([sys.executable, "-m", "bxthre3", "systemd", "node-manager", "--port", "5000"],
                          capture_output=True, text=True, timeout=30, env=subprocess_env())  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --port 5000" in done.stderr and not done.stdout
