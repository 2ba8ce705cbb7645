"""`bxthre3 ui` (and `bxthre3` alone on a terminal): the flags handed to the Textual app, which no other
command loads; with `--web`, the same UI served to browsers instead (`tui/web.py`).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from ..wire.addresses import controller_from_env_or

WEB_EXTRA_HINT = "pip install 'bxthre3[web]'"


def _run_ui(args: argparse.Namespace) -> int:
    from ..wire.security import check_token

    controller = controller_from_env_or(args.controller) if args.controller else None
    token = check_token(args.token, "--token") if args.token else None
    if getattr(args, "web", None):
        return _run_web(args, token)
    from ..tui.app import run_tui

    return int(
        run_tui(
            controller=controller, start_role=args.role, log_file=args.log_file, token=token, insecure=args.insecure
        )
    )


def _run_web(args: argparse.Namespace, token: str | None) -> int:
    """Serve the UI with the same flags; the token goes to the sessions through the environment only."""
    from ..tui.web_access import parse_web_bind, served_argv

    bind = parse_web_bind(args.web)
    if importlib.util.find_spec("textual_serve") is None:
        print(f"bxthre3: error: --web needs textual-serve: {WEB_EXTRA_HINT}", file=sys.stderr)
        return 2
    from ..common.logs import role_log_file, setup_logging
    from ..tui.app import local_token
    from ..tui.web import serve, web_config

    setup_logging("INFO", role_log_file(None, "ui-web.log"), console=False)
    argv = served_argv(
        sys.executable,
        controller=args.controller,
        role=args.role,
        log_file=str(args.log_file) if args.log_file else None,
        insecure=args.insecure,
    )
    config = web_config(bind, argv, token=token or local_token(), explicit_token=token)
    return serve(config)
