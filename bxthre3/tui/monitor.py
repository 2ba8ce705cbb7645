"""The live monitor of one controller: totals, DAGs, their tasks and structure, hosts, where time goes,
outputs and a log; submit, cancel and retry.

The arrangement follows the terminal (`layout.layout_mode`): a phone in portrait gets one pane at a time
with a tab bar, 80x24 two columns where the task table shares its place with the DAG's structure and the
task stream, a wide terminal every pane at once. Crossing a breakpoint recomposes the screen and replays
what it knew (the last snapshot, the log), so nothing is lost by rotating a phone.

A thread worker (`poll`) subscribes to the controller's pushed updates (`watch`, renewed every 5 s, which
also notices a controller that stopped answering), fetches `results(with_output=False)` of the selected
DAG only when it changed, and `activity` (the task stream, throughput) and the selected DAG's `structure`
about once a second; each round is one `ClusterSnapshot` message, and a burst coalesces into the latest.
The task table shows at most `MAX_TASK_ROWS` tasks and changes only the cells that changed. The output
viewer fetches one task when the highlighted task or its state changes.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, ListView, RichLog, Static
from textual.worker import get_current_worker

from ..client.outputs import terminal_safe
from ..common.errors import ClusterError
from ..wire.addresses import Address
from .adaptive_table import AdaptiveTable
from .backend import Backend
from .columns import HOST_COLUMNS, TASK_COLUMNS, TASK_ROW_FIELDS, host_cells, task_cells
from .connection_words import describe_connection_problem
from .dag_list import DagItem
from .file_picker import FilePickerScreen, PathSuggester
from .formatting import MAX_TASK_ROWS, quarantine_line
from .layout import LayoutMode, fit_parts, layout_mode
from .messages import ClusterSnapshot, ClusterUnreachable, DagSubmitted, LogLine, TaskOutput
from .output_view import OutputView
from .sparks import sparkline
from .states import look
from .stream_view import TaskStreamView
from .structure_view import DagStructureView

if TYPE_CHECKING:
    from ..controller.views import DagSummary, QuarantineView, ResultsView, StatusView, TaskView

log = logging.getLogger(__name__)

WATCH_LEASE_S = 10.0
"""Subscription lease; renewed at half of it."""

CANCEL_CONFIRM_S = 3.0
"""How long the first `c` waits for the second."""

ACTIVITY_EVERY_S = 1.0
"""How often the task stream and the throughput history are fetched while the cluster works."""

IDLE_ACTIVITY_EVERY_S = 5.0
"""... and while nothing runs or waits: the stream only slides, and an idle monitor should cost nothing."""

RESULTS_EVERY_S = 0.5
"""A running DAG's task table is fetched at most this often (500 rows; pushed updates come every 0.25 s)."""

BOTTOM_ROWS = (7, 16)
"""Height range of the wide layout's bottom row (hosts and log): the hosts' rows plus header and border."""

RATE_SPARK_S = 12
"""Seconds of throughput history drawn beside the rate in the top line."""

LOG_KEPT = 1000
"""Log lines kept (and replayed when the layout changes)."""

PANES: tuple[tuple[str, str, str], ...] = (
    ("dags", "DAGs", "1"),
    ("tasks", "Tasks", "2"),
    ("output", "Output", "3"),
    ("hosts", "Hosts", "4"),
    ("structure", "Graph", "5"),
    ("stream", "Stream", "6"),
    ("log", "Log", "7"),
)
"""(pane, its name in the tab bar and titles, the key that jumps to it)."""

NARROW_TABS = ("dags", "tasks", "output", "hosts", "stream", "log")
"""The phone's tab bar: the DAG's structure is shown under the DAG list there."""

TAB_BAR: tuple[tuple[str, str, str], ...] = tuple(
    (pane, key, name[:3] if pane in ("output", "stream") else name) for pane, name, key in PANES if pane in NARROW_TABS
)
"""(pane, key, label) of each tab on the phone's tab bar, left to right (two labels shortened to fit 45 columns)."""

NARROW_SPLIT_ROWS = 30
"""A phone this tall shows the highlighted task's output under the task table."""

SHARED_SLOT = ("tasks", "structure", "stream")
"""At 80x24 these three take turns in the right column's top (keys 2, 5, 6)."""


