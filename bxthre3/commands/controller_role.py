"""`bxthre3 controller` and `bxthre3 all`: from flags to a serving controller.

The token, the journal (restored, or moved aside with --reset-state), the join hint on a first start,
metrics, the discovery beacon and, with --with-node-manager (`all`), a node manager on the main thread.
`all` on a terminal hands itself to the TUI, which runs the same command, without a terminal, as its child.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ..common.errors import EXIT_OK, Bxthre3Error, ClusterError
from ..wire.addresses import Address
from ..wire.sockets import is_loopback
from .cluster_access import _controller_token
from .node_manager_role import _node_manager, _ram_per_node
from .role_runtime import _role_log, _status_file, _stop_on_signals


def _run_controller(args: argparse.Namespace) -> int:
    if getattr(args, "with_ui", False) and sys.stdin.isatty() and sys.stdout.isatty():
        return _run_all_with_ui(args)
    from ..common.logs import setup_logging
    from ..controller.server import Controller
    from ..scheduler import SchedulerConfig

    setup_logging(args.log_level, _role_log(args, "controller.log"))
    from ..controller.store import PrunePolicy
    from ..wire.security import default_state_dir

    config = SchedulerConfig(heartbeat_interval=args.heartbeat, liveness=args.liveness)
    state_dir = args.state_dir or default_state_dir()
    prune = PrunePolicy(keep=args.keep_dags, max_age_s=args.keep_days * 86_400)
    metrics = None
    if getattr(args, "metrics_port", None) is not None:
        from ..controller.metrics import Metrics

        metrics = Metrics()
    if args.insecure and not is_loopback(args.host):
        raise Bxthre3Error(f"--insecure serves plaintext, so only on loopback (--host 127.0.0.1), not {args.host}")
    token = _controller_token(args, state_dir)
    from ..wire.security import CurveKeys

    controller = Controller(
        host=args.host, port=args.port, config=config, state_dir=state_dir, prune=prune, metrics=metrics,
        status_file=_status_file(args), keys=CurveKeys.from_token(token) if token else None,
        cache_size=getattr(args, "cache_size", 1024) << 20,
    )  # fmt: skip
    controller.token = token
    controller.owns_process = True
    stop = _stop_on_signals()
    beacon = None
    first_start = _first_start(state_dir)
    try:
        _open_journal(controller, state_dir, reset=getattr(args, "reset_state", False))
        port = controller.bind()
        print(f"bxthre3 controller listening on {args.host}:{port}, state in {state_dir}", file=sys.stderr, flush=True)
        if first_start:
            _print_join_hint(args, port, state_dir)
        if metrics is not None:
            try:
                metrics_port = metrics.serve(args.metrics_port, args.host)
            except OSError as exc:
                raise ClusterError(f"cannot serve metrics on {args.host}:{args.metrics_port}: {exc.strerror}") from exc
            print(f"metrics on http://{args.host}:{metrics_port}/metrics", file=sys.stderr, flush=True)
        if not args.no_beacon and not is_loopback(args.host):
            from ..wire.discovery import Beacon, BeaconSender
            from ..wire.security import cluster_id_for

            cluster_id = args.cluster_id or (
                cluster_id_for(controller.keys) if controller.keys else _cluster_id(state_dir)
            )
            beacon = BeaconSender(Beacon(cluster_id, port), port=args.discovery_port)
            beacon.start()
            print(f"announcing cluster {cluster_id!r} on UDP {args.discovery_port}", file=sys.stderr, flush=True)
        if args.with_node_manager:
            _serve_with_node_manager(controller, stop, args, port)
        else:
            controller.serve(stop)
    finally:
        if beacon is not None:
            beacon.stop()
        if metrics is not None:
            metrics.close()
        controller.close()
    return EXIT_OK


def _first_start(state_dir: Path | str) -> bool:
    """A persistent state dir without a journal yet: this controller has never run there."""
    from ..controller.store import JOURNAL_FILE

    return str(state_dir) != ":memory:" and not (Path(state_dir) / JOURNAL_FILE).exists()


def _print_join_hint(args: argparse.Namespace, port: int, state_dir: Path | str) -> None:
    from ..controller.join_hint import join_lines
    from ..wire.security import default_state_dir, token_path

    file = token_path(state_dir)
    command = "bxthre3 token"
    if Path(state_dir).resolve() != Path(default_state_dir()).resolve():
        command += f" --state-dir {state_dir}"
    lines = join_lines(
        args.host, port, token_file=file if file.exists() else None, insecure=bool(args.insecure), token_command=command
    )
    print("\n".join(lines), file=sys.stderr, flush=True)


def _open_journal(controller: Any, state_dir: Path | str, *, reset: bool) -> None:
    """Restore the journal; with --reset-state a damaged one is moved aside (never deleted) first."""
    from ..controller.store import JournalError, reset_state

    try:
        controller.open_state()
    except JournalError as exc:
        if not reset or str(state_dir) == ":memory:":
            raise
        moved = reset_state(state_dir)
        names = ", ".join(str(p) for p in moved)
        print(f"bxthre3: {exc.summary}; moved aside: {names}", file=sys.stderr, flush=True)
        controller.open_state()
        return
    if reset:
        print(f"bxthre3: the journal in {state_dir} is healthy; --reset-state moved nothing", file=sys.stderr)


def _run_all_with_ui(args: argparse.Namespace) -> int:
    """`bxthre3 all` on a terminal: the TUI runs controller + node manager as its child (the same
    command without a terminal), so the roles never compete with the screen for the GIL."""
    from ..tui.app import run_tui
    from ..tui.roles import RoleConfig

    forwarded = ["--host", args.host, "--min-free-ram", str(args.min_free_ram), "--log-level", args.log_level]
    if args.state_dir:
        forwarded += ["--state-dir", args.state_dir]
    if args.max_nodes is not None:
        forwarded += ["--max-nodes", str(args.max_nodes)]
    if args.device_name:
        forwarded += ["--device-name", args.device_name]
    if args.device_id:
        forwarded += ["--device-id", args.device_id]
    if args.insecure:
        forwarded.append("--insecure")
    config = RoleConfig("all", port=args.port, ram_per_node=_ram_per_node(args))
    log_file = _role_log(args, "ui_node.log")
    return run_tui(
        start_config=config, role_args={"all": forwarded}, token=args.token, insecure=args.insecure, log_file=log_file
    )


def _serve_with_node_manager(controller: Any, stop: threading.Event, args: argparse.Namespace, port: int) -> None:
    """Controller loop in a thread, node manager on the main thread (its hosts die with it)."""
    worker = threading.Thread(target=controller.serve, args=(stop,), name="bxthre3-controller", daemon=True)
    worker.start()
    manager = _node_manager(args, Address("127.0.0.1", port), controller.token)
    controller.status_extra = lambda: {"node_manager": manager.snapshot()}
    try:
        manager.run(stop)
    finally:
        stop.set()
        worker.join(5)


def _cluster_id(state_dir: Path | str) -> str:
    """A random cluster id, kept in the state dir so the cluster keeps its name across restarts."""
    if str(state_dir) == ":memory:":
        return f"bx-{os.urandom(4).hex()}"
    path = Path(state_dir) / "cluster_id"
    try:
        text = path.read_text().strip()
        if text:
            return text[:64]
    except OSError:
        pass
    cluster_id = f"bx-{os.urandom(4).hex()}"
    try:
        path.write_text(cluster_id + "\n")
    except OSError as exc:
        print(f"bxthre3: warning: cannot keep the cluster id in {path}: {exc.strerror}", file=sys.stderr)
    return cluster_id
