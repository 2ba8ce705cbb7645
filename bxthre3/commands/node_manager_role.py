"""`bxthre3 node-manager`: the scaling policy, phone manners and engine from flags and environment,
then the node manager that runs the hosts. `bxthre3 all` (the controller's --with-node-manager) builds
its node manager here too.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from ..common.errors import EXIT_INTERRUPTED, EXIT_OK, Bxthre3Error
from ..common.user_input import check_node_id
from ..wire.addresses import Address, controller_from_env_or
from .cluster_access import _find_controller, _member_token
from .role_runtime import _role_log, _status_file, _stop_on_signals


def _ram_per_node(args: argparse.Namespace) -> int:
    if args.ram_per_node is not None:
        return int(args.ram_per_node)
    env = os.environ.get("RAM_PER_NODE", "").strip()
    try:
        value = int(env) if env else 128
    except ValueError:
        raise Bxthre3Error(f"RAM_PER_NODE must be a whole number of MB, not {env!r}") from None
    from ..common.user_input import ram_problem

    problem = ram_problem(value)
    if problem:
        raise Bxthre3Error(f"RAM_PER_NODE {problem} (or pass --ram-per-node)")
    return value


def _node_manager(args: argparse.Namespace, controller: Address, token: str | None) -> Any:
    """The node manager; its hosts get ``token`` through their environment (argv is public), or
    --insecure when it is None."""
    import socket

    from ..node.device_identity import resolve_device_id
    from ..node.manager import NodeManager, ScalingPolicy
    from ..node.ram_probe import is_android

    if args.device_name:
        check_node_id(args.device_name, "--device-name")  # it starts every host's node id and log name

    policy = ScalingPolicy(
        ram_per_node=_ram_per_node(args),
        min_free_ram=args.min_free_ram,
        **({"max_nodes": args.max_nodes} if args.max_nodes is not None else {}),
    )
    log_dir = _role_log(args, "node_manager.log").parent
    manners = None
    mode = getattr(args, "phone_manners", "off")
    if mode not in ("auto", "on", "off"):
        raise Bxthre3Error(f"--phone-manners (or $BXTHRE3_PHONE_MANNERS) must be auto, on or off, not {mode!r}")
    if mode == "on" or (mode == "auto" and is_android()):
        from ..node.phone_manners import PhoneManners

        manners = PhoneManners(log_dir / f"{args.device_name or socket.gethostname()}.paused")
    from ..wasm.choice import resolve as resolve_engine

    engine = resolve_engine(getattr(args, "engine", "auto"))  # refuse a missing engine now, not in every host
    return NodeManager(
        controller, policy, name=args.device_name, log_dir=log_dir, token=token, insecure=token is None,
        manners=manners, host_args=["--engine", engine], device_id=resolve_device_id(args.device_id),
    )  # fmt: skip


def _run_node_manager(args: argparse.Namespace) -> int:
    from ..common.logs import setup_logging

    controller_from_env_or(args.controller)  # a bad address is refused before anything starts
    setup_logging(args.log_level, _role_log(args, "node_manager.log"))
    token = _member_token(args)
    manager = _node_manager(args, _find_controller(args), token)
    if getattr(args, "discovered", False):
        manager.host_args.append("--remember-controller")  # the first host to register makes it the "last used"
    stop = _stop_on_signals()
    print(f"bxthre3 node manager for {manager.controller} ({manager.policy})", file=sys.stderr, flush=True)
    from ..wire.reachability import why_unreachable

    problem = why_unreachable(manager.controller)  # said here once, not only deep in every host's log
    if problem:
        print(f"bxthre3: warning: {problem} (its hosts keep trying)", file=sys.stderr, flush=True)
    status = _status_file(args)
    if status is not None:
        status.start_thread(stop, lambda: {"role": "node-manager", "node_manager": manager.snapshot()})
    manager.run(stop)
    if status is not None:
        status.write({"role": "node-manager", "node_manager": manager.snapshot(), "state": "stopped"})
    return EXIT_INTERRUPTED if getattr(stop, "signal", None) == signal.SIGINT else EXIT_OK
