"""App factories for the snapshot tests (deterministic: fixed RAM, empty environment)."""

from __future__ import annotations

from bxthre3.tui.app import Bxthre3App, make_app
from bxthre3.wire.addresses import Address

from .fake_backend import FakeBackend


def picker_app() -> Bxthre3App:
    return make_app(environ={}, ram_probe=lambda: 4096, cpus=4)


CONTROLLER = Address("127.0.0.1", 5000)


def monitor_app(dag_state: str, *, quarantined: bool = False) -> Bxthre3App:
    """The monitor of a fake controller with one hello_fanout DAG, "running" or "succeeded" (and with
    ``quarantined``, node-1's device quarantined)."""
    backend = FakeBackend(dag_state, quarantined=quarantined)
    app = make_app(controller=CONTROLLER, backend=backend, environ={}, ram_probe=lambda: 4096)
    app.animation_level = "none"  # progress bars must not be caught mid-animation
    return app


def role_form_app(role: str) -> Bxthre3App:
    """The form of ``role`` (no beacon listening, a fixed controller where one is asked for)."""
    environ = {"BXTHRE3_CONTROLLER": "192.168.1.10:5000", "BXTHRE3_NODE_ID": "phone-1"}
    return make_app(start_role=role, environ=environ, ram_probe=lambda: 4096, cpus=4)


def role_screen_app(role: str) -> Bxthre3App:
    """The live screen of ``role`` following a fake process with a frozen status."""
    from bxthre3.tui.role_screens import SCREENS_BY_ROLE
    from bxthre3.tui.roles import RoleConfig

    from .fake_backend import FakeRoleProcess

    app = make_app(backend=FakeBackend("running"), environ={}, ram_probe=lambda: 4096)
    argv = RoleConfig(role, controller=Address("192.168.1.10", 5000), node_id="phone-1").argv()

    async def push() -> None:
        await app.push_screen(SCREENS_BY_ROLE[role](FakeRoleProcess(role, argv)))  # type: ignore[arg-type]

    app.call_later(push)
    return app