def _problem(exc: BaseException) -> str:
    """A request's failure in words: a refusal as the controller said it, a lost connection as what is wrong."""
    from ..client.connection import ConnectionProblem

    if isinstance(exc, ConnectionProblem):
        return describe_connection_problem(exc, was_connected=True)
    return str(exc)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class PathInput(Input):
    """The submit box: Tab takes the greyed path completion (as in a shell), Esc closes the box."""

    BINDINGS = [Binding("tab", "cursor_right", "Complete", show=False)]


class MonitorScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "submit", "Submit DAG"),
        Binding("o", "pick_file", "Open file"),
        Binding("c", "cancel_dag", "Cancel DAG (twice)"),
        Binding("r", "retry_dag", "Retry failed"),
        Binding("p", "pin_dag", "Pin DAG"),
        *(Binding(key, f"show_pane('{pane}')", f"{name} pane", show=False) for pane, name, key in PANES),
        Binding("left_square_bracket", "output_file(-1)", "Previous /out file", show=False),
        Binding("right_square_bracket", "output_file(1)", "Next /out file", show=False),
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
        self.mode: LayoutMode | None = None
        """The arrangement composed (None before the first compose)."""
        self.active_pane = "tasks"
        """The pane in front: the one shown on a phone, in the shared slot at 80x24, focused everywhere."""
        self._status: StatusView | None = None
        self._results: ResultsView | None = None
        self._results_at = 0.0
        """When `_results` arrived (monotonic): running tasks' elapsed times count on from there."""
        self._activity: dict[str, Any] | None = None
        self._structure: dict[str, Any] | None = None
        self._tasks_by_id: dict[str, TaskView] = {}
        self._task_cursor: str | None = None
        """The task highlighted in the task table: kept across a change of layout."""
        self._row_cache: dict[str, tuple[tuple[Any, ...], tuple[Text, ...]]] = {}
        """Task id -> (the fields its row shows, the row): rows of unchanged tasks are not rebuilt."""
        self._output_key: tuple[Any, ...] | None = None
        """(dag, task, state, attempts) of the output shown or being fetched."""
        self._output: tuple[TaskView | None, str | None, str] = (None, None, "")
        """What the output pane shows: a task, or a message (loading, a failed fetch) with its title."""
        self._banner: str | None = None
        self._totals_shown: Text | None = None
        self._log_lines: deque[tuple[str, bool]] = deque(maxlen=LOG_KEPT)
        self._unreachable = False
        self._unreachable_why = ""
        """The last reason told in the log while the controller cannot be reached."""
        self._cancel_armed: tuple[str, float] | None = None
        """(DAG, until when) after a first `c`: the second press cancels."""
        self._quarantined: set[str] | None = None
        """Device ids quarantined in the last snapshot (None before the first): new ones are told in the log."""
        self._known_dags: set[str] | None = None
        """DAG ids in the last snapshot (None before the first): a new one is followed unless one is pinned."""
        self.pinned = False
        """The user pinned the selected DAG: newly submitted DAGs are not followed."""
        self.stream_span_s = 60.0
        """Seconds the task stream shows (its `z` key); `activity` is asked for at least this much history."""

    # --- composition ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        width, height = self.app.size
        self.mode = layout_mode(width, height)
        self.set_class(self.mode is LayoutMode.NARROW, "-narrow")
        self.set_class(self.mode is LayoutMode.MEDIUM, "-medium")
        self.set_class(self.mode is LayoutMode.WIDE, "-wide")
        yield Static("", id="totals")
        if self.mode is LayoutMode.NARROW:
            yield Static("", id="tabbar")
            with Vertical(id="main"):
                with Vertical(id="dags-pane"):
                    yield self._dags()
                    yield self._structure_view()
                with Vertical(id="work-pane"):
                    yield self._tasks()
                    yield self._output_pane()
                yield self._hosts()
                yield self._stream()
                yield self._log()
        elif self.mode is LayoutMode.MEDIUM:
            with Horizontal(id="main"):
                with Vertical(id="col-a"):
                    yield self._dags()
                    yield self._hosts()
                    yield self._log()
                with Vertical(id="col-b"):
                    yield self._tasks()
                    yield self._structure_view()
                    yield self._stream()
                    yield self._output_pane()
        else:
            with Horizontal(id="main"):
                with Vertical(id="col-a"):
                    yield self._dags()
                    yield self._structure_view()
                    yield self._stream()
                with Vertical(id="col-b"):
                    yield self._tasks()
                    yield self._output_pane()
            with Horizontal(id="bottom"):
                yield self._hosts()
                yield self._log()
        yield PathInput(
            placeholder="DAG file to submit (Tab completes, Enter submits, Esc closes)",
            suggester=PathSuggester(),
            id="submit-path",
        )
        yield Footer()

    @staticmethod
    def _titled(widget: Widget, title: str) -> Widget:
        widget.border_title = title
        return widget

    def _dags(self) -> Widget:
        return self._titled(ListView(id="dags"), "DAGs")

    def _hosts(self) -> Widget:
        return self._titled(AdaptiveTable(HOST_COLUMNS, id="hosts"), "Hosts")

    def _tasks(self) -> Widget:
        return self._titled(AdaptiveTable(TASK_COLUMNS, id="tasks"), "Tasks")

    def _structure_view(self) -> Widget:
        return self._titled(DagStructureView(id="structure"), "Graph")

    def _stream(self) -> Widget:
        stream = TaskStreamView(id="stream")
        stream.span_s = self.stream_span_s
        return self._titled(stream, "Task stream")

    def _output_pane(self) -> Widget:
        pane = VerticalScroll(OutputView(id="output"), id="output-pane")
        return self._titled(pane, "Output")

    def _log(self) -> Widget:
        return self._titled(RichLog(id="log", wrap=True, max_lines=LOG_KEPT, min_width=20), "Log")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick, name="elapsed")
        self._after_compose()
        if self.address is None:
            self.show_banner("Starting the embedded cluster…")
        else:
            self.watch_address(self.address)

    def _after_compose(self) -> None:
        """Fill a freshly composed screen from what the monitor knows (first mount, or a new layout)."""
        self.query_one("#submit-path", Input).display = False
        self._totals_shown = None  # a new top line: draw it whatever the old one said
        rich_log = self.query_one("#log", RichLog)
        for text, error in self._log_lines:
            rich_log.write(self._log_text(text, error))
        self._show_pane(self.active_pane, focus=True)
        if self._status is not None:
            self._apply_status(self._status)
        if self._results is not None:
            want = self._task_cursor
            self._show_results(self._results)
            if want is not None:  # the same task highlighted in the new layout
                self.query_one("#tasks", AdaptiveTable).highlight(want)
        if self._activity is not None:
            self._show_activity(self._activity)
        if self._structure is not None:
            self._show_structure(self._structure)
        self._draw_output()
        self._refresh_totals()

    async def on_resize(self, event: events.Resize) -> None:
        mode = layout_mode(event.size.width, event.size.height)
        if self.mode is not None and mode is not self.mode:
            await self.recompose()
            self._after_compose()
        else:
            self.call_after_refresh(self._refresh_totals)  # the top line fits its parts to the new width

    # --- panes ---------------------------------------------------------------------------------

    def action_show_pane(self, pane: str) -> None:
        """Bring a pane to the front and focus it (keys 1-7, or a click on the phone's tab bar)."""
        self._show_pane(pane, focus=True)

    def _show_pane(self, pane: str, *, focus: bool = False) -> None:
        if self.mode is LayoutMode.NARROW and pane == "structure":
            pane = "dags"
        self.active_pane = pane
        if self.mode is LayoutMode.NARROW:
            group = {"dags": "dags-pane", "tasks": "work-pane", "output": "work-pane"}.get(pane, pane)
            for child in self.query_one("#main").children:
                child.display = child.id == group
            # The task table keeps the output under it when the phone is tall enough for both.
            self.query_one("#tasks").display = pane == "tasks"
            self.query_one("#output-pane").display = pane == "output" or self.size.height >= NARROW_SPLIT_ROWS
            self._draw_tabbar()
        elif self.mode is LayoutMode.MEDIUM and pane in SHARED_SLOT:
            for name in SHARED_SLOT:
                self.query_one(f"#{name}").display = name == pane
        if focus:
            target = {"output": "#output-pane"}.get(pane, f"#{pane}")
            self.query_one(target).focus()

    def _draw_tabbar(self) -> None:
        if self.mode is not LayoutMode.NARROW:
            return
        bar = Text(no_wrap=True, end="")
        active = "dags" if self.active_pane == "structure" else self.active_pane
        for pane, key, name in TAB_BAR:
            style = "reverse bold" if pane == active else ""
            bar.append(f" {key}", style=style or "dim")
            bar.append(f"{name} ", style=style)
        self.query_one("#tabbar", Static).update(bar)

    def on_click(self, event: events.Click) -> None:
        """A click on the phone's tab bar switches to the tab under it."""
        if event.widget is None or event.widget.id != "tabbar":
            return
        x = 0
        for pane, key, name in TAB_BAR:
            width = len(f" {key}{name} ")
            if x <= event.x < x + width:
                self._show_pane(pane, focus=True)
                return
            x += width

    # --- polling -------------------------------------------------------------------------------

    def watch_address(self, address: Address | None) -> None:
        if address is not None:
            self.sub_title = str(address)
            self.show_banner(f"Connecting to {address}…")
            self.write_log(f"watching the controller at {address}")
            self.poll(address)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll(self, address: Address) -> None:
        worker = get_current_worker()
        client = None
        last_key: tuple[Any, ...] | None = None
        structure_key: tuple[Any, ...] | None = None
        renew_at = results_at = extras_at = 0.0
        extras = True
        """False once the controller refused `activity` (an older controller): not asked again."""
        answered = False
        """It replied once: a refused port now means it stopped, not a wrong address."""
        status: StatusView  # set by the first request of each connection
        try:
            while not worker.is_cancelled:
                started = time.monotonic()
                try:
                    changed = False
                    if client is None:
                        client = self.backend.connect(address)
                        status = client.status()
                        answered = extras = True
                        changed = True
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
                            changed = True
                    dag_id = self.selected_dag
                    results = structure = activity = None
                    summary = next((d for d in status.get("dags", ()) if d["dag_id"] == dag_id), None)
                    if summary is not None:
                        key = (dag_id, summary["state"], summary["done"], tuple(summary["counts"].items()))
                        # A running DAG's tasks at most every RESULTS_EVERY_S (500 rows each time); a newly
                        # selected or finished one at once.
                        due = started >= results_at or summary["state"] != "running" or last_key is None
                        if key != last_key and (due or (last_key is not None and last_key[0] != dag_id)):
                            results = client.results(summary["dag_id"], with_output=False, limit=MAX_TASK_ROWS)
                            last_key, results_at = key, started + RESULTS_EVERY_S
                            changed = True
                        if extras and key != structure_key:  # its groups' counts change only with its own
                            structure = self._fetch_structure(client, dag_id)
                            structure_key = key
                            changed = changed or structure is not None
                    now = time.monotonic()
                    if extras and now >= extras_at:
                        totals = status.get("totals") or {}
                        busy = bool(totals.get("running") or totals.get("ready") or totals.get("tasks_per_s"))
                        extras_at = now + (ACTIVITY_EVERY_S if busy else IDLE_ACTIVITY_EVERY_S)
                        activity = self._fetch_activity(client, max(120.0, self.stream_span_s))
                        extras = activity is not None
                        changed = True
                    if changed:
                        self.post_message(ClusterSnapshot(status, results, activity, structure))
                except Exception as exc:  # unreachable, refused, or a broken reply: say so, retry
                    log.info("poll of %s failed: %s", address, exc)
                    last_key = structure_key = None
                    if client is not None:
                        client.close()
                        client = None
                    self.post_message(ClusterUnreachable(describe_connection_problem(exc, was_connected=answered)))
                    renew_at = extras_at = 0.0
                    left = self.poll_interval - (time.monotonic() - started)
                    end = time.monotonic() + max(0.0, left)
                    while not worker.is_cancelled and time.monotonic() < end:
                        time.sleep(0.05)
        finally:
            if client is not None:
                client.close()

    @staticmethod
    def _fetch_activity(client: Any, window_s: float) -> dict[str, Any] | None:
        """The task stream and throughput; None when the controller does not answer `activity` (an older
        one drops the request: the caller stops asking until it reconnects). A controller that is really
        gone is noticed by the next `watch`."""
        try:
            return cast("dict[str, Any]", client.activity(window_s))
        except ClusterError as exc:
            log.info("no task stream from this controller: %s", exc)
            return None

    @staticmethod
    def _fetch_structure(client: Any, dag_id: str | None) -> dict[str, Any] | None:
        """The DAG's stages and groups; None for a DAG pruned meanwhile."""
        try:
            return cast("dict[str, Any]", client.structure(dag_id)) if dag_id else None
        except ClusterError as exc:
            log.info("no structure of %s: %s", dag_id, exc)
            return None

    def on_cluster_snapshot(self, message: ClusterSnapshot) -> None:
        if self._unreachable:
            self._unreachable = False
            self._unreachable_why = ""
            self.write_log("controller reachable again")
        self._banner = None
        self._status = message.status
        if message.activity is not None:
            self._activity = message.activity
            self._show_activity(message.activity)
        if message.structure is not None and message.structure.get("dag_id") == self.selected_dag:
            self._structure = message.structure
            self._show_structure(message.structure)
        self._apply_status(message.status)
        if message.results is not None and message.results.get("dag_id") == self.selected_dag:
            self._show_results(message.results)

    def _apply_status(self, status: StatusView) -> None:
        quarantined = status.get("quarantined") or []
        self._refresh_totals()
        hosts = status.get("hosts", [])
        self.query_one("#hosts", AdaptiveTable).set_rows({h["node_id"]: host_cells(h) for h in hosts})
        if self.mode is LayoutMode.WIDE:  # the hosts and the log below as tall as the hosts need (capped)
            self.query_one("#bottom").styles.height = max(BOTTOM_ROWS[0], min(BOTTOM_ROWS[1], len(hosts) + 4))
        self._tell_quarantine(quarantined)
        self._sync_dags(status.get("dags", []))

    def _refresh_totals(self) -> None:
        """The top line: what needs someone first, then the rate, then the cluster's size."""
        bar = self.query_one("#totals", Static)
        if self._banner is not None or self._status is None:
            self._totals_shown = Text(self._banner or "", no_wrap=True)
            bar.update(self._totals_shown, layout=False)
            return
        totals = self._status.get("totals", {})
        quarantined = len(self._status.get("quarantined") or [])
        parts: list[Text | str] = []
        if self._unreachable:
            parts.append(Text(f"✗ {self._unreachable_why or 'unreachable'}", style=look("failed").style))
        if quarantined:
            parts.append(Text(f"⚠ {quarantined} quarantined", style=look("quarantined").style))
        rate = Text()
        history = (self._activity or {}).get("throughput") or []
        if history:
            spark = sparkline(history[-RATE_SPARK_S:], RATE_SPARK_S).replace(" ", "▁")  # a baseline, not a gap
            rate.append(spark, style=look("running").style)
            rate.append(" ")
        rate.append(f"{float(totals.get('tasks_per_s', 0)):,.1f} tasks/s")
        parts += [
            rate,
            f"{totals.get('running', 0)} running",
            f"{totals.get('ready', 0)} ready",
            _plural(int(totals.get("hosts", 0)), "host"),
            f"{totals.get('slots', 0)} slots",
            _plural(int(totals.get("devices", 0)), "device"),
            f"{totals.get('ram_mb', 0):,} MB",
            str(self.address or ""),
        ]
        # One line of fixed height: no layout pass for the whole screen at every snapshot, and no repaint
        # when it says the same.
        line = fit_parts(parts, max(10, bar.content_region.width or self.app.size.width - 2))
        if line != self._totals_shown:
            self._totals_shown = line
            bar.update(line, layout=False)

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
        """One log line per cause: again only when the reason changes (stopped, then back with another token)."""
        self._unreachable = True
        if message.error != self._unreachable_why:
            self._unreachable_why = message.error
            self.write_log(message.error, error=True)
        self._refresh_totals()

    # --- DAGs ----------------------------------------------------------------------------------

    def _sync_dags(self, dags: list[DagSummary]) -> None:
        view = self.query_one("#dags", ListView)
        items = {item.dag_id: item for item in view.query(DagItem)}
        ids = [d["dag_id"] for d in dags]
        for dag_id, gone in items.items():
            if dag_id not in set(ids):
                gone.remove()
        for summary in dags:
            pinned = self.pinned and summary["dag_id"] == self.selected_dag
            item = items.get(summary["dag_id"])
            if item is None:
                item = DagItem(summary["dag_id"])
                view.append(item)
                item.call_after_refresh(item.update, summary, pinned)
            else:
                item.update(summary, pinned)
        known, self._known_dags = self._known_dags, set(ids)
        new = [d for d in dags if known is not None and d["dag_id"] not in known]
        if self.selected_dag not in set(ids):
            self.pinned = False
        if new and not self.pinned:
            self.select_dag(new[-1]["dag_id"])
            if len(dags) > 1:
                self.write_log(f"following the new DAG {new[-1]['dag_id']} (p pins the one shown)")
        elif self.selected_dag not in set(ids) and dags:
            running = [d for d in dags if d.get("state") == "running"]
            self.select_dag((running or dags)[-1]["dag_id"])
        elif self.selected_dag is not None:
            self.select_dag(self.selected_dag)  # keep the highlight on it as items come and go
        title = "DAGs" + (" · pinned (p unpins)" if self.pinned else "")
        view.border_title = title

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

    @on(ListView.Selected, "#dags")
    def _dag_chosen(self, event: ListView.Selected) -> None:
        """Enter on a DAG: its tasks."""
        if isinstance(event.item, DagItem):
            self.selected_dag = event.item.dag_id
            self._show_pane("tasks", focus=True)

    def action_pin_dag(self) -> None:
        """Pin the DAG shown (newly submitted DAGs are no longer followed), or unpin it."""
        if self.selected_dag is None:
            self.write_log("no DAG selected", error=True)
            return
        self.pinned = not self.pinned
        self.write_log(f"{'pinned' if self.pinned else 'unpinned'} {self.selected_dag}")
        if self._status is not None:
            self._sync_dags(self._status.get("dags", []))

    def watch_selected_dag(self, dag_id: str | None) -> None:
        if self._results is not None and self._results.get("dag_id") != dag_id:
            self._results = None
            self._tasks_by_id = {}
            self._row_cache = {}
            self.query_one("#tasks", AdaptiveTable).set_rows({})
            self._show_output(None)
        if self._structure is not None and self._structure.get("dag_id") != dag_id:
            self._structure = None
            self.query_one("#structure", DagStructureView).update_structure(None)

    # --- tasks ---------------------------------------------------------------------------------

    def _show_results(self, results: ResultsView) -> None:
        self._results = results
        self._results_at = time.monotonic()
        tasks = results.get("tasks", [])
        self._tasks_by_id = {t["task_id"]: t for t in tasks}
        shown = tasks[:MAX_TASK_ROWS]
        table = self.query_one("#tasks", AdaptiveTable)
        name = terminal_safe(str(results.get("name", "")), keep="")
        title = f"Tasks of {name} ({results.get('state', '')})"
        total = int(results.get("total", len(tasks)))
        if len(shown) < total:
            title += f" · {len(shown)} of {total:,}"
        table.border_title = title.replace("[", r"\[")  # titles are markup
        table.set_rows({t["task_id"]: self._cells_of(t) for t in shown})
        self._show_highlighted_output()

    def _cells_of(self, task: TaskView) -> tuple[Text, ...]:
        """A task's row, reused while what it shows is unchanged: a 50,000-task DAG sends 500 rows several
        times a second, and most of them did not change (a running task's time is redrawn by `_tick`)."""
        signature = tuple(task.get(field) for field in TASK_ROW_FIELDS)
        cached = self._row_cache.get(task["task_id"])
        if cached is not None and cached[0] == signature:
            return cached[1]
        cells = task_cells(task)
        if len(self._row_cache) > 4 * MAX_TASK_ROWS:
            self._row_cache.clear()
        self._row_cache[task["task_id"]] = (signature, cells)
        return cells

    def _tick(self) -> None:
        """Every second: running tasks' elapsed times count on between snapshots. A timer runs beside the
        message queue, so it can fire while a resize across a breakpoint recomposes the screen and the
        tasks table is not there: that tick is skipped (it crashed the app on a busy machine)."""
        if not self._tasks_by_id:
            return
        since = time.monotonic() - self._results_at
        found = self.query("#tasks")
        if not found:
            return
        table = found.first(AdaptiveTable)
        for task_id, task in self._tasks_by_id.items():
            running_s = task.get("running_s")
            if task.get("state") == "running" and running_s is not None:
                table.update_row(task_id, task_cells(task, running_s + since))

    @on(AdaptiveTable.RowHighlighted, "#tasks")
    def _task_highlighted(self) -> None:
        self._task_cursor = self.query_one("#tasks", AdaptiveTable).highlighted_key()
        self._show_highlighted_output()

    @on(AdaptiveTable.RowSelected, "#tasks")
    def _task_chosen(self) -> None:
        """Enter on a task: its output (on a phone the output pane comes to the front)."""
        self._show_pane("output", focus=True)

    def _show_highlighted_output(self) -> None:
        task_id = self.query_one("#tasks", AdaptiveTable).highlighted_key()
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
                results = client.results(dag_id, task_id=task_id, with_files=True)
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
            self._show_output(None, message=f"(could not fetch the output: {message.error})", title=message.key[1])
        else:
            self._show_output(message.task)

    def _show_output(
        self, task: TaskView | None, *, loading: bool = False, message: str | None = None, title: str = ""
    ) -> None:
        """The output pane shows a task (kept, so a new layout shows it again), or a one-line message."""
        if loading and task is not None:
            message, title = "(loading the output…)", task["task_id"]
        self._output = (task, message, title)
        self._draw_output()

    def _draw_output(self) -> None:
        task, message, title = self._output
        view = self.query_one("#output", OutputView)
        if message is not None:
            view.show_message(message, f"Output of {terminal_safe(title, keep='')}")
        else:
            view.show(task)

    def action_output_file(self, step: int) -> None:
        """`[` / `]`: the selected task's previous / next named output."""
        self.query_one("#output", OutputView).action_cycle(step)

    # --- where time goes -----------------------------------------------------------------------

    def _show_activity(self, activity: dict[str, Any]) -> None:
        hosts = self.query_one("#hosts", AdaptiveTable).keys
        self.query_one("#stream", TaskStreamView).update_activity(activity, hosts=hosts)  # type: ignore[arg-type]
        self._refresh_totals()

    def _show_structure(self, structure: dict[str, Any]) -> None:
        self.query_one("#structure", DagStructureView).update_structure(structure)  # type: ignore[arg-type]

    def on_task_stream_view_span_changed(self, message: TaskStreamView.SpanChanged) -> None:
        """`z` in the task stream: the next `activity` asks for that much history."""
        self.stream_span_s = message.span_s

    # --- log -----------------------------------------------------------------------------------

    def show_banner(self, text: str) -> None:
        """Replace the totals line (e.g. when the cluster this monitor waits for never started)."""
        self._banner = text
        self._refresh_totals()

    @staticmethod
    def _log_text(text: str, error: bool) -> Text:
        return Text(terminal_safe(text), style=look("failed").style if error else "")

    @property
    def log_texts(self) -> list[str]:
        """The log's lines as written (unwrapped), oldest first."""
        return [text for text, _ in self._log_lines]

    def write_log(self, text: str, *, error: bool = False) -> None:
        self._log_lines.append((text, error))
        self.query_one("#log", RichLog).write(self._log_text(text, error))

    def on_log_line(self, message: LogLine) -> None:
        self.write_log(message.text, error=message.error)

    # --- submit / cancel -----------------------------------------------------------------------

    def action_submit(self) -> None:
        box = self.query_one("#submit-path", Input)
        box.display = True
        box.focus()

    def action_hide_submit(self) -> None:
        box = self.query_one("#submit-path", Input)
        if box.display:
            box.display = False
            self._show_pane(self.active_pane, focus=True)

    def action_back(self) -> None:
        """Esc: close the submit box; else back to the screen this monitor was opened from."""
        if self.query_one("#submit-path", Input).display:
            self.action_hide_submit()
            return
        if len(self.app.screen_stack) >= 2 and self.app.screen_stack[-1] is self:
            self.dismiss()  # the role's screen, the UI Node form, or the role picker

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
            self.post_message(LogLine(f"submit failed: {_problem(exc)}", error=True))
            return
        self.post_message(DagSubmitted(dag_id, spec.name))

    def on_dag_submitted(self, message: DagSubmitted) -> None:
        self.write_log(f"submitted {message.name} as {message.dag_id}")
        self.pinned = False  # what one submits here is what one wants to watch
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
            self.post_message(LogLine(f"{verb} {dag_id} failed: {_problem(exc)}", error=True))
            return
        counts = reply.get("counts", {})
        if verb == "cancel":
            done = f"{counts.get('cancelled', 0)} task(s) cancelled, {counts.get('succeeded', 0)} had succeeded"
        else:
            done = f"{reply.get('retried', 0)} task(s) started again"
        self.post_message(LogLine(f"{verb} {dag_id}: {done}; DAG {reply.get('state', '?')}"))
