"""`kill` and a closed terminal end the UI the way `q` does: its roles are stopped and their temporary
directories removed (without the handlers, Python's default ends the UI at once and the directories stay)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from textual.pilot import Pilot

from bxthre3.tui.app import make_app
from bxthre3.tui.backend import Backend
from bxthre3.tui.role_process import RoleProcess
from bxthre3.tui.roles import RoleConfig
from bxthre3.wire.addresses import Address


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_termination_signal_stops_the_roles_and_removes_their_directories(
    sig: signal.Signals, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    backend = Backend(insecure=True)
    app = make_app(backend=backend)
    app.quit_on_termination_signals = True  # as run_tui sets it
    started: list[RoleProcess] = []

    async def signal_once_running(pilot: Pilot[int]) -> None:
        await pilot.pause()
        # A real role (a host with no controller to reach on loopback), as the role form would start it.
        started.append(backend.start_role(RoleConfig("host", controller=Address("127.0.0.1", 9), node_id="sig")))
        assert started[0].workdir.is_dir() and started[0].workdir.parent == tmp_path
        # Never kill the test run itself: send the signal only once the UI has a handler for it.
        assert signal.getsignal(sig) not in (signal.SIG_DFL, signal.SIG_IGN, None), "no handler installed"
        os.kill(os.getpid(), sig)

    async def run() -> int | None:
        return await asyncio.wait_for(app.run_async(headless=True, size=(80, 24), auto_pilot=signal_once_running), 30)

    try:
        assert asyncio.run(run()) == 0, "quits as `q` does"
    finally:
        backend.close()
    [process] = started
    assert process.returncode() is not None, "the role was stopped"
    assert not process.workdir.exists() and os.listdir(tmp_path) == []
    assert signal.getsignal(sig) is signal.SIG_DFL, "the UI's handler went with it"
