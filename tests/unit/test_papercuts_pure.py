"""Issue 17's papercuts in the pure parts: progress and results of a cancelled DAG, the controller's
failure line, the join hint, limits and their wording, why a node manager runs no hosts, and why a
host hears nothing. Real scheduler snapshots; the only thing faked is a DNS failure."""

from __future__ import annotations

import hashlib
import io
import logging
import socket
from pathlib import Path

import pytest
from rich.console import Console

from bxthre3.cli import main
from bxthre3.client.progress import DagProgress, done_text
from bxthre3.client.render import print_results, print_status
from bxthre3.common.failures import FailureReason
from bxthre3.common.user_input import check_node_id, ram_problem
from bxthre3.controller.join_hint import join_lines
from bxthre3.controller.views import dag_end_line, dag_summary, results_view, status_view
from bxthre3.dag.spec import DagSpec, TaskSpec
from bxthre3.node.manager import NodeManager, ScalingPolicy
from bxthre3.scheduler import DagCancelled, DagSubmitted, HostJoined, Scheduler, SchedulerConfig, TaskFinished
from bxthre3.scheduler.instructions import Assign
from bxthre3.wire.addresses import Address
from bxthre3.wire.reachability import why_unreachable

MODULE = b"\x00asm\x01\x00\x00\x00"
SHA = hashlib.sha256(MODULE).hexdigest()


def cluster(n: int) -> tuple[Scheduler, list[Assign]]:
    """A DAG of ``n`` independent tasks on one 2-slot host: two are assigned, the rest wait."""
    s = Scheduler(SchedulerConfig(retry_backoff=0.0, default_retries=0), rng=lambda: 0.5)
    tasks = tuple(TaskSpec(id=f"t{i}", module=SHA, module_name="m.wasm") for i in range(n))
    s.handle(DagSubmitted("d1", DagSpec(name="many", tasks=tasks, modules={SHA: MODULE}), 0.0))
    out = s.handle(HostJoined("h1", "phone-1", 2, 128, 0.0))
    return s, [i for i in out if isinstance(i, Assign)]


def test_a_cancelled_dag_is_not_shown_as_complete() -> None:
    """Papercut: a cancelled DAG showed 65/65 and 100 %."""
    s, (first, _) = cluster(65)
    s.handle(TaskFinished("h1", "d1", first.task_id, first.attempt, 1.0, output=b"ok"))
    s.handle(DagCancelled("d1", 2.0))
    summary = dag_summary(s.dags["d1"], 2.0)
    assert summary["state"] == "cancelled" and summary["done"] == 65  # the JSON keeps its meaning
    assert done_text(summary) == "1/65, 64 cancelled"

    plain = io.StringIO()
    with DagProgress("many", 65, console=Console(file=io.StringIO()), plain=plain) as progress:
        progress.update(summary)
    assert plain.getvalue() == "many: 1/65 done, DAG cancelled, 64 cancelled\n"
    bar = DagProgress("many", 65, console=Console(file=io.StringIO(), force_terminal=True))
    bar.update(summary)
    assert bar.progress is not None and bar.progress.tasks[0].completed == 1  # not a full bar

    out = io.StringIO()
    print_results(results_view(s.dags["d1"], s, 2.0), Console(file=out, width=200))
    assert "cancelled — 1/65, 64 cancelled tasks" in out.getvalue()
    out = io.StringIO()
    print_status(status_view(s, 2.0), Console(file=out, width=200))
    assert "1/65, 64 cancelled" in out.getvalue()


def test_the_controller_names_failed_tasks_and_why() -> None:
    """Papercut: the controller logged "DAG … failed" without the task or the reason."""
    s, (a, b) = cluster(2)
    s.handle(TaskFinished("h1", "d1", a.task_id, a.attempt, 1.0, exit_code=3, reason=FailureReason.EXIT_CODE,
                          error="exited with code 3\nsecond line"))  # fmt: skip
    s.handle(TaskFinished("h1", "d1", b.task_id, b.attempt, 1.0, reason=FailureReason.TRAP, error="unreachable"))
    line = dag_end_line(s.dags["d1"])
    assert line == "DAG d1 (many) failed: task t0 (exit_code: exited with code 3); t1 (trap: unreachable)"


