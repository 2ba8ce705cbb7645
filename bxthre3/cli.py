"""The `bxthre3` command line. ``main(argv) -> int`` so tests call it directly.

This module builds the parser (one `_add_<command>` per subcommand) and dispatches; each command's
wiring lives in `commands/`, and the handler a subcommand is given here imports it only when that
command runs. Imports are lazy per subcommand: `bxthre3 host` must not pull in Textual or rich (nor
the controller's wiring), and `bxthre3 validate` must not start ZeroMQ.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .common.errors import EXIT_INTERRUPTED, EXIT_OK, Bxthre3Error, ClusterError
from .common.user_input import MAX_NODE_RAM_MB, MIN_NODE_RAM_MB, range_problem
from .wire.addresses import CONTROLLER_ENV, DEFAULT_PORT

MAX_SLOTS = 64
"""Most executor processes one host may run: each is a process and a share of memory."""


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
    _add_hosts(sub)
    _add_cache(sub)
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


def _add_token(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="print this device's cluster token (created if there is none yet)")
    p.add_argument("--state-dir", help="the controller's state dir (default ~/.local/share/bxthre3/controller)")
    p.set_defaults(handler=_run_token)


def _run_token(args: argparse.Namespace) -> int:
    from .commands import cluster_access

    return cluster_access._run_token(args)


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
        "--cache-size", type=_number(int, 0, 1 << 30, "--cache-size"), default=1024, metavar="MB",
        help="MiB the result cache may hold in --state-dir, least recently used evicted first (default 1024; "
        "0 turns it off)",
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


def _run_controller(args: argparse.Namespace) -> int:
    from .commands import controller_role

    return controller_role._run_controller(args)


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


def _run_host(args: argparse.Namespace) -> int:
    from .commands import host_role

    return host_role._run_host(args)


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


def _run_node_manager(args: argparse.Namespace) -> int:
    from .commands import node_manager_role

    return node_manager_role._run_node_manager(args)


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
    p.add_argument("--role", choices=["ui", "controller", "node-manager", "host", "all"], help="skip the role picker")
    p.add_argument(
        "--log-file", type=Path,
        help="the UI's log (default: ui.log in $BXTHRE3_LOG_DIR, else ~/.local/state/bxthre3/logs; never the terminal)",
    )  # fmt: skip
    p.add_argument(
        "--web", metavar="[ADDR:]PORT",
        help="serve this UI to browsers instead (ADDR default 127.0.0.1; elsewhere needs the cluster token); "
        "needs pip install 'bxthre3[web]'",
    )  # fmt: skip
    _add_token_options(p)
    p.set_defaults(handler=_run_ui)


def _run_ui(args: argparse.Namespace) -> int:
    from .commands import ui_role

    return ui_role._run_ui(args)


# ---------------------------------------------------------------------- validate


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a DAG file without running it")
    p.add_argument("dag", type=Path, help="DAG YAML file")
    _add_param_option(p)
    p.set_defaults(handler=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from .commands import validate_dag

    return validate_dag._run_validate(args)


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
    _add_param_option(p)
    _add_priority_option(p)
    _add_no_cache_option(p)
    _add_stall_notice_option(p)
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write each final task's output to DIR/<task id><ext> (.pgm, .png, .txt or .bin by content) "
        "and every file a task wrote under /out to DIR/<task id>/<name>",
    )
    p.add_argument(
        "--backend", metavar="URL",
        help="run the tasks on an existing Dask or Ray cluster instead of Bxthre3's own: dask://HOST:PORT (a Dask "
        "scheduler), ray://HOST:PORT (a Ray Client server), ray:auto (the Ray cluster this machine is a node of), "
        "or dask:local / ray:local (one started for this run on 127.0.0.1 with --hosts workers of --slots "
        "threads); needs pip install 'bxthre3[dask]' or 'bxthre3[ray]' (docs/BACKENDS.md)",
    )  # fmt: skip
    p.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from .commands import run_local

    return run_local._run_run(args)


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
    _add_param_option(p)
    _add_priority_option(p)
    _add_no_cache_option(p)
    _add_stall_notice_option(p)
    _add_controller_option(p)
    p.set_defaults(handler=_run_submit)


def _add_no_cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-cache", action="store_true",
        help="run every task: reuse no cached output and store none (see README 'Reuse of results')",
    )  # fmt: skip


def _add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache",
        help="the controller's result cache: `cache stats` (entries, size, hits) or `cache clear`",
        description="A running controller keeps the outputs of deterministic tasks, keyed by module, argv and "
        "every input's bytes, and reuses them instead of running a task again (README 'Reuse of results').",
    )
    p.add_argument("cache_action", choices=("stats", "clear"), metavar="ACTION", help="stats or clear")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    _add_controller_option(p)
    p.set_defaults(handler=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
    from .commands import dag_requests

    return dag_requests._run_cache(args)


def _add_stall_notice_option(p: argparse.ArgumentParser) -> None:
    from .client.progress import STALL_NOTICE_S

    p.add_argument(
        "--stall-notice", type=_number(float, 0.5, 86_400, "--stall-notice"), metavar="SECONDS",
        default=STALL_NOTICE_S,
        help=f"while waiting: say why the DAG waits once nothing has moved for SECONDS (default {STALL_NOTICE_S:g})",
    )  # fmt: skip


def _add_param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p", "--param", type=_param, action="append", default=[], metavar="NAME=VALUE", dest="params",
        help="set the DAG's param NAME (its `params:`) to VALUE, used as ${NAME} in the file; repeatable",
    )  # fmt: skip


def _param(text: str) -> tuple[str, str]:
    """`-p NAME=VALUE` -> (NAME, VALUE); VALUE may be empty and hold '='."""
    from .dag.templates import NAME_PATTERN

    name, sep, value = text.partition("=")
    if not sep or not NAME_PATTERN.fullmatch(name):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (a name of letters, digits and '_'), not {text!r}")
    return name, value


def _add_priority_option(p: argparse.ArgumentParser) -> None:
    from .dag.fields import MAX_PRIORITY

    p.add_argument(
        "--priority", type=_number(int, -MAX_PRIORITY, MAX_PRIORITY, "--priority"), metavar="N",
        help="the DAG's priority, overriding its `priority:` (default: the file's, else 0; higher goes first)",
    )  # fmt: skip


def _run_submit(args: argparse.Namespace) -> int:
    from .commands import dag_requests

    return dag_requests._run_submit(args)


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show hosts, DAGs and totals of a running controller")
    p.add_argument("--json", action="store_true", help="print the raw snapshot as JSON")
    _add_controller_option(p)
    p.set_defaults(handler=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    from .commands import dag_requests

    return dag_requests._run_status(args)


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
    from .commands import dag_requests

    return dag_requests._run_results(args)


def _add_cancel(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="cancel a DAG: queued tasks stop, running ones are killed on their hosts")
    p.add_argument("dag_id", help="the id `submit` printed")
    _add_controller_option(p)
    p.set_defaults(handler=_run_cancel)


def _run_cancel(args: argparse.Namespace) -> int:
    from .commands import dag_requests

    return dag_requests._run_cancel(args)


def _add_retry(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retry", help="run a DAG's failed, upstream-failed and cancelled tasks again (succeeded ones are kept)"
    )
    p.add_argument("dag_id", help="the id `submit` printed")
    p.add_argument("--wait", action="store_true", help="wait for the DAG to end, with a progress bar")
    _add_stall_notice_option(p)
    _add_controller_option(p)
    p.set_defaults(handler=_run_retry)


def _run_retry(args: argparse.Namespace) -> int:
    from .commands import dag_requests

    return dag_requests._run_retry(args)


def _add_hosts(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hosts",
        help="list the hosts (device, speed, quarantined or not); `hosts trust DEVICE` lifts a device's quarantine",
        description="Without an action: list the hosts, as `status` does, and the quarantined devices.",
    )
    _add_hosts_options(p)
    p.set_defaults(handler=_run_hosts_list)
    actions = p.add_subparsers(title="actions", metavar="ACTION", dest="hosts_action")
    listing = actions.add_parser(
        "list", help="the hosts with their device, speed and state, and the quarantined devices (the default)"
    )
    _add_hosts_options(listing, inherit=True)
    listing.set_defaults(handler=_run_hosts_list)
    trust = actions.add_parser(
        "trust",
        help="lift a device's quarantine: its hosts get tasks again",
        description="A device whose verified outputs disagreed with the majority too often is quarantined; "
        "trust it again once you have checked it. DEVICE is its id, 4 or more characters of it, or its name "
        "when no other quarantined device has that name (`bxthre3 status` lists them).",
    )
    trust.add_argument("device", metavar="DEVICE", help="the device's id, a prefix of it (4+ characters), or its name")
    _add_hosts_options(trust, inherit=True)
    trust.set_defaults(handler=_run_hosts_trust)


def _add_hosts_options(p: argparse.ArgumentParser, *, inherit: bool = False) -> None:
    """--json and the controller options; an action's own (``inherit``) leave those given before it alone:
    `hosts --controller X trust D` and `hosts trust D --controller X` mean the same."""
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    _add_controller_option(p)
    if inherit:
        for action in p._actions:
            if action.dest != "help":
                action.default = argparse.SUPPRESS


def _run_hosts_list(args: argparse.Namespace) -> int:
    from .commands import host_requests

    return host_requests._run_hosts_list(args)


def _run_hosts_trust(args: argparse.Namespace) -> int:
    from .commands import host_requests

    return host_requests._run_hosts_trust(args)


__all__ = ["main", "ClusterError"]
