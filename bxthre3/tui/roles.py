"""The five roles of the original Bxthre3 and what each needs to start (pure data, no Textual)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..wire.addresses import Address

RESERVED_RAM_MB = 512
"""RAM left to the device's owner when computing how many hosts fit (as the node manager does)."""

DEFAULT_RAM_PER_NODE = 128


@dataclass(frozen=True, slots=True)
class Role:
    key: str
    digit: str
    title: str
    description: str
    fields: tuple[str, ...]
    """Form fields this role needs, among: controller, token, port, ram, node_id."""
    command: str
    """The command that runs this role outside the TUI; the TUI runs the same in a child process."""


ROLES: tuple[Role, ...] = (
    Role("ui", "1", "UI Node", "Monitor and drive a running controller", ("controller", "token"), "bxthre3 ui"),
    Role(
        "controller", "2", "Controller + Node Manager",
        "Schedule DAGs here and run hosts from this device's spare RAM",
        ("port", "ram"), "bxthre3 controller --with-node-manager",
    ),
    Role(
        "node-manager", "3", "Node Manager only",
        "Lend this device's spare RAM to a controller as hosts",
        ("controller", "token", "ram"), "bxthre3 node-manager",
    ),
    Role(
        "host", "4", "Host Node only", "Run one host that executes WebAssembly tasks",
        ("controller", "token", "ram", "node_id"), "bxthre3 host",
    ),
    Role(
        "all", "5", "All components",
        "Controller and hosts on this device (loopback), with the monitor",
        ("port", "ram"), "bxthre3 controller --with-node-manager --host 127.0.0.1",
    ),
)  # fmt: skip

ROLES_BY_KEY = {role.key: role for role in ROLES}


def nodes_for(available_ram_mb: int | None, ram_per_node: int) -> int | None:
    """How many hosts fit: (available - 512) // RAM per node; None when unknown."""
    if available_ram_mb is None or ram_per_node <= 0:
        return None
    return max(0, (available_ram_mb - RESERVED_RAM_MB) // ram_per_node)


@dataclass(frozen=True, slots=True)
class RoleConfig:
    """What the role form produced."""

    role: str
    controller: Address | None = None
    port: int = 5000
    ram_per_node: int = DEFAULT_RAM_PER_NODE
    node_id: str = ""
    token: str = ""
    """Given to the role through its environment, never on its command line."""

    def argv(self) -> list[str]:
        """The `bxthre3 ...` arguments that run this role (what the TUI starts, and shows)."""
        role = ROLES_BY_KEY[self.role]
        args = role.command.split()[1:]
        if "controller" in role.fields and self.controller is not None:
            args += ["--controller", str(self.controller)]
        if "port" in role.fields:
            args += ["--port", str(self.port)]
        if "ram" in role.fields:
            args += ["--ram-limit" if self.role == "host" else "--ram-per-node", str(self.ram_per_node)]
        if "node_id" in role.fields and self.node_id:
            args += ["--node-id", self.node_id]
        return args

    def command_line(self) -> str:
        return shlex.join(["bxthre3", *self.argv()])
