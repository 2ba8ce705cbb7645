"""The commands that ask a running controller about DAGs: `submit`, `status`, `results`, `cancel`, `retry`.

Each opens one client (cluster_access.py) and presents the reply as `run` does (dag_results.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING

from ..common.errors import EXIT_DAG_FAILED, EXIT_OK, Bxthre3Error
from .cluster_access import _client
from .dag_results import (
    _json_default,
    _print_results,
    _say_written,
    _wait_and_print,
    _wait_with_progress,
    _write_final,
    _write_named_outputs,
)

if TYPE_CHECKING:
    from ..controller.views import ResultsView


def _run_submit(args: argparse.Namespace) -> int:
    from ..dag.examples import dag_file
    from ..dag.yaml_loader import load_dag

    if args.out is not None and not args.wait:
        raise Bxthre3Error("--out needs --wait: outputs exist once the DAG ends (later: `bxthre3 results ID --out`)")
    if args.out is not None:
        from ..client.outputs import prepare_output_directory

        prepare_output_directory(args.out)  # before the submission: not found unwritable after the run
    spec = load_dag(dag_file(args.dag), params=dict(args.params))
    if args.priority is not None:
        spec = dataclasses.replace(spec, priority=args.priority)
    if args.no_cache:
        spec = dataclasses.replace(spec, cache=False)
    with _client(args) as client:
        dag_id = client.submit(spec)
        if args.json and not args.wait:
            print(json.dumps({"dag_id": dag_id}), flush=True)
            return EXIT_OK
        # With --wait --json, stdout is the results document alone (`| jq` must parse it): the id goes aside.
        print(dag_id, file=sys.stderr if args.json else sys.stdout, flush=True)
        if not args.wait:
            return EXIT_OK
        _wait_with_progress(client, dag_id, spec.name, len(spec.tasks), stall_notice=args.stall_notice)
        results = client.results(dag_id)
        written = _write_named_outputs(client, dag_id, results, args.out) if args.out is not None else []
    code = _print_results(results, as_json=args.json)
    if args.out is not None:
        _say_written(_write_final(spec, results, args.out) + written)
    return code


def _run_status(args: argparse.Namespace) -> int:

    with _client(args) as client:
        status = client.status()
    journal_error = status.get("controller", {}).get("journal_error")
    if journal_error:  # the one thing about the controller itself a user must act on
        print(f"bxthre3: warning: {journal_error}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(status, indent=2, default=_json_default))
    else:
        from ..client.render import print_status

        print_status(status)
    return EXIT_OK


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
        from ..client.outputs import terminal_safe

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


def _run_cancel(args: argparse.Namespace) -> int:

    with _client(args) as client:
        summary = client.cancel(args.dag_id)
    counts = summary.get("counts", {})
    print(
        f"{args.dag_id}: {summary.get('state')} ({counts.get('cancelled', 0)} cancelled, "
        f"{counts.get('succeeded', 0)} had succeeded)"
    )
    return EXIT_OK


def _run_retry(args: argparse.Namespace) -> int:

    with _client(args) as client:
        summary = client.retry(args.dag_id)
        print(f"{args.dag_id}: {summary.get('retried', 0)} task(s) started again, DAG {summary.get('state')}")
        if not args.wait:
            return EXIT_OK
        name, total = str(summary.get("name", args.dag_id)), int(summary.get("total", 0))
        return _wait_and_print(client, args.dag_id, name, total, as_json=False, stall_notice=args.stall_notice)


def _run_cache(args: argparse.Namespace) -> int:
    """`bxthre3 cache stats|clear`: the running controller's result cache."""
    with _client(args) as client:
        stats = client.cache(args.cache_action)
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    if args.cache_action == "clear":
        print(f"cleared {stats['cleared']:,} cache entries")
        return EXIT_OK
    state = "on" if stats["enabled"] else "off (--cache-size 0)"
    where = " (in memory: gone when the controller stops)" if stats["in_memory"] else ""
    print(f"result cache {state}{where}")
    print(f"  entries  {stats['entries']:,}")
    print(f"  size     {stats['bytes']:,} of {stats['cap']:,} bytes")
    hits, misses = stats["hits"], stats["misses"]
    print(f"  since start: {hits:,} hits (tasks served from it), {misses:,} misses (cacheable tasks run)")
    return EXIT_OK
