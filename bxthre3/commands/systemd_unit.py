"""`bxthre3 systemd controller|node-manager`: a systemd *user* unit that keeps a role running.

A user unit, not a system one: Bxthre3 needs no root, and its files (token, journal, logs,
config) are the user's, under the user's XDG directories. ExecStart names the bxthre3 that
printed the unit, by absolute path and without resolving symlinks, so a unit printed from a
virtualenv or pipx install keeps using that install (a resolved venv python would escape it).
"""

from __future__ import annotations

import re
import site
import sys
from pathlib import Path

ROLES = {
    "controller": "controller (schedules DAGs of WebAssembly tasks over hosts)",
    "node-manager": "node manager (runs as many hosts as free RAM allows)",
}

_PLAIN = re.compile(r"^[A-Za-z0-9_./:=@+,-]+$")


def unit_name(role: str) -> str:
    return f"bxthre3-{role}.service"


def exec_command() -> list[str]:
    """The command that starts this very bxthre3 again: its script, or this python with ``-m bxthre3``."""
    script = Path(sys.argv[0])
    if script.name == "bxthre3" and script.is_file():
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "bxthre3"]


def _pythonpath() -> str | None:
    """Where the package lives when it is not installed (run from a checkout): systemd starts
    units in the home directory, where `-m bxthre3` would not find it."""
    if Path(sys.argv[0]).name == "bxthre3":
        return None
    parent = Path(__file__).resolve().parents[2]
    installed = [*site.getsitepackages(), site.getusersitepackages()]
    if any(Path(p).resolve() == parent for p in installed if p):
        return None
    return str(parent)


def quote(word: str) -> str:
    """One word of an ExecStart= line: quoted when needed, with systemd's `%` and `$` escaped."""
    if not _PLAIN.match(word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word.replace("%", "%%").replace("$", "$$")


def render(role: str, extra: list[str]) -> str:
    """The unit file's text for ``role`` (a key of ROLES), with ``extra`` arguments after the role."""
    name = unit_name(role)
    command = " ".join(quote(w) for w in [*exec_command(), role, *extra])
    environment = ["Environment=PYTHONUNBUFFERED=1"]
    pythonpath = _pythonpath()
    if pythonpath:
        environment.append(f"Environment={quote('PYTHONPATH=' + pythonpath)}")
    token_note = (
        "# The cluster token: the controller keeps its own in its state dir. A node manager on another\n"
        "# device needs it: [security] token_file in ~/.config/bxthre3/config.toml (see `bxthre3 config show`).\n"
        if role == "node-manager"
        else "# Settings: flags below, or ~/.config/bxthre3/config.toml (see `bxthre3 config show`).\n"
    )
    return (
        f"# {name}: Bxthre3 {ROLES[role]}, as a systemd user service.\n"
        f"# Install:  bxthre3 systemd {role} > ~/.config/systemd/user/{name}\n"
        f"#           systemctl --user daemon-reload && systemctl --user enable --now {name}\n"
        f"# Logs:     journalctl --user -u {name}\n"
        "# To keep it running while you are logged out: loginctl enable-linger\n"
        f"{token_note}"
        "\n"
        "[Unit]\n"
        f"Description=Bxthre3 {ROLES[role]}\n"
        "StartLimitIntervalSec=300\n"
        "StartLimitBurst=5\n"
        "\n"
        "[Service]\n"
        "Type=exec\n"
        f"ExecStart={command}\n" + "".join(f"{line}\n" for line in environment) + "Restart=on-failure\n"
        "RestartSec=5\n"
        "# SIGTERM to bxthre3 only: it stops its own hosts and executors in order; stragglers get SIGKILL.\n"
        "KillMode=mixed\n"
        "TimeoutStopSec=30\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )
