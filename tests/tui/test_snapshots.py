"""Snapshots of the role picker (80x24, 160x48) and the host role's form."""

from __future__ import annotations

from .snapshot_apps import form_app, picker_app


def test_role_picker_80x24(snap_compare) -> None:
    assert snap_compare(picker_app(), terminal_size=(80, 24))


def test_role_picker_160x48(snap_compare) -> None:
    assert snap_compare(picker_app(), terminal_size=(160, 48))


def test_host_form(snap_compare) -> None:
    async def settle(pilot) -> None:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(form_app(), terminal_size=(80, 24), run_before=settle)
