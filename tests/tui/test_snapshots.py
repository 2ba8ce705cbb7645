"""Snapshots of the role picker (80x24, 160x48), each role's form, and each role's live screen."""

from __future__ import annotations

import pytest

from .snapshot_apps import picker_app, role_form_app, role_screen_app


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_role_picker_80x24(snap_compare) -> None:
    assert snap_compare(picker_app(), terminal_size=(80, 24))


def test_role_picker_160x48(snap_compare) -> None:
    assert snap_compare(picker_app(), terminal_size=(160, 48))


@pytest.mark.parametrize("role", ["ui", "controller", "node-manager", "host", "all"])
def test_role_form(snap_compare, role: str) -> None:
    assert snap_compare(role_form_app(role), terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
@pytest.mark.parametrize("role", ["controller", "node-manager", "host"])
def test_role_screen(snap_compare, role: str, size: tuple[int, int]) -> None:
    assert snap_compare(role_screen_app(role), terminal_size=size, run_before=settle)
