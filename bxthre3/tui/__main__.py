"""`python -m bxthre3.tui [--controller ADDR] [--role ROLE]` until `bxthre3 ui` is wired."""

from __future__ import annotations

import argparse
import sys

from ..common.errors import Bxthre3Error
from ..wire.addresses import controller_from_env_or
from .roles import ROLES_BY_KEY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bxthre3 ui", description="the Bxthre3 terminal UI")
    parser.add_argument("--controller", help="monitor this controller (IP or IP:PORT) at once")
    parser.add_argument("--role", choices=list(ROLES_BY_KEY), help="skip the picker: open this role's form")
    args = parser.parse_args(argv)
    try:
        controller = controller_from_env_or(args.controller) if args.controller else None
        from .app import run_tui

        return run_tui(controller=controller, start_role=args.role)
    except Bxthre3Error as exc:
        print(f"bxthre3: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
