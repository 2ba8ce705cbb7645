"""What the CLI and the monitor print of strings tasks and hosts control: never a live control
sequence, never rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from bxthre3.client.outputs import terminal_safe
from bxthre3.client.render import print_results, print_status
from bxthre3.tui.columns import host_cells, task_cells
from bxthre3.tui.formatting import cell, share_text
from bxthre3.tui.output_render import as_text, text_body

HOSTILE = "evil\x1b]0;title\x07\x1b[2J\r\x08\u009b1m\u202e\u2066[bold red]x[/bold red]\u2028"
ESCAPED = "evil\\x1b]0;title\\x07\\x1b[2J\\r\\x08\\x9b1m\\u202e\\u2066[bold red]x[/bold red]\\u2028"
RAW = ("\x1b]", "\x1b[2J", "\x07", "\r", "\x08", "\u009b", "\u202e", "\u2066", "\u2028")


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=400, highlight=False, soft_wrap=True), out


def test_terminal_safe_escapes_what_acts_on_a_terminal_and_keeps_text() -> None:
    assert terminal_safe(HOSTILE) == ESCAPED
    kept = "tabs\tand\nnewlines, ünïcödé, 漢字, no-break\u00a0space, emoji 👨\u200d👩\u200d👧, private \ue000"
    assert terminal_safe(kept) == kept
    assert terminal_safe("a\nb\tc", keep="") == "a\\nb\\tc"
    assert terminal_safe("\x00\x7f\x85\ufeff") == "\\x00\\x7f\\x85\\ufeff"


def test_status_escapes_what_hosts_report() -> None:
    console, out = terminal()
    host = {"node_id": HOSTILE, "device": HOSTILE, "platform": "linux\x1b[31m", "engine": "wasm3", "ram_mb": 128,
            "slots": 1, "running": [HOSTILE], "succeeded": 0, "failed": 0, "last_seen_s": 0.1,
            "state": "idle"}  # fmt: skip
    print_status({"totals": {}, "hosts": [host], "dags": [], "waiting": []}, console)
    text = out.getvalue()
    for raw in RAW:
        assert raw not in text
    assert "[bold red]x[/bold red]" in text and "\\x1b]0;title\\x07" in text and "linux\\x1b[31m" in text


def test_results_escape_output_stderr_errors_and_host_names_on_a_terminal() -> None:
    console, out = terminal()
    tasks = [
        {"task_id": "ok", "state": "succeeded", "node_id": HOSTILE, "output": HOSTILE.encode()},
        {"task_id": "bad", "state": "failed", "node_id": "h", "reason": "trap", "error": HOSTILE,
         "stderr": HOSTILE.encode()},
    ]  # fmt: skip
    print_results({"name": "d", "dag_id": "dag-1", "state": "failed", "done": 2, "total": 2, "tasks": tasks}, console)
    text = out.getvalue()
    for raw in RAW:
        assert raw not in text
    assert text.count(ESCAPED) == 4  # node id, output, error, stderr


def test_results_in_a_pipe_are_the_text_itself() -> None:
    out = io.StringIO()
    console = Console(file=out, highlight=False, soft_wrap=True, width=160)
    task = {"task_id": "t", "state": "succeeded", "node_id": "h", "output": b"progress\r50%\r100%\tdone\n"}
    print_results({"name": "d", "dag_id": "dag-1", "state": "succeeded", "done": 1, "total": 1, "tasks": [task]},
                  console)  # fmt: skip
    assert "progress\r50%\r100%\tdone\n" in out.getvalue()


def test_a_verified_task_says_how_many_devices_agreed() -> None:
    out = io.StringIO()
    agreed = {"reason": None, "error": ""}
    history = [
        {**agreed, "attempt": 1},
        {"attempt": 2, "reason": None, "error": "outvoted: …"},
        {**agreed, "attempt": 3},
    ]
    tasks = [
        {"task_id": "t", "state": "succeeded", "node_id": "h", "output": b"x", "verify": 2, "attempts": 3,
         "history": history},
        {"task_id": "u", "state": "succeeded", "node_id": "h", "output": b"x", "verify": 2, "attempts": 2,
         "history": [{**agreed, "attempt": 1}, {**agreed, "attempt": 2}]},
    ]  # fmt: skip
    view = {"name": "d", "dag_id": "dag-1", "state": "succeeded", "done": 2, "total": 2, "tasks": tasks}
    print_results(view, Console(file=out, highlight=False, soft_wrap=True, width=160))  # type: ignore[arg-type]
    assert "t succeeded on h, verified by 2 devices, 3 attempts" in out.getvalue()
    assert "u succeeded on h, verified by 2 devices " in out.getvalue()


def test_the_monitor_shows_coloured_text_as_text_and_escapes_table_cells() -> None:
    coloured = b"\x1b[31mred\x1b[0m and\rback\n"
    assert text_body(as_text(coloured) or "", len(coloured)).plain == "\\x1b[31mred\\x1b[0m and\\rback"
    assert as_text(b"a\x00b") is None  # binary: the hex view
    assert cell("[bold]x[/bold]\n") == "\\[bold]x\\[/bold]\\n"
    assert host_cells({"node_id": "[b]h", "state": "idle"})[0].plain == "[b]h"  # Text cells: no markup read
    row = task_cells({"task_id": "t", "node_id": "\x1b[2Jh", "reason": "[red]"})
    assert [row[i].plain for i in (3, 5)] == ["\\x1b[2Jh", "[red]"]  # node and reason, as DataTable shows them


def test_share_text_shows_priority_and_share_of_running_dags() -> None:
    assert share_text({"state": "running", "priority": 0, "share": 0.5}) == " · share 50%"
    assert share_text({"state": "running", "priority": -2, "share": 0.0}) == " · prio -2 · share 0%"
    assert share_text({"state": "succeeded", "priority": 3, "share": 0.0}) == " · prio 3"
    assert share_text({"state": "succeeded"}) == "", "a summary from an older controller"


class _Out(io.StringIO):
    """A file with an encoding of one's choosing (rich draws rules with `-` when it is not UTF)."""

    def __init__(self, encoding: str) -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


