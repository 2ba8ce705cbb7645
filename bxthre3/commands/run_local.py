"""`bxthre3 run`: one DAG on an embedded local cluster (local_cluster.py), with the progress, results
and outputs `submit --wait` shows for a running controller (dag_results.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from ..dag.spec import DagSpec

if TYPE_CHECKING:
    from ..backends.opening import BackendURL
from .dag_results import _print_results, _say_written, _wait_with_progress, _write_final, _write_named_outputs


def _run_run(args: argparse.Namespace) -> int:
    from ..backends.opening import parse_backend
    from ..client.outputs import prepare_output_directory
    from ..client.progress import stage_printer
    from ..common.logs import chosen_log_dir, setup_logging
    from ..common.scratch import exit_on_termination_signals
    from ..dag.examples import dag_file
    from ..dag.yaml_loader import load_dag
    from ..wasm.choice import resolve as resolve_engine
    from .local_cluster import LocalCluster

    backend = parse_backend(args.backend) if getattr(args, "backend", None) else None  # before any work
    spec = load_dag(dag_file(args.dag), params=dict(args.params))
    _refuse_verified(spec)
    if args.priority is not None:
        spec = dataclasses.replace(spec, priority=args.priority)
    if args.no_cache:
        spec = dataclasses.replace(spec, cache=False)
    if args.out is not None:
        prepare_output_directory(args.out)  # before the run: not found unwritable after it
    log_dir = args.log_dir if args.log_dir is not None else chosen_log_dir()  # none kept unless asked for
    setup_logging("WARNING", log_dir / "controller.log" if log_dir else None)
    exit_on_termination_signals()  # SIGTERM/SIGHUP unwind the cluster below: hosts stopped, temp files gone
    if backend is not None:  # the workers' engines decide what auto means there, not this machine's
        return _run_on_backend(args, spec, args.engine, backend)
    engine = resolve_engine(args.engine)  # after logging: auto's fallback warning is one line on stderr
    with LocalCluster(
        hosts=args.hosts, slots=args.slots, ram_mb=host_ram_mb(spec), log_dir=log_dir, on_stage=stage_printer(),
        engine=engine,
    ) as cluster:  # fmt: skip
        assert cluster.client is not None
        dag_id = cluster.client.submit(spec)
        _wait_with_progress(cluster.client, dag_id, spec.name, len(spec.tasks), stall_notice=args.stall_notice)
        results = cluster.client.results(dag_id)
        written = _write_named_outputs(cluster.client, dag_id, results, args.out) if args.out is not None else []
    code = _print_results(results, as_json=args.json)
    if args.out is not None:
        _say_written(_write_final(spec, results, args.out) + written)
    return code


EMBEDDED_HOST_RAM_MB = 128
"""What each embedded host offers (the node manager's default RAM per node) when no task asks for more."""


def host_ram_mb(spec: DagSpec) -> int:
    """The embedded hosts are made for this DAG: each offers its largest `memory:`, so a task that asks
    for more than the default 128 MB runs (as on a Dask or Ray backend) instead of waiting forever for a
    host that this run would never start."""
    return max([EMBEDDED_HOST_RAM_MB, *(t.memory or 0 for t in spec.tasks)])


def _refuse_verified(spec: DagSpec) -> None:
    """`verify: N` needs N distinct devices; the embedded cluster is this one device, so it could only hang."""
    from ..common.errors import DagError

    task = max(spec.tasks, key=lambda t: t.verify, default=None)
    if task is not None and task.verify > 1:
        raise DagError(
            f"{spec.source}: task {task.id!r}: verify: {task.verify} runs it on {task.verify} distinct devices, "
            "and `bxthre3 run` is one device; submit it to a cluster with `bxthre3 submit`, or set verify: 1 "
            "to run it here unverified"
        )


def _run_on_backend(args: argparse.Namespace, spec: DagSpec, engine: str, url: BackendURL) -> int:
    """`--backend dask://HOST:PORT`, `ray://HOST:PORT`, ...: the tasks run on that cluster (docs/BACKENDS.md)."""
    import time

    from ..backends.driver import Policy
    from ..backends.opening import new_run, open_backend
    from ..client.outputs import write_named_outputs
    from ..client.progress import STALL_NOTICE_S, DagProgress, StallWatch, describe_stall
    from ..common.errors import Bxthre3Error, ClusterError

    run = new_run(spec, Policy(engine=engine))
    where = f"the {url.kind.capitalize()} cluster"

    def explain(idle_s: float) -> list[str]:  # what a stalled bar says: the run's own view, "hosts" the cluster
        results = run.results(time.time())
        for task in results["tasks"]:
            if task["state"] == "running":
                task["node_id"] = where  # which worker runs it is known once it ends
        return describe_stall(results, {"hosts": [{"node_id": where}]}, idle_s)  # type: ignore[arg-type, typeddict-item]

    with open_backend(url, workers=args.hosts, threads=args.slots) as backend:
        with DagProgress(
            spec.name,
            len(spec.tasks),
            explain=explain,
            watch=StallWatch(after=STALL_NOTICE_S if args.stall_notice is None else args.stall_notice),
        ) as progress:
            try:
                backend.run(run, on_progress=progress.update)  # type: ignore[arg-type]
            except Bxthre3Error:
                raise
            except Exception as exc:  # the engine's own failure (its scheduler went away, ...): one line
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise ClusterError(f"--backend {url}: the run stopped: {type(exc).__name__}: {first}") from exc
    results = run.results(time.time(), with_files=args.out is not None)
    written = []
    if args.out is not None:
        for task in results["tasks"]:
            written += write_named_outputs(args.out, task["task_id"], task["files"])
        for task in results["tasks"]:  # as a controller's results without with_files
            for f in task["files"]:
                f.pop("data", None)
    code = _print_results(results, as_json=args.json)  # type: ignore[arg-type]
    if args.out is not None:
        _say_written(_write_final(spec, results, args.out) + written)  # type: ignore[arg-type]
    return code
