"""The `bxthre3` command line. ``main(argv) -> int`` so tests call it directly.

Imports are lazy per subcommand: `bxthre3 host` must not pull in Textual or rich, and
`bxthre3 validate` must not start ZeroMQ.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .common.errors import Bxthre3Error, ClusterError
from .common.stop_event import StopEvent
from .common.user_input import MAX_NODE_RAM_MB, MIN_NODE_RAM_MB, check_node_id, range_problem
from .wire.addresses import CONTROLLER_ENV, DEFAULT_PORT, Address, controller_from_env_or
from .wire.sockets import is_loopback

if TYPE_CHECKING:
    from .controller.views import ResultsView

MAX_SLOTS = 64
"""Most executor processes one host may run: each is a process and a share of memory."""

EXIT_OK = 0
EXIT_DAG_FAILED = 1
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    code = _apply_config_file(parser, argv)
    if code is not None:
        return code
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        if sys.stdin.isatty() and sys.stdout.isatty():
            args = parser.parse_args(["ui"])  # `bxthre3` alone is the TUI role picker
        else:
            parser.print_help()
            return EXIT_OK
    try:
        return int(args.handler(args))
    except Bxthre3Error as exc:
        print(f"bxthre3: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bxthre3: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`bxthre3 ... | head`): nothing left to say to anyone.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        name = f" {exc.filename}" if exc.filename else ""
        print(f"bxthre3: error:{name} {exc.strerror or exc}", file=sys.stderr)
        return 2


def _apply_config_file(parser: argparse.ArgumentParser, argv: list[str] | None) -> int | None:
    """The config file's values become the command's defaults (flags > environment > file > defaults);
    a bad file is one line and exit code 2, like any bad flag."""
    from .commands.config_file import apply

    try:
        apply(parser, sys.argv[1:] if argv is None else list(argv))
    except Bxthre3Error as exc:
        print(f"bxthre3: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bxthre3",
        description="Pool spare devices into one cluster that runs DAGs of WebAssembly tasks.",
        epilog=f"Environment: {CONTROLLER_ENV} sets the controller address (IP or IP:PORT).",
    )
    parser.add_argument("--version", action="version", version=f"bxthre3 {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_controller(sub)
    _add_host(sub)
    _add_node_manager(sub)
    _add_all(sub)
    _add_ui(sub)
    _add_run(sub)
    _add_submit(sub)
    _add_status(sub)
    _add_results(sub)
    _add_cancel(sub)
    _add_retry(sub)
    _add_token(sub)
    _add_validate(sub)
    from .dag import examples, workloads

    workloads.register_cli(sub)
    examples.register_cli(sub)
    from .node.device_identity import register_cli as register_device_id

    register_device_id(sub)
    from .commands.conventions import register_cli as register_conventions

    register_conventions(sub)  # completion, config, systemd
    return parser


def _number(kind: type, low: float, high: float, what: str) -> Any:
    """An argparse type accepting ``kind`` values in [low, high] (no nan, no inf)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        problem = range_problem(value, low, high)
        if problem:
            raise argparse.ArgumentTypeError(f"{what} {problem}, not {text}")
        return value

    return parse


SECONDS = _number(float, 0.001, 86_400, "seconds")
HEARTBEAT = _number(float, 0.05, 3600, "heartbeat interval")
LIVENESS = _number(int, 1, 100, "liveness")


def _add_log_options(p: argparse.ArgumentParser, default_level: str) -> None:
    p.add_argument("--log-level", default=default_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument(
        "--log-file", type=Path,
        help="also write the log to this file (default: one rotated file per role in $BXTHRE3_LOG_DIR, "
        "else ~/.local/state/bxthre3/logs)",
    )  # fmt: skip


def _role_log(args: argparse.Namespace, name: str) -> Path:
    """The role's log file: --log-file, else <name> in logs.default_log_dir() (never ./logs)."""
    from .common.logs import role_log_file

    return role_log_file(args.log_file, name)


def _add_controller_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--controller",
        metavar="ADDR",
        help=f"controller IP or IP:PORT (default: ${CONTROLLER_ENV}, else 127.0.0.1:{DEFAULT_PORT})",
    )
    p.add_argument("--timeout", type=SECONDS, default=10.0, help="seconds to wait for each reply (default 10)")
    _add_token_options(p)


