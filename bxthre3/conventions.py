"""The subcommands every installed tool is expected to have: `completion`, `config show`, `systemd`.

Kept out of cli.py: they describe the command line (and its settings) rather than run a role, and
each one's logic lives in its own module (completion.py, config_file.py, systemd_unit.py).
"""

from __future__ import annotations

import argparse


def register_cli(sub: argparse._SubParsersAction) -> None:
    from .completion import SHELLS

    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(handler=_run_completion)


def _run_completion(args: argparse.Namespace) -> int:
    from .cli import build_parser
    from .completion import script

    print(script(build_parser(), args.shell), end="")
    return 0
