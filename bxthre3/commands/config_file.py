"""The config file, ``$XDG_CONFIG_HOME/bxthre3/config.toml``: defaults a user writes once per device.

Precedence is flags > environment > file > built-in defaults. The file is applied to the parser
of the command being run, as that parser's defaults, and only for settings whose environment
variable is unset: so a flag still wins (argparse prefers what was typed), the environment still
wins (its readers run after parsing, as before), and the built-in default is what is left.

Values go through the very ``type`` and ``choices`` of the flag they stand for, so the file
accepts exactly what the command line accepts; what it refuses is one line naming the file, the
line and the key. Only this module knows the file's keys (``SETTINGS``); `bxthre3 config show`
prints each one's effective value and where it came from.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import paths
from ..common.errors import Bxthre3Error

FILE_NAME = "config.toml"


class ConfigError(Bxthre3Error):
    """The config file cannot be read or holds something the command line would refuse."""


@dataclass(frozen=True)
class Setting:
    """One key of the file and the flag it stands for."""

    section: str
    key: str
    dest: str
    """The argparse destination of the flag, in every command that has it."""
    flag: str
    env: str | None = None
    """The environment variable that, when set, wins over the file."""
    commands: tuple[str, ...] | None = None
    """Only these commands take it from the file (None: every command with the flag)."""
    unset: str | Callable[[], str] = ""
    """What applies when nothing sets it (the flag's default is None, so the parser cannot say)."""
    secret: bool = False

    @property
    def name(self) -> str:
        return f"[{self.section}] {self.key}"


_MEMBERS = ("host", "node-manager", "submit", "status", "results", "cancel", "retry", "hosts")

SETTINGS: tuple[Setting, ...] = (
    Setting("controller", "address", "controller", "--controller", "BXTHRE3_CONTROLLER", _MEMBERS,
            unset="discovery on the LAN (host, node-manager), else 127.0.0.1:5000"),
    Setting("controller", "bind", "host", "--host", None, ("controller",)),
    Setting("controller", "port", "port", "--port", None, ("controller", "all")),
    Setting("controller", "state_dir", "state_dir", "--state-dir", None, ("controller", "all", "token"),
            unset=lambda: str(paths.data_home() / "controller")),
    Setting("controller", "metrics_port", "metrics_port", "--metrics-port", None, ("controller",), unset="off"),
    Setting("security", "token", "token", "--token", "BXTHRE3_TOKEN", secret=True,
            unset="the token kept in the controller's state dir (this device's controller)"),
    Setting("security", "token_file", "token", "--token", "BXTHRE3_TOKEN", unset="none"),
    Setting("limits", "ram_per_node", "ram_per_node", "--ram-per-node", "RAM_PER_NODE", unset="128"),
    Setting("limits", "min_free_ram", "min_free_ram", "--min-free-ram"),
    Setting("limits", "max_nodes", "max_nodes", "--max-nodes", unset="the CPU count (at most 4 on Android)"),
    Setting("limits", "ram_limit", "ram_limit", "--ram-limit", None, ("host",)),
    Setting("limits", "slots", "slots", "--slots", None, ("host",)),
    Setting("host", "engine", "engine", "--engine", "BXTHRE3_ENGINE"),
    Setting("host", "phone_manners", "phone_manners", "--phone-manners", "BXTHRE3_PHONE_MANNERS"),
)  # fmt: skip
"""Every key the file may hold, in the order `config show` prints them."""

SECTIONS = tuple(dict.fromkeys(s.section for s in SETTINGS))


def config_path() -> Path:
    return paths.config_home() / FILE_NAME


@dataclass(frozen=True)
class Entry:
    """A value from the file and the line it was on (0: unknown)."""

    value: Any
    line: int


@dataclass
class ConfigFile:
    path: Path
    entries: dict[tuple[str, str], Entry]
    exists: bool

    def where(self, entry: Entry) -> str:
        return f"{self.path}:{entry.line}" if entry.line else str(self.path)

    def error(self, setting: Setting, message: str) -> ConfigError:
        entry = self.entries[(setting.section, setting.key)]
        return ConfigError(f"{self.where(entry)}: {setting.name}: {message}")


def load(path: Path | None = None) -> ConfigFile:
    """Read and check the file's shape (sections, keys, TOML types); a missing file is an empty one."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 (imported only when a file exists: hosts stay lean)
        import tomli as tomllib

    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigFile(path, {}, exists=False)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read the config file: {reason}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)$", message)
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise ConfigError(
            f"{where}: not valid TOML: {message[: match.start()].strip() if match else message}"
        ) from None
    known = {(s.section, s.key): s for s in SETTINGS}
    entries: dict[tuple[str, str], Entry] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            line = _line_of(text, None, section)
            raise ConfigError(
                f"{path}:{line}: {section!r} must be inside a section: {', '.join(f'[{s}]' for s in SECTIONS)}"
            )
        if section not in SECTIONS:
            line = _section_line(text, section)
            raise ConfigError(f"{path}:{line}: unknown section [{section}]; known: {', '.join(SECTIONS)}")
        for key, value in table.items():
            line = _line_of(text, section, key)
            if (section, key) not in known:
                keys = ", ".join(s.key for s in SETTINGS if s.section == section)
                raise ConfigError(f"{path}:{line}: unknown key {key!r} in [{section}]; known: {keys}")
            if isinstance(value, (dict, list)) or isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ConfigError(f"{path}:{line}: [{section}] {key}: must be a whole number or a quoted string")
            entries[(section, key)] = Entry(value, line)
    config = ConfigFile(path, entries, exists=True)
    if ("security", "token") in entries and ("security", "token_file") in entries:
        raise config.error(_setting("security", "token_file"), "give token or token_file, not both")
    return config


def _setting(section: str, key: str) -> Setting:
    return next(s for s in SETTINGS if (s.section, s.key) == (section, key))


def _section_line(text: str, section: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^\s*\[\s*\"?{re.escape(section)}\"?\s*\]", line):
            return number
    return 0


def _line_of(text: str, section: str | None, key: str) -> int:
    """The line a key is set on, within ``section`` (None: before any section); 0 when not found."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\s*\"?([^\]\"]+)\"?\s*\]", line)
        if header:
            current = header.group(1).strip()
        elif current == section and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    return 0