def _add_token_options(p: argparse.ArgumentParser, *, controller: bool = False) -> None:
    whose = (
        "this cluster's token (default: $BXTHRE3_TOKEN, else the one kept in --state-dir, created on first start)"
        if controller
        else "the cluster token (default: $BXTHRE3_TOKEN, else the local controller's; `bxthre3 token` prints it)"
    )
    p.add_argument("--token", help=whose)
    p.add_argument(
        "--insecure", action="store_true",
        help="no encryption or authentication (plaintext); only to or on 127.0.0.1",
    )  # fmt: skip


def _member_token(args: argparse.Namespace) -> str | None:
    """The token a member (host, node manager, CLI, UI) presents; None with --insecure."""
    from .wire.security import default_state_dir, resolve_token

    if getattr(args, "insecure", False):
        return None
    return resolve_token(getattr(args, "token", None), state_dir=default_state_dir())


def _member_keys(args: argparse.Namespace) -> Any:
    from .wire.security import CurveKeys

    token = _member_token(args)
    return CurveKeys.from_token(token) if token else None


def _controller_token(args: argparse.Namespace, state_dir: Path | str) -> str | None:
    """--token > $BXTHRE3_TOKEN > the state dir's token (created on first start); None with --insecure."""
    from .wire.security import TOKEN_ENV, check_token, load_or_create_token, new_token

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


def _add_token(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="print this device's cluster token (created if there is none yet)")
    p.add_argument("--state-dir", help="the controller's state dir (default ~/.local/share/bxthre3/controller)")
    p.set_defaults(handler=_run_token)


def _run_token(args: argparse.Namespace) -> int:
    from .wire.security import default_state_dir, load_or_create_token

    print(load_or_create_token(args.state_dir or default_state_dir()))
    return EXIT_OK


def _add_discovery_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-id", help="only join a controller announcing this cluster id")
    p.add_argument(
        "--discovery-timeout", type=_number(float, 0, 3600, "--discovery-timeout"), default=10.0,
        help="seconds to listen for a controller's beacon when no controller is given (default 10)",
    )  # fmt: skip
    p.add_argument(
        "--discovery-port", type=_number(int, 1, 65535, "--discovery-port"), default=5001,
        help="UDP port of discovery beacons (default 5001)",
    )  # fmt: skip
    p.add_argument("--discovery-bind", default="", help=argparse.SUPPRESS)  # tests listen on loopback only


def _find_controller(args: argparse.Namespace) -> Address:
    """--controller, else $BXTHRE3_CONTROLLER, else a beacon on the LAN, else the last one that worked."""
    explicit = controller_from_env_or(args.controller)
    if explicit is not None:
        return explicit
    from .wire.discovery import find_controller

    print(
        f"bxthre3: no --controller given; listening for a controller's beacon on UDP {args.discovery_port} "
        f"for up to {args.discovery_timeout:g}s",
        file=sys.stderr,
        flush=True,
    )
    cluster_id = args.cluster_id
    if cluster_id is None:
        from .wire.security import CurveKeys, cluster_id_for

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
    from .client.connection import ControllerClient

    return ControllerClient(_controller_address(args), timeout=args.timeout, keys=_member_keys(args))


def _wait_and_print(client: Any, dag_id: str, name: str, total: int, *, as_json: bool) -> int:
    """`--wait`: a progress bar until the DAG ends, then its results (exit code by its state)."""
    _wait_with_progress(client, dag_id, name, total)
    return _print_results(client.results(dag_id), as_json=as_json)


STALL_TASKS = 50
"""Tasks asked for when a DAG stalls (the controller picks running ones first)."""


def _wait_with_progress(client: Any, dag_id: str, name: str, total: int) -> None:
    """Progress until the DAG ends; when it stops moving, what runs where and why the rest waits."""
    from .client.progress import DagProgress, describe_stall
    from .common.errors import ClusterError

    def explain(idle_s: float) -> list[str]:
        try:
            results = client.results(dag_id, with_output=False, limit=STALL_TASKS)
            status = client.status()
        except ClusterError as exc:
            return [f"no progress for {idle_s:.0f} s, and the controller does not say why: {exc}"]
        return describe_stall(results, status, idle_s)

    with DagProgress(name, total, explain=explain) as progress:
        client.wait(dag_id, progress.update)


# ---------------------------------------------------------------------- controller


