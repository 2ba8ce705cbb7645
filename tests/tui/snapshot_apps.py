"""App factories for the snapshot tests (deterministic: fixed RAM, empty environment)."""

from __future__ import annotations

from bxthre3.tui.app import Bxthre3App, make_app


def picker_app() -> Bxthre3App:
    return make_app(environ={}, ram_probe=lambda: 4096)


def form_app() -> Bxthre3App:
    return make_app(start_role="host", environ={"BXTHRE3_CONTROLLER": "192.168.1.10:5000"}, ram_probe=lambda: 4096)
