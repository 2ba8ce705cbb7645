"""The config file: flags > environment > file > defaults, through the real parser; bad files are one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bxthre3 import cli
from bxthre3.commands.cluster_access import _controller_address, _member_token
from bxthre3.commands.config_file import apply, config_path, load
from bxthre3.commands.node_manager_role import _ram_per_node

TOKEN = "bxt1-" + "F" * 43


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The config file path under a fresh XDG_CONFIG_HOME, with no setting in the environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("BXTHRE3_CONTROLLER", "BXTHRE3_TOKEN", "RAM_PER_NODE", "BXTHRE3_ENGINE", "BXTHRE3_PHONE_MANNERS"):
        monkeypatch.delenv(name, raising=False)
    path = config_path()
    assert path == tmp_path / "xdg" / "bxthre3" / "config.toml"
    path.parent.mkdir(parents=True)
    return path


def parse(*argv: str) -> argparse.Namespace:
    """Parse as `bxthre3` does: a fresh parser, the file applied to the command, then the flags."""
    parser = cli.build_parser()
    apply(parser, list(argv))
    return parser.parse_args(list(argv))


def test_precedence_is_flag_then_environment_then_file_then_default(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _ram_per_node(parse("node-manager")) == 128
    config.write_text("[limits]\nram_per_node = 256\nmin_free_ram = 100\n\n[host]\nengine = 'wasm3'\n")
    args = parse("node-manager")
    assert (_ram_per_node(args), args.min_free_ram, args.engine) == (256, 100, "wasm3")
    monkeypatch.setenv("RAM_PER_NODE", "64")
    assert _ram_per_node(parse("node-manager")) == 64
    assert _ram_per_node(parse("node-manager", "--ram-per-node", "32")) == 32
    assert parse("node-manager", "--min-free-ram", "0").min_free_ram == 0


def test_controller_address_and_token_from_the_file_yield_to_the_environment(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config.parent / "token").write_text(TOKEN + "\n")
    config.write_text("[controller]\naddress = '127.0.0.1:6001'\n[security]\ntoken_file = 'token'\n")
    args = parse("status")
    assert str(_controller_address(args)) == "127.0.0.1:6001"
    assert _member_token(args) == TOKEN
    monkeypatch.setenv("BXTHRE3_CONTROLLER", "127.0.0.1:7002")
    other = "bxt1-" + "E" * 43
    monkeypatch.setenv("BXTHRE3_TOKEN", other)
    args = parse("status")
    assert (str(_controller_address(args)), _member_token(args)) == ("127.0.0.1:7002", other)
    args = parse("status", "--controller", "127.0.0.1:7003")
    assert str(_controller_address(args)) == "127.0.0.1:7003"


def test_settings_reach_only_the_commands_they_are_for(config: Path) -> None:
    config.write_text("[controller]\nbind = '127.0.0.1'\nport = 6100\n[limits]\nslots = 3\n")
    controller = parse("controller")
    assert (controller.host, controller.port) == ("127.0.0.1", 6100)
    assert parse("all").port == 6100 and parse("all").host == "127.0.0.1"  # `all` binds loopback anyway
    assert parse("host").slots == 3
    assert parse("run", "x.yaml").slots == 1, "[limits] slots is a host's, not `run`'s local cluster"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("[limits\nram_per_node = 5\n", ":1: not valid TOML"),
        ("[limits]\nram_per_nod = 300\n", ":2: unknown key 'ram_per_nod' in [limits]"),
        ("[limit]\nram_per_node = 300\n", ":1: unknown section [limit]"),
        ("port = 1\n", ":1: 'port' must be inside a section"),
        ("[controller]\n\n# the port\nport = 70000\n", ":4: [controller] port: port must be between"),
        ("[host]\nengine = 'v8'\n", ":2: [host] engine: 'v8' is not one of auto, wasm3, wasmtime"),
        ("[host]\nengine = true\n", ":2: [host] engine: must be a whole number or a quoted string"),
        ("[limits]\nram_per_node = 'lots'\n", ":2: [limits] ram_per_node: --ram-per-node must be a number"),
        ("[security]\ntoken = 'hunter2'\n", ":2: [security] token: not a cluster token"),
        ("[security]\ntoken_file = 'missing'\n", ":2: [security] token_file: cannot read"),
        (f"[security]\ntoken = '{TOKEN}'\ntoken_file = 't'\n", ":3: [security] token_file: give token or"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_line_and_key(
    config: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    config.write_text(text)
    assert cli.main(["node-manager"] if "[controller]" not in text else ["controller"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bxthre3: error: {config}{expected}"), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_commands_that_take_nothing_from_the_file_still_run_with_a_bad_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text("[limits\n")
    assert cli.main(["completion", "bash"]) == 0
    assert "complete -F _bxthre3 bxthre3" in capsys.readouterr().out


def test_config_show_names_where_each_value_comes_from(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(f"[controller]\nport = 6000\naddress = '10.0.0.5'\n[security]\ntoken = '{TOKEN}'\n")
    monkeypatch.setenv("RAM_PER_NODE", "64")
    assert cli.main(["config", "show", "--controller", "10.0.0.9:5000"]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" = ")[0].strip(): line for line in out.splitlines() if " = " in line}
    assert rows["port"].endswith(f"# file {config}:2") and "6000" in rows["port"]
    assert "10.0.0.9:5000" in rows["address"] and rows["address"].endswith("# flag --controller")
    assert rows["ram_per_node"].endswith("# env RAM_PER_NODE") and "64" in rows["ram_per_node"]
    assert rows["min_free_ram"].endswith("# default") and "512" in rows["min_free_ram"]
    assert TOKEN not in out and "(hidden)" in rows["token"], "config show must not print the token"
    assert str(config) in out.splitlines()[0]
    assert load(config).exists
