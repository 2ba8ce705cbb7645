"""Pure text for the role screens, from the status files the roles write (tested without Textual)."""

from __future__ import annotations

from typing import Any

from .formatting import cell, counts_line


def _mb(value: Any) -> str:
    return f"{int(value):,} MB" if isinstance(value, int | float) else "? MB"


def _age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


# ---------------------------------------------------------------------- controller


def controller_summary(data: dict[str, Any]) -> str:
    """Where the controller listens and how full its queues are."""
    ctl = data.get("controller") or {}
    status = data.get("status") or {}
    totals = status.get("totals") or {}
    dags = status.get("dags") or []
    running_dags = sum(1 for d in dags if d.get("state") == "running")
    token = ctl.get("token")
    secure = (
        f"Token {token} (hosts and UIs need it: --token or BXTHRE3_TOKEN)" if token
        else "PLAINTEXT: --insecure, this device only"
    )  # fmt: skip
    lines = [
        secure,
        f"Journal {ctl.get('state_dir', '?')} · up {_age(ctl.get('uptime_s'))} · {ctl.get('watchers', 0)} UI client(s)",
        f"Queue: {totals.get('ready', 0)} ready · {totals.get('running', 0)} running · "
        f"{ctl.get('retrying', 0)} to retry · DAGs {running_dags} running of {len(dags)}",
        f"Done: {totals.get('succeeded', 0):,} succeeded · {totals.get('failed', 0):,} failed · "
        f"{totals.get('tasks_per_s', 0)} tasks/s · {ctl.get('dropped_frames', 0)} bad frames dropped",
    ]
    lines += [f"⚠ {w}" for w in status.get("waiting") or []]
    return "\n".join(lines)


CONTROLLER_HOST_COLUMNS = ("Host", "Device", "Engine", "Slots", "Running", "Done", "Failed", "Seen")