def _add_controller(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("controller", help="run the controller (schedules DAGs over hosts)")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument(
        "--port", type=_number(int, 0, 65535, "port"), default=DEFAULT_PORT,
        help=f"port to bind (default {DEFAULT_PORT}; 0 = any)",
    )  # fmt: skip
    p.add_argument("--heartbeat", type=HEARTBEAT, default=1.0, help="heartbeat interval in seconds (default 1)")
    p.add_argument("--liveness", type=LIVENESS, default=3, help="missed heartbeats before a host is dead (default 3)")
    p.add_argument(
        "--state-dir",
        help="where the journal (SQLite) and large outputs live (default ~/.local/share/bxthre3/controller; "
        "':memory:' keeps nothing)",
    )
    p.add_argument(
        "--reset-state", action="store_true",
        help="if the journal in --state-dir is damaged or empty, move its files aside (renamed with a "
        "timestamp, never deleted) and start empty; a healthy journal is kept",
    )  # fmt: skip
    p.add_argument(
        "--keep-dags", type=_number(int, 0, 1_000_000, "--keep-dags"), default=100,
        help="finished DAGs kept before the oldest are pruned (default 100)",
    )  # fmt: skip
    p.add_argument(
        "--keep-days", type=_number(float, 0, 36_500, "--keep-days"), default=7.0,
        help="finished DAGs older than this are pruned (default 7)",
    )  # fmt: skip
    p.add_argument("--cluster-id", help="name of this cluster in discovery beacons (default: kept in the state dir)")
    p.add_argument(
        "--discovery-port", type=_number(int, 1, 65535, "--discovery-port"), default=5001,
        help="UDP port of discovery beacons (default 5001)",
    )  # fmt: skip
    p.add_argument("--no-beacon", action="store_true", help="do not announce this controller on the LAN")
    p.add_argument(
        "--metrics-port", type=_number(int, 0, 65535, "--metrics-port"),
        help="serve Prometheus metrics on this port (same address as --host; 0 picks one)",
    )  # fmt: skip
    p.add_argument(
        "--with-node-manager", action="store_true",
        help="also run a node manager here (the original 'Controller + Node Manager' role)",
    )  # fmt: skip
    _add_scaling_options(p)
    _add_status_file_option(p)
    _add_token_options(p, controller=True)
    _add_log_options(p, "INFO")
    p.set_defaults(handler=_run_controller)


def _stop_on_signals() -> StopEvent:
    stop = StopEvent()

    def handler(signum: int, frame: object) -> None:
        stop.signal = signum  # type: ignore[attr-defined]
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _run_controller(args: argparse.Namespace) -> int:
    if getattr(args, "with_ui", False) and sys.stdin.isatty() and sys.stdout.isatty():
        return _run_all_with_ui(args)
    from .common.logs import setup_logging
    from .controller.server import Controller
    from .scheduler import SchedulerConfig

    setup_logging(args.log_level, _role_log(args, "controller.log"))
    from .controller.store import PrunePolicy
    from .wire.security import default_state_dir

    config = SchedulerConfig(heartbeat_interval=args.heartbeat, liveness=args.liveness)
    state_dir = args.state_dir or default_state_dir()
    prune = PrunePolicy(keep=args.keep_dags, max_age_s=args.keep_days * 86_400)
    metrics = None
    if getattr(args, "metrics_port", None) is not None:
        from .controller.metrics import Metrics

        metrics = Metrics()
    if args.insecure and not is_loopback(args.host):
        raise Bxthre3Error(f"--insecure serves plaintext, so only on loopback (--host 127.0.0.1), not {args.host}")
    token = _controller_token(args, state_dir)
    from .wire.security import CurveKeys

    controller = Controller(
        host=args.host, port=args.port, config=config, state_dir=state_dir, prune=prune, metrics=metrics,
        status_file=_status_file(args), keys=CurveKeys.from_token(token) if token else None,
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
            from .wire.discovery import Beacon, BeaconSender
            from .wire.security import cluster_id_for

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
    from .controller.store import JOURNAL_FILE

    return str(state_dir) != ":memory:" and not (Path(state_dir) / JOURNAL_FILE).exists()


def _print_join_hint(args: argparse.Namespace, port: int, state_dir: Path | str) -> None:
    from .controller.join_hint import join_lines
    from .wire.security import default_state_dir, token_path

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
    from .controller.store import JournalError, reset_state

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
    from .tui.app import run_tui
    from .tui.roles import RoleConfig

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


# ---------------------------------------------------------------------- host


def _add_host(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("host", help="run a host (executes tasks' WebAssembly modules)")
    p.add_argument("--controller", metavar="ADDR", help=f"controller IP or IP:PORT (default: ${CONTROLLER_ENV})")
    p.add_argument(
        "--ram-limit", type=_number(int, MIN_NODE_RAM_MB, MAX_NODE_RAM_MB, "--ram-limit"), default=128,
        help=f"MB of memory each task on this host may use ({MIN_NODE_RAM_MB}-{MAX_NODE_RAM_MB}, default 128)",
    )  # fmt: skip
    p.add_argument(
        "--node-id", help="name of this host, unique in the cluster (default: <hostname>-<6 of the device id>-<pid>)"
    )
    p.add_argument("--device", default="", help="name of the device this host runs on (default: its hostname)")
    _add_device_id_option(p)
    p.add_argument("--duplicate-hint", help=argparse.SUPPRESS)  # set by a node manager: what fixes a taken node id
    p.add_argument(
        "--slots", type=_number(int, 1, MAX_SLOTS, "--slots"), default=1,
        help=f"tasks run at once, one executor process each (default 1, at most {MAX_SLOTS})",
    )  # fmt: skip
    p.add_argument("--cache-dir", type=Path, help="module cache (default ~/.cache/bxthre3/modules)")
    p.add_argument("--heartbeat", type=HEARTBEAT, default=1.0, help="heartbeat interval in seconds (default 1)")
    p.add_argument("--liveness", type=LIVENESS, default=3, help="missed heartbeats before reconnecting (default 3)")
    _add_engine_option(p)
    _add_status_file_option(p)
    p.add_argument("--remember-controller", action="store_true", help=argparse.SUPPRESS)  # set by a node manager
    p.add_argument(
        "--executor-idle", type=SECONDS, default=60.0, metavar="SECONDS",
        help="stop a slot's executor after this long without a task, to give its memory back (default 60)",
    )  # fmt: skip
    p.add_argument(
        "--warm-executors", action="store_true",
        help="start the executors when registered, not with the first task (`bxthre3 run` does: its DAG comes at once)",
    )  # fmt: skip
    p.add_argument(
        "--pause-file", type=Path, metavar="PATH",
        help="take no new tasks while PATH exists (its text says why); a node manager sets it on a phone",
    )  # fmt: skip
    _add_token_options(p)
    _add_discovery_options(p)
    _add_log_options(p, "INFO")
    p.set_defaults(handler=_run_host)


def _add_device_id_option(p: argparse.ArgumentParser) -> None:
    from .node.device_identity import DEVICE_ID_ENV

    p.add_argument(
        "--device-id", metavar="ID",
        help=f"this device's id, 6-64 lowercase letters and digits (default ${DEVICE_ID_ENV}, else the one kept "
        "in ~/.local/state/bxthre3/device_id, made once; `bxthre3 device-id --new` renews it on a clone)",
    )  # fmt: skip


def _add_engine_option(p: argparse.ArgumentParser) -> None:
    from .wasm.choice import CHOICES, default_choice

    p.add_argument(
        "--engine", choices=CHOICES, default=default_choice(),
        help="WebAssembly engine for tasks: wasmtime (fast; pip install 'bxthre3[wasmtime]'), wasm3 (runs "
        "everywhere) or auto = wasmtime when installed and it loads here, else wasm3 (default $BXTHRE3_ENGINE or auto)",
    )  # fmt: skip


def _add_status_file_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--status-file", type=Path, metavar="PATH",
        help="keep this role's own state in PATH as JSON, rewritten twice a second (the TUI reads it)",
    )  # fmt: skip


def _status_file(args: argparse.Namespace) -> Any:
    from .common.status_file import StatusFile

    return StatusFile(args.status_file) if getattr(args, "status_file", None) else None


def _run_host(args: argparse.Namespace) -> int:
    import socket

    from .common.logs import setup_logging
    from .host.module_cache import ModuleCache, default_cache_dir
    from .host.session import Host, HostConfig
    from .node.device_identity import HOST_HINT, default_host_id, resolve_device_id
    from .wasm.choice import resolve as resolve_engine
    from .wire.security import load_or_create_host_key, new_host_key

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


# ---------------------------------------------------------------------- node manager


def _add_scaling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ram-per-node", type=_number(int, MIN_NODE_RAM_MB, MAX_NODE_RAM_MB, "--ram-per-node"),
        help=f"MB each host gets, which is also its tasks' memory limit ({MIN_NODE_RAM_MB}-{MAX_NODE_RAM_MB}; "
        "default $RAM_PER_NODE or 128)",
    )  # fmt: skip
    p.add_argument(
        "--min-free-ram", type=_number(int, 0, 1_048_576, "--min-free-ram"), default=512,
        help="MB always left free for the device's owner (default 512)",
    )  # fmt: skip
    p.add_argument(
        "--max-nodes", type=_number(int, 0, 256, "--max-nodes"),
        help="most hosts to run (default: the CPU count; at most 4 on Android)",
    )  # fmt: skip
    p.add_argument(
        "--device-name",
        help="name of this device, and of its hosts: <name>-1, <name>-2, ... (default: the hostname, with hosts "
        "<hostname>-<6 of the device id>-1, ... so devices of one hostname never collide)",
    )  # fmt: skip
    _add_device_id_option(p)
    _add_engine_option(p)
    p.add_argument(
        "--phone-manners", choices=["auto", "on", "off"], default=os.environ.get("BXTHRE3_PHONE_MANNERS", "auto"),
        help="pause the hosts when unplugged below 20%% battery or at 42 °C and over (resume at 30%% or plugged "
        "in, 39 °C); auto = on Android (needs termux-api); default $BXTHRE3_PHONE_MANNERS or auto",
    )  # fmt: skip


def _add_node_manager(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "node-manager",
        help="run as many hosts as free RAM allows: (available - min free) / RAM per node",
    )
    p.add_argument(
        "--controller", metavar="ADDR", help=f"controller IP or IP:PORT (default: ${CONTROLLER_ENV}, else discovery)"
    )
    _add_scaling_options(p)
    _add_status_file_option(p)
    _add_token_options(p)
    _add_discovery_options(p)
    _add_log_options(p, "INFO")
    p.set_defaults(handler=_run_node_manager)


def _ram_per_node(args: argparse.Namespace) -> int:
    if args.ram_per_node is not None:
        return int(args.ram_per_node)
    env = os.environ.get("RAM_PER_NODE", "").strip()
    try:
        value = int(env) if env else 128
    except ValueError:
        raise Bxthre3Error(f"RAM_PER_NODE must be a whole number of MB, not {env!r}") from None
    from .common.user_input import ram_problem

    problem = ram_problem(value)
    if problem:
        raise Bxthre3Error(f"RAM_PER_NODE {problem} (or pass --ram-per-node)")
    return value


def _node_manager(args: argparse.Namespace, controller: Address, token: str | None) -> Any:
    """The node manager; its hosts get ``token`` through their environment (argv is public), or
    --insecure when it is None."""
    import socket

    from .node.device_identity import resolve_device_id
    from .node.manager import NodeManager, ScalingPolicy
    from .node.ram_probe import is_android

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
        from .node.phone_manners import PhoneManners

        manners = PhoneManners(log_dir / f"{args.device_name or socket.gethostname()}.paused")
    from .wasm.choice import resolve as resolve_engine

    engine = resolve_engine(getattr(args, "engine", "auto"))  # refuse a missing engine now, not in every host
    return NodeManager(
        controller, policy, name=args.device_name, log_dir=log_dir, token=token, insecure=token is None,
        manners=manners, host_args=["--engine", engine], device_id=resolve_device_id(args.device_id),
    )  # fmt: skip


def _run_node_manager(args: argparse.Namespace) -> int:
    from .common.logs import setup_logging

    controller_from_env_or(args.controller)  # a bad address is refused before anything starts
    setup_logging(args.log_level, _role_log(args, "node_manager.log"))
    token = _member_token(args)
    manager = _node_manager(args, _find_controller(args), token)
    if getattr(args, "discovered", False):
        manager.host_args.append("--remember-controller")  # the first host to register makes it the "last used"
    stop = _stop_on_signals()
    print(f"bxthre3 node manager for {manager.controller} ({manager.policy})", file=sys.stderr, flush=True)
    from .wire.reachability import why_unreachable

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


def _add_all(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "all", help="everything on this device: controller, node manager and (on a terminal) the monitor, on loopback"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this device only)")
    p.add_argument("--port", type=_number(int, 0, 65535, "port"), default=DEFAULT_PORT, help="controller port")
    p.add_argument("--state-dir", help="controller state (default ~/.local/share/bxthre3/controller)")
    _add_scaling_options(p)
    _add_token_options(p, controller=True)
    _add_log_options(p, "INFO")
    p.set_defaults(
        handler=_run_controller, with_node_manager=True, with_ui=True, no_beacon=False, cluster_id=None,
        discovery_port=5001,
        heartbeat=1.0, liveness=3, keep_dags=100, keep_days=7.0,
    )  # fmt: skip


# ---------------------------------------------------------------------- ui


def _add_ui(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="the terminal UI: pick a role, watch the cluster, submit DAGs (`bxthre3` alone)")
    p.add_argument("--controller", metavar="ADDR", help="open the monitor on this controller at once")
    p.add_argument(
        "--role", choices=["ui", "controller", "node-manager", "host", "all"], help="skip the role picker"
    )
    p.add_argument(
        "--log-file", type=Path,
        help="the UI's log (default: ui.log in $BXTHRE3_LOG_DIR, else ~/.local/state/bxthre3/logs; never the terminal)",
    )  # fmt: skip
    _add_token_options(p)
    p.set_defaults(handler=_run_ui)


def _run_ui(args: argparse.Namespace) -> int:
    from .tui.app import run_tui
    from .wire.security import check_token

    controller = controller_from_env_or(args.controller) if args.controller else None
    token = check_token(args.token, "--token") if args.token else None
    return int(
        run_tui(
            controller=controller, start_role=args.role, log_file=args.log_file, token=token, insecure=args.insecure
        )
    )


# ---------------------------------------------------------------------- validate


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a DAG file without running it")
    p.add_argument("dag", type=Path, help="DAG YAML file")
    p.set_defaults(handler=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from .dag.examples import dag_file
    from .dag.yaml_loader import load_dag

    spec = load_dag(dag_file(args.dag))
    size = sum(len(m) for m in spec.modules.values())
    print(f"{args.dag}: OK — DAG '{spec.name}', {len(spec.tasks)} tasks, {len(spec.modules)} modules ({size:,} bytes)")
    for note in _engine_notes(spec):
        print(f"{args.dag}: note: {note}")
    return EXIT_OK


def _engine_notes(spec: Any) -> list[str]:
    """Modules only wasmtime hosts can run: OK would otherwise promise what a Wasm3 host refuses."""
    from .common.errors import printable
    from .wasm.normalize import WASM3, normalize, refusal

    notes = []
    for digest, data in spec.modules.items():
        problem = refusal(normalize(data, name=digest[:12]).features, engine=WASM3)
        if problem:
            names = sorted({t.module_name for t in spec.tasks if t.module == digest})
            label = ", ".join(printable(n) for n in names) or digest[:12]
            notes.append(f"module {label} runs on wasmtime hosts only: it {problem}")
    return notes


# ---------------------------------------------------------------------- run


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a DAG on an embedded local cluster and print its results")
    p.add_argument("dag", type=Path, help="DAG YAML file, or the name of a bundled example (bxthre3 examples)")
    p.add_argument("--hosts", type=_number(int, 1, 64, "--hosts"), default=2, help="local host processes (default 2)")
    p.add_argument("--slots", type=_number(int, 1, MAX_SLOTS, "--slots"), default=1, help="slots per host (default 1)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--log-dir", type=Path, help="write controller and host logs here (default: $BXTHRE3_LOG_DIR, else none kept)"
    )
    _add_engine_option(p)
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write each final task's output to DIR/<task id><ext> (.pgm, .png, .txt or .bin by content) "
        "and every file a task wrote under /out to DIR/<task id>/<name>",
    )
    p.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from .client.progress import stage_printer
    from .commands.local_cluster import LocalCluster
    from .common.logs import chosen_log_dir, setup_logging
    from .common.scratch import exit_on_termination_signals
    from .dag.examples import dag_file
    from .dag.yaml_loader import load_dag
    from .wasm.choice import resolve as resolve_engine

    spec = load_dag(dag_file(args.dag))
    log_dir = args.log_dir if args.log_dir is not None else chosen_log_dir()  # none kept unless asked for
    setup_logging("WARNING", log_dir / "controller.log" if log_dir else None)
    engine = resolve_engine(args.engine)  # after logging: auto's fallback warning is one line on stderr
    exit_on_termination_signals()  # SIGTERM/SIGHUP unwind the cluster below: hosts stopped, temp files gone
    with LocalCluster(
        hosts=args.hosts, slots=args.slots, log_dir=log_dir, on_stage=stage_printer(), engine=engine
    ) as cluster:
        assert cluster.client is not None
        dag_id = cluster.client.submit(spec)
        _wait_with_progress(cluster.client, dag_id, spec.name, len(spec.tasks))
        results = cluster.client.results(dag_id)
        written = _write_named_outputs(cluster.client, dag_id, results, args.out) if args.out is not None else []
    code = _print_results(results, as_json=args.json)
    if args.out is not None:
        _say_written(_write_final(spec, results, args.out) + written)
    return code


def _write_named_outputs(client: Any, dag_id: str, results: ResultsView, out: Path) -> list[Path]:
    """Fetch and write every succeeded task's named outputs as OUT/<task>/<name>, one task per request
    (a task's files can add up to 16 MiB: a whole DAG's would not fit one reply)."""
    from .client.outputs import write_named_outputs

    written: list[Path] = []
    for task in results.get("tasks", []):
        if task.get("state") != "succeeded" or not task.get("files"):
            continue
        full = client.results(dag_id, task_id=task["task_id"], with_files=True)
        for one in full.get("tasks", []):
            written += write_named_outputs(out, one["task_id"], one.get("files", []))
    return written


# ---------------------------------------------------------------------- submit / status / results


def _add_submit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a DAG to a running controller; prints its id")
    p.add_argument("dag", type=Path, help="DAG YAML file, or the name of a bundled example (bxthre3 examples)")
    p.add_argument("--wait", action="store_true", help="wait for the DAG to end and print each task's output")
    p.add_argument(
        "--json", action="store_true",
        help='one JSON document on stdout: {"dag_id": ...}, or with --wait the results (the id goes to stderr)',
    )  # fmt: skip
    p.add_argument(
        "--out", type=Path, metavar="DIR",
        help="with --wait: write each final task's output to DIR/<task id><ext> and every file a task wrote "
        "under /out to DIR/<task id>/<name> (as `run --out`)",
    )  # fmt: skip
    _add_controller_option(p)
    p.set_defaults(handler=_run_submit)


def _run_submit(args: argparse.Namespace) -> int:
    from .dag.examples import dag_file
    from .dag.yaml_loader import load_dag

    if args.out is not None and not args.wait:
        raise Bxthre3Error("--out needs --wait: outputs exist once the DAG ends (later: `bxthre3 results ID --out`)")
    spec = load_dag(dag_file(args.dag))
    with _client(args) as client:
        dag_id = client.submit(spec)
        if args.json and not args.wait:
            print(json.dumps({"dag_id": dag_id}), flush=True)
            return EXIT_OK
        # With --wait --json, stdout is the results document alone (`| jq` must parse it): the id goes aside.
        print(dag_id, file=sys.stderr if args.json else sys.stdout, flush=True)
        if not args.wait:
            return EXIT_OK
        _wait_with_progress(client, dag_id, spec.name, len(spec.tasks))
        results = client.results(dag_id)
        written = _write_named_outputs(client, dag_id, results, args.out) if args.out is not None else []
    code = _print_results(results, as_json=args.json)
    if args.out is not None:
        _say_written(_write_final(spec, results, args.out) + written)
    return code


def _write_final(spec: Any, results: ResultsView, out: Path) -> list[Path]:
    from .client.outputs import write_final_outputs

    return write_final_outputs(spec, results, out)


def _say_written(paths: list[Path]) -> None:
    from .client.outputs import terminal_safe

    for path in paths:
        print(f"wrote {terminal_safe(str(path), keep='')}", file=sys.stderr)  # names come from modules


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show hosts, DAGs and totals of a running controller")
    p.add_argument("--json", action="store_true", help="print the raw snapshot as JSON")
    _add_controller_option(p)
    p.set_defaults(handler=_run_status)


def _run_status(args: argparse.Namespace) -> int:

    with _client(args) as client:
        status = client.status()
    journal_error = status.get("controller", {}).get("journal_error")
    if journal_error:  # the one thing about the controller itself a user must act on
        print(f"bxthre3: warning: {journal_error}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(status, indent=2, default=_json_default))
    else:
        from .client.render import print_status

        print_status(status)
    return EXIT_OK


def _add_results(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="show a DAG's tasks and their outputs")
    p.add_argument("dag_id", help="the id `submit` printed")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="write every file a task wrote under /out to DIR/<task id>/<name>"
    )
    p.add_argument(
        "--task", metavar="TASK",
        help="print only this task's output, in full and byte for byte (the table summarises long and binary ones)",
    )  # fmt: skip
    _add_controller_option(p)
    p.set_defaults(handler=_run_results)


def _run_results(args: argparse.Namespace) -> int:

    with _client(args) as client:
        results = client.results(args.dag_id, task_id=args.task) if args.task else client.results(args.dag_id)
        written = _write_named_outputs(client, args.dag_id, results, args.out) if args.out is not None else []
    if args.task and not args.json:
        return _print_one_output(results, args.task)
    code = _print_results(results, as_json=args.json)
    _say_written(written)
    return code


def _print_one_output(results: ResultsView, task_id: str) -> int:
    """`results ID --task T`: the task's whole stdout, byte for byte into a file or a pipe (`> img.pgm`).

    On a terminal, text has its control characters escaped (a module must not be able to rewrite the
    screen) and binary is not written at all: it would only garble the terminal."""
    tasks = [t for t in results.get("tasks", []) if t.get("task_id") == task_id]
    if not tasks:
        raise Bxthre3Error(f"DAG {results.get('dag_id')} has no task {task_id!r} (`bxthre3 results ID` lists them)")
    task = tasks[0]
    if task.get("state") != "succeeded":
        why = f": {task.get('reason')} {task.get('error') or ''}".rstrip() if task.get("reason") else ""
        print(f"bxthre3: task {task_id} is {task.get('state')}{why}", file=sys.stderr)
        return EXIT_DAG_FAILED
    raw = task.get("output") or b""
    data = raw.encode() if isinstance(raw, str) else raw
    if sys.stdout.isatty():
        from .client.outputs import terminal_safe

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Bxthre3Error(
                f"task {task_id}'s output is {len(data):,} bytes of binary: redirect it (`> {task_id}.bin`) "
                "or save it with --out DIR"
            ) from None
        sys.stdout.write(terminal_safe(text))
        sys.stdout.flush()
        return EXIT_OK
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return EXIT_OK


def _add_cancel(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="cancel a DAG: queued tasks stop, running ones are killed on their hosts")
    p.add_argument("dag_id", help="the id `submit` printed")
    _add_controller_option(p)
    p.set_defaults(handler=_run_cancel)


def _run_cancel(args: argparse.Namespace) -> int:

    with _client(args) as client:
        summary = client.cancel(args.dag_id)
    counts = summary.get("counts", {})
    print(
        f"{args.dag_id}: {summary.get('state')} ({counts.get('cancelled', 0)} cancelled, "
        f"{counts.get('succeeded', 0)} had succeeded)"
    )
    return EXIT_OK


def _add_retry(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retry", help="run a DAG's failed, upstream-failed and cancelled tasks again (succeeded ones are kept)"
    )
    p.add_argument("dag_id", help="the id `submit` printed")
    p.add_argument("--wait", action="store_true", help="wait for the DAG to end, with a progress bar")
    _add_controller_option(p)
    p.set_defaults(handler=_run_retry)


def _run_retry(args: argparse.Namespace) -> int:

    with _client(args) as client:
        summary = client.retry(args.dag_id)
        print(f"{args.dag_id}: {summary.get('retried', 0)} task(s) started again, DAG {summary.get('state')}")
        if not args.wait:
            return EXIT_OK
        name, total = str(summary.get("name", args.dag_id)), int(summary.get("total", 0))
        return _wait_and_print(client, args.dag_id, name, total, as_json=False)


def _print_results(results: ResultsView, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(results, indent=2, default=_json_default))
    else:
        from .client.render import print_results

        print_results(results)
    state = results.get("state")
    if state == "succeeded":
        return EXIT_OK
    if state in ("running",):
        return EXIT_OK
    return EXIT_DAG_FAILED


def _json_default(value: object) -> object:
    """Outputs are bytes: text when they decode as UTF-8, else base64 with a marker."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            return {"base64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot serialise {type(value).__name__}")


__all__ = ["main", "ClusterError"]
