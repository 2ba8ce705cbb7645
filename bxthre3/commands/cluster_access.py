"""How a command reaches its cluster: the token and keys it presents, and the controller's address.

Members (host, node manager, the CLI's requests) present the cluster token, or nothing with --insecure;
a controller takes its own from --token, $BXTHRE3_TOKEN or its state dir (`bxthre3 token` prints that
one). The address comes from --controller, $BXTHRE3_CONTROLLER, a discovery beacon, or loopback.
`bxthre3 host` loads this module, and what an idle host imports is measured: the rest stays lazy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..common.errors import EXIT_OK
from ..wire.addresses import DEFAULT_PORT, Address, controller_from_env_or


def _member_token(args: argparse.Namespace) -> str | None:
    """The token a member (host, node manager, CLI, UI) presents; None with --insecure."""
    from ..wire.security import default_state_dir, resolve_token

    if getattr(args, "insecure", False):
        return None
    return resolve_token(getattr(args, "token", None), state_dir=default_state_dir())


def _member_keys(args: argparse.Namespace) -> Any:
    from ..wire.security import CurveKeys

    token = _member_token(args)
    return CurveKeys.from_token(token) if token else None


def _controller_token(args: argparse.Namespace, state_dir: Path | str) -> str | None:
    """--token > $BXTHRE3_TOKEN > the state dir's token (created on first start); None with --insecure."""
    from ..wire.security import TOKEN_ENV, check_token, load_or_create_token, new_token

    if args.insecure:
        return None
    if args.token:
        return check_token(args.token, "--token")
    if os.environ.get(TOKEN_ENV, "").strip():
        return check_token(os.environ[TOKEN_ENV], f"${TOKEN_ENV}")
    if str(state_dir) == ":memory:":
        token = new_token()
        print(f"cluster token (this run only; hosts need it): {token}", file=sys.stderr, flush=True)
        return token
    return load_or_create_token(state_dir)


def _run_token(args: argparse.Namespace) -> int:
    from ..wire.security import default_state_dir, load_or_create_token

    print(load_or_create_token(args.state_dir or default_state_dir()))
    return EXIT_OK


def _find_controller(args: argparse.Namespace) -> Address:
    """--controller, else $BXTHRE3_CONTROLLER, else a beacon on the LAN, else the last one that worked."""
    explicit = controller_from_env_or(args.controller)
    if explicit is not None:
        return explicit
    from ..wire.discovery import find_controller

    print(
        f"bxthre3: no --controller given; listening for a controller's beacon on UDP {args.discovery_port} "
        f"for up to {args.discovery_timeout:g}s",
        file=sys.stderr,
        flush=True,
    )
    cluster_id = args.cluster_id
    if cluster_id is None:
        from ..wire.security import CurveKeys, cluster_id_for

        token = _member_token(args)
        # Only beacons naming our token's cluster: a stranger's forged beacon is ignored like another cluster's.
        cluster_id = cluster_id_for(CurveKeys.from_token(token)) if token else None
    address = find_controller(
        None,
        timeout=args.discovery_timeout,
        cluster_id=cluster_id,
        port=args.discovery_port,
        bind_host=args.discovery_bind,
        remember=False,  # a host remembers it once it registered there (see Host.remember_controller)
    )
    args.discovered = True
    print(f"bxthre3: found controller {address}", file=sys.stderr, flush=True)
    return address


def _controller_address(args: argparse.Namespace) -> Address:
    return controller_from_env_or(args.controller) or Address("127.0.0.1", DEFAULT_PORT)


def _client(args: argparse.Namespace) -> Any:
    """The CLI's controller client: --controller, --timeout, and the member keys (or --insecure)."""
    from ..client.connection import ControllerClient

    return ControllerClient(_controller_address(args), timeout=args.timeout, keys=_member_keys(args))