# ---------------------------------------------------------------------- applying it to a command


def value_for(config: ConfigFile, setting: Setting, action: argparse.Action) -> Any:
    """The file's value of ``setting`` as the flag ``action`` would have parsed it (or a ConfigError)."""
    raw = config.entries[(setting.section, setting.key)].value
    if setting.key == "token_file":
        return _read_token_file(config, setting, raw)
    if setting.secret or setting.dest == "token":
        from ..wire.security import TokenError, check_token

        try:
            return check_token(str(raw), f"{config.path}")
        except TokenError:
            raise config.error(setting, "not a cluster token (expected 'bxt1-' and 43 more characters, "
                                        "as `bxthre3 token` prints on the controller)") from None  # fmt: skip
    if action.type is not None and callable(action.type):
        try:
            value = action.type(str(raw))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise config.error(setting, str(exc) or f"{raw!r} is not accepted") from None
    else:
        if not isinstance(raw, str):
            raise config.error(setting, f"must be a quoted string, not {raw!r}")
        value = raw
    if action.choices is not None and value not in action.choices:
        raise config.error(setting, f"{value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def _read_token_file(config: ConfigFile, setting: Setting, raw: Any) -> str:
    from ..wire.security import TokenError, check_token

    if not isinstance(raw, str) or not raw.strip():
        raise config.error(setting, "must be the path of a file holding the token")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = config.path.parent / path  # relative to the config file, not to wherever a role starts
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise config.error(setting, f"cannot read {path}: {reason}") from None
    try:
        return check_token(text, str(path))
    except TokenError:
        raise config.error(setting, f"{path} does not hold a cluster token") from None


def _env_set(setting: Setting) -> bool:
    return bool(setting.env and os.environ.get(setting.env, "").strip())


def _applies(setting: Setting, command: str) -> bool:
    return setting.commands is None or command in setting.commands


def actions_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings}


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_of(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def apply(parser: argparse.ArgumentParser, argv: list[str], config: ConfigFile | None = None) -> None:
    """Make the file's values the defaults of the command ``argv`` runs (see the module docstring)."""
    command = command_of(argv)
    sub = subcommand_parsers(parser).get(command or "")
    if sub is None or command is None:
        return
    actions = actions_of(sub)
    wanted = [s for s in SETTINGS if s.dest in actions and _applies(s, command)]
    if not wanted:
        return
    config = config or load()
    defaults = {}
    for setting in wanted:
        if (setting.section, setting.key) in config.entries and not _env_set(setting):
            defaults[setting.dest] = value_for(config, setting, actions[setting.dest])
    sub.set_defaults(**defaults)


# ---------------------------------------------------------------------- `bxthre3 config show`


@dataclass(frozen=True)
class Effective:
    setting: Setting
    value: str
    source: str


def effective(
    parser: argparse.ArgumentParser, flags: dict[str, Any], config: ConfigFile | None = None
) -> list[Effective]:
    """Each setting's value and where it comes from: ``flags`` (as typed), environment, file, default."""
    config = config or load()
    commands = subcommand_parsers(parser)
    shown = []
    for setting in SETTINGS:
        command = next(c for c in commands if _applies(setting, c) and setting.dest in actions_of(commands[c]))
        action = actions_of(commands[command])[setting.dest]
        entry = config.entries.get((setting.section, setting.key))
        unset = setting.unset() if callable(setting.unset) else setting.unset
        if setting.key == "token_file":
            value = str(entry.value) if entry else unset
            source = f"file {config.where(entry)}" if entry else "default"
        elif flags.get(setting.dest) is not None:
            value, source = flags[setting.dest], f"flag {setting.flag}"
        elif _env_set(setting):
            value, source = os.environ[setting.env or ""].strip(), f"env {setting.env}"
        elif entry is not None:
            value, source = str(value_for(config, setting, action)), f"file {config.where(entry)}"
        elif setting.dest == "token" and ("security", "token_file") in config.entries:
            token_file = _setting("security", "token_file")
            value = value_for(config, token_file, action)
            source = f"file {config.where(config.entries[('security', 'token_file')])} (token_file)"
        elif action.default is not None and action.default is not argparse.SUPPRESS:
            value, source = str(action.default), "default"
        else:
            value, source = unset, "default"
        if setting.secret and source != "default":
            value = _hide(value)
        shown.append(Effective(setting, value, source))
    return shown


def _hide(token: str) -> str:
    return f"{token[:9]}… (hidden)" if len(token) > 9 else "… (hidden)"


def render(rows: list[Effective], config: ConfigFile) -> str:
    state = "" if config.exists else " (none: built-in defaults apply)"
    lines = [f"config file: {config.path}{state}", "precedence: flag > environment > file > default", ""]
    width = max(len(r.setting.key) for r in rows)
    section = None
    for row in rows:
        if row.setting.section != section:
            if section is not None:
                lines.append("")
            section = row.setting.section
            lines.append(f"[{section}]")
        lines.append(f"{row.setting.key:<{width}} = {row.value:<30}  # {row.source}")
    return "\n".join(lines) + "\n"
