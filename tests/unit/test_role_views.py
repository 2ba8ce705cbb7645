"""The role screens' text, from status dicts shaped like the ones the roles write."""

from __future__ import annotations

from bxthre3.tui import role_views
from tests.tui.fake_backend import role_status


def test_node_manager_formula_uses_this_devices_numbers() -> None:
    nm = role_status("node-manager")["node_manager"]
    text = role_views.node_manager_formula(nm)
    assert "max_nodes = (3,328 MB available (+2 × 128 MB its hosts hold) − 512 MB kept free) / 128 MB" in text
    assert "= 24 → 4 host(s) (at most 4)" in text  # (3328 + 256 - 512) // 128 = 24, capped at 4
    assert role_views.node_manager_formula({**nm, "probe_error": "no /proc"}).startswith("Cannot read available RAM")
    assert role_views.node_manager_formula({"formula": {}}).startswith("Reading available RAM")
    paused = {**nm, "manners": {"paused": "battery 12%, unplugged (pauses below 20%)", "battery": None}}
    assert "PAUSED (phone manners): battery 12%" in role_views.node_manager_formula(paused)
    rows = role_views.node_manager_host_rows(nm)
    assert rows["lab-box-2"][2] == "backoff (restart in 3.5 s)" and rows["lab-box-1"][4] == "1 min 35 s"


def test_controller_summary_hosts_and_dags() -> None:
    data = role_status("controller")
    summary = role_views.controller_summary(data)
    assert "Queue: 0 ready · 2 running · 0 to retry · DAGs 1 running of 1" in summary
    rows = role_views.controller_host_rows(data)
    assert rows["node-0"][4] == "hello_es" and rows["node-1"][7] == "1.4 s ago"
    assert rows["node-0"][2] == "wasmtime"
    assert "hello_fanout (d-0001): running 2/5" in role_views.dag_lines(data)
    waiting = {**data, "status": {**data["status"], "waiting": ["3 ready task(s) wait for a host to register"]}}
    assert "⚠ 3 ready task(s) wait for a host to register" in role_views.controller_summary(waiting)
    assert role_views.dag_lines({}).startswith("No DAGs yet")


def test_host_summary_running_and_history() -> None:
    data = role_status("host")
    summary = role_views.host_summary(data)
    assert summary.startswith("phone-1 on pixel-7 · registered with 192.168.1.10:5000 for 42.0 s")
    assert "re-registered" not in summary
    assert "re-registered 2×" in role_views.host_summary({**data, "registrations": 3})
    assert "connecting with" in role_views.host_summary({**data, "state": "connecting"})
    assert role_views.host_running_rows(data)["d-0001/tile_3"][3:] == ("1.2 s", "60 s")
    history = role_views.host_history_rows(data)
    assert list(history) == ["d-0001/tile_2/2", "d-0001/tile_1/1", "d-0001/prepare/1"]
    assert history["d-0001/tile_1/1"][3] == "timeout" and history["d-0001/tile_2/2"][4] == "314.1 ms"


def test_host_names_other_hosts_report_show_as_written() -> None:
    from rich.text import Text

    from bxthre3.tui.role_views import controller_host_rows, node_manager_host_rows

    hostile = "[bold red]h\x1b[2J"
    status = {"status": {"hosts": [{"node_id": hostile, "device": "[i]d", "running": ["dag/[b]t"]}]}}
    row = controller_host_rows(status)[hostile]
    assert [Text.from_markup(row[i]).plain for i in (0, 1, 4)] == ["[bold red]h\\x1b[2J", "[i]d", "[b]t"]
    assert Text.from_markup(node_manager_host_rows({"hosts": [{"node_id": hostile}]})[hostile][0]).plain == (
        "[bold red]h\\x1b[2J"
    )
