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

    from .config_file import FILE_NAME, SETTINGS

    p = sub.add_parser("config", help=f"the config file (~/.config/bxthre3/{FILE_NAME}): show the settings in effect")
    actions = p.add_subparsers(title="actions", metavar="ACTION", dest="config_action", required=True)
    show = actions.add_parser(
        "show",
        help="print every setting's effective value and where it comes from (flag, environment, file, default)",
        description="Print each setting, its effective value and its source: flag, environment, file or default.",
    )
    for flag, dest in dict((s.flag, s.dest) for s in SETTINGS).items():
        show.add_argument(
            flag, dest=dest, metavar="VALUE", help=f"show the settings as a command given {flag} sees them"
        )
    show.set_defaults(handler=_run_config_show)

    from .systemd_unit import ROLES

    p = sub.add_parser(
        "systemd",
        help="print a systemd user unit that runs the controller or the node manager (see docs/DEPLOY.md)",
        description="Print a systemd user unit; ARGS after the role go on its command line as they would on yours.",
    )
    p.add_argument("role", choices=list(ROLES), help="the role the unit runs")
    p.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="more arguments for the role, e.g. --port 5000"
    )
    p.set_defaults(handler=_run_systemd)


def _run_completion(args: argparse.Namespace) -> int:
    from ..cli import build_parser
    from .completion import script

    print(script(build_parser(), args.shell), end="")
    return 0


def _run_config_show(args: argparse.Namespace) -> int:
    from ..cli import build_parser
    from .config_file import SETTINGS, effective, load, render

    config = load()
    flags = {s.dest: getattr(args, s.dest, None) for s in SETTINGS}
    print(render(effective(build_parser(), flags, config), config), end="")
    return 0


def _run_systemd(args: argparse.Namespace) -> int:
    from ..cli import build_parser
    from .systemd_unit import render

    extra = [a for a in args.args if a != "--"] if args.args[:1] == ["--"] else list(args.args)
    build_parser().parse_args([args.role, *extra])  # the role's own parser refuses a bad flag now, not at boot
    print(render(args.role, extra), end="")
    return 0