def _rich_results(results: dict[str, object], console: Console) -> None:
    """The rich-only path: the plain lines switched off, as on a coloured console."""
    from bxthre3.client import render

    real = render._PlainLines
    render._PlainLines = lambda console: None  # type: ignore[assignment,misc,return-value]
    try:
        render.print_results(results, console)  # type: ignore[arg-type]
    finally:
        render._PlainLines = real  # type: ignore[misc]


def test_results_in_a_pipe_are_the_same_text_rich_would_print() -> None:
    """The one-pass plain lines of a pipe match rich's rendering byte for byte, for every kind of
    line: rules that fit and do not, cached, verified, failed with stderr, named files, tabs, wide
    characters, markup-like brackets, backslashes, `:emoji:` codes, hostile controls."""
    odd = ["t[i=0]", "a\\[bold]b\\", "[red]x[/red]", "漢字-task", "tab\there", "x" * 200, ":smile: ok", HOSTILE, ""]
    tasks: list[dict[str, object]] = []
    for i, name in enumerate(odd):
        tasks.append({"task_id": name or "e", "state": "succeeded", "node_id": odd[-1 - i] or None,
                      "duration_s": 0.0123 * i, "attempts": 1 + i % 3, "output": f"out {name}\n".encode()})  # fmt: skip
        tasks.append({"task_id": f"f{i}", "state": "failed", "reason": "trap", "error": name,
                      "stderr": f"l1\nl2 {name}\n".encode(), "attempts": 2})  # fmt: skip
        tasks.append({"task_id": f"c{i}", "state": "succeeded", "cached": True, "output": b""})
        tasks.append({"task_id": f"v{i}", "state": "succeeded", "verify": 2, "attempts": 3, "output": b"\x00\xff",
                      "history": [{"reason": None, "error": ""}] * 2, "node_id": "h",
                      "files": [{"name": f"o{name}.txt", "size": 1234, "sha256": "ab" * 32}]})  # fmt: skip
        tasks.append({"task_id": f"u{i}", "state": "upstream_failed", "reason": "", "error": ""})
    results = {"name": "d", "dag_id": "dag-1", "state": "failed", "done": 2, "total": 9, "tasks": tasks}
    for width, encoding in ((80, "utf-8"), (20, "utf-8"), (160, "ascii")):
        fast, slow = _Out(encoding), _Out(encoding)
        for out, draw in ((fast, print_results), (slow, _rich_results)):
            draw(results, Console(file=out, highlight=False, soft_wrap=True, width=width))  # type: ignore[arg-type]
        assert fast.getvalue() == slow.getvalue()
        assert fast.getvalue().count("\n") > len(tasks)
