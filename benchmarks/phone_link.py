"""Hosts behind a phone's network: run time against a clean link, spurious deaths, recovery from a blackout.

    sudo python benchmarks/phone_link.py [--tasks 400] [--task-s 0.1] [--hosts 4] [--blackout 20]
                                         [--code DIR] [--scenarios clean,impaired,blackout]

Two private network namespaces joined only by tests/impaired_link.py's TUN forwarder: the controller in
'ctl', --hosts real `bxthre3 host` processes (1 slot each, default heartbeat 1 s / liveness 3) in
'phone'. The DAG is --tasks independent tasks that each sleep --task-s (a WASI `poll_oneoff`, so the two
shared cores are not what is measured). A driver inside 'ctl' submits it through the real client, polls
progress every 50 ms and checks every result (succeeded, output "ok", recorded exactly once).

Scenarios (each on fresh namespaces and processes):
  clean     the forwarder with no delay and no loss
  impaired  200 ± 100 ms each way (FIFO), 5 % loss each way
  blackout  impaired, and --blackout seconds of total loss starting 3 s after submission: how long
            after the link returns until every host is registered again and work completes again

Prints per scenario: the DAG's run time, its ratio to the clean run, hosts the controller declared dead
(spurious unless in a blackout), attempts lost with a host, and for the blackout the recovery times.
--code DIR runs the controller and hosts from another checkout (e.g. `git archive BASE | tar -x -C DIR`)
for before/after figures; the driver always uses this one. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.impaired_link import ImpairedLink, sleep_module  # noqa: E402
from tests.netns_support import remove_stale  # noqa: E402

TOKEN = "bxt1-" + "P" * 43
PORT = 5000
PHONE = (0.2, 0.1, 0.05)
"""200 ± 100 ms each way, 5 % loss: the reported network."""
DRIVE_TIMEOUT_S = 900.0


# ---------------------------------------------------------------------- the driver (inside 'ctl')


def drive(args: argparse.Namespace) -> None:
    """Submit the DAG once all hosts are registered, follow it, print JSON lines (see `main`)."""
    import hashlib

    from bxthre3.client.connection import ControllerClient
    from bxthre3.common.errors import ClusterError
    from bxthre3.dag.spec import DagSpec, InputKind, TaskInput, TaskSpec
    from bxthre3.wire.addresses import parse_address
    from bxthre3.wire.security import CurveKeys

    def emit(**fields: Any) -> None:
        print(json.dumps({"t": time.monotonic(), **fields}), flush=True)

    module = sleep_module(args.task_s)
    sha = hashlib.sha256(module).hexdigest()
    tasks = tuple(
        TaskSpec(id=f"t{i:05d}", module=sha, module_name="sleep.wasm", inputs=(TaskInput(InputKind.LITERAL, str(i)),))
        for i in range(args.tasks)
    )
    spec = DagSpec(name="phone_link", tasks=tasks, modules={sha: module}, cache=False)
    client = ControllerClient(parse_address(f"127.0.0.1:{PORT}"), timeout=10, keys=CurveKeys.from_token(TOKEN))
    deadline = time.monotonic() + 60
    while True:
        try:
            if len(client.status()["hosts"]) >= args.hosts:
                break
        except ClusterError:
            pass
        if time.monotonic() > deadline:
            emit(event="error", error="hosts did not register within 60 s")
            return
        time.sleep(0.1)
    emit(event="registered")
    time.sleep(args.settle)  # hosts that have been up a while (a phone's are): their round trip is known
    dag_id = client.submit(spec)
    emit(event="submitted", dag_id=dag_id)
    last: tuple[int, int] | None = None
    end = time.monotonic() + DRIVE_TIMEOUT_S
    while time.monotonic() < end:
        try:
            prog = client.progress(dag_id)
            hosts = len(client.status()["hosts"])
        except ClusterError:
            continue
        if (prog["done"], hosts) != last:
            last = (prog["done"], hosts)
            emit(event="sample", done=prog["done"], hosts=hosts)
        if prog["state"] != "running":
            break
        time.sleep(0.05)
    res = client.results(dag_id)
    tasks_out = res["tasks"]
    ok = (b"ok\n", "ok\n")
    correct = all(t["state"] == "succeeded" and t["recorded"] == 1 and t["output"] in ok for t in tasks_out)
    lost = sum(1 for t in tasks_out for a in t["history"] if a.get("reason") == "host_lost")
    emit(event="finished", state=res["state"], elapsed_s=prog["elapsed_s"], correct=correct and len(tasks_out) ==
         args.tasks, host_lost=lost)  # fmt: skip


# ---------------------------------------------------------------------- the orchestrator (root namespace)


def run_scenario(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    impaired = name != "clean"
    delay, jitter, loss = PHONE if impaired else (0.0, 0.0, 0.0)
    code = str(args.code or REPO)
    env = {**os.environ, "PYTHONPATH": code, "BXTHRE3_TOKEN": TOKEN, "XDG_STATE_HOME": str(work),
           "XDG_DATA_HOME": str(work), "XDG_CACHE_HOME": str(work / name / "cache"),
           "BXTHRE3_ENGINE": "wasm3"}  # fmt: skip
    logs = work / name
    logs.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "bxthre3"]
    out: dict[str, Any] = {"scenario": name}
    with ImpairedLink(delay, jitter, loss, seed=args.seed) as link:
        link.popen(
            "ctl", [*py, "controller", "--host", "0.0.0.0", "--port", str(PORT), "--state-dir", str(logs / "state"),
                    "--heartbeat", str(args.heartbeat), "--liveness", str(args.liveness),
                    "--log-file", str(logs / "controller.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code,
        )  # fmt: skip
        for k in range(args.hosts):
            link.popen(
                "phone", [*py, "host", "--controller", f"{link.ip['ctl']}:{PORT}", "--node-id", f"phone-{k + 1}",
                          "--heartbeat", str(args.heartbeat), "--liveness", str(args.liveness), "--warm-executors",
                          "--log-level", "DEBUG", "--log-file", str(logs / f"host_{k + 1}.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code,
            )  # fmt: skip
        driver_env = {**env, "PYTHONPATH": str(REPO)}
        driver = link.popen(
            "ctl", [sys.executable, str(Path(__file__).resolve()), "--drive", "--tasks", str(args.tasks),
                    "--task-s", str(args.task_s), "--hosts", str(args.hosts), "--settle", str(args.settle)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=driver_env,
            cwd=str(REPO),
        )  # fmt: skip
        assert driver.stdout is not None
        samples: list[dict[str, Any]] = []
        blackout_at = None
        submitted = None
        for line in driver.stdout:
            ev = json.loads(line)
            if ev["event"] == "error":
                raise RuntimeError(f"{name}: {ev['error']}")
            if ev["event"] == "submitted":
                submitted = ev["t"]
                if name == "blackout":
                    # issued from here, by the driver's next sample: the link is dark from now on
                    time.sleep(max(0.0, submitted + 3.0 - time.monotonic()))
                    blackout_at = time.monotonic()
                    link.blackout(args.blackout)
            elif ev["event"] == "sample":
                samples.append(ev)
            elif ev["event"] == "finished":
                out.update(ev)
        driver.wait(30)
        out["forwarder"] = link.stats()
    log = (logs / "controller.log").read_text(errors="replace")
    out["deaths"] = len(re.findall(r"host \S+ removed: (?:silent|unreachable)", log))
    if blackout_at is not None:
        back = blackout_at + args.blackout
        before = [s for s in samples if s["t"] < back]
        done_at_back = before[-1]["done"] if before else 0
        after = [s for s in samples if s["t"] >= back]
        rejoined = next((s["t"] for s in after if s["hosts"] >= args.hosts), None)
        resumed = next((s["t"] for s in after if s["done"] > done_at_back), None)
        out["hosts_back_s"] = None if rejoined is None else rejoined - back
        out["work_resumed_s"] = None if resumed is None else resumed - back
        out["min_hosts_in_blackout"] = min((s["hosts"] for s in before if s["t"] >= blackout_at), default=None)
    del submitted
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=400)
    p.add_argument("--task-s", type=float, default=0.1)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--heartbeat", type=float, default=1.0)
    p.add_argument("--liveness", type=int, default=3)
    p.add_argument("--blackout", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--settle", type=float, default=3.0, help="seconds between registration and submission")
    p.add_argument("--code", type=Path, help="run controller and hosts from this checkout (before/after)")
    p.add_argument("--scenarios", default="clean,impaired,blackout")
    p.add_argument("--logs", type=Path, help="keep the roles' logs here (default: a temporary directory)")
    p.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.drive:
        drive(args)
        return
    remove_stale()
    print(f"code: {args.code or REPO}; {args.tasks} tasks of {args.task_s} s on {args.hosts} hosts x 1 slot, "
          f"heartbeat {args.heartbeat} s, liveness {args.liveness}; "
          f"ideal {args.tasks * args.task_s / args.hosts:.1f} s")  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bx3-phone-") as tmp:
        for name in args.scenarios.split(","):
            r = results[name] = run_scenario(name, args, args.logs or Path(tmp))
            clean = results.get("clean", {}).get("elapsed_s")
            ratio = f", {r['elapsed_s'] / clean:.2f}x clean" if clean and r.get("elapsed_s") else ""
            line = (f"{name:9s} {r.get('state')} in {r.get('elapsed_s')} s{ratio}; correct={r.get('correct')}; "
                    f"hosts declared dead: {r['deaths']}; attempts lost with a host: {r.get('host_lost')}")  # fmt: skip
            if name == "blackout":
                line += (f"; {args.blackout:g} s blackout: hosts left {args.hosts - (r['min_hosts_in_blackout'] or 0)}"
                         f", all hosts back {r['hosts_back_s']:.2f} s and work resumed "
                         f"{r['work_resumed_s']:.2f} s after the link returned"
                         if r.get("hosts_back_s") is not None and r.get("work_resumed_s") is not None
                         else f"; not recovered: {r}")  # fmt: skip
            print(line, flush=True)
            print(f"          forwarder: {r['forwarder']}", flush=True)


if __name__ == "__main__":
    main()
