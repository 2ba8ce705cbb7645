"""Following a DAG to its end and presenting what it produced, for `run` and the requests to a running
controller: the progress bar (and, when the DAG stalls, why the rest waits), the results as a table or
JSON with the exit code the DAG's state gives, and the outputs written under --out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.errors import EXIT_DAG_FAILED, EXIT_OK

if TYPE_CHECKING:
    from ..controller.views import ResultsView


def _wait_and_print(
    client: Any, dag_id: str, name: str, total: int, *, as_json: bool, stall_notice: float | None = None
) -> int:
    """`--wait`: a progress bar until the DAG ends, then its results (exit code by its state)."""
    _wait_with_progress(client, dag_id, name, total, stall_notice=stall_notice)
    return _print_results(client.results(dag_id), as_json=as_json)


STALL_TASKS = 50
"""Tasks asked for when a DAG stalls (the controller picks running ones first)."""


def _wait_with_progress(client: Any, dag_id: str, name: str, total: int, *, stall_notice: float | None = None) -> None:
    """Progress until the DAG ends; when it stops moving for `stall_notice` seconds (`--stall-notice`,
    default `STALL_NOTICE_S`), what runs where and why the rest waits."""
    from ..client.progress import STALL_NOTICE_S, DagProgress, StallWatch, describe_stall
    from ..common.errors import ClusterError

    def explain(idle_s: float) -> list[str]:
        try:
            results = client.results(dag_id, with_output=False, limit=STALL_TASKS)
            status = client.status()
        except ClusterError as exc:
            return [f"no progress for {idle_s:.0f} s, and the controller does not say why: {exc}"]
        return describe_stall(results, status, idle_s)

    watch = StallWatch(after=STALL_NOTICE_S if stall_notice is None else stall_notice)
    with DagProgress(name, total, explain=explain, watch=watch) as progress:
        client.wait(dag_id, progress.update)


def _write_named_outputs(client: Any, dag_id: str, results: ResultsView, out: Path) -> list[Path]:
    """Fetch and write every succeeded task's named outputs as OUT/<task>/<name>, one task per request
    (a task's files can add up to 16 MiB: a whole DAG's would not fit one reply)."""
    from ..client.outputs import write_named_outputs

    written: list[Path] = []
    for task in results.get("tasks", []):
        if task.get("state") != "succeeded" or not task.get("files"):
            continue
        full = client.results(dag_id, task_id=task["task_id"], with_files=True)
        for one in full.get("tasks", []):
            written += write_named_outputs(out, one["task_id"], one.get("files", []))
    return written


def _write_final(spec: Any, results: ResultsView, out: Path) -> list[Path]:
    from ..client.outputs import write_final_outputs

    return write_final_outputs(spec, results, out)


def _say_written(paths: list[Path]) -> None:
    from ..client.outputs import terminal_safe

    for path in paths:
        print(f"wrote {terminal_safe(str(path), keep='')}", file=sys.stderr)  # names come from modules


def _print_results(results: ResultsView, *, as_json: bool) -> int:
    if as_json:
        from ..client.json_text import dumps_indented

        print(dumps_indented(results, _json_default))  # json.dumps(indent=2)'s text, faster
    else:
        from ..client.render import print_results

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