def test_the_join_hint_names_address_commands_and_where_the_token_is(tmp_path: Path) -> None:
    lines = join_lines(
        "192.168.1.10", 5000, token_file=tmp_path / "token", insecure=False, token_command="bxthre3 token"
    )
    text = "\n".join(lines)
    assert "bxthre3 node-manager --controller 192.168.1.10:5000 --token TOKEN" in text
    assert "bxthre3 host --controller 192.168.1.10:5000 --token TOKEN" in text
    assert f"`bxthre3 token` prints it on this device (kept in {tmp_path / 'token'})" in text
    every = "\n".join(join_lines("0.0.0.0", 5000, token_file=None, insecure=False))
    assert "--controller " in every and "0.0.0.0" not in every  # a real address (or a placeholder), never 0.0.0.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["host", "--ram-limit", "99999"], "--ram-limit must be between 16 and 4096, not 99999"),
        (["node-manager", "--ram-per-node", "999999"], "--ram-per-node must be between 16 and 4096, not 999999"),
        (["controller", "--keep-dags", "2000000"], "--keep-dags must be between 0 and 1000000, not 2000000"),
        (["host", "--node-id", "a/b", "--controller", "127.0.0.1"], "--node-id: 'a/b' is not a node id"),
        (["node-manager", "--device-name", "my phone", "--controller", "127.0.0.1"], "--device-name: 'my phone'"),
    ],
)
def test_limits_and_node_ids_are_refused_in_whole_numbers(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Papercuts: `--ram-limit 99999` was accepted; `--node-id a/b` wrote logs/host_a/b.log; `1.04858e+06`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BXTHRE3_LOG_DIR", str(tmp_path / "logs"))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit
        code = int(exc.code or 0)
    assert code == 2 or code == 1
    err = capsys.readouterr().err
    assert message in err and "e+" not in err and "Traceback" not in err
    assert not (tmp_path / "logs" / "host_a").exists()


def test_ram_problem_and_node_ids_are_one_rule() -> None:
    assert ram_problem(128) is None and ram_problem(4096) is None
    assert ram_problem(4097) == "must be between 16 and 4096 MB (a task's wasm32 memory tops out at 4096 MB), not 4097"
    assert check_node_id("phone-1.a_b") == "phone-1.a_b"
    for bad in ("a/b", "-x", "", "a b", "x" * 65):
        with pytest.raises(Exception, match="not a node id"):
            check_node_id(bad)


def test_a_node_manager_says_why_it_runs_no_hosts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Papercut: `node-manager --ram-per-node 999999` silently ran 0 hosts."""
    manager = NodeManager(
        Address("127.0.0.1", 9), ScalingPolicy(ram_per_node=4096, min_free_ram=512, max_nodes=4),
        name="small", probe=lambda: 2000, log_dir=tmp_path,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        manager.tick()
        manager.tick()
    lines = [r.getMessage() for r in caplog.records if "running no hosts" in r.getMessage()]
    assert lines == [
        "running no hosts: 2000 MB available, 512 MB kept free (--min-free-ram) leaves 1488 MB, less than one "
        "host's 4096 MB (--ram-per-node); lower either to run one"
    ]  # once, not every tick
    assert manager.hosts == []


def test_why_a_controller_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Papercut: a host blamed the token for an unresolvable or absent controller."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert why_unreachable(Address("127.0.0.1", port)) is None
    assert "nothing is listening at 127.0.0.1:" in (why_unreachable(Address("127.0.0.1", port)) or "")

    def no_such_name(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # a DNS failure, without asking a DNS server
    assert "cannot resolve controller host 'ctl.lan'" in (why_unreachable(Address("ctl.lan", 5000)) or "")
