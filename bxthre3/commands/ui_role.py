"""`bxthre3 ui` (and `bxthre3` alone on a terminal): the flags handed to the Textual app, which no other
command loads.
"""

from __future__ import annotations

import argparse

from ..wire.addresses import controller_from_env_or


def _run_ui(args: argparse.Namespace) -> int:
    from ..tui.app import run_tui
    from ..wire.security import check_token

    controller = controller_from_env_or(args.controller) if args.controller else None
    token = check_token(args.token, "--token") if args.token else None
    return int(
        run_tui(
            controller=controller, start_role=args.role, log_file=args.log_file, token=token, insecure=args.insecure
        )
    )
