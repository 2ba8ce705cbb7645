"""The role form refuses what the CLI refuses, with the same one line: a bad address, RAM outside
16-4096 MB, a node id that would name a path (issue 17's papercuts, on the TUI's side)."""

from __future__ import annotations

import asyncio

from textual.widgets import Input, Static

from bxthre3.tui.app import make_app
from bxthre3.tui.role_form import RoleFormScreen


def test_the_host_form_refuses_bad_addresses_ram_and_node_ids() -> None:
    async def run() -> None:
        app = make_app(environ={}, ram_probe=lambda: 4096, cpus=2)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("4")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RoleFormScreen) and screen.role.key == "host"

            async def error_for(**values: str) -> str:
                for widget_id, value in values.items():
                    screen.query_one(f"#{widget_id}", Input).value = value
                await pilot.pause()
                screen.query_one("#start").press()
                await pilot.pause()
                assert app.screen is screen, "a refused form must not start the role"
                return str(screen.query_one("#form-error", Static).render())

            error = await error_for(controller="foo bar:5000", ram="128", node_id="phone-1")
            assert "bad controller address 'foo bar:5000'" in error
            error = await error_for(controller="127.0.0.1:5000", ram="99999")
            assert "RAM per node must be between 16 and 4096 MB" in error and "not 99999" in error
            error = await error_for(ram="128", node_id="a/b")
            assert "node id: 'a/b' is not a node id" in error

    asyncio.run(run())