def controller_host_rows(data: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The hosts the controller knows, each with what it runs right now."""
    rows: dict[str, tuple[str, ...]] = {}
    for host in (data.get("status") or {}).get("hosts") or []:
        running = host.get("running") or []
        shown = ", ".join(r.split("/", 1)[-1] for r in running[:2]) + (" …" if len(running) > 2 else "")
        rows[str(host.get("node_id"))] = (  # other hosts name themselves: cells escaped (markup, controls)
            cell(host.get("node_id")),
            cell(host.get("device") or ""),
            cell(host.get("engine") or ""),
            str(host.get("slots", 0)),
            cell(shown) or "idle",
            str(host.get("succeeded", 0)),
            str(host.get("failed", 0)),
            f"{float(host.get('last_seen_s', 0.0)):.1f} s ago",
        )
    return rows


def dag_lines(data: dict[str, Any], limit: int = 5) -> str:
    """The newest DAGs, one line each."""
    dags = (data.get("status") or {}).get("dags") or []
    lines = [
        f"{d.get('name')} ({d.get('dag_id')}): {d.get('state')} {d.get('done', 0)}/{d.get('total', 0)}"
        f" · {counts_line(d.get('counts') or {})}"
        for d in dags[-limit:]
    ]
    return "\n".join(reversed(lines)) or "No DAGs yet: press m for the monitor, then s to submit one."


# ---------------------------------------------------------------------- node manager


def node_manager_formula(nm: dict[str, Any]) -> str:
    """The original Bxthre3 formula with this device's numbers in it."""
    policy = nm.get("policy") or {}
    formula = nm.get("formula") or {}
    per_node = policy.get("ram_per_node", 0)
    reserved = policy.get("min_free_ram", 0)
    if nm.get("probe_error"):
        head = f"Cannot read available RAM ({nm['probe_error']}); keeping the hosts it has."
    elif formula.get("available_ram_mb") is None:
        head = "Reading available RAM…"
    else:
        held = formula.get("held_nodes", 0)
        effective = formula.get("effective_ram_mb")
        share = f" (+{held} × {per_node} MB its hosts hold)" if held else ""
        head = (
            f"max_nodes = ({_mb(formula.get('available_ram_mb'))} available{share} − {reserved} MB kept free) "
            f"/ {per_node} MB per node"
            f" = {max(0, int((effective or 0) - reserved) // max(1, per_node))}"
            f" → {formula.get('target_nodes', 0)} host(s) (at most {policy.get('max_nodes', '?')})"
        )
    manners = nm.get("manners") or {}
    rest = ""
    if manners.get("paused"):
        rest = f"\nPAUSED (phone manners): {manners['paused']}"
    elif manners:
        battery = manners.get("battery") or {}
        rest = f"\nPhone manners on: battery {battery.get('percentage', '?')}%, {battery.get('temperature_c', '?')} °C"
    return (
        f"{head}\nDevice {nm.get('name', '?')} ({nm.get('platform', '?')}, {nm.get('cpus', '?')} CPUs) · "
        f"controller {nm.get('controller', '?')} · {nm.get('sigkill_deaths', 0)} host(s) killed by the OS{rest}"
    )


NODE_MANAGER_HOST_COLUMNS = ("Host", "PID", "State", "Restarts", "Up", "Last exit")


def node_manager_host_rows(nm: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    rows: dict[str, tuple[str, ...]] = {}
    for host in nm.get("hosts") or []:
        state = str(host.get("state", ""))
        if host.get("restart_in_s") is not None:
            state += f" (restart in {float(host['restart_in_s']):.1f} s)"
        if host.get("why"):
            state += f" ({cell(host['why'])})"
        rows[str(host.get("node_id"))] = (
            cell(host.get("node_id")),
            str(host.get("pid") or "–"),
            state,
            str(host.get("restarts", 0)),
            _age(host.get("uptime_s")),
            str(host.get("last_exit") or ""),
        )
    return rows


# ---------------------------------------------------------------------- host


def host_summary(data: dict[str, Any]) -> str:
    state = data.get("state", "?")
    since = f" for {_age(data.get('registered_for_s'))}" if state == "registered" else ""
    again = data.get("registrations", 0)
    rejoined = f" · re-registered {again - 1}×" if again > 1 else ""
    return (
        f"{data.get('node_id', '?')} on {data.get('device') or '?'} · {state} with {data.get('controller', '?')}"
        f"{since}{rejoined}\n"
        f"{data.get('slots', 0)} slot(s) · {_mb(data.get('ram_mb'))}/task · {data.get('engine', '?')} · "
        f"{data.get('succeeded', 0)} succeeded · {data.get('failed', 0)} failed · {data.get('queued', 0)} queued · "
        f"{data.get('unacked', 0)} unacked"
    )


HOST_RUNNING_COLUMNS = ("Running task", "DAG", "Attempt", "Elapsed", "Timeout")


def host_running_rows(data: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    rows: dict[str, tuple[str, ...]] = {}
    for r in data.get("running") or []:
        key = f"{r.get('dag_id')}/{r.get('task_id')}"
        rows[key] = (
            str(r.get("task_id")),
            str(r.get("dag_id")),
            str(r.get("attempt")),
            f"{float(r.get('elapsed_s', 0.0)):.1f} s",
            f"{float(r.get('timeout_s', 0.0)):g} s",
        )
    return rows


HOST_HISTORY_COLUMNS = ("Finished task", "DAG", "Attempt", "Result", "Duration", "Ago")


def host_history_rows(data: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    rows: dict[str, tuple[str, ...]] = {}
    for h in data.get("history") or []:
        key = f"{h.get('dag_id')}/{h.get('task_id')}/{h.get('attempt')}"
        rows[key] = (
            str(h.get("task_id")),
            str(h.get("dag_id")),
            str(h.get("attempt")),
            "ok" if not h.get("reason") else str(h["reason"]),
            f"{float(h.get('duration_s', 0.0)) * 1000:.1f} ms",
            _age(h.get("ago_s")),
        )
    return rows
