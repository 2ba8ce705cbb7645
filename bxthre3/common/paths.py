"""Where Bxthre3 keeps its files on a device: the XDG base directories, each with a ``bxthre3`` folder.

One place for the rules, because every role needs some of them (the controller's journal and token,
a host's identity keys, the module cache, logs, the config file) and they must agree: a relative
``XDG_*`` value is ignored as the XDG Base Directory specification says (it would depend on the
directory a role happens to start in), and an unset or empty one means the documented default.
No I/O here: callers create what they write into.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "bxthre3"


def _base(variable: str, *default: str) -> Path:
    value = os.environ.get(variable) or ""
    if value and Path(value).is_absolute():
        return Path(value)
    return Path.home().joinpath(*default)


def state_home() -> Path:
    """``$XDG_STATE_HOME/bxthre3`` (default ``~/.local/state/bxthre3``): what a device keeps between runs
    but a user would not back up (remembered controller, host keys, logs)."""
    return _base("XDG_STATE_HOME", ".local", "state") / APP


def data_home() -> Path:
    """``$XDG_DATA_HOME/bxthre3`` (default ``~/.local/share/bxthre3``): the controller's journal and token."""
    return _base("XDG_DATA_HOME", ".local", "share") / APP


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/bxthre3`` (default ``~/.cache/bxthre3``): what can be fetched again (modules)."""
    return _base("XDG_CACHE_HOME", ".cache") / APP


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/bxthre3`` (default ``~/.config/bxthre3``): what the user writes by hand."""
    return _base("XDG_CONFIG_HOME", ".config") / APP
