"""`bxthre3 host`: from flags to a running host (node id, device id, controller, key, engine, cache).

An idle host's imports are measured (tests/integration/test_cli.py, docs/ARCHITECTURE.md): besides
cli.py and the host's own packages it loads only this module, cluster_access and role_runtime, which
import the standard library, common/ and wire/addresses at load time; the rest is imported inside
functions, as it was in cli.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..common.errors import EXIT_INTERRUPTED, EXIT_OK
from ..common.user_input import check_node_id
from .cluster_access import _find_controller, _member_keys
from .role_runtime import _role_log, _status_file, _stop_on_signals


def _run_host(args: argparse.Namespace) -> int:
    import socket

    from ..common.logs import setup_logging
    from ..host.module_cache import ModuleCache, default_cache_dir
    from ..host.session import Host, HostConfig
    from ..node.device_identity import HOST_HINT, default_host_id, resolve_device_id
    from ..wasm.choice import resolve as resolve_engine
    from ..wire.security import load_or_create_host_key, new_host_key

    if args.node_id is not None:
        check_node_id(args.node_id)  # it names files: `a/b` wrote logs/host_a/b.log
    device_id = resolve_device_id(args.device_id)
    address = _find_controller(args)
    node_id = args.node_id or default_host_id(device_id, os.getpid())
    setup_logging(args.log_level, _role_log(args, f"host_{node_id}.log"))
    # A chosen node id keeps its key on this device, so a restarted host takes over its old self; the
    # default id (with the pid) is never used twice, so its key lives only as long as the process.
    key = load_or_create_host_key(node_id) if args.node_id else new_host_key()
    config = HostConfig(
        node_id=node_id,
        ram_mb=args.ram_limit,
        slots=args.slots,
        heartbeat_interval=args.heartbeat,
        liveness=args.liveness,
        device=args.device or socket.gethostname(),
        device_id=device_id,
        duplicate_hint=args.duplicate_hint or HOST_HINT,
        executor_idle_s=args.executor_idle,
        engine=resolve_engine(args.engine),
        warm_executors=args.warm_executors,
        key=key,
    )
    cache = ModuleCache(args.cache_dir or default_cache_dir())
    host = Host(
        address, config, cache=cache, status_file=_status_file(args), keys=_member_keys(args),
        pause_file=args.pause_file, remember_controller=args.remember_controller or getattr(args, "discovered", False),
    )  # fmt: skip
    stop = _stop_on_signals()
    print(f"bxthre3 host {node_id} connecting to {address}", file=sys.stderr, flush=True)
    host.run(stop)
    return EXIT_INTERRUPTED if getattr(stop, "signal", None) == signal.SIGINT else EXIT_OK
