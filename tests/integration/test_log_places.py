"""A role started by hand logs where users look for it, not in whatever directory it was started from."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env, wait_for


def test_a_role_started_anywhere_logs_in_the_xdg_state_directory(tmp_path: Path) -> None:
    cwd, state = tmp_path / "somewhere", tmp_path / "state"
    cwd.mkdir()
    env = {**subprocess_env(), "XDG_STATE_HOME": str(state)}
    del env["BXTHRE3_LOG_DIR"]
    log = state / "bxthre3" / "logs" / "host_placed.log"
    # A host with nothing to reach (loopback port 9): it starts, logs, and waits for a controller.
    proc = subprocess.Popen(
        [sys.executable, "-m", "bxthre3", "host", "--controller", "127.0.0.1:9", "--node-id", "placed", "--insecure"],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(lambda: log.is_file() or proc.poll() is not None, 20, "the host's log file")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert log.is_file(), err.decode(errors="replace")
    assert list(cwd.iterdir()) == [], "nothing in the directory it was started from (no ./logs)"
