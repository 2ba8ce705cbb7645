"""The live monitor of one controller: totals, hosts, DAGs, tasks, outputs, a log; submit and cancel.

A thread worker subscribes to the controller's pushed updates (`watch`, renewed every 5 s, which
also notices a controller that stopped answering) and fetches `results(with_output=False)` of the
selected DAG only when it changed; each update is one `ClusterSnapshot` message, and a burst
coalesces into the latest. The task table shows at most `MAX_TASK_ROWS` tasks (unfinished and failed
first, then the most recently finished) and changes only the cells that changed. The output viewer
fetches one task (`results(task_id=...)`) when the highlighted task or its state changes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, ListItem, ListView, ProgressBar, RichLog, Static
from textual.worker import get_current_worker

from ..client.outputs import terminal_safe
from ..client.progress import finished_counts
from ..wire.addresses import Address
from .backend import Backend
from .file_picker import FilePickerScreen, PathSuggester
from .formatting import (
    MAX_TASK_ROWS,
    cell,
    counts_line,
    describe_output,
    host_row,
    quarantine_line,
    share_text,
    task_row,
    totals_line,
)
from .keyed_table import sync_rows
from .messages import ClusterSnapshot, ClusterUnreachable, DagSubmitted, LogLine, TaskOutput

if TYPE_CHECKING:
    from ..controller.views import DagSummary, QuarantineView, ResultsView, StatusView, TaskView

log = logging.getLogger(__name__)

WATCH_LEASE_S = 10.0
"""Subscription lease; renewed at half of it."""

CANCEL_CONFIRM_S = 3.0
"""How long the first `c` waits for the second."""

HOST_COLUMNS = (
    "node", "state", "device", "platform", "engine", "RAM use", "slots", "running", "done", "failed", "speed", "seen s"
)  # fmt: skip
TASK_COLUMNS = ("task", "state", "node", "attempts", "duration", "reason")
TASK_COLUMN_WIDTHS = {"task": 16, "state": 15, "node": 12, "attempts": 8, "duration": 9, "reason": 14}


class DagItem(ListItem):
    """One DAG in the list: name, state, counts, and a progress bar."""

    def __init__(self, dag_id: str) -> None:
        super().__init__(id=f"dag-{dag_id}")
        self.dag_id = dag_id
        self._pending: DagSummary | None = None
        """A summary that arrived before the children existed; applied on mount."""

    def compose(self) -> ComposeResult:
        yield Label("", classes="dag-label")
        yield ProgressBar(show_eta=False, classes="dag-bar")

    def on_mount(self) -> None:
        if self._pending is not None:
            self.call_after_refresh(self.update, self._pending)

    def update(self, summary: DagSummary) -> None:
        if not self.query(".dag-label"):
            self._pending = summary  # a second snapshot can arrive before compose has run
            return
        self._pending = None
        state = summary.get("state", "")
        self.set_class(state in ("succeeded",), "-succeeded")
        self.set_class(state in ("failed", "cancelled"), "-failed")
        self.query_one(".dag-label", Label).update(
            Text.assemble(
                (str(summary.get("name", "")), "bold"),
                (f" {self.dag_id}", "dim"),
                f" · {state}{share_text(summary)} · {finished_counts(summary)[0]}/{summary.get('total', 0)} · ",
                (counts_line(summary.get("counts") or {}), "dim"),
            )
        )
        self.query_one(".dag-bar", ProgressBar).update(
            total=max(1, int(summary.get("total", 0))), progress=finished_counts(summary)[0]
        )


class PathInput(Input):
    """The submit box: Tab takes the greyed path completion (as in a shell), Esc closes the box."""

    BINDINGS = [Binding("tab", "cursor_right", "Complete", show=False)]


class MonitorScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "submit", "Submit DAG"),
        Binding("c", "cancel_dag", "Cancel DAG"),
        Binding("r", "retry_dag", "Retry failed"),
        Binding("o", "pick_file", "Open file"),
        Binding("escape", "back", "Back", show=False),
    ]

    address: reactive[Address | None] = reactive(None, init=False)
    """The controller watched; None while an embedded cluster is still starting."""

    selected_dag: reactive[str | None] = reactive(None, init=False)
    """The DAG whose tasks and outputs are shown (read by the poll worker)."""

    def __init__(self, *, backend: Backend, address: Address | None = None, poll_interval: float = 0.5) -> None:
        super().__init__()
        self.backend = backend
        self.poll_interval = poll_interval
        self.updates_received = 0
        """Pushed updates applied so far (the monitor's update rate, for measurements)."""
        self.set_reactive(MonitorScreen.address, address)
        self._results: ResultsView | None = None
        self._tasks_by_id: dict[str, TaskView] = {}
        self._task_rows: dict[str, tuple[str, ...]] = {}
        """The rows in the task table, by task id: what the next update is compared with."""
        self._slots: list[str] = []
        """The task id shown in each row of the task table (row key ``r<i>``)."""
        self._output_key: tuple[Any, ...] | None = None
        """(dag, task, state, attempts) of the output shown or being fetched."""
        self._shown_output: tuple[str | None, str] = (None, "")
        self._unreachable = False
        self._cancel_armed: tuple[str, float] | None = None
        """(DAG, until when) after a first `c`: the second press cancels."""
        self._quarantined: set[str] | None = None
        """Device ids quarantined in the last snapshot (None before the first): new ones are told in the log."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="totals", markup=False)
        with Horizontal(id="main"):
            with Vertical(id="left"):
                hosts: DataTable[str] = DataTable(id="hosts", cursor_type="row", zebra_stripes=True)
                hosts.border_title = "Hosts"
                yield hosts
                dags = ListView(id="dags")
                dags.border_title = "DAGs"
                yield dags
            with Vertical(id="right"):
                tasks: DataTable[str] = DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
                tasks.border_title = "Tasks"
                yield tasks
                with VerticalScroll(id="output-pane") as pane:
                    pane.border_title = "Output"
                    yield Static("(select a task)", id="output", markup=False)
        rich_log = RichLog(id="log", wrap=True, max_lines=1000)
        rich_log.border_title = "Log"
        yield rich_log
        yield PathInput(
            placeholder="DAG file to submit, e.g. dags/hello_fanout.yaml (Tab completes, Enter submits, Esc closes)",
            suggester=PathSuggester(),
            id="submit-path",
        )
        yield Footer()

    def on_mount(self) -> None:
        hosts = self.query_one("#hosts", DataTable)
        for label in HOST_COLUMNS:  # as wide as the label; `sync_rows(fit=True)` grows them with the hosts shown
            hosts.add_column(label, key=label, width=len(label))
        tasks = self.query_one("#tasks", DataTable)
        # Fixed widths: the table is updated cell by cell as results arrive, and auto-sized
        # columns would jump (and render differently depending on arrival order).
        for label in TASK_COLUMNS:
            tasks.add_column(label, key=label, width=TASK_COLUMN_WIDTHS[label])
        self.query_one("#submit-path", Input).display = False
        if self.address is None:
            self.query_one("#totals", Static).update("Starting the embedded cluster…")
        else:
            self.watch_address(self.address)

    # --- polling -----------------------------------------------------------------------------

    def watch_address(self, address: Address | None) -> None:
        if address is not None:
            self.sub_title = str(address)
            self.query_one("#totals", Static).update(f"Connecting to {address}…")
            self.write_log(f"watching the controller at {address}")
            self.poll(address)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll(self, address: Address) -> None:
        worker = get_current_worker()
        client = None
        last_key: tuple[Any, ...] | None = None
        renew_at = 0.0
        status: StatusView  # set by the first request of each connection
        try:
            while not worker.is_cancelled:
                started = time.monotonic()
                try:
                    if client is None:
                        client = self.backend.connect(address)
                        status = client.status()
                    else:
                        # Pushed updates: the controller sends one when something changed, at most
                        # every 0.25 s, so a 10,000-task burst is a handful of redraws, not a storm.
                        if started >= renew_at:
                            client.watch(WATCH_LEASE_S)  # also proves the controller still answers
                            renew_at = started + WATCH_LEASE_S / 2
                        update = client.next_update(0.25)
                        if update is not None:
                            status = update
                            self.updates_received += 1
                        elif self.selected_dag == (last_key[0] if last_key else None):
                            continue  # nothing changed and nothing newly selected
                    results = None
                    dag_id = self.selected_dag
                    summary = next((d for d in status.get("dags", ()) if d["dag_id"] == dag_id), None)
                    if summary is not None:
                        key = (dag_id, summary["state"], summary["done"], tuple(summary["counts"].items()))
                        if key != last_key:
                            results = client.results(summary["dag_id"], with_output=False, limit=MAX_TASK_ROWS)
                            last_key = key
                    self.post_message(ClusterSnapshot(status, results))
                except Exception as exc:  # unreachable, refused, or a broken reply: say so, retry
                    log.info("poll of %s failed: %s", address, exc)
                    last_key = None
                    if client is not None:
                        client.close()
                        client = None
                    self.post_message(ClusterUnreachable(str(exc)))
                    renew_at = 0.0
                    left = self.poll_interval - (time.monotonic() - started)
                    end = time.monotonic() + max(0.0, left)
                    while not worker.is_cancelled and time.monotonic() < end:
                        time.sleep(0.05)
        finally:
            if client is not None:
                client.close()

    def on_cluster_snapshot(self, message: ClusterSnapshot) -> None:
        if self._unreachable:
            self._unreachable = False
            self.write_log("controller reachable")
        status = message.status
        quarantined = status.get("quarantined") or []
        self.query_one("#totals", Static).update(totals_line(status.get("totals", {}), len(quarantined)))
        hosts = {h["node_id"]: host_row(h) for h in status.get("hosts", [])}
        sync_rows(self.query_one("#hosts", DataTable), hosts, fit=True)
        self._tell_quarantine(quarantined)
        self._sync_dags(status.get("dags", []))
        if message.results is not None and message.results.get("dag_id") == self.selected_dag:
            self._show_results(message.results)

    def _tell_quarantine(self, quarantined: list[QuarantineView]) -> None:
        """A log line (and a notice) for each device quarantined since the last snapshot, one for each trusted."""
        now = {q["device_id"]: q for q in quarantined}
        before, self._quarantined = self._quarantined, set(now)
        for device_id, device in now.items():
            if before is None or device_id not in before:
                self.write_log(quarantine_line(device), error=True)
                if before is not None:
                    name = terminal_safe(str(device["device"]), keep="")
                    self.notify(f"Device {name} quarantined: its hosts get no tasks.", severity="warning", markup=False)
        for device_id in (before or set()) - set(now):
            self.write_log(f"device {device_id[:8]}… trusted again: its hosts get tasks")

    def on_cluster_unreachable(self, message: ClusterUnreachable) -> None:
        if not self._unreachable:
            self._unreachable = True
            self.write_log(f"controller unreachable: {message.error}", error=True)
            self.query_one("#totals", Static).update(f"Unreachable: {self.address}")

    def _sync_dags(self, dags: list[DagSummary]) -> None:
        view = self.query_one("#dags", ListView)
        items = {item.dag_id: item for item in view.query(DagItem)}
        for dag_id, gone in items.items():
            if dag_id not in {d["dag_id"] for d in dags}:
                gone.remove()
        for summary in dags:
            item = items.get(summary["dag_id"])
            if item is None:
                item = DagItem(summary["dag_id"])
                view.append(item)
                item.call_after_refresh(item.update, summary)
            else:
                item.update(summary)
        if self.selected_dag is None and dags:
            self.select_dag(dags[-1]["dag_id"])
        elif self.selected_dag is not None:
            self.select_dag(self.selected_dag)  # keep the highlight on it as items come and go

    def select_dag(self, dag_id: str) -> None:
        self.selected_dag = dag_id
        view = self.query_one("#dags", ListView)
        for i, item in enumerate(view.query(DagItem)):
            if item.dag_id == dag_id and view.index != i:
                view.index = i

    @on(ListView.Highlighted, "#dags")
    def _dag_highlighted(self, event: ListView.Highlighted) -> None:
        if isinstance(event.item, DagItem):
            self.selected_dag = event.item.dag_id

    def watch_selected_dag(self, dag_id: str | None) -> None:
        if self._results is not None and self._results.get("dag_id") != dag_id:
            self._results = None
            self._tasks_by_id = {}
            self._task_rows = {}
            self._slots = []
            self.query_one("#tasks", DataTable).clear()
            self._show_output(None)

    def _show_results(self, results: ResultsView) -> None:
        self._results = results
        tasks = results.get("tasks", [])
        self._tasks_by_id = {t["task_id"]: t for t in tasks}
        shown = tasks[:MAX_TASK_ROWS]
        table = self.query_one("#tasks", DataTable)
        title = f"Tasks of {cell(results.get('name', ''))} ({cell(results.get('state', ''))})"  # titles are markup
        total = int(results.get("total", len(tasks)))
        if len(shown) < total:
            title += f" · showing {len(shown)} of {total:,} tasks"
        table.border_title = title
        rows = {t["task_id"]: task_row(t) for t in shown}
        if rows != self._task_rows:
            self._sync_task_rows(table, rows)
        self._show_highlighted_output()

    def _sync_task_rows(self, table: DataTable[str], rows: dict[str, tuple[str, ...]]) -> None:
        """Update the table in place: row ``r<i>`` is slot ``i``; a task keeps its slot while shown,
        a task that comes takes the slot of one that left (no O(rows) removals), and only the cells
        that changed are written."""
        old = self._task_rows
        slot_of = {tid: i for i, tid in enumerate(self._slots)}
        free = [i for i, tid in enumerate(self._slots) if tid not in rows]
        free.reverse()
        for tid, row in rows.items():
            i = slot_of.get(tid)
            if i is None and free:
                i = free.pop()
                prev: tuple[str, ...] | None = old[self._slots[i]]
                self._slots[i] = tid
            elif i is None:
                i = len(self._slots)
                self._slots.append(tid)
                table.add_row(*row, key=f"r{i}")
                continue
            else:
                prev = old[tid]
            if prev != row:
                key = f"r{i}"
                for column, before, after in zip(TASK_COLUMNS, prev, row, strict=True):  # type: ignore[arg-type]
                    if before != after:
                        table.update_cell(key, column, after)
        if free:  # fewer tasks than rows (rare): rebuild without the empty slots
            self._slots = [tid for tid in self._slots if tid in rows]
            table.clear()
            for i, tid in enumerate(self._slots):
                table.add_row(*rows[tid], key=f"r{i}")
        self._task_rows = rows

    @on(DataTable.RowHighlighted, "#tasks")
    def _task_highlighted(self) -> None:
        self._show_highlighted_output()

    def _show_highlighted_output(self) -> None:
        table = self.query_one("#tasks", DataTable)
        if not table.row_count:
            self._show_output(None)
            return
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        task_id = self._slots[int(row_key[1:])] if row_key else None
        task = self._tasks_by_id.get(task_id) if task_id else None
        if task is None or self.address is None or self.selected_dag is None:
            self._output_key = None
            self._show_output(None)
            return
        key = (self.selected_dag, task_id, task.get("state"), task.get("attempts"))
        if key == self._output_key:
            return  # shown already, or on its way
        if self._output_key is None or self._output_key[:2] != key[:2]:
            self._show_output(task, loading=True)  # another task: no stale output meanwhile
        self._output_key = key
        self.fetch_output(self.address, key)

    @work(thread=True, exclusive=True, group="output", exit_on_error=False)
    def fetch_output(self, address: Address, key: tuple[Any, ...]) -> None:
        """One task with its output and stderr, off the UI thread."""
        dag_id, task_id = key[0], key[1]
        try:
            client = self.backend.connect(address)
            try:
                results = client.results(dag_id, task_id=task_id)
            finally:
                client.close()
        except Exception as exc:
            log.info("output of %s/%s: %s", dag_id, task_id, exc)
            self.post_message(TaskOutput(key, None, str(exc)))
            return
        tasks = results.get("tasks")
        self.post_message(TaskOutput(key, tasks[0] if tasks else None))

    def on_task_output(self, message: TaskOutput) -> None:
        if message.key != self._output_key:
            return  # the highlight moved on meanwhile
        if message.task is None:
            self._output_key = None  # ask again next time
            error = terminal_safe(str(message.error))
            self._show_text(f"Output of {cell(message.key[1])}", f"(could not fetch the output: {error})")
        else:
            self._show_output(message.task)

    def _show_output(self, task: TaskView | None, *, loading: bool = False) -> None:
        if task is None:
            text, title = "(select a task)", "Output"
        elif loading:
            text, title = "(loading the output…)", f"Output of {cell(task['task_id'])}"
        else:
            text = describe_output(task.get("output"))
            stderr = task.get("stderr")
            if task.get("error"):
                text += f"\n\nerror: {terminal_safe(str(task['error']))}"
            if stderr:
                text += "\n\nstderr:\n" + describe_output(stderr)
            title = f"Output of {cell(task['task_id'])}"
        self._show_text(title, text)  # #output is a Static with markup off: `[bold]` shows as written

    def _show_text(self, title: str, text: str) -> None:
        pane = self.query_one("#output-pane", VerticalScroll)
        if self._shown_output != (title, text):
            self._shown_output = (title, text)
            pane.border_title = title
            self.query_one("#output", Static).update(text)

    # --- log ---------------------------------------------------------------------------------

    def show_banner(self, text: str) -> None:
        """Replace the totals line (e.g. when the cluster this monitor waits for never started)."""
        self.query_one("#totals", Static).update(text)

    def write_log(self, text: str, *, error: bool = False) -> None:
        self.query_one("#log", RichLog).write(Text(terminal_safe(text), style="bold red" if error else ""))

    def on_log_line(self, message: LogLine) -> None:
        self.write_log(message.text, error=message.error)

    # --- submit / cancel ---------------------------------------------------------------------

    def action_submit(self) -> None:
        box = self.query_one("#submit-path", Input)
        box.display = True
        box.focus()

    def action_hide_submit(self) -> None:
        box = self.query_one("#submit-path", Input)
        if box.display:
            box.display = False
            self.query_one("#tasks", DataTable).focus()

    def action_back(self) -> None:
        """Esc: close the submit box; else back to the role screen this monitor was opened from."""
        if self.query_one("#submit-path", Input).display:
            self.action_hide_submit()
            return
        from .role_form import RoleFormScreen
        from .role_screens import RoleScreen

        stack = self.app.screen_stack
        if len(stack) >= 2 and stack[-1] is self and isinstance(stack[-2], RoleScreen | RoleFormScreen):
            self.dismiss()  # back to the role's screen, or to the UI Node form to pick another controller

    def action_pick_file(self) -> None:
        def picked(path: Path | None) -> None:
            if path is not None:
                self._submit_path(str(path))

        self.app.push_screen(FilePickerScreen(Path.cwd()), picked)

    @on(Input.Submitted, "#submit-path")
    def _path_entered(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if not path:
            return
        event.input.value = ""
        self.action_hide_submit()
        self._submit_path(path)

    def _submit_path(self, path: str) -> None:
        path = os.path.expanduser(path)  # what the path completion offers, `load_dag` must find
        if self.address is None:
            self.write_log("the cluster is not running yet", error=True)
            return
        self.write_log(f"submitting {path}")
        self.submit_dag(self.address, path)

    @work(thread=True, group="submit", exit_on_error=False)
    def submit_dag(self, address: Address, path: str) -> None:
        from ..common.errors import Bxthre3Error
        from ..dag.yaml_loader import load_dag

        try:
            spec = load_dag(path)
        except Bxthre3Error as exc:
            self.post_message(LogLine(f"invalid DAG: {exc}", error=True))
            return
        try:
            client = self.backend.connect(address)
            try:
                dag_id = client.submit(spec)
            finally:
                client.close()
        except Exception as exc:
            log.info("submit of %s failed: %s", path, exc)
            self.post_message(LogLine(f"submit failed: {exc}", error=True))
            return
        self.post_message(DagSubmitted(dag_id, spec.name))

    def on_dag_submitted(self, message: DagSubmitted) -> None:
        self.write_log(f"submitted {message.name} as {message.dag_id}")
        self.select_dag(message.dag_id)

    def action_cancel_dag(self) -> None:
        """Cancelling cannot be undone (retry reruns the tasks, not their lost work): press c twice."""
        now = time.monotonic()
        armed, self._cancel_armed = self._cancel_armed, None
        if self.selected_dag is not None and armed is not None and armed[0] == self.selected_dag and now < armed[1]:
            self._dag_action("cancel")
            return
        if self.selected_dag is None:
            self.write_log("no DAG selected", error=True)
            return
        self._cancel_armed = (self.selected_dag, now + CANCEL_CONFIRM_S)
        self.notify(f"Press c again within {CANCEL_CONFIRM_S:g} s to cancel {self.selected_dag}.", timeout=3)

    def action_retry_dag(self) -> None:
        self._dag_action("retry")

    def _dag_action(self, verb: str) -> None:
        if self.address is None or self.selected_dag is None:
            self.write_log("no DAG selected", error=True)
            return
        self.write_log(f"{verb} {self.selected_dag}…")
        self.dag_action(self.address, self.selected_dag, verb)

    @work(thread=True, group="dag-action", exit_on_error=False)
    def dag_action(self, address: Address, dag_id: str, verb: str) -> None:
        """Cancel or retry: the controller's reply (the DAG's summary) or its refusal goes to the log."""
        try:
            client = self.backend.connect(address)
            try:
                reply = client.cancel(dag_id) if verb == "cancel" else client.retry(dag_id)
            finally:
                client.close()
        except Exception as exc:
            self.post_message(LogLine(f"{verb} {dag_id} failed: {exc}", error=True))
            return
        counts = reply.get("counts", {})
        if verb == "cancel":
            done = f"{counts.get('cancelled', 0)} task(s) cancelled, {counts.get('succeeded', 0)} had succeeded"
        else:
            done = f"{reply.get('retried', 0)} task(s) started again"
        self.post_message(LogLine(f"{verb} {dag_id}: {done}; DAG {reply.get('state', '?')}"))
